"""In-memory signals: an array at any rate and channel count to 16 kHz mono float32
(:func:`prepare_signal`, what ``predict(array)`` and the service's stream take), and writing a
wav (:func:`write_wav`). Files are read by :mod:`emodistill.audio.loading`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from emodistill.audio.loading import (
    MIN_SECONDS,
    SAMPLE_RATE,
    AudioError,
    _check_min_length,
    _to_mono,
)
from emodistill.util.files import atomic_path


def prepare_signal(
    signal: np.ndarray,
    sampling_rate: int,
    sample_rate: int = SAMPLE_RATE,
    name: str = "<array>",
    min_seconds: float = MIN_SECONDS,
) -> np.ndarray:
    """Validate and convert an in-memory signal to mono float32 at ``sample_rate``.

    Args:
        signal: (N,) or (N, channels) samples, any float or int dtype.
        sampling_rate: rate of ``signal`` in Hz.
        name: what to call the signal in error messages (usually its file path).

    Returns:
        (M,) float32 mono signal at ``sample_rate``.
    """
    signal = np.asarray(signal)
    if signal.ndim not in (1, 2):
        raise AudioError(f"{name}: expected 1-D or (samples, channels) audio, got {signal.shape}")
    if not sampling_rate or sampling_rate <= 0:
        raise AudioError(f"{name}: invalid sampling rate {sampling_rate!r}")
    if np.issubdtype(signal.dtype, np.unsignedinteger):
        # unsigned PCM (e.g. 8-bit wav) is centred on 2**(bits-1): remove the offset first
        half = float(np.iinfo(signal.dtype).max // 2 + 1)
        signal = (signal.astype(np.float32) - half) / half
    elif np.issubdtype(signal.dtype, np.integer):
        # 2**(bits-1), as libsndfile scales: int16 -32768 -> -1.0 exactly
        signal = signal.astype(np.float32) / float(-np.iinfo(signal.dtype).min)
    signal = _to_mono(signal.astype(np.float32, copy=False))
    if signal.size == 0:
        raise AudioError(f"{name}: audio is empty (0 samples)")
    if not np.all(np.isfinite(signal)):
        bad = int(np.count_nonzero(~np.isfinite(signal)))
        raise AudioError(f"{name}: audio holds {bad} non-finite (NaN/inf) samples")
    _check_min_length(signal.size / sampling_rate, min_seconds, name)
    if sampling_rate != sample_rate:
        signal = soxr.resample(signal, sampling_rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(signal, dtype=np.float32)


def write_wav(path: str | Path, signal: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write a 16-bit PCM wav atomically (temporary file, then rename)."""
    # No fsync: a corpus writes thousands of wavs, and a crash only leaves a tmp file behind.
    with atomic_path(path, fsync=False) as tmp:
        sf.write(str(tmp), signal, sample_rate, subtype="PCM_16", format="WAV")
