"""How inference batches audio: equal windows for long inputs, length-sorted batches that pad
little, zero padding (numpy only; the torch and ONNX runners share it).

    >>> split_equal(10, 4)
    [(0, 3), (3, 7), (7, 10)]
    >>> list(length_batches([0, 1, 2], [100, 90, 50], batch_size=8, mix_lengths=True))
    [[0, 1], [2]]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Longest single forward pass, in seconds; longer inputs are windowed and averaged.
DEFAULT_MAX_SECONDS = 30.0


def pad_batch(signals: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad signals with zeros: -> wav (B, max N) float32, lengths (B,) int64."""
    signals = list(signals)
    lengths = np.array([s.size for s in signals], dtype=np.int64)
    wav = np.zeros((len(signals), int(lengths.max())), dtype=np.float32)
    for i, s in enumerate(signals):
        wav[i, : s.size] = s
    return wav, lengths


def split_equal(n: int, max_len: int) -> list[tuple[int, int]]:
    """Cut ``n`` samples into the fewest equal windows of at most ``max_len`` samples."""
    parts = max(1, math.ceil(n / max_len))
    bounds = np.linspace(0, n, parts + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


@dataclass
class Window:
    """One forward-pass window of an input (inputs longer than the maximum are cut)."""

    owner: int  # index of the input the window belongs to
    signal: np.ndarray  # (n,) float32 at 16 kHz
    weight: float = field(default=1.0)


def max_window_seconds(config: dict[str, Any]) -> float:
    """Longest single forward pass the encoder accepts (Whisper: its positional table)."""
    explicit = (config.get("inference") or {}).get("max_seconds")
    if explicit:
        return float(explicit)
    encoder = config.get("encoder") or {}
    positions = encoder.get("max_source_positions")
    if positions is None and isinstance(encoder.get("config"), dict):
        positions = encoder["config"].get("max_source_positions")
    if positions:
        # Whisper: 100 mel frames/s, conv stride 2 -> 50 positions/s.
        return min(DEFAULT_MAX_SECONDS, float(positions) / 50.0)
    return DEFAULT_MAX_SECONDS


def pad_invariant(config: dict[str, Any]) -> bool:
    """Whether padding leaves a clip's output unchanged (so unequal lengths may share a batch).

    Whisper encoders mask padding everywhere; wav2vec2-family models only with an attention
    mask. Group-norm models (HuBERT base, wav2vec2 base) normalise over the padding too, so they
    are batched with equal-length inputs only: a clip's result never depends on its neighbours.
    """
    encoder = config.get("encoder") or {}
    if encoder.get("kind") == "transformers":
        return bool(encoder.get("use_attention_mask", False))
    return True


#: A batch never pads its shortest input by more than this fraction of the longest one:
#: padding is wasted compute (on CPU a padded batch is slower than its clips one by one).
MAX_PADDING = 0.2


def length_batches(
    order: list[int], sizes: list[int], batch_size: int, mix_lengths: bool
) -> Iterator[list[int]]:
    """Consecutive runs of ``order`` (sorted by decreasing size) of at most ``batch_size`` items.

    A run is cut where the next item is shorter than ``(1 - MAX_PADDING)`` times the run's
    first (longest) item; with ``mix_lengths`` False a run only holds items of one size.
    """
    batch: list[int] = []
    longest = 0
    for k, n in zip(order, sizes, strict=True):
        if batch and (
            len(batch) >= batch_size
            or (n != longest if not mix_lengths else n < (1 - MAX_PADDING) * longest)
        ):
            yield batch
            batch = []
        if not batch:
            longest = n
        batch.append(k)
    if batch:
        yield batch
