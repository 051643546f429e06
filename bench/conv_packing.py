"""Benchmark the conv pooling's packed batches: the demo student's training step with the
batch's clips laid end to end (``ConvPool._convolve_packed``, the default for batches of two
or more) against the same step over the padded batch (``_convolve_padded``).

Usage::

    python bench/conv_packing.py [--steps 30] [--threads 1] [--batch 32]

The student is the ``demo`` preset's heads (layer-3 frames of Whisper tiny.en, ``conv_mean``
pooling, batch norm, projections 384/128) on random frames with the demo corpus's clip
lengths (1.4-4.0 s, mean 2.65 s, 50 frames a second), trained as ``StudentModule`` does:
mixup of the cached frames (lengths the longer of each pair), the full EmoDistill loss,
backward, AdamW. The two variants alternate step by step on the same batches, so that load
from other processes hits both alike; medians are reported, and the ratio packed / padded.
The outputs of the two are equal (``tests/test_student_capacity.py``), so the ratio is the
whole story.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from emodistill.config import DistillConfig, load_config
from emodistill.models.losses import emodistill_loss
from emodistill.models.pooling import ConvPool
from emodistill.models.student import build_student

FRAME_RATE = 50  # Whisper frames per second


def demo_like_batch(rng, batch: int, hidden: int):
    """Random frames (B, 1, T, H) with the demo corpus's clip lengths, and lengths (B,)."""
    seconds = np.clip(rng.normal(2.65, 0.6, batch), 1.4, 4.04)
    lengths = torch.from_numpy((seconds * FRAME_RATE).astype(np.int64))
    frames = int(lengths.max())
    x = torch.randn(batch, 1, frames, hidden)
    x *= (torch.arange(frames)[None, :] < lengths[:, None])[:, None, :, None]
    return x, lengths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    cfg = load_config("demo")
    student = build_student(cfg.student, 4, 384, 128).train()
    if not isinstance(getattr(student, "pool", None), ConvPool):
        raise SystemExit(f"the demo student does not pool with ConvPool: {student.pool!r}")
    packed_path = ConvPool._convolve_packed

    def padded_path(self, hidden, lengths, keep, out_keep):
        return self._convolve_padded(hidden, keep, out_keep)

    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    distill = DistillConfig()
    rng = np.random.default_rng(0)
    batches = [demo_like_batch(rng, args.batch, 384) for _ in range(args.warmup + args.steps)]
    labels = torch.arange(args.batch) % 4
    t_logits = {"linguistic": torch.randn(args.batch, 4), "prosodic": torch.randn(args.batch, 4)}
    t_emb = {"linguistic": torch.randn(args.batch, 384), "prosodic": torch.randn(args.batch, 128)}

    def step(prefix, lengths) -> float:
        start = time.perf_counter()
        lam, perm = 0.7, torch.randperm(args.batch)
        mixed = lam * prefix + (1.0 - lam) * prefix[perm]
        out = student.from_prefix(mixed, torch.maximum(lengths, lengths[perm]))
        emb = {"linguistic": out.emb_linguistic, "prosodic": out.emb_prosodic}
        loss = emodistill_loss(out.logits, labels, distill, t_logits, t_emb, emb).total
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start

    times: dict[str, list[float]] = {"padded": [], "packed": []}
    for i, (prefix, lengths) in enumerate(batches):
        for name, path in (("padded", padded_path), ("packed", packed_path)):
            ConvPool._convolve_packed = path
            seconds = step(prefix, lengths)
            if i >= args.warmup:
                times[name].append(seconds)
    ConvPool._convolve_packed = packed_path
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"demo student step, batch {args.batch}, {args.threads} thread(s), {args.steps} steps")
    for name, value in med.items():
        print(f"  {name:7s} median {1000 * value:7.1f} ms")
    print(f"  packed / padded: {med['packed'] / med['padded']:.3f}")


if __name__ == "__main__":
    main()
