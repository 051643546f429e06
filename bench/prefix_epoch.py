"""Benchmark a training epoch of the student: full fine-tuning vs a frozen bottom whose output
is cached (``student.trainable_layers``), for each encoder given.

Usage::

    python bench/prefix_epoch.py [--encoders embedded:whisper-tiny.en,embedded:whisper-base]
                                 [--clips 32] [--seconds 2.6] [--batch 8] [--threads 2]

One epoch = forward, CE loss, backward and AdamW step over ``--clips`` clips in batches. The
``all`` row trains end to end from audio; ``N`` rows train the top N layers from the cached
prefix (computed once beforehand, like ``distill`` does; its one-off cost is printed apart).
The rows of one encoder are interleaved epoch by epoch so that load from other processes hits
them alike; medians of ``--repeats`` epochs are reported, with the ratio to ``all``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from emodistill.audio import SAMPLE_RATE
from emodistill.config import StudentConfig
from emodistill.features.prefix_cache import collate_prefix
from emodistill.models.student import build_student


def _clips(n: int, seconds: float) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [0.1 * torch.randn(int(seconds * SAMPLE_RATE), generator=g) for _ in range(n)]


def _epoch(student, batches, from_prefix: bool) -> float:
    opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=1e-4)
    student.train()
    started = time.perf_counter()
    for x, lengths, y in batches:
        out = student.from_prefix(x, lengths) if from_prefix else student(x, lengths)
        loss = F.cross_entropy(out.logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoders", default="embedded:whisper-tiny.en,embedded:whisper-base")
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=2.6)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--trainable", default="0,1")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clips = _clips(args.clips, args.seconds)
    print(f"{args.clips} clips of {args.seconds} s, batch {args.batch}, {args.threads} threads")
    print("| encoder | trainable layers | epoch s (median) | ratio to all | prefix once, s |")
    print("|---|---|---|---|---|")
    for encoder in args.encoders.split(","):
        rows = {}
        for spec in ["all", *args.trainable.split(",")]:
            cfg = StudentConfig(encoder=encoder, trainable_layers=spec, pooling="attention")
            torch.manual_seed(0)
            student = build_student(cfg, 4, 384, 128)
            y = torch.arange(args.clips) % 4
            if spec == "all":
                batches = []
                for i in range(0, args.clips, args.batch):
                    wav = torch.stack(clips[i : i + args.batch])
                    lengths = torch.full((wav.shape[0],), wav.shape[1])
                    batches.append((wav, lengths, y[i : i + args.batch]))
                rows[spec] = (student, batches, False, 0.0)
                continue
            started = time.perf_counter()
            cached = []
            for clip in clips:  # one clip at a time, as the cache computes it
                states, frames = student.prefix(clip[None], torch.tensor([clip.shape[0]]))
                cached.append(states[0, :, : int(frames[0])].numpy())
            prefix_s = time.perf_counter() - started
            batches = []
            for i in range(0, args.clips, args.batch):
                x, lengths = collate_prefix(cached[i : i + args.batch])
                batches.append((x, lengths, y[i : i + args.batch]))
            rows[spec] = (student, batches, True, prefix_s)
        times = {spec: [] for spec in rows}
        for _ in range(args.repeats):
            for spec, (student, batches, from_prefix, _) in rows.items():
                times[spec].append(_epoch(student, batches, from_prefix))
        base = statistics.median(times["all"])
        for spec, (_, _, _, prefix_s) in rows.items():
            t = statistics.median(times[spec])
            once = f"{prefix_s:.2f}" if spec != "all" else "-"
            print(f"| {encoder} | {spec} | {t:.2f} | {t / base:.3f} | {once} |", flush=True)


if __name__ == "__main__":
    main()
