"""SAVEE (Surrey Audio-Visual Expressed Emotion, Haq & Jackson 2009), audio -> manifest.

Layouts: the release's ``ROOT/AudioData/<SPK>/<e><nn>.wav`` (speaker = folder DC, JE, JK or KL)
or the flat mirror ``ROOT/<SPK>_<e><nn>.wav``. Name rule (the release's ``AudioData/Info.txt``):
the initial letter(s) give the emotion (a anger, d disgust, f fear, h happiness, n neutral,
sa sadness, su surprise) and the digits the sentence number, e.g. ``d03.wav``.

Transcripts are left empty: the sentences are TIMIT sentences chosen per emotion, and we could
not establish from public sources which text each number is (fill them with
``emodistill corpus transcribe``).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from emodistill.corpora.base import CorpusSpec
from emodistill.corpora.by_name import Code, NameRule
from emodistill.corpora.manifest import Utterance

SPEAKERS = ("DC", "JE", "JK", "KL")
NAME = re.compile(r"^(?:(?P<speaker>DC|JE|JK|KL)_)?(?P<emotion>sa|su|a|d|f|h|n)(?P<number>\d\d)$")
SCHEME = "the SAVEE rule (DC/a01, DC_a01)"
NOTE = "Expected AudioData/DC/a01.wav or DC_a01.wav names."
EMOTIONS = {
    "a": "angry",
    "d": "disgust",
    "f": "fear",
    "h": "happy",
    "n": "neutral",
    "sa": "sad",
    "su": "surprise",
}
EMOTION = Code(EMOTIONS, "emotion")


def _speaker(u: Utterance, m: re.Match[str], path: Path) -> Utterance | str:
    """The speaker from the name's prefix or else the folder; ids carry the speaker."""
    speaker = m["speaker"] or path.parent.name
    if speaker not in SPEAKERS:
        return "speaker unknown (neither a DC_/JE_/JK_/KL_ prefix nor a speaker folder)"
    return replace(u, id=f"{speaker}_{m['emotion']}{m['number']}", speaker=speaker)


RULE = NameRule(NAME, SCHEME, EMOTION, adjust=_speaker)
SPEC = CorpusSpec("savee", "SAVEE", RULE.read, note=NOTE)
