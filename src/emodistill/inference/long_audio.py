"""The forward-pass windows of an audio file too long to read at once: blocks of the model's
maximum window, streamed, the last short block merged with the one before and the pair split
evenly (so no window is shorter than half the maximum).

:meth:`EmoDistill.predict_long_file <emodistill.inference.model.EmoDistill.predict_long_file>`
predicts these windows and ``enroll`` takes one clip mean per window, so both see the same
pieces of a long recording.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from emodistill.audio import MIN_SECONDS, AudioError, Check, OpenAudio

#: Files longer than this are streamed block by block instead of being read at once.
STREAM_ABOVE_SECONDS = 600.0


def stream_windows(
    audio: OpenAudio, max_seconds: float, sample_rate: int, check: Check | None = None
) -> Iterator[np.ndarray]:
    """(n,) float32 windows of at most ``max_seconds`` covering the whole open file.

    Memory: two blocks are held back (a short last block is merged with the one before).

    Raises:
        AudioError: empty audio, or a window shorter than ``MIN_SECONDS`` (names the file).
    """
    max_len = int(max_seconds * sample_rate)
    prev: np.ndarray | None = None
    last: np.ndarray | None = None
    for block in audio.stream(max_seconds, sample_rate, check):
        if prev is not None:
            yield prev
        prev, last = last, np.array(block, dtype=np.float32)
    if last is None:
        raise AudioError(f"{audio.name}: audio is empty (0 samples)")
    if prev is not None and last.size < max_len // 2:
        merged = np.concatenate([prev, last])
        half = merged.size // 2
        tail = [merged[:half], merged[half:]]
    else:
        tail = [b for b in (prev, last) if b is not None]
    if any(b.size < MIN_SECONDS * sample_rate for b in tail):
        raise AudioError(f"{audio.name}: audio too short")
    yield from tail


__all__ = ["STREAM_ABOVE_SECONDS", "stream_windows"]
