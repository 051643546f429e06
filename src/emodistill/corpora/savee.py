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
from pathlib import Path

from emodistill.corpora.base import IDENTITY_4, CorpusRead, CorpusSpec, read_by_name
from emodistill.corpora.manifest import Utterance

SPEAKERS = ("DC", "JE", "JK", "KL")
NAME = re.compile(r"^(?:(?P<speaker>DC|JE|JK|KL)_)?(?P<emotion>sa|su|a|d|f|h|n)(?P<number>\d\d)$")
EMOTIONS = {
    "a": "angry",
    "d": "disgust",
    "f": "fear",
    "h": "happy",
    "n": "neutral",
    "sa": "sad",
    "su": "surprise",
}


def _make(m: re.Match[str], path: Path) -> Utterance | str:
    speaker = m["speaker"] or path.parent.name
    if speaker not in SPEAKERS:
        return "speaker unknown (neither a DC_/JE_/JK_/KL_ prefix nor a speaker folder)"
    return Utterance(
        id=f"{speaker}_{m['emotion']}{m['number']}",
        path=path.absolute(),
        label=EMOTIONS[m["emotion"]],
        speaker=speaker,
    )


def read(root: Path) -> CorpusRead:
    """All SAVEE wavs below ``root``."""
    return read_by_name(root, NAME, _make, "the SAVEE rule (DC/a01, DC_a01)")


SPEC = CorpusSpec(
    name="savee",
    title="SAVEE",
    read=read,
    four_class=IDENTITY_4,
    default_folds={"scheme": "speaker", "val_speakers": 1},
    note="Expected AudioData/DC/a01.wav or DC_a01.wav names.",
)
