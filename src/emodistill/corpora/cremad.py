"""CREMA-D (Cao et al. 2014) -> manifest.

Layout: ``ROOT/AudioWAV/<name>.wav`` (the release repository; its ``AudioMP3`` copy is not
read). Name rule (CREMA-D README, github.com/CheyneyComputerScience/CREMA-D):
``ActorID_Sentence_Emotion_Level``, e.g. ``1001_DFA_ANG_XX``: actor 1001..1091, one of 12
sentence codes, emotion ANG/DIS/FEA/HAP/NEU/SAD, level LO/MD/HI/XX (unspecified).
"""

from __future__ import annotations

import re

from emodistill.corpora.base import CorpusSpec
from emodistill.corpora.by_name import Code, NameRule

NAME = re.compile(
    r"^(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>[A-Z]{2})$"
)
SCHEME = "the CREMA-D rule (1001_DFA_ANG_XX)"
NOTE = "Expected AudioWAV/1001_DFA_ANG_XX.wav-style names."
EMOTIONS = {
    "ANG": "angry",
    "DIS": "disgust",
    "FEA": "fear",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}
#: The twelve sentences, by code (CREMA-D README).
SENTENCES = {
    "IEO": "It's eleven o'clock.",
    "TIE": "That is exactly what happened.",
    "IOM": "I'm on my way to the meeting.",
    "IWW": "I wonder what this is about.",
    "TAI": "The airplane is almost full.",
    "MTI": "Maybe tomorrow it will be cold.",
    "IWL": "I would like a new alarm clock.",
    "ITH": "I think I have a doctor's appointment.",
    "DFA": "Don't forget a jacket.",
    "ITS": "I think I've seen this before.",
    "TSI": "The surface is slick.",
    "WSI": "We'll stop in a couple of minutes.",
}

EMOTION = Code(EMOTIONS, "emotion code")
RULE = NameRule(
    NAME, SCHEME, EMOTION, Code(SENTENCES, "sentence code", "sentence"), speaker="actor"
)
# 91 actors: 10 seeded speaker groups (9-10 test actors each) instead of 91 folds.
GROUPS = {"scheme": "groups", "groups": 10, "val_speakers": 8}
SPEC = CorpusSpec("crema-d", "CREMA-D", RULE.read, default_folds=GROUPS, note=NOTE)
