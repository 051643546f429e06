"""The one forward loop of inference: signals cut into equal windows of at most the model's
maximum, length-sorted batches that pad little (:mod:`emodistill.inference.batching`), the
runner on each batch, and the window probabilities averaged back per signal (weighted by
window length)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np

from emodistill.audio import Check
from emodistill.inference.batching import Window, length_batches, pad_batch, split_equal
from emodistill.inference.runner import Runner
from emodistill.util.progress import terminal_progress


def forward_windows(
    runner: Runner,
    signals: Sequence[np.ndarray],
    num_labels: int,
    max_len: int,
    batch_size: int = 8,
    mix_lengths: bool = True,
    progress: bool = False,
    check: Check | None = None,
    speaker: np.ndarray | None = None,
) -> np.ndarray:
    """Probabilities of (N_i,) float32 signals -> (len(signals), C) float32, in their order.

    Args:
        runner: ``runner(wav (B, N), lengths (B,)[, speaker (B, 2, H)]) -> (B, C)``.
        max_len: longest window in samples; a longer signal is the length-weighted mean over
            its equal windows.
        mix_lengths: unequal lengths may share a batch (the model is padding-invariant).
        check: called before each forward pass; raises to abandon the work.
        speaker: ``[mu, sigma]`` of a ``speaker_norm`` model: (2, H) for every signal or
            (len(signals), 2, H), one per signal (each of its windows gets it); None: the
            runner is called without one (the model's global statistics).
    """
    if not signals:
        return np.zeros((0, num_labels), dtype=np.float32)
    per_signal = None if speaker is None else np.asarray(speaker, np.float32)
    if per_signal is not None and per_signal.ndim == 2:
        per_signal = np.broadcast_to(per_signal, (len(signals), *per_signal.shape))
    items: list[Window] = []
    for owner, sig in enumerate(signals):
        for a, b in split_equal(sig.size, max_len):
            items.append(Window(owner, sig[a:b], float(b - a)))
    # Longest first: similar lengths share a batch, so padding (wasted compute) stays small.
    order = sorted(range(len(items)), key=lambda k: items[k].signal.size, reverse=True)
    item_probs = np.zeros((len(items), num_labels), dtype=np.float64)
    bar = terminal_progress(progress, len(order))
    with bar or nullcontext():
        task = bar.add_task("forward", total=len(order)) if bar else None
        sizes = [items[k].signal.size for k in order]
        for idx in length_batches(order, sizes, batch_size, mix_lengths):
            if check is not None:
                check()
            wav, lengths = pad_batch([items[k].signal for k in idx])
            if per_signal is None:
                item_probs[idx] = runner(wav, lengths)
            else:
                item_probs[idx] = runner(wav, lengths, per_signal[[items[k].owner for k in idx]])
            if bar:
                bar.advance(task, len(idx))
    out = np.zeros((len(signals), num_labels), dtype=np.float64)
    weights = np.zeros(len(signals), dtype=np.float64)
    for k, item in enumerate(items):
        out[item.owner] += item.weight * item_probs[k]
        weights[item.owner] += item.weight
    return (out / weights[:, None]).astype(np.float32)


__all__ = ["forward_windows"]
