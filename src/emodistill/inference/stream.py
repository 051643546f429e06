"""Live streaming: audio in chunks of any size in, one event per window out, as it completes.

    >>> from emodistill.inference.stream import StreamSession
    >>> s = StreamSession(model, window=3.0, hop=1.5)
    >>> s.feed(pcm_bytes)          # raw s16le 16 kHz mono, or a WAV
    [{'start': 0.0, 'end': 3.0, 'label': 'happy', 'probabilities': {...}}]
    >>> s.finish()                 # the end-aligned last window
    [{'start': 1.0, 'end': 4.0, 'label': 'happy', 'probabilities': {...}}]

The windows are ``segment.FixedWindower``'s, the one definition ``predict --segment`` uses too,
and each window is predicted by the same ``EmoDistill.predict_proba``, so a stream and
``predict --segment`` on the same 16 kHz audio give the same events (to float rounding; tested
< 1e-4). An event is ``{"start", "end", "label", "probabilities"}`` (``segment.segment_entry``).

Bounded memory and latency: incoming audio is pushed in pieces of at most one hop, so the
window buffer never holds more than ``window + hop`` seconds whatever the chunk size; a window
is predicted as soon as its last sample arrives (latency: one forward of one window). No event
history is kept.

Speaker normalisation (``speaker_norm=True``, a ``student.speaker_norm`` model; docs/speaker.md):
the stream is taken as one voice. Each completed window's clip mean (the pooled layer's mean over
the window, ``runner.clip_means``) is added to a running
:class:`~emodistill.models.speaker_stats.SpeakerStats` (sums, not a list: O(H) memory however
long the stream), and the window is predicted with ``normaliser(stats so far, this window
included, global)``. Such events carry ``"speaker_norm": {"windows": n, "seconds": s}``: what the
statistics hold (overlapping windows each count their whole length).

Input bytes (:class:`PcmDecoder`): raw PCM s16le mono at 16 kHz, or a WAV stream: a RIFF header
(PCM 16-bit or IEEE float 32-bit, any rate, any channel count; the data size may be 0 or
0xFFFFFFFF, as streaming writers leave it) followed by its data in any number of chunks. Other
rates are resampled with soxr's streaming resampler, channels are averaged.
"""

from __future__ import annotations

import struct
import threading
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from emodistill.audio import MIN_SECONDS, SAMPLE_RATE, AudioError
from emodistill.inference.segment import DEFAULT_HOP, DEFAULT_WINDOW, FixedWindower, segment_entry
from emodistill.inference.speaker import require_speaker_norm, signal_clip_means
from emodistill.models.speaker_stats import SpeakerStats, normaliser

if TYPE_CHECKING:  # pragma: no cover
    from emodistill.inference.model import EmoDistill

#: WAV format tags we decode: PCM integer, IEEE float, and WAVE_FORMAT_EXTENSIBLE.
_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE
#: A RIFF header (fmt and other chunks before ``data``) longer than this is refused.
MAX_HEADER_BYTES = 64 * 1024


class StreamError(AudioError):
    """Bytes that are not decodable audio (a malformed chunk); the message says why."""


class PcmDecoder:
    """Incremental bytes -> (n,) float32 mono samples at ``sample_rate``.

    The first bytes decide the format: ``RIFF`` starts a WAV header, anything else is raw
    s16le mono at ``sample_rate``. A partial sample frame at the end of a chunk is carried to
    the next one (``strict=False``) or refused (``strict=True``, for message-framed transports
    where each chunk must hold whole frames).

    Args:
        sample_rate: rate of the output (and of raw PCM input).
        name: what to call the input in error messages.
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE, name: str = "stream") -> None:
        self.sample_rate = sample_rate
        self.name = name
        self.header: bytes | None = b""  # None once the format is known
        self.channels = 1
        self.dtype = np.dtype("<i2")
        self.rate = sample_rate
        self.carry = b""
        self.resampler: Any = None

    @property
    def frame_bytes(self) -> int:
        return self.channels * self.dtype.itemsize

    def feed(self, data: bytes, strict: bool = False) -> np.ndarray:
        """Decode ``data``; returns the (n,) float32 samples it completes (maybe none).

        Raises:
            StreamError: a malformed WAV header, an unsupported WAV format, or (``strict``) a
                chunk that does not hold whole sample frames. The decoder is unchanged then.
        """
        if self.header is not None:
            data = self._parse_header(self.header + data)
            if self.header is not None:  # header still incomplete
                return np.zeros(0, np.float32)
        if strict and (len(self.carry) + len(data)) % self.frame_bytes:
            raise StreamError(
                f"{self.name}: malformed chunk: {len(data)} bytes is not a whole number of "
                f"{self.frame_bytes}-byte sample frames"
            )
        data = self.carry + data
        usable = len(data) - len(data) % self.frame_bytes
        self.carry = data[usable:]
        raw = np.frombuffer(data[:usable], dtype=self.dtype).reshape(-1, self.channels)
        if self.dtype.kind == "i":  # 2**(bits-1), as libsndfile scales
            x = raw.astype(np.float32) / float(-np.iinfo(self.dtype).min)
        else:
            x = raw.astype(np.float32)
            if not np.all(np.isfinite(x)):
                raise StreamError(f"{self.name}: audio holds non-finite (NaN/inf) samples")
        x = x.mean(axis=1) if self.channels > 1 else x[:, 0]
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.resampler is not None:
            x = self.resampler.resample_chunk(x)
        return x

    def flush(self) -> np.ndarray:
        """The resampler's last samples (call once, at the end)."""
        if self.resampler is None:
            return np.zeros(0, np.float32)
        return self.resampler.resample_chunk(np.zeros(0, np.float32), last=True)

    def _parse_header(self, data: bytes) -> bytes:
        """Consume a RIFF/WAVE header from ``data`` if complete; returns the bytes after it."""
        if len(data) < 4 and b"RIFF".startswith(data):  # maybe the start of a header
            self.header = data
            return b""
        if data[:4] != b"RIFF":
            self.header = None  # raw PCM
            return data
        if len(data) >= 12 and data[8:12] != b"WAVE":
            raise StreamError(f"{self.name}: malformed WAV header (RIFF but not WAVE)")
        pos, fmt = 12, None
        while pos + 8 <= len(data):
            cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
            if cid == b"data":
                if fmt is None:
                    raise StreamError(f"{self.name}: malformed WAV header (data before fmt)")
                self._set_format(*fmt)
                self.header = None
                return data[pos + 8 :]
            if pos + 8 + size > len(data):
                break  # chunk not complete yet
            if cid == b"fmt ":
                if size < 16:
                    raise StreamError(f"{self.name}: malformed WAV header (fmt chunk {size} B)")
                tag, ch, rate, _, _, bits = struct.unpack("<HHIIHH", data[pos + 8 : pos + 24])
                if tag == _EXTENSIBLE and size >= 26:
                    tag = struct.unpack("<H", data[pos + 32 : pos + 34])[0]
                fmt = (tag, ch, rate, bits)
            pos += 8 + size + (size & 1)
        if len(data) > MAX_HEADER_BYTES:
            raise StreamError(f"{self.name}: malformed WAV header (no data chunk in 64 KiB)")
        self.header = data
        return b""

    def _set_format(self, tag: int, channels: int, rate: int, bits: int) -> None:
        if tag == _PCM and bits == 16:
            dtype = np.dtype("<i2")
        elif tag == _PCM and bits == 32:
            dtype = np.dtype("<i4")
        elif tag == _FLOAT and bits == 32:
            dtype = np.dtype("<f4")
        else:
            raise StreamError(
                f"{self.name}: unsupported WAV format (tag {tag}, {bits} bits); send 16-bit PCM"
            )
        if channels < 1 or rate <= 0:
            raise StreamError(f"{self.name}: malformed WAV header ({channels} ch, {rate} Hz)")
        self.dtype, self.channels, self.rate = dtype, channels, rate
        if rate != self.sample_rate:
            import soxr

            self.resampler = soxr.ResampleStream(
                rate, self.sample_rate, 1, dtype="float32", quality="HQ"
            )


class StreamSession:
    """One live stream: chunks in, ``{"start", "end", "label", "probabilities"}`` events out.

    Args:
        model: a loaded :class:`~emodistill.inference.model.EmoDistill`.
        window, hop: as ``predict --segment`` (seconds).
        lock: held around each forward pass (a server shares one model between sessions).
        name: what to call the stream in error messages.
        speaker_norm: keep running speaker statistics of the stream's windows and normalise each
            window with them (a ``student.speaker_norm`` model; see the module docstring).

    Raises:
        ValueError: a window over the model's maximum.
        SpeakerNormError: ``speaker_norm`` on a model (or backend) without speaker
            normalisation.
    """

    def __init__(
        self,
        model: EmoDistill,
        window: float = DEFAULT_WINDOW,
        hop: float = DEFAULT_HOP,
        lock: threading.Lock | None = None,
        name: str = "stream",
        speaker_norm: bool = False,
    ) -> None:
        if window > model.max_seconds:
            raise ValueError(
                f"window {window} s exceeds the model's maximum of {model.max_seconds} s"
            )
        #: running statistics of the windows' clip means (None: the model's global ones)
        self.speaker: SpeakerStats | None = None
        if speaker_norm:
            require_speaker_norm(model, "speaker_norm")
            self.speaker = SpeakerStats()
            self.glob = model.runner.global_stats()
        self.model = model
        self.windower = FixedWindower(window, hop, model.sample_rate)
        self.decoder = PcmDecoder(model.sample_rate, name)
        self.lock = lock
        self.name = name
        self.windows = 0
        self.finished = False

    @property
    def seconds(self) -> float:
        """Audio received so far, in seconds."""
        return self.windower.total / self.model.sample_rate

    def feed(self, data: bytes, strict: bool = False) -> list[dict[str, Any]]:
        """Decode bytes (see :class:`PcmDecoder`) and push them; returns the completed events."""
        return self.push(self.decoder.feed(data, strict))

    def push(self, samples: np.ndarray) -> list[dict[str, Any]]:
        """Push (n,) float32 mono samples at the model's rate; returns the completed events."""
        if self.finished:
            raise RuntimeError(f"{self.name}: the stream is finished")
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(samples)):
            raise StreamError(f"{self.name}: audio holds non-finite (NaN/inf) samples")
        step = self.windower.step
        events: list[dict[str, Any]] = []
        # Pieces of at most one hop: the window buffer stays <= window + hop (bounded memory).
        for a in range(0, samples.size, step):
            for seg in self.windower.push(samples[a : a + step]):
                events.append(self._event(seg))
        return events

    def finish(self) -> list[dict[str, Any]]:
        """End of the stream: the end-aligned last window, if audio after the last is uncovered.

        Raises:
            AudioError: no audio at all, or less than ``MIN_SECONDS`` of it.
        """
        tail = self.decoder.flush()
        events = self.push(tail) if tail.size else []
        self.finished = True
        sr = self.model.sample_rate
        if self.windower.total == 0:
            raise AudioError(f"{self.name}: audio is empty (0 samples)")
        if self.windower.total < MIN_SECONDS * sr:
            raise AudioError(
                f"{self.name}: audio too short ({self.windower.total / sr * 1000:.0f} ms < "
                f"{MIN_SECONDS * 1000:.0f} ms)"
            )
        return events + [self._event(seg) for seg in self.windower.finish()]

    def speaker_state(self) -> dict[str, Any] | None:
        """``{"windows", "seconds"}`` the running speaker statistics hold (None: off)."""
        if self.speaker is None:
            return None
        return {"windows": self.speaker.n, "seconds": round(self.speaker.seconds, 3)}

    def _event(self, seg) -> dict[str, Any]:
        signal = np.array(seg.signal, copy=True)
        if self.lock is None:
            probs = self._forward(signal)
        else:
            with self.lock:
                probs = self._forward(signal)
        self.windows += 1
        event = segment_entry(self.model, seg, probs)
        if self.speaker is not None:
            event["speaker_norm"] = self.speaker_state()
        return event

    def _forward(self, signal: np.ndarray) -> np.ndarray:
        """(C,) probabilities of one (N,) window; with speaker statistics, the window's clip
        mean is added to them first and the window normalised with the result."""
        speaker = None
        if self.speaker is not None:
            means, seconds = signal_clip_means(self.model, signal)  # one: window <= max
            for m, sec in zip(means, seconds, strict=True):
                self.speaker.add(m, sec)
            speaker = normaliser(self.speaker, self.glob)
        return self.model.predict_proba([signal], 1, speaker=speaker)[0]


def stream_file(
    model: EmoDistill,
    source: BinaryIO,
    emit,
    window: float = DEFAULT_WINDOW,
    hop: float = DEFAULT_HOP,
    read_bytes: int = 3200,
    name: str = "stdin",
    speaker_norm: bool = False,
) -> int:
    """Stream a byte source (stdin: WAV or raw s16le 16 kHz mono) through a session.

    Reads what is available, at most ``read_bytes`` at a time (``read1``: a live pipe's events
    come out as its audio comes in), and calls ``emit(event)`` for each window as it completes.
    ``speaker_norm``: running speaker statistics (:class:`StreamSession`).

    Returns:
        the number of events emitted.

    Raises:
        AudioError: undecodable, empty or too-short input (the message names ``name``).
    """
    session = StreamSession(model, window, hop, name=name, speaker_norm=speaker_norm)
    read = getattr(source, "read1", source.read)
    n = 0
    while chunk := read(read_bytes):
        for event in session.feed(chunk):
            emit(event)
            n += 1
    for event in session.finish():
        emit(event)
        n += 1
    return n


__all__ = ["MAX_HEADER_BYTES", "PcmDecoder", "StreamError", "StreamSession", "stream_file"]
