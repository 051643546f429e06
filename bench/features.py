"""Benchmark eGeMAPS LLD extraction: throughput with 1 and 2 workers, and the warm-cache re-run.

Usage::

    python bench/features.py [MANIFEST.csv] [--files N] [--workers-max W]

Without a manifest it writes ``--files`` synthetic 16 kHz wavs of 2-4 s (harmonic chirps with a
wandering F0 plus noise) to a temporary folder. Every cold run uses its own empty cache folder;
the warm runs re-use the 1-worker cache. Prints audio seconds per second for each worker count,
their ratio, and warm / cold time.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from emodistill.audio import SAMPLE_RATE, write_wav
from emodistill.corpora.manifest import Utterance, load_manifest
from emodistill.features import extract_features


def synth_corpus(folder: Path, n: int, seed: int = 0) -> list[Utterance]:
    """``n`` wavs of 2-4 s: harmonic chirps (F0 100-300 Hz, vibrato) with noise and pauses."""
    rng = np.random.default_rng(seed)
    utts = []
    for i in range(n):
        seconds = rng.uniform(2.0, 4.0)
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        f0 = rng.uniform(100, 300) * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
        phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
        voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
        envelope = (np.sin(2 * np.pi * rng.uniform(1, 3) * t) > -0.3).astype(np.float32)
        x = 0.2 * voiced * envelope + 0.02 * rng.standard_normal(t.size)
        path = folder / f"u{i:04d}.wav"
        write_wav(path, x.astype(np.float32))
        utts.append(Utterance(id=f"u{i:04d}", path=path, label="neutral", speaker=f"s{i % 10}"))
    return utts


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the pool's workers): unlike wall
    time it barely depends on what else runs on a shared machine."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("manifest", nargs="?", type=Path, help="manifest CSV (default: synthetic)")
    ap.add_argument("--files", type=int, default=200, help="synthetic files (default 200)")
    ap.add_argument("--workers-max", type=int, default=2, help="largest worker count (default 2)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="emodistill-bench-") as tmp:
        tmp = Path(tmp)
        if args.manifest:
            utts = load_manifest(args.manifest).utterances
            source = str(args.manifest)
        else:
            t0 = time.perf_counter()
            utts = synth_corpus(tmp / "wav", args.files)
            source = f"{args.files} synthetic wavs (written in {time.perf_counter() - t0:.1f} s)"
            time.sleep(2.1)  # past RACY_SECONDS: the hash index may remember every file
        audio = sum(sf.info(str(u.path)).duration for u in utts)
        print(f"corpus: {source}: {len(utts)} utterances, {audio:.1f} s of audio")
        print(f"cpus: {os.cpu_count()} (shared machine: timings are noisy)")

        cold: dict[int, float] = {}
        for w in range(1, args.workers_max + 1):
            cpu0 = _cpu_seconds()
            store = extract_features(utts, tmp / f"cache-{w}", workers=w, progress=False)
            cpu = _cpu_seconds() - cpu0
            cold[w] = store.stats["seconds"]
            print(
                f"cold, {w} worker(s): {cold[w]:7.2f} s  {audio / cold[w]:8.1f} audio s/s  "
                f"cpu {cpu:6.2f} s = {audio / cpu:6.1f} audio s per cpu s  "
                f"(extracted {store.stats['extracted']}, failed {store.stats['failed']})"
            )
        for w in range(2, args.workers_max + 1):
            print(f"speed-up {w} vs 1 worker(s): {cold[1] / cold[w]:.2f}x")

        for run in (1, 2):
            store = extract_features(utts, tmp / "cache-1", workers=1, progress=False)
            warm = store.stats["seconds"]
            print(
                f"warm re-run {run}: {warm:7.3f} s = {warm / cold[1]:.1%} of cold 1-worker "
                f"(extracted {store.stats['extracted']}, cached {store.stats['cached']}, "
                f"re-hashed {store.stats['hashed']})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
