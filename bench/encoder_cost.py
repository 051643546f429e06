"""Speech-encoder forward cost per audio second, for several encoders on the same clips.

Usage::

    python bench/encoder_cost.py [--encoders embedded:whisper-tiny.en embedded:whisper-base]
                                 [--clips 10] [--seconds 3] [--threads 2] [--repeats 3]

Each clip (seeded random noise) goes through each encoder alone (batch 1, eval mode,
``torch.inference_mode``). Encoders are interleaved clip by clip so that load from other
processes on a shared machine hits them alike; the median over clips and repeats of seconds of
compute per second of audio is reported, and the ratio of each encoder to the first.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from emodistill.models.encoders import count_parameters, load_encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--encoders", nargs="+", default=["embedded:whisper-tiny.en", "embedded:whisper-base"]
    )
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    encoders = {name: load_encoder(name).eval() for name in args.encoders}
    samples = int(args.seconds * 16000)
    clips = torch.randn(args.clips, 1, samples, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([samples])
    costs: dict[str, list[float]] = {name: [] for name in encoders}
    with torch.inference_mode():
        for encoder in encoders.values():  # warm-up: first-call allocations
            encoder(clips[0], lengths)
        for _ in range(args.repeats):
            for clip in clips:
                for name, encoder in encoders.items():
                    start = time.perf_counter()
                    encoder(clip, lengths)
                    costs[name].append((time.perf_counter() - start) / args.seconds)
    base = statistics.median(costs[args.encoders[0]])
    print(f"{'encoder':28s} {'params':>8s} {'s/audio s':>10s} {'ratio':>6s}")
    for name, encoder in encoders.items():
        median = statistics.median(costs[name])
        params = count_parameters(encoder) / 1e6
        print(f"{name:28s} {params:7.1f}M {median:10.4f} {median / base:6.2f}")


if __name__ == "__main__":
    main()
