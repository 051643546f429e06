"""JL-Corpus (James, Tian & Watson 2018; New Zealand English) -> manifest.

Layout: the Kaggle release's ``JL(wav+txt)/`` folder (any depth below ROOT): each
``<speaker>_<emotion>_<sentence><take>_<session>.wav`` (e.g. ``female1_angry_10a_1.wav``) has its
transcript in the ``.txt`` file of the same name. Speakers ``female1``, ``female2``, ``male1``,
``male2``; five primary emotions (angry, sad, neutral, happy, excited) and five secondary ones
(anxious, apologetic, assertive, concerned, encouraging). Name rule as parsed by nkululeko's
``data/jl/process_database.py`` (``^(?:fe)?male[12]_([a-z]+)_\\d+[ab]_[12]$``).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from emodistill.corpora.base import CorpusSpec, read_text_lenient
from emodistill.corpora.by_name import Code, NameRule
from emodistill.corpora.manifest import Utterance

NAME = re.compile(
    r"^(?P<speaker>(?:fe)?male[12])_(?P<emotion>[a-z]+)_(?P<sentence>\d+)(?P<take>[ab])_"
    r"(?P<session>[12])$"
)
SCHEME = "the JL-Corpus rule (female1_angry_10a_1)"
NOTE = "Expected female1_angry_10a_1.wav-style names."
EMOTIONS = (
    "angry",
    "sad",
    "neutral",
    "happy",
    "excited",
    "anxious",
    "apologetic",
    "assertive",
    "concerned",
    "encouraging",
)


def _transcript(u: Utterance, m: re.Match[str], path: Path) -> Utterance:
    """The transcript in the ``.txt`` file of the same name (white space folded)."""
    txt = path.with_suffix(".txt")
    text = read_text_lenient(txt).strip() if txt.is_file() else ""
    return replace(u, transcript=" ".join(text.split()) or None)


RULE = NameRule(NAME, SCHEME, Code({e: e for e in EMOTIONS}, "emotion"), adjust=_transcript)
# excited is left out of the 4 classes; --map excited=happy merges it (IEMOCAP style)
SPEC = CorpusSpec("jl-corpus", "JL-Corpus", RULE.read, note=NOTE)
