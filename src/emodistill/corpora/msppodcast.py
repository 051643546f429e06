"""MSP-Podcast (Lotfian & Busso 2019) -> manifest with its official partition.

Layout (release 1.x)::

    ROOT/Labels/labels_consensus.csv    FileName,EmoClass,...,SpkrID,Gender,Split_Set
    ROOT/Audios/<FileName>              MSP-PODCAST_0001_0008.wav
    ROOT/Transcripts/<stem>.txt         (releases 1.9+; optional)

Older releases spell the labels file ``labels_concensus.csv``; both are read. ``EmoClass``:
A angry, S sad, H happy, U surprise, F fear, D disgust, C contempt, N neutral, O other,
X no agreement (skipped). ``Split_Set``: Train -> train, Development -> validation,
Test1 -> test; Test2 / Test3 are kept as ``test2`` / ``test3`` (not in the official fold).
Speakers are ``SpkrID`` (``Unknown`` where the corpus does not know them).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from emodistill.corpora.base import (
    CorpusError,
    CorpusRead,
    CorpusSpec,
    audio_files,
    read_text_lenient,
)
from emodistill.corpora.manifest import Utterance

LABEL_FILES = ("labels_consensus.csv", "labels_concensus.csv")
EMOTIONS = {
    "A": "angry",
    "S": "sad",
    "H": "happy",
    "U": "surprise",
    "F": "fear",
    "D": "disgust",
    "C": "contempt",
    "N": "neutral",
    "O": "other",
}
SPLITS = {"train": "train", "development": "validation", "test1": "test"}
COLUMNS = ("FileName", "EmoClass", "SpkrID", "Split_Set")


def labels_file(root: Path) -> Path:
    """``Labels/labels_consensus.csv`` (or the older spelling) under ``root``."""
    for folder in (root / "Labels", root):
        for name in LABEL_FILES:
            if (folder / name).is_file():
                return folder / name
    raise CorpusError(f"{root}: no Labels/labels_consensus.csv (MSP-Podcast labels) found")


def read(root: Path) -> CorpusRead:
    """MSP-Podcast utterances listed in the consensus labels file and present as audio."""
    path = labels_file(root)
    rows = list(csv.DictReader(io.StringIO(read_text_lenient(path), newline="")))
    missing = [c for c in COLUMNS if rows and c not in rows[0]]
    if missing:
        raise CorpusError(f"{path}: lacks column(s) {', '.join(missing)}")
    audio_dir = next((root / d for d in ("Audios", "Audio") if (root / d).is_dir()), root)
    audio = {p.name: p for p in audio_files(audio_dir, (".wav", ".flac"))}
    result = CorpusRead()
    for row in rows:
        name = row["FileName"].strip()
        label = EMOTIONS.get(row["EmoClass"].strip().upper())
        if label is None:
            result.skip(f"EmoClass {row['EmoClass'].strip()!r} (no consensus)", name)
            continue
        wav = audio.get(name)
        if wav is None:
            result.skip(f"audio file missing under {audio_dir.name}/", name)
            continue
        split_raw = row["Split_Set"].strip()
        transcript_file = root / "Transcripts" / f"{Path(name).stem}.txt"
        text = read_text_lenient(transcript_file).strip() if transcript_file.is_file() else ""
        result.utterances.append(
            Utterance(
                id=Path(name).stem,
                path=wav.absolute(),
                label=label,
                speaker=row["SpkrID"].strip() or "Unknown",
                transcript=" ".join(text.split()) or None,
                split=SPLITS.get(split_raw.lower(), split_raw.lower() or None),
            )
        )
    return result


NOTE = "Expected Labels/labels_consensus.csv and Audios/*.wav."
SPEC = CorpusSpec(
    "msp-podcast", "MSP-Podcast", read, default_folds={"scheme": "official"}, note=NOTE
)
