"""EmoDB (Berlin Database of Emotional Speech, Burkhardt et al. 2005) -> manifest.

Layout: ``ROOT/wav/<name>.wav`` (any depth below ROOT is searched). Name rule (EmoDB
documentation, emodb.bilderbar.info/docu): positions 1-2 speaker (03, 08, ..., 16), 3-5 text code
(a01..b10), 6 emotion letter of the German word, 7 version (a, b, ...): ``03a01Fa.wav`` is speaker
03 saying text a01 with Freude (happiness).
"""

from __future__ import annotations

import re

from emodistill.corpora.base import CorpusSpec
from emodistill.corpora.by_name import Code, NameRule

NAME = re.compile(r"^(?P<speaker>\d\d)(?P<text>[ab]\d\d)(?P<emotion>[A-Z])(?P<version>[a-z])$")
SCHEME = "the EmoDB rule (03a01Fa: speaker, text, emotion)"
NOTE = "Expected ROOT/wav/03a01Fa.wav-style names."
#: German emotion letter -> shared label name.
EMOTIONS = {
    "W": "angry",  # Ärger (Wut)
    "L": "boredom",  # Langeweile
    "E": "disgust",  # Ekel
    "A": "fear",  # Angst
    "F": "happy",  # Freude
    "T": "sad",  # Trauer
    "N": "neutral",
}
#: The ten sentences, by text code (EmoDB documentation).
SENTENCES = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}

RULE = NameRule(
    NAME, SCHEME, Code(EMOTIONS, "emotion letter"), Code(SENTENCES, "text code", "text")
)
SPEC = CorpusSpec("emodb", "EmoDB", RULE.read, language="de", note=NOTE)
