"""Benchmark the linear probe's logistic-regression fits with numpy's default BLAS threads
against one thread (what ``baseline.run_fold`` now uses), side by side.

Usage::

    python bench/probe_threads.py [--rounds 3] [--rows 720] [--features 384]

One round = the probe's work for one layer of one demo fold: standardise, four C values
chosen on validation rows, a refit, on random features shaped like the demo's mean-pooled
Whisper tiny.en states (720 clips, 384 dimensions, 4 classes). The two variants alternate
round by round; medians are printed with the ratio one thread / default, and whether both gave
the same predictions.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from emodistill.evaluation import baseline
from emodistill.evaluation.baseline import BaselineConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=720)
    parser.add_argument("--features", type=int, default=384)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, args.rows)
    # Class means apart by about a standard deviation: lbfgs needs as many iterations as on
    # the real states.
    x = rng.normal(size=(args.rows, args.features)) + 0.3 * y[:, None] * rng.normal(
        size=(1, args.features)
    )
    speakers = np.array([f"s{i % 12}" for i in range(args.rows)])
    spk = np.arange(args.rows) % 12
    parts = (spk < 9, spk == 9, spk >= 10)
    cfg = BaselineConfig(c_values=[0.001, 0.01, 0.1, 1.0], max_iter=2000)

    variants = {"default": baseline._run_fold, "one thread": baseline.run_fold}
    times: dict[str, list[float]] = {k: [] for k in variants}
    preds: dict[str, list] = {}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            start = time.perf_counter()
            preds[name] = fn(x, y, speakers, parts, 4, cfg)["y_pred"]
            times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"probe fits, {args.rows} rows x {args.features} features, {args.rounds} rounds")
    for name, value in med.items():
        print(f"  {name:10s} median {value:7.2f} s")
    print(f"  one thread / default: {med['one thread'] / med['default']:.3f}")
    print(f"  same predictions: {preds['default'] == preds['one thread']}")


if __name__ == "__main__":
    main()
