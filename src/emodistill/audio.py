"""Audio I/O: any file, sample rate and channel count to 16 kHz mono float32.

soundfile reads, soxr resamples. Every error names the file and what is wrong with it.
No torch here: this module is shared by feature extraction, training and inference.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from emodistill._io import atomic_path

#: Sample rate of every model in emodistill.
SAMPLE_RATE = 16000
#: Shortest audio accepted by default (50 ms): shorter clips carry no usable emotion cue.
MIN_SECONDS = 0.05


_TRUNCATED = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


class AudioError(ValueError):
    """Audio that cannot be used; the message names the file and the reason."""


def _reason(err: Exception) -> str:
    """libsndfile's reason without its repeat of the (bytes) file name."""
    return str(getattr(err, "error_string", None) or err)


def _to_mono(signal: np.ndarray) -> np.ndarray:
    if signal.ndim == 2:
        signal = signal.mean(axis=1)
    return signal


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
    duration = signal.size / sampling_rate
    if duration < min_seconds:
        raise AudioError(
            f"{name}: audio too short ({duration * 1000:.0f} ms < {min_seconds * 1000:.0f} ms)"
        )
    if sampling_rate != sample_rate:
        signal = soxr.resample(signal, sampling_rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(signal, dtype=np.float32)


def audio_info(path: str | Path) -> sf._SoundFileInfo:
    """Header of an audio file; raises :class:`AudioError` naming the file if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty (0 bytes)")
    try:
        info = sf.info(os.fsencode(path))  # bytes: names that are not valid UTF-8 work too
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(f"{path}: not a readable audio file ({_reason(err)})") from err
    # libsndfile silently reads what is there of a WAV whose data chunk is cut short (an
    # interrupted copy); its log says "data : <header> (should be <present>)". Refuse it, except
    # for the 0 / 0xFFFFFFFF sizes that streaming writers leave in the header.
    m = _TRUNCATED.search(info.extra_info or "")
    if m and int(m[2]) < int(m[1]) < 0xFFFFFFFF:
        raise AudioError(
            f"{path}: truncated audio file (header declares {m[1]} data bytes, only {m[2]} present)"
        )
    if info.frames == 0:
        raise AudioError(f"{path}: audio is empty (0 samples)")
    return info


def load_audio(
    path: str | Path, sample_rate: int = SAMPLE_RATE, min_seconds: float = MIN_SECONDS
) -> np.ndarray:
    """Read an audio file as (N,) float32 mono at ``sample_rate``.

    Raises:
        AudioError: unreadable, empty, truncated, non-finite or too-short audio (names the file).
    """
    path = Path(path)
    audio_info(path)
    try:
        signal, sr = sf.read(os.fsencode(path), dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(f"{path}: not a readable audio file ({_reason(err)})") from err
    return prepare_signal(signal, sr, sample_rate, name=str(path), min_seconds=min_seconds)


def stream_audio(
    path: str | Path, block_seconds: float, sample_rate: int = SAMPLE_RATE
) -> Iterator[np.ndarray]:
    """Yield consecutive (n,) float32 mono blocks of ``block_seconds`` at ``sample_rate``.

    Memory stays bounded however long the file: one block is read and resampled at a time
    (soxr's streaming resampler keeps the filter state across blocks, so block edges are exact).
    The last block may be shorter.
    """
    path = Path(path)
    if not block_seconds > 0:
        raise ValueError(f"block_seconds must be > 0, got {block_seconds!r}")
    info = audio_info(path)
    block_in = max(1, int(round(block_seconds * info.samplerate)))
    resampler = (
        soxr.ResampleStream(info.samplerate, sample_rate, 1, dtype="float32", quality="HQ")
        if info.samplerate != sample_rate
        else None
    )
    pending = np.zeros(0, dtype=np.float32)
    block_out = int(round(block_seconds * sample_rate))
    try:
        blocks = sf.blocks(os.fsencode(path), blocksize=block_in, dtype="float32", always_2d=True)
        for raw in blocks:
            mono = raw.mean(axis=1).astype(np.float32)
            if not np.all(np.isfinite(mono)):
                raise AudioError(f"{path}: audio holds non-finite (NaN/inf) samples")
            if resampler is not None:
                mono = resampler.resample_chunk(mono)
            pending = np.concatenate([pending, mono])
            while pending.size >= block_out:
                yield pending[:block_out]
                pending = pending[block_out:]
        if resampler is not None:
            pending = np.concatenate(
                [pending, resampler.resample_chunk(np.zeros(0, "float32"), last=True)]
            )
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(f"{path}: read failed ({_reason(err)})") from err
    if pending.size:
        yield pending


def write_wav(path: str | Path, signal: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write a 16-bit PCM wav atomically (temporary file, then rename)."""
    # No fsync: a corpus writes thousands of wavs, and a crash only leaves a tmp file behind.
    with atomic_path(path, fsync=False) as tmp:
        sf.write(str(tmp), signal, sample_rate, subtype="PCM_16", format="WAV")
