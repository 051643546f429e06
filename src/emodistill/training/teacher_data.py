"""The teachers' datasets and collators (beside ``data.py``'s student data): transcripts for the
linguistic teacher, eGeMAPS LLDs for the prosodic one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from emodistill.config import Config
from emodistill.training.teacher_cache import pad_llds
from emodistill.util.log import get_logger

log = get_logger(__name__)

#: Bytes of LLDs an :class:`LLDDataset` keeps in memory: a teacher trains for tens of epochs,
#: and re-opening (and re-normalising) every clip's cache file each epoch cost about a third of
#: the demo's prosodic-teacher time.
LLD_CACHE_BYTES = 1 << 30


class TextDataset(Dataset):
    """(transcript, class index) pairs."""

    def __init__(self, utterances: Sequence[Any], labels: Sequence[str]):
        index = {lab: i for i, lab in enumerate(labels)}
        self.items = [(u.transcript, index[u.label]) for u in utterances]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[str, int]:
        return self.items[i]


class TextCollator:
    """Tokenises a batch: ``{"inputs": {input_ids (B, L), attention_mask (B, L)}, labels (B,)}``."""

    def __init__(self, tokenizer: Any, max_length: int):
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, batch: list[tuple[str, int]]) -> dict[str, Any]:
        enc = self.tokenizer(
            [t for t, _ in batch],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {
            "inputs": {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]},
            "labels": torch.tensor([y for _, y in batch], dtype=torch.long),
        }


class LLDDataset(Dataset):
    """(LLDs (T, 25), class index); training crops a random window of at most ``max_frames``."""

    def __init__(
        self,
        utterances: Sequence[Any],
        labels: Sequence[str],
        features: Any,
        max_frames: int | None = None,
        train: bool = False,
    ):
        index = {lab: i for i, lab in enumerate(labels)}
        self.ids = [u.id for u in utterances]
        self.targets = [index[u.label] for u in utterances]
        self.features = features
        self.max_frames = max_frames
        self.train = train
        self._cache: dict[int, np.ndarray] = {}
        self._cache_bytes = 0

    def __len__(self) -> int:
        return len(self.ids)

    def _load(self, i: int) -> np.ndarray:
        x = self._cache.get(i)
        if x is None:
            x = np.asarray(self.features[self.ids[i]], dtype=np.float32)
            if self._cache_bytes + x.nbytes <= LLD_CACHE_BYTES:
                self._cache[i] = x
                self._cache_bytes += x.nbytes
        return x

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        x = self._load(i)
        if self.train and self.max_frames and x.shape[0] > self.max_frames:
            start = int(torch.randint(0, x.shape[0] - self.max_frames + 1, ()).item())
            x = x[start : start + self.max_frames]
        return np.asarray(x, dtype=np.float32), self.targets[i]


def collate_llds(batch: list[tuple[np.ndarray, int]]) -> dict[str, Any]:
    """``{"inputs": {llds (B, T, 25), lengths (B,)}, "labels": (B,)}`` with zero padding."""
    llds, lengths = pad_llds([x for x, _ in batch])
    return {
        "inputs": {"llds": llds, "lengths": lengths},
        "labels": torch.tensor([y for _, y in batch], dtype=torch.long),
    }


def prosodic_features(manifest, features, cfg: Config | None = None):
    """The LLD store the prosodic teacher reads: cached eGeMAPS LLDs, per-speaker normalised
    when ``cfg.prosodic.speaker_norm`` (a store that is already normalised is kept)."""
    from emodistill.features.speaker_norm import SpeakerNormalizedFeatures

    if features is None:
        from emodistill.features import default_cache_dir, extract_features

        if manifest.path is None:
            raise ValueError("the manifest has no path: pass features=extract_features(...)")
        features = extract_features(manifest, default_cache_dir(manifest.path), workers=1)
    if cfg is not None and cfg.prosodic.speaker_norm:
        if not isinstance(features, SpeakerNormalizedFeatures):
            features = SpeakerNormalizedFeatures(
                features, {u.id: u.speaker for u in manifest.utterances}
            )
    return features


def with_features(utterances: Sequence[Any], features: Any, what: str) -> list[Any]:
    """``utterances`` that have features in ``features`` (a warning counts the others)."""
    kept = [u for u in utterances if u.id in features]
    if len(kept) < len(utterances):
        log.warning(
            f"[yellow]warning:[/] {len(utterances) - len(kept)} {what} utterance(s) have no "
            "features (unusable audio) and are left out"
        )
    return kept
