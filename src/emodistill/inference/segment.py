"""Long recordings: a timeline of emotion over fixed windows or voice-activity segments.

The file is streamed (``audio.stream_audio``): at any time only one window of audio per batch
slot is in memory, so an hour-long recording needs no more memory than a minute-long one.

Two ways to cut the audio:

* fixed windows of ``window`` seconds every ``hop`` seconds (default 3 s / 1.5 s). The last
  window is aligned to the end of the file, so the whole file is covered and no window is
  shorter than ``window`` (a file shorter than one window is one segment);
* ``vad=True``: an energy voice-activity detector (30 ms frames above ``threshold_db`` dBFS,
  gaps shorter than ``min_gap`` bridged, regions shorter than ``min_speech`` dropped); voiced
  regions longer than ``window`` are cut into ``window``-long pieces.

The summary gives, per label, the time it is the segment label (each instant is counted once,
for the segment whose centre is nearest, so overlapping windows are not double-counted), the
fraction of analysed time, the time-weighted mean probabilities and the dominant label.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from emodistill.audio import (
    DEFAULT_LIMITS,
    MIN_SECONDS,
    SAMPLE_RATE,
    AudioError,
    AudioLimits,
    AudioSource,
    Check,
    stream_audio,
)

if TYPE_CHECKING:  # pragma: no cover
    from emodistill.inference.model import EmoDistill

DEFAULT_WINDOW = 3.0
DEFAULT_HOP = 1.5
#: Energy VAD settings: frame length (s), speech threshold (dBFS), bridged gap (s), min region (s).
VAD_FRAME = 0.03
VAD_THRESHOLD_DB = -40.0
VAD_MIN_GAP = 0.3
VAD_MIN_SPEECH = 0.25
#: Hops beyond this (a week) are treated as this: one window per recording either way.
MAX_HOP = 7 * 86400.0
#: Audio read per block while cutting windows (seconds): small reads, windows come early.
READ_BLOCK = (0.5, 10.0)


class TooManyWindowsError(ValueError):
    """A timeline that would need more windows than the caller allows (the service: 422)."""


def count_windows(duration: float, window: float, hop: float) -> int:
    """Number of fixed windows :func:`fixed_windows` cuts from ``duration`` seconds.

    >>> count_windows(4.0, 1.0, 0.5), count_windows(0.5, 1.0, 0.5), count_windows(4.2, 1.0, 0.5)
    (7, 1, 8)
    """
    if duration <= window:
        return 1
    full = math.floor((duration - window) / hop + 1e-9) + 1
    covered = (full - 1) * hop + window
    return full + (1 if covered < duration - 1e-9 else 0)


def check_segment_params(window: float, hop: float) -> None:
    """Refuse non-finite or non-positive ``window`` / ``hop`` (ValueError naming the value)."""
    for what, value in (("window", window), ("hop", hop)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{what} must be a positive finite number of seconds, got {value!r}")


@dataclass
class Segment:
    """A piece of the recording: [start, end) in seconds and its samples (16 kHz mono)."""

    start: float
    end: float
    signal: np.ndarray


class FixedWindower:
    """Push-style cutter of fixed windows: ``push(block)`` returns the windows it completes.

    Windows of ``window`` s every ``hop`` s; :meth:`finish` returns the end-aligned last window
    (or the whole input when it is shorter than one window). This is the one definition of the
    fixed windows: :func:`fixed_windows` (files) and ``stream.StreamSession`` (live audio) both
    drive it, so a stream and ``predict --segment`` cut the same audio identically.

    Memory: the buffer never holds more than ``window + block`` seconds.
    """

    def __init__(
        self,
        window: float = DEFAULT_WINDOW,
        hop: float = DEFAULT_HOP,
        sample_rate: int = SAMPLE_RATE,
    ) -> None:
        check_segment_params(window, hop)
        self.sample_rate = sample_rate
        self.win = max(1, int(round(window * sample_rate)))
        # A hop longer than any recording is one window; clamped so the sample count stays an int.
        self.step = max(1, int(round(min(hop, MAX_HOP) * sample_rate)))
        self.buf = np.zeros(0, dtype=np.float32)
        self.buf_start = 0  # absolute sample index of buf[0]
        self.next_start = 0  # absolute start of the next window
        self.last_end = 0  # end of the last emitted window
        self.total = 0  # samples pushed so far

    def push(self, block: np.ndarray) -> list[Segment]:
        """Add (n,) float32 samples; returns the windows completed by them (oldest first)."""
        sr, win = self.sample_rate, self.win
        self.buf = np.concatenate([self.buf, block])
        self.total += block.size
        out = []
        while self.next_start + win <= self.total:
            a = self.next_start - self.buf_start
            out.append(
                Segment(self.next_start / sr, (self.next_start + win) / sr, self.buf[a : a + win])
            )
            self.last_end = self.next_start + win
            self.next_start += self.step
        # Keep what later windows may need, and at least the last `win` samples for the tail.
        keep_from = min(self.next_start, max(0, self.total - win))
        if keep_from > self.buf_start:
            self.buf = self.buf[keep_from - self.buf_start :].copy()
            self.buf_start = keep_from
        return out

    def finish(self) -> list[Segment]:
        """The tail: one end-aligned window if audio after the last window is uncovered."""
        sr, total = self.sample_rate, self.total
        if total == 0:
            return []
        if self.last_end == 0:  # shorter than one window: the whole input is one segment
            return [Segment(0.0, total / sr, self.buf)]
        if self.last_end < total:  # uncovered tail: one more full window aligned to the end
            start = total - self.win
            return [Segment(start / sr, total / sr, self.buf[start - self.buf_start :])]
        return []


def fixed_windows(
    blocks: Iterator[np.ndarray],
    window: float = DEFAULT_WINDOW,
    hop: float = DEFAULT_HOP,
    sample_rate: int = SAMPLE_RATE,
) -> Iterator[Segment]:
    """Windows of ``window`` s every ``hop`` s over a stream of (n,) blocks; last one end-aligned.

    Memory: the buffer never holds more than ``window + block`` seconds (:class:`FixedWindower`).
    """
    cutter = FixedWindower(window, hop, sample_rate)
    for block in blocks:
        yield from cutter.push(block)
    yield from cutter.finish()


def vad_segments(
    blocks: Iterator[np.ndarray],
    window: float = DEFAULT_WINDOW,
    sample_rate: int = SAMPLE_RATE,
    threshold_db: float = VAD_THRESHOLD_DB,
    min_gap: float = VAD_MIN_GAP,
    min_speech: float = VAD_MIN_SPEECH,
    frame: float = VAD_FRAME,
) -> Iterator[Segment]:
    """Voiced regions of a stream of (n,) blocks by frame energy; long regions cut at ``window``.

    A frame is voiced when its RMS level exceeds ``threshold_db`` dBFS. Silences shorter than
    ``min_gap`` inside a region are kept in it; regions shorter than ``min_speech`` are dropped.
    """
    flen = max(1, int(round(frame * sample_rate)))
    gap_frames = max(1, int(round(min_gap / frame)))
    min_len = int(round(min_speech * sample_rate))
    max_len = max(flen, int(round(window * sample_rate)))
    threshold = 10.0 ** (threshold_db / 20.0)

    carry = np.zeros(0, dtype=np.float32)  # samples not yet forming a whole frame
    pos = 0  # absolute sample index of carry[0]
    region: list[np.ndarray] = []  # frames of the open region (up to its last voiced frame + gap)
    region_start = -1
    voiced_len = 0  # samples in `region` up to and including its last voiced frame
    silent = 0  # silent frames since the last voiced one

    def close() -> Iterator[Segment]:
        nonlocal region, region_start, voiced_len, silent
        if region_start >= 0 and voiced_len >= min_len:
            sig = np.concatenate(region)[:voiced_len]
            yield Segment(
                region_start / sample_rate, (region_start + voiced_len) / sample_rate, sig
            )
        region, region_start, voiced_len, silent = [], -1, 0, 0

    for block in blocks:
        data = np.concatenate([carry, block])
        n_frames = data.size // flen
        frames = data[: n_frames * flen].reshape(n_frames, flen)
        rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
        for k in range(n_frames):
            start = pos + k * flen
            if rms[k] > threshold:
                if region_start < 0:
                    region_start = start
                region.append(frames[k])
                voiced_len = sum(f.size for f in region)
                silent = 0
                if voiced_len >= max_len:  # long region: emit a full window, keep going
                    yield from close()
            elif region_start >= 0:
                silent += 1
                region.append(frames[k])
                if silent >= gap_frames:
                    yield from close()
        carry = data[n_frames * flen :].copy()
        pos += n_frames * flen
    yield from close()


def predict_timeline(
    model: EmoDistill,
    path: AudioSource,
    window: float = DEFAULT_WINDOW,
    hop: float = DEFAULT_HOP,
    vad: bool = False,
    batch_size: int = 8,
    progress: bool = False,
    limits: AudioLimits = DEFAULT_LIMITS,
    name: str | None = None,
    check: Check | None = None,
    max_windows: int | None = None,
    speaker: np.ndarray | None = None,
) -> dict[str, Any]:
    """Emotion over time in a recording of any length, streamed with bounded memory.

    Args:
        model: a loaded :class:`~emodistill.inference.model.EmoDistill`.
        path: audio file (any supported format, rate and channel count), or an open binary file.
        window, hop: segment length and step in seconds (``hop`` is unused with ``vad``).
        vad: cut on voice activity instead of fixed windows.
        limits, name, check: as :func:`emodistill.audio.load_audio` (``check`` is also called
            before every forward pass).
        max_windows: most segments allowed; fixed windows are counted from the header before
            any decoding, VAD segments as they come.
        speaker: (2, H) ``[mu, sigma]`` of a ``speaker_norm`` model for every window
            (:func:`timeline_clip_means` makes one of the recording's own windows).

    Returns:
        ``{"segments": [{"start", "end", "label", "probabilities"}], "summary": {...}}``; see
        :func:`summarize` for the summary keys.

    Raises:
        AudioError: unreadable, empty, non-finite or too-short audio; with ``vad``, no voice.
        TooManyWindowsError: more segments than ``max_windows``.
        ValueError: a non-finite or non-positive window or hop, or a window over the model's
            maximum.
    """
    check_segment_params(window, hop)
    if window > model.max_seconds:
        raise ValueError(f"window {window} s exceeds the model's maximum of {model.max_seconds} s")
    from emodistill.inference.model import check_audio_file
    from emodistill.inference.prediction import source_display_name

    name = name if name is not None else source_display_name(path)
    info = check_audio_file(path, limits, name)
    if max_windows is not None and not vad:
        n = count_windows(info.duration, window, hop)
        if n > max_windows:
            raise TooManyWindowsError(
                f"{name}: {n} windows of {window:g} s every {hop:g} s over {info.duration:.1f} s; "
                f"at most {max_windows} windows per request (use a longer hop)"
            )
    duration = [0.0]
    pieces = _pieces(path, window, hop, vad, model.sample_rate, limits, name, check, duration)
    segments: list[dict[str, Any]] = []
    batch: list[Segment] = []
    sr = model.sample_rate
    min_len = int(MIN_SECONDS * sr)

    def flush() -> None:
        signals = [s.signal for s in batch]
        probs = model.predict_proba(signals, batch_size, check=check, speaker=speaker)
        segments.extend(segment_entry(model, seg, p) for seg, p in zip(batch, probs, strict=True))
        batch.clear()

    for seg in pieces:
        if max_windows is not None and len(segments) + len(batch) >= max_windows:
            raise TooManyWindowsError(
                f"{name}: more than {max_windows} segments; at most {max_windows} per request"
            )
        if seg.signal.size < min_len:
            raise AudioError(
                f"{name}: audio too short ({seg.signal.size / sr * 1000:.0f} ms < "
                f"{MIN_SECONDS * 1000:.0f} ms)"
            )
        batch.append(Segment(seg.start, seg.end, np.array(seg.signal, copy=True)))
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    if duration[0] == 0:
        raise AudioError(f"{name}: audio is empty (0 samples)")
    if not segments:
        raise AudioError(
            f"{name}: no voice activity found (energy VAD at {VAD_THRESHOLD_DB:.0f} dBFS); "
            "try without --vad"
        )
    return {"segments": segments, "summary": summarize(segments, model.labels, duration[0])}


def _pieces(
    path: AudioSource,
    window: float,
    hop: float,
    vad: bool,
    sr: int,
    limits: AudioLimits,
    name: str,
    check: Check | None,
    duration: list[float],
) -> Iterator[Segment]:
    """The timeline's segments of a streamed file (``duration[0]`` counts the seconds read)."""

    def counted(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for b in blocks:
            duration[0] += b.size / sr
            yield b

    # Blocks of one hop: small reads, and windows appear as soon as they are complete.
    block = min(max(hop, READ_BLOCK[0]), READ_BLOCK[1]) if not vad else 1.0
    blocks = counted(stream_audio(path, block, sr, limits, name, check))
    return vad_segments(blocks, window, sr) if vad else fixed_windows(blocks, window, hop, sr)


def timeline_clip_means(
    model: EmoDistill,
    path: AudioSource,
    window: float = DEFAULT_WINDOW,
    hop: float = DEFAULT_HOP,
    vad: bool = False,
    limits: AudioLimits = DEFAULT_LIMITS,
    name: str | None = None,
) -> tuple[list[np.ndarray], list[float]]:
    """``--segment --speaker-norm``: the recording's own windows are its clips: one (H,) clip
    mean per segment :func:`predict_timeline` would predict, and each one's seconds."""
    from emodistill.inference.prediction import source_display_name
    from emodistill.inference.speaker import signal_clip_means

    check_segment_params(window, hop)
    name = name if name is not None else source_display_name(path)
    means: list[np.ndarray] = []
    seconds: list[float] = []
    min_len = int(MIN_SECONDS * model.sample_rate)
    for seg in _pieces(path, window, hop, vad, model.sample_rate, limits, name, None, [0.0]):
        if seg.signal.size >= min_len:  # predict_timeline refuses the file otherwise
            m, sec = signal_clip_means(model, np.asarray(seg.signal, dtype=np.float32))
            means += m
            seconds += sec
    return means, seconds


def segment_entry(model: EmoDistill, seg: Segment, probs: np.ndarray) -> dict[str, Any]:
    """One timeline entry ``{"start", "end", "label", "probabilities"}`` (times in s, 3 decimals).

    The JSON contract of a ``--segment`` segment and of a streaming event alike.
    """
    pred = model._prediction(None, probs)
    return {
        "start": round(seg.start, 3),
        "end": round(seg.end, 3),
        "label": pred.label,
        "probabilities": pred.probabilities,
    }


def summarize(
    segments: list[dict[str, Any]], labels: list[str], duration: float | None = None
) -> dict[str, Any]:
    """Summary of a timeline.

    Returns:
        ``{"duration": s, "analysed_seconds": s, "label_seconds": {label: s},
        "label_fractions": {label: f}, "probabilities": {label: p}, "label": argmax of
        probabilities, "dominant_label": label with the most time}``. Each instant counts once,
        for the segment whose centre is nearest (overlapping windows are not double-counted).
    """
    secs = {lab: 0.0 for lab in labels}
    mean = np.zeros(len(labels), dtype=np.float64)
    centres = [(s["start"] + s["end"]) / 2 for s in segments]
    order = sorted(range(len(segments)), key=lambda i: centres[i])
    analysed = 0.0
    for rank, i in enumerate(order):
        seg = segments[i]
        lo = seg["start"]
        hi = seg["end"]
        if rank > 0:
            lo = max(lo, (centres[order[rank - 1]] + centres[i]) / 2)
        if rank + 1 < len(order):
            hi = min(hi, (centres[i] + centres[order[rank + 1]]) / 2)
        owned = max(0.0, hi - lo)
        secs[seg["label"]] += owned
        mean += owned * np.array([seg["probabilities"][lab] for lab in labels])
        analysed += owned
    if analysed > 0:
        mean /= analysed
    probs = {lab: float(p) for lab, p in zip(labels, mean, strict=True)}
    return {
        "duration": round(float(duration if duration is not None else analysed), 3),
        "analysed_seconds": round(analysed, 3),
        "label_seconds": {lab: round(s, 3) for lab, s in secs.items()},
        "label_fractions": {
            lab: (round(s / analysed, 4) if analysed else 0.0) for lab, s in secs.items()
        },
        "probabilities": probs,
        "label": labels[int(np.argmax(mean))] if analysed else None,
        "dominant_label": max(secs, key=secs.get) if analysed else None,
    }
