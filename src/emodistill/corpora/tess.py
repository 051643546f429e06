"""TESS (Toronto Emotional Speech Set, Dupuis & Pichora-Fuller 2010) -> manifest.

Layout: ``ROOT/<SPK>_<emotion>/<SPK>_<word>_<emotion>.wav`` (folders as released on the
University of Toronto's TSpace and mirrored on Kaggle; any depth). Two speakers, ``OAF`` (older
actress, 64) and ``YAF`` (younger, 26), say 200 target words in the carrier phrase
"Say the word ..." in seven emotions (TSpace description). The emotion is read from the file name
(``ps`` = pleasant surprise); folder names differ in case between copies and are not used.
"""

from __future__ import annotations

import re
from pathlib import Path

from emodistill.corpora.base import IDENTITY_4, CorpusRead, CorpusSpec, read_by_name
from emodistill.corpora.manifest import Utterance

NAME = re.compile(r"^(?P<speaker>OAF|YAF)_(?P<word>[A-Za-z']+)_(?P<emotion>[A-Za-z_]+)$", re.I)
EMOTIONS = {
    "angry": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happy",
    "neutral": "neutral",
    "ps": "surprise",  # pleasant surprise
    "pleasant_surprise": "surprise",
    "pleasant_surprised": "surprise",
    "sad": "sad",
}


def _make(m: re.Match[str], path: Path) -> Utterance | str:
    label = EMOTIONS.get(m["emotion"].lower())
    if label is None:
        return f"unknown emotion {m['emotion']!r}"
    return Utterance(
        id=path.stem,
        path=path.absolute(),
        label=label,
        speaker=m["speaker"].upper(),
        transcript=f"Say the word {m['word'].lower()}.",
    )


def read(root: Path) -> CorpusRead:
    """All TESS wavs below ``root``."""
    return read_by_name(root, NAME, _make, "the TESS rule (OAF_back_angry)")


SPEC = CorpusSpec(
    name="tess",
    title="TESS",
    read=read,
    four_class=IDENTITY_4,
    # Two speakers: each tests once; no third speaker is left to validate on.
    default_folds={"scheme": "speaker", "val_speakers": 0},
    note="Expected OAF_word_emotion.wav / YAF_word_emotion.wav names.",
)
