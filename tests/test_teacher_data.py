"""The prosodic teacher's dataset reads each clip's LLDs once, not once per epoch."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from emodistill.training import teacher_data
from emodistill.training.teacher_data import LLDDataset, collate_llds


class CountingStore(dict):
    """A feature mapping that counts reads per utterance id."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reads: dict[str, int] = {}

    def __getitem__(self, key):
        self.reads[key] = self.reads.get(key, 0) + 1
        return super().__getitem__(key)


def _utts(n: int):
    return [SimpleNamespace(id=f"u{i}", label="ab"[i % 2]) for i in range(n)]


def test_lld_dataset_reads_each_clip_once_and_crops_copies():
    rng = np.random.default_rng(0)
    store = CountingStore({f"u{i}": rng.normal(size=(40 + 10 * i, 25)) for i in range(4)})
    data = LLDDataset(_utts(4), ["a", "b"], store, max_frames=30, train=True)
    for _epoch in range(3):
        batch = collate_llds([data[i] for i in range(len(data))])
        batch["inputs"]["llds"].add_(1.0)  # what a model might do in place to its batch
    assert store.reads == {f"u{i}": 1 for i in range(4)}
    x, y = data[3]
    assert x.dtype == np.float32 and x.shape == (30, 25) and y == 1
    # the crop is a window of the clip's own frames, unchanged by the in-place edit above
    full = np.asarray(dict.__getitem__(store, "u3"), np.float32)
    starts = [s for s in range(len(full) - 29) if np.array_equal(full[s : s + 30], x)]
    assert starts


def test_lld_dataset_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(teacher_data, "LLD_CACHE_BYTES", 50 * 25 * 4)  # room for one clip
    store = CountingStore({f"u{i}": np.zeros((50, 25), np.float32) for i in range(3)})
    data = LLDDataset(_utts(3), ["a", "b"], store)
    for _epoch in range(2):
        for i in range(3):
            data[i]
    assert store.reads == {"u0": 1, "u1": 2, "u2": 2}
