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
from pathlib import Path

from emodistill.corpora.base import IDENTITY_4, CorpusRead, CorpusSpec, read_by_name
from emodistill.corpora.manifest import Utterance

NAME = re.compile(
    r"^(?P<modality>\d\d)-(?P<channel>\d\d)-(?P<emotion>\d\d)-(?P<intensity>\d\d)-"
    r"(?P<statement>\d\d)-(?P<repetition>\d\d)-(?P<actor>\d\d)$"
)
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


def _make(m: re.Match[str], path: Path) -> Utterance | str:
    if m["modality"] != "03":
        return "not an audio-only file (modality is not 03)"
    if m["channel"] != "01":
        return "song, not speech (vocal channel 02)"
    label = EMOTIONS.get(m["emotion"])
    if label is None:
        return f"unknown emotion code {m['emotion']!r}"
    if m["statement"] not in STATEMENTS:
        return f"unknown statement code {m['statement']!r}"
    return Utterance(
        id=path.stem,
        path=path.absolute(),
        label=label,
        speaker=m["actor"],
        transcript=STATEMENTS[m["statement"]],
    )


def read(root: Path) -> CorpusRead:
    """All RAVDESS audio-only speech wavs below ``root``."""
    return read_by_name(root, NAME, _make, "the RAVDESS rule (03-01-06-01-02-01-12)")


SPEC = CorpusSpec(
    name="ravdess",
    title="RAVDESS",
    read=read,
    four_class=IDENTITY_4,
    default_folds={"scheme": "speaker", "val_speakers": 1},
    note="Expected Actor_NN/03-01-EE-II-SS-RR-NN.wav names (the audio-only speech zip).",
)
