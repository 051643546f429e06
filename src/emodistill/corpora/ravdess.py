"""RAVDESS (Livingstone & Russo 2018), audio-only speech files -> manifest.

Layout: ``ROOT/Actor_NN/<name>.wav`` (the Zenodo ``Audio_Speech_Actors_01-24.zip``; any depth).
Name rule (RAVDESS README on Zenodo, record 1188976): seven two-digit fields
``modality-channel-emotion-intensity-statement-repetition-actor``, e.g. ``03-01-06-01-02-01-12``:
modality 03 = audio-only, channel 01 = speech (02 = song), emotion 01..08 (neutral, calm, happy,
sad, angry, fearful, disgust, surprised), intensity 01/02, statement 01 "Kids are talking by the
door" / 02 "Dogs are sitting by the door", repetition 01/02, actor 01..24.
"""

from __future__ import annotations

import re

from emodistill.corpora.base import CorpusSpec
from emodistill.corpora.by_name import Code, NameRule

NAME = re.compile(
    r"^(?P<modality>\d\d)-(?P<channel>\d\d)-(?P<emotion>\d\d)-(?P<intensity>\d\d)-"
    r"(?P<statement>\d\d)-(?P<repetition>\d\d)-(?P<actor>\d\d)$"
)
SCHEME = "the RAVDESS rule (03-01-06-01-02-01-12)"
NOTE = "Expected Actor_NN/03-01-EE-II-SS-RR-NN.wav names (the audio-only speech zip)."
EMOTIONS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fear",
    "07": "disgust",
    "08": "surprise",
}
STATEMENTS = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}

RULE = NameRule(
    NAME,
    SCHEME,
    Code(EMOTIONS, "emotion code"),
    Code(STATEMENTS, "statement code", "statement"),
    speaker="actor",
    require=(
        ("modality", "03", "not an audio-only file (modality is not 03)"),
        ("channel", "01", "song, not speech (vocal channel 02)"),
    ),
)
SPEC = CorpusSpec("ravdess", "RAVDESS", RULE.read, note=NOTE)
