"""Audio I/O: any supported file, sample rate and channel count to 16 kHz mono float32.

soundfile reads, soxr resamples. Every error names the file and what is wrong with it.
No torch here: this package is shared by feature extraction, training and inference.

Decoding is bounded before it starts and while it runs:

* the container format is sniffed from the first bytes against :data:`SUPPORTED_FORMATS`
  (never taken from the file name: libsndfile would otherwise decode random bytes named
  ``x.vox`` or ``x.au`` as headerless audio);
* the header is checked against :class:`AudioLimits` (sample rate, channels, duration and the
  decoded-sample budget duration x rate x channels) before a single sample is decoded;
* samples are decoded, mixed to mono and resampled in blocks of :data:`BLOCK_FRAMES` frames, so
  memory is the 16 kHz mono result plus one block, whatever the file's rate and channel count;
  the limits are enforced again on what is actually decoded (a header may lie).

:func:`open_audio` gives the header and the samples from one open file (``predict`` decides
from the header whether to read a file at once or stream it); :func:`audio_info`,
:func:`load_audio` and :func:`stream_audio` are its one-call forms. In-memory signals and
writing are :mod:`emodistill.audio.signals`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

#: Sample rate of every model in emodistill.
SAMPLE_RATE = 16000
#: Shortest audio accepted by default (50 ms): shorter clips carry no usable emotion cue.
MIN_SECONDS = 0.05
#: Frames decoded per block (64 Ki frames: 8 MiB at 32 channels float32).
BLOCK_FRAMES = 1 << 16
#: Container formats accepted, as sniffed from the bytes -> the libsndfile formats they may decode
#: as. Ogg covers Vorbis, Opus and FLAC-in-Ogg.
SUPPORTED_FORMATS: dict[str, frozenset[str]] = {
    "WAV": frozenset({"WAV", "WAVEX"}),
    "RF64": frozenset({"RF64"}),
    "FLAC": frozenset({"FLAC"}),
    "OGG": frozenset({"OGG"}),
    "MP3": frozenset({"MP3"}),
    "AIFF": frozenset({"AIFF"}),
}
#: The list shown in errors (and in the 415 answer of the service).
SUPPORTED_TEXT = "WAV/RF64, FLAC, Ogg (Vorbis, Opus), MP3, AIFF"

#: A file name or an open binary file (an upload held in memory or in an anonymous temp file).
AudioSource = str | os.PathLike | BinaryIO
#: Called once per decoded block; raises to abandon the work (time limit, client gone).
Check = Callable[[], None]

_TRUNCATED = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


class AudioError(ValueError):
    """Audio that cannot be used; the message names the file and the reason."""


class UnsupportedFormatError(AudioError):
    """Bytes that are none of :data:`SUPPORTED_FORMATS` (the service answers 415)."""


class AudioTooLargeError(AudioError):
    """Audio longer than allowed, or more samples than the decoding budget (413)."""


@dataclass(frozen=True)
class AudioLimits:
    """What a header (and then the decoded audio) may declare before decoding is refused.

    ``max_samples`` bounds duration x rate x channels: the decoding work, whatever the 16 kHz
    mono result would be (a 60 s FLAC of silence at 384 kHz x 32 channels is 0.7 G samples).
    """

    min_rate: int = 4000
    max_rate: int = 384000
    max_channels: int = 32
    max_seconds: float | None = None
    max_samples: int | None = None


#: Rate and channel bounds only: no duration limit (the CLI and training read local files).
DEFAULT_LIMITS = AudioLimits()


@dataclass(frozen=True)
class AudioInfo:
    """A checked header: the sniffed container, libsndfile's format/subtype and the sizes."""

    container: str
    format: str
    subtype: str
    samplerate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        """Seconds declared by the header."""
        return self.frames / self.samplerate


def sniff_format(head: bytes) -> str | None:
    """The container of a file from its first (>= 12) bytes, or None if not supported.

    >>> sniff_format(b"RIFF\\x24\\x00\\x00\\x00WAVEfmt ")
    'WAV'
    >>> sniff_format(b"fLaC\\x00\\x00\\x00\\x22") , sniff_format(b"hello world!") is None
    ('FLAC', True)
    """
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
        return "WAV"
    if len(head) >= 12 and head[:4] in (b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "RF64"
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:4] == b"OggS":
        return "OGG"
    if len(head) >= 12 and head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "AIFF"
    if head[:3] == b"ID3":
        return "MP3"
    if len(head) >= 3 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:
        # An MPEG audio frame header: valid version, layer, bitrate and rate indices.
        version, layer = (head[1] >> 3) & 3, (head[1] >> 1) & 3
        bitrate, rate = head[2] >> 4, (head[2] >> 2) & 3
        if version != 1 and layer != 0 and bitrate not in (0, 15) and rate != 3:
            return "MP3"
    return None


def source_name(source: AudioSource, name: str | None = None) -> str:
    """What error messages call ``source``: ``name`` if given, else the path, else the open
    file's ``name`` attribute or ``<upload>``."""
    if name is not None:
        return name
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return str(getattr(source, "name", None) or "<upload>")


def _reason(err: Exception) -> str:
    """libsndfile's reason without its repeat of the (bytes) file name."""
    return str(getattr(err, "error_string", None) or err)


def _to_mono(signal: np.ndarray) -> np.ndarray:
    if signal.ndim == 2:
        signal = signal.mean(axis=1)
    return signal


def _check_min_length(duration: float, min_seconds: float, name: str) -> None:
    if duration < min_seconds:
        raise AudioError(
            f"{name}: audio too short ({duration * 1000:.0f} ms < {min_seconds * 1000:.0f} ms)"
        )


def _frame_budget(info: AudioInfo, limits: AudioLimits) -> float:
    """Most frames decoding may produce (the header's claim is not trusted)."""
    budget = math.inf
    if limits.max_seconds is not None:
        budget = limits.max_seconds * info.samplerate
    if limits.max_samples is not None:
        budget = min(budget, limits.max_samples / info.channels)
    return budget


def _resampler(rate_in: int, rate_out: int) -> soxr.ResampleStream | None:
    # The streaming resampler keeps its filter state across blocks: the result equals a one-shot
    # soxr.resample of the whole signal.
    if rate_in == rate_out:
        return None
    return soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32", quality="HQ")


def _check_block_seconds(block_seconds: float) -> None:
    if not (block_seconds > 0 and math.isfinite(block_seconds)):
        raise ValueError(f"block_seconds must be > 0 and finite, got {block_seconds!r}")


class OpenAudio:
    """An audio file opened once: its checked header (:attr:`info`, nothing decoded yet), then
    its samples, decoded block by block by :meth:`load` or :meth:`stream` from the same open file.

    Made by :func:`open_audio`; use it in a ``with`` block (or call :meth:`close`).

    Raises (on opening):
        UnsupportedFormatError: the bytes are none of :data:`SUPPORTED_FORMATS`.
        AudioTooLargeError: longer than ``limits.max_seconds`` or more decoded samples
            (frames x channels) than ``limits.max_samples``.
        AudioError: missing, empty, unreadable, truncated or 0-frame file; a sample rate or
            channel count outside ``limits``. Each message names the file.
    """

    def __init__(
        self, source: AudioSource, limits: AudioLimits = DEFAULT_LIMITS, name: str | None = None
    ) -> None:
        self.name = source_name(source, name)
        self.limits = limits
        self._raw: BinaryIO | None = None  # the one OS-level open of a path
        self._file: sf.SoundFile | None = None
        try:
            self.info = self._check(source)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> OpenAudio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (an open binary file passed in stays open)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._raw is not None:
            self._raw.close()
            self._raw = None

    def _head(self, source: AudioSource) -> bytes:
        """The first 16 bytes, the file left at its start; refuses a missing or empty file."""
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.is_file():
                raise AudioError(f"{self.name}: file not found")
            # Unbuffered: seek(0) really moves the descriptor libsndfile reads from.
            self._raw = open(path, "rb", buffering=0)  # noqa: SIM115 (closed by close())
            head = self._raw.read(16)
            self._raw.seek(0)
        else:
            source.seek(0)
            head = source.read(16)
            source.seek(0)
        if not head:
            raise AudioError(f"{self.name}: file is empty (0 bytes)")
        return head

    def _check(self, source: AudioSource) -> AudioInfo:
        name, limits = self.name, self.limits
        try:
            head = self._head(source)
        except (PermissionError, IsADirectoryError) as err:
            raise AudioError(f"{name}: cannot read the file ({err.strerror})") from err
        container = sniff_format(head)
        if container is None:
            raise UnsupportedFormatError(
                f"{name}: not a readable audio file: its bytes are none of the supported "
                f"formats ({SUPPORTED_TEXT})"
            )
        try:
            opened = self._raw.fileno() if self._raw is not None else source
            self._file = f = sf.SoundFile(opened, closefd=False)
            info = AudioInfo(container, f.format, f.subtype, f.samplerate, f.channels, f.frames)
            extra = f.extra_info or ""
        except (sf.LibsndfileError, RuntimeError, TypeError) as err:
            raise AudioError(f"{name}: not a readable audio file ({_reason(err)})") from err
        if info.format not in SUPPORTED_FORMATS[container]:
            raise UnsupportedFormatError(
                f"{name}: {container} bytes decode as {info.format}; supported: {SUPPORTED_TEXT}"
            )
        # libsndfile silently reads what is there of a WAV whose data chunk is cut short (an
        # interrupted copy); its log says "data : <header> (should be <present>)". Refuse it,
        # except for the 0 / 0xFFFFFFFF sizes that streaming writers leave in the header.
        m = _TRUNCATED.search(extra)
        if m and int(m[2]) < int(m[1]) < 0xFFFFFFFF:
            raise AudioError(
                f"{name}: truncated audio file (header declares {m[1]} data bytes, only {m[2]} "
                "present)"
            )
        if not limits.min_rate <= info.samplerate <= limits.max_rate:
            raise AudioError(
                f"{name}: sample rate {info.samplerate} Hz is outside the accepted "
                f"{limits.min_rate}-{limits.max_rate} Hz"
            )
        if not 1 <= info.channels <= limits.max_channels:
            raise AudioError(
                f"{name}: {info.channels} channels; at most {limits.max_channels} are accepted"
            )
        if info.frames == 0:
            raise AudioError(f"{name}: audio is empty (0 samples)")
        if limits.max_seconds is not None and info.duration > limits.max_seconds:
            raise AudioTooLargeError(
                f"{name}: audio too long ({info.duration:.1f} s; at most {limits.max_seconds:g} s "
                "accepted)"
            )
        if limits.max_samples is not None and info.frames * info.channels > limits.max_samples:
            raise AudioTooLargeError(
                f"{name}: too much audio to decode ({info.frames * info.channels:,} samples = "
                f"{info.duration:.1f} s x {info.samplerate} Hz x {info.channels} channels; "
                f"at most {limits.max_samples:,} accepted)"
            )
        return info

    def _decode(self, check: Check | None) -> Iterator[np.ndarray]:
        """(n,) float32 mono blocks at the file's own rate, :data:`BLOCK_FRAMES` at a time."""
        if self._file is None:
            raise ValueError(f"{self.name}: the audio file is closed")
        info, name = self.info, self.name
        budget = _frame_budget(info, self.limits)
        frames = 0
        try:
            while True:
                if check is not None:
                    check()
                raw = self._file.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
                if raw.shape[0] == 0:
                    return
                frames += raw.shape[0]
                if frames > budget:
                    raise AudioTooLargeError(
                        f"{name}: decoded audio passes the limit ({frames / info.samplerate:.1f} "
                        f"s at {info.samplerate} Hz x {info.channels} channels so far; the "
                        f"header declared {info.duration:.1f} s)"
                    )
                yield _to_mono(raw).astype(np.float32, copy=False)
        except (sf.LibsndfileError, RuntimeError) as err:
            raise AudioError(f"{name}: read failed ({_reason(err)})") from err

    def load(
        self,
        sample_rate: int = SAMPLE_RATE,
        min_seconds: float = MIN_SECONDS,
        check: Check | None = None,
    ) -> np.ndarray:
        """All samples as (N,) float32 mono at ``sample_rate`` (see :func:`load_audio`)."""
        name, info = self.name, self.info
        resampler = _resampler(info.samplerate, sample_rate)
        parts: list[np.ndarray] = []
        frames = bad = 0
        for mono in self._decode(check):
            frames += mono.size
            nonfinite = int(np.count_nonzero(~np.isfinite(mono)))
            bad += nonfinite
            if bad:  # keep counting for the message, stop converting
                continue
            parts.append(resampler.resample_chunk(mono) if resampler else mono.copy())
        if frames == 0:
            raise AudioError(f"{name}: audio is empty (0 samples)")
        if bad:
            raise AudioError(f"{name}: audio holds {bad} non-finite (NaN/inf) samples")
        _check_min_length(frames / info.samplerate, min_seconds, name)
        if resampler is not None:
            parts.append(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def stream(
        self, block_seconds: float, sample_rate: int = SAMPLE_RATE, check: Check | None = None
    ) -> Iterator[np.ndarray]:
        """Consecutive (n,) float32 mono blocks of ``block_seconds`` (see :func:`stream_audio`)."""
        _check_block_seconds(block_seconds)
        resampler = _resampler(self.info.samplerate, sample_rate)
        pending = np.zeros(0, dtype=np.float32)
        block_out = max(1, int(round(block_seconds * sample_rate)))
        for mono in self._decode(check):
            if not np.all(np.isfinite(mono)):
                raise AudioError(f"{self.name}: audio holds non-finite (NaN/inf) samples")
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
        if pending.size:
            yield pending


def open_audio(
    source: AudioSource, limits: AudioLimits = DEFAULT_LIMITS, name: str | None = None
) -> OpenAudio:
    """Open an audio file (path or open binary file) once and check its header: an
    :class:`OpenAudio` whose ``info`` tells what it holds before deciding how to decode it."""
    return OpenAudio(source, limits, name)


def audio_info(
    source: AudioSource, limits: AudioLimits = DEFAULT_LIMITS, name: str | None = None
) -> AudioInfo:
    """The checked header of an audio file; nothing is decoded (raises as :class:`OpenAudio`)."""
    with open_audio(source, limits, name) as audio:
        return audio.info


def load_audio(
    source: AudioSource,
    sample_rate: int = SAMPLE_RATE,
    min_seconds: float = MIN_SECONDS,
    limits: AudioLimits = DEFAULT_LIMITS,
    name: str | None = None,
    check: Check | None = None,
) -> np.ndarray:
    """Read an audio file (path or open binary file) as (N,) float32 mono at ``sample_rate``.

    Decoded block by block: memory is the result plus one block.

    Args:
        limits: header and decoding bounds (see :class:`OpenAudio`).
        name: the file's name in error messages (default: the path).
        check: called once per block; raises to abandon the decode.

    Raises:
        AudioError: unsupported, unreadable, empty, truncated, non-finite, too-short or (its
            :class:`AudioTooLargeError` subclass) too large audio; the message names the file.
    """
    with open_audio(source, limits, name) as audio:
        return audio.load(sample_rate, min_seconds, check)


def stream_audio(
    source: AudioSource,
    block_seconds: float,
    sample_rate: int = SAMPLE_RATE,
    limits: AudioLimits = DEFAULT_LIMITS,
    name: str | None = None,
    check: Check | None = None,
) -> Iterator[np.ndarray]:
    """Yield consecutive (n,) float32 mono blocks of ``block_seconds`` at ``sample_rate``.

    Memory stays bounded however long the file: one block is read and resampled at a time
    (soxr's streaming resampler keeps the filter state across blocks, so block edges are exact).
    The last block may be shorter. ``limits``, ``name`` and ``check`` as :func:`load_audio`.
    """
    _check_block_seconds(block_seconds)
    with open_audio(source, limits, name) as audio:
        yield from audio.stream(block_seconds, sample_rate, check)
