"""Benchmark the data side of a frozen student's training epoch: cached frames re-read from
their ``.npy`` files every epoch (memory-mapped, the behaviour before the eleventh session)
against frames kept in memory by ``DistillDataset`` after the first epoch.

Usage::

    PYTHONPATH=src python bench/frozen_epoch_data.py [--clips 600] [--epochs 4] [--threads 1]

Clips are random (1, T, 384) float32 frames of the demo's lengths (1.4-4.0 s at Whisper's 50
frames/s), written once as the prefix cache writes them. Each row iterates the real loader
(``make_loader``: random batches of 32, ``collate_batch``) and, in the ``step`` rows, trains
the demo preset's student on them (``from_prefix``, mixup, cross-entropy, backward, AdamW): the
share of an epoch the data side takes. Epochs after the first (the one that fills the memory)
are timed, the two modes interleaved epoch by epoch; medians and the ratio memory / re-read.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

import emodistill.training.data as data
from emodistill.config import load_config
from emodistill.models.augment import mixup_lambda
from emodistill.models.student import build_student
from emodistill.util.files import save_npy_atomic


class _Frames:
    """What ``DistillDataset`` reads of a ``PrefixCache``: ``frames`` and a memmap per clip."""

    def __init__(self, paths: dict[str, Path]):
        self.paths = paths
        self.frames = {i: int(np.load(p, mmap_mode="r").shape[1]) for i, p in paths.items()}

    def __getitem__(self, utt_id: str) -> np.ndarray:
        return np.load(self.paths[utt_id], mmap_mode="r", allow_pickle=False)


def _epoch(loader, student=None, opt=None) -> float:
    started = time.perf_counter()
    for batch in loader:
        if student is None:
            continue
        lam = mixup_lambda(0.4)
        x, perm = batch["prefix"], torch.randperm(batch["labels"].shape[0])
        mixed = lam * x + (1.0 - lam) * x[perm]
        lengths = torch.maximum(batch["frame_lengths"], batch["frame_lengths"][perm])
        logits = student.from_prefix(mixed, lengths).logits
        loss = lam * F.cross_entropy(logits, batch["labels"])
        loss = loss + (1.0 - lam) * F.cross_entropy(logits, batch["labels"][perm])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=4, help="timed epochs per mode and row")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    lengths = rng.integers(70, 201, size=args.clips)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for n, t in enumerate(lengths):
            paths[f"u{n}"] = Path(tmp) / f"u{n}.npy"
            save_npy_atomic(paths[f"u{n}"], rng.standard_normal((1, int(t), 384), np.float32))
        frames = _Frames(paths)
        utts = [SimpleNamespace(id=f"u{n}", label="ab"[n % 2]) for n in range(args.clips)]
        modes = {"re-read": 0, "memory": data.AUDIO_CACHE_BYTES}
        cfg = load_config("demo").student
        print(f"{args.clips} clips of 70-200 frames x 384, batch 32, {args.threads} thread(s)")
        print("| row | re-read s (median) | in memory s (median) | memory / re-read |")
        print("|---|---|---|---|")
        for row in ("data", "step"):
            loaders, models = {}, {}
            for mode, cache in modes.items():
                data.AUDIO_CACHE_BYTES = cache  # read on each miss: set before each epoch
                ds = data.DistillDataset(utts, {"a": 0, "b": 1}, None, True, prefix=frames)
                loaders[mode] = data.make_loader(ds, 32, True, 0, group_by_length=False)
                if row == "step":
                    torch.manual_seed(0)
                    student = build_student(cfg, 2, 384, 128)
                    params = [p for p in student.parameters() if p.requires_grad]
                    models[mode] = (student.train(), torch.optim.AdamW(params, lr=1e-3))
                _epoch(loaders[mode], *models.get(mode, ()))  # fills the memory
            times: dict[str, list[float]] = {mode: [] for mode in modes}
            for _ in range(args.epochs):
                for mode in times:
                    data.AUDIO_CACHE_BYTES = modes[mode]
                    times[mode].append(_epoch(loaders[mode], *models.get(mode, ())))
            a, b = (statistics.median(times[m]) for m in ("re-read", "memory"))
            print(f"| {row} | {a:.3f} | {b:.3f} | {b / a:.3f} |", flush=True)


if __name__ == "__main__":
    main()
