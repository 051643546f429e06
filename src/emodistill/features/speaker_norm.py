"""Per-speaker normalisation of eGeMAPS LLDs for the prosodic teacher.

Emotional prosody is relative to a speaker's own voice: a pitch that is "high" for one speaker is
neutral for another. Standard SER practice (and what the classic eGeMAPS baselines do) is to
z-normalise every LLD with the mean and standard deviation of *that speaker's* frames. The
statistics are label-free, so they may come from all of a speaker's utterances, test speakers
included: the prosodic teacher runs only at training time, and the student never sees these
features (it takes raw audio at inference).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np


class SpeakerNormalizedFeatures:
    """A read-only view of a feature store whose LLDs are z-normalised per speaker.

    ``view[utt_id]`` is ``(store[utt_id] - mean_s) / std_s`` (float32, (T, 25)), with
    ``mean_s`` / ``std_s`` over every frame of speaker ``s`` in the store. A constant LLD of a
    speaker (std 0) gets std 1, so values stay finite.

    Args:
        store: a :class:`~emodistill.features.FeatureStore` (or any mapping id -> (T, 25)).
        speakers: utterance id -> speaker, for every id of the store that should be usable.
    """

    def __init__(self, store: Any, speakers: Mapping[str, str]) -> None:
        self.store = store
        self._speaker = {i: speakers[i] for i in speakers if i in store}
        self.ids = [i for i in getattr(store, "ids", list(self._speaker)) if i in self._speaker]
        self.errors = dict(getattr(store, "errors", {}))
        by_speaker: dict[str, list[str]] = defaultdict(list)
        for utt_id in self.ids:
            by_speaker[self._speaker[utt_id]].append(utt_id)
        self.stats: dict[str, tuple[np.ndarray, np.ndarray]] = {
            spk: _mean_std(store, ids) for spk, ids in by_speaker.items()
        }

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, utt_id: object) -> bool:
        return utt_id in self._speaker

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __getitem__(self, utt_id: str) -> np.ndarray:
        """(T, 25) float32 LLDs of ``utt_id``, normalised with its speaker's statistics."""
        if utt_id not in self._speaker:
            raise KeyError(f"no features for {utt_id!r}")
        mean, std = self.stats[self._speaker[utt_id]]
        x = np.asarray(self.store[utt_id], dtype=np.float32)
        return (x - mean) / std

    def normalization_stats(self, ids: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per-LLD (mean (25,), std (25,)) of the normalised frames of ``ids`` (float32)."""
        ids = list(ids)
        if not ids:
            raise ValueError("normalization_stats: no utterances given")
        return _mean_std(self, ids)


def _mean_std(store: Any, ids: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over all frames of ``ids`` (float64 sums; std 0 -> 1)."""
    total = total_sq = None
    count = 0
    for utt_id in ids:
        x = np.asarray(store[utt_id], dtype=np.float64)
        s, s2 = x.sum(axis=0), np.square(x).sum(axis=0)
        total = s if total is None else total + s
        total_sq = s2 if total_sq is None else total_sq + s2
        count += x.shape[0]
    if total is None or count == 0:
        raise ValueError("no frames to compute statistics from")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
    std[std <= 1e-8 * np.maximum(1.0, np.abs(mean))] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)
