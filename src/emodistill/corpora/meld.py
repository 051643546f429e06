"""MELD (Poria et al. 2019) -> manifest with its official partition.

Layout (``MELD.Raw`` as released, ROOT = that folder)::

    ROOT/train_sent_emo.csv, dev_sent_emo.csv, test_sent_emo.csv
        Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,...
    ROOT/train_splits/dia<D>_utt<U>.mp4, dev_splits_complete/..., output_repeated_splits_test/...

The release ships video; soundfile cannot read mp4, so put the audio beside it as
``dia<D>_utt<U>.wav`` (or ``.flac``) in the same split folder, e.g. with
``ffmpeg -i dia0_utt0.mp4 -vn -ac 1 -ar 16000 dia0_utt0.wav``; a row with only a video is
skipped and counted. Speaker = the ``Speaker`` column (the character), transcript = the
``Utterance`` column, split = the CSV it comes from (dev -> validation), id =
``<part>_dia<D>_utt<U>`` (dialogue numbers restart in every part). Emotions: neutral,
joy (-> happy), sadness (-> sad), anger (-> angry), surprise, fear, disgust.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from emodistill.corpora.base import (
    CorpusError,
    CorpusRead,
    CorpusSpec,
    read_text_lenient,
)
from emodistill.corpora.manifest import Utterance

#: MELD part -> (manifest split, CSV file, folders that hold its clips, first match wins).
SPLITS = {
    "train": ("train", "train_sent_emo.csv", ("train_splits", "train")),
    "dev": ("validation", "dev_sent_emo.csv", ("dev_splits_complete", "dev_splits", "dev")),
    "test": ("test", "test_sent_emo.csv", ("output_repeated_splits_test", "test_splits", "test")),
}
EMOTIONS = {
    "neutral": "neutral",
    "joy": "happy",
    "sadness": "sad",
    "anger": "angry",
    "surprise": "surprise",
    "fear": "fear",
    "disgust": "disgust",
}
AUDIO_SUFFIXES = (".wav", ".flac")
COLUMNS = ("Utterance", "Speaker", "Emotion", "Dialogue_ID", "Utterance_ID")


def _clip_folder(root: Path, names: tuple[str, ...]) -> Path | None:
    for base in (root, root / "audio"):
        for name in names:
            if (base / name).is_dir():
                return base / name
    return None


def read(root: Path) -> CorpusRead:
    """MELD rows of the three CSVs whose clip has audio (wav/flac) in its split folder."""
    result = CorpusRead()
    found = False
    for part, (split, csv_name, folders) in SPLITS.items():
        path = root / csv_name
        if not path.is_file():
            result.skip(f"{csv_name} not found", path)
            continue
        found = True
        rows = list(csv.DictReader(io.StringIO(read_text_lenient(path), newline="")))
        missing = [c for c in COLUMNS if rows and c not in rows[0]]
        if missing:
            raise CorpusError(f"{path}: lacks column(s) {', '.join(missing)}")
        folder = _clip_folder(root, folders)
        for row in rows:
            clip = f"dia{row['Dialogue_ID'].strip()}_utt{row['Utterance_ID'].strip()}"
            label = EMOTIONS.get(row["Emotion"].strip().lower())
            if label is None:
                result.skip(f"unknown emotion {row['Emotion'].strip()!r}", f"{part}/{clip}")
                continue
            audio = None
            if folder is not None:
                audio = next(
                    (
                        folder / f"{clip}{s}"
                        for s in AUDIO_SUFFIXES
                        if (folder / f"{clip}{s}").is_file()
                    ),
                    None,
                )
            if audio is None:
                video = folder is not None and (folder / f"{clip}.mp4").is_file()
                reason = "video only: extract its audio to .wav" if video else "no audio file"
                result.skip(reason, f"{part}/{clip}")
                continue
            result.utterances.append(
                Utterance(
                    id=f"{part}_{clip}",
                    path=audio.absolute(),
                    label=label,
                    speaker=" ".join(row["Speaker"].split()) or "unknown",
                    transcript=" ".join(row["Utterance"].split()) or None,
                    split=split,
                )
            )
    if not found:
        raise CorpusError(f"{root}: none of {', '.join(v[1] for v in SPLITS.values())} found")
    return result


NOTE = "Expected the MELD CSVs and dia<D>_utt<U>.wav beside the split folders' videos."
SPEC = CorpusSpec("meld", "MELD", read, default_folds={"scheme": "official"}, note=NOTE)
