"""TESS (Toronto Emotional Speech Set, Dupuis & Pichora-Fuller 2010) -> manifest.

Layout: ``ROOT/<SPK>_<emotion>/<SPK>_<word>_<emotion>.wav`` (folders as released on the
University of Toronto's TSpace and mirrored on Kaggle; any depth). Two speakers, ``OAF`` (older
actress, 64) and ``YAF`` (younger, 26), say 200 target words in the carrier phrase
"Say the word ..." in seven emotions (TSpace description). The emotion is read from the file name
(``ps`` = pleasant surprise); folder names differ in case between copies and are not used.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from emodistill.corpora.base import CorpusSpec
from emodistill.corpora.by_name import Code, NameRule
from emodistill.corpora.manifest import Utterance

NAME = re.compile(r"^(?P<speaker>OAF|YAF)_(?P<word>[A-Za-z']+)_(?P<emotion>[A-Za-z_]+)$", re.I)
SCHEME = "the TESS rule (OAF_back_angry)"
NOTE = "Expected OAF_word_emotion.wav / YAF_word_emotion.wav names."
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


def _word(u: Utterance, m: re.Match[str], path: Path) -> Utterance:
    """Speaker names in capitals; the carrier phrase with the target word as the transcript."""
    return replace(u, speaker=u.speaker.upper(), transcript=f"Say the word {m['word'].lower()}.")


RULE = NameRule(NAME, SCHEME, Code(EMOTIONS, "emotion", fold=str.lower), adjust=_word)
# Two speakers: each tests once; no third speaker is left to validate on.
FOLDS = {"scheme": "speaker", "val_speakers": 0}
SPEC = CorpusSpec("tess", "TESS", RULE.read, default_folds=FOLDS, note=NOTE)
