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
from pathlib import Path

from emodistill.corpora.base import (
    IDENTITY_4,
    CorpusRead,
    CorpusSpec,
    read_by_name,
    read_text_lenient,
)
from emodistill.corpora.manifest import Utterance

NAME = re.compile(
    r"^(?P<speaker>(?:fe)?male[12])_(?P<emotion>[a-z]+)_(?P<sentence>\d+)(?P<take>[ab])_"
    r"(?P<session>[12])$"
)
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


def _make(m: re.Match[str], path: Path) -> Utterance | str:
    if m["emotion"] not in EMOTIONS:
        return f"unknown emotion {m['emotion']!r}"
    txt = path.with_suffix(".txt")
    text = read_text_lenient(txt).strip() if txt.is_file() else ""
    return Utterance(
        id=path.stem,
        path=path.absolute(),
        label=m["emotion"],
        speaker=m["speaker"],
        transcript=" ".join(text.split()) or None,
    )


def read(root: Path) -> CorpusRead:
    """All JL-Corpus wavs below ``root``, with the transcript of each one's ``.txt``."""
    return read_by_name(root, NAME, _make, "the JL-Corpus rule (female1_angry_10a_1)")


SPEC = CorpusSpec(
    name="jl-corpus",
    title="JL-Corpus",
    read=read,
    four_class=IDENTITY_4,  # excited is left out; --map excited=happy merges it (IEMOCAP style)
    default_folds={"scheme": "speaker", "val_speakers": 1},
    note="Expected female1_angry_10a_1.wav-style names.",
)
