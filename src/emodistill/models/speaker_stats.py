"""Speaker statistics for a speaker-normalised student (``student.speaker_norm``).

Emotion is a change from a person's baseline. A speaker-normalised student z-normalises the
frames of its pooled encoder layer with statistics of *that speaker's* clips before pooling:

* each clip contributes its **clip mean** m (H,): the mean over its valid frames of the pooled
  layer's states (the same vector the linear probe reads);
* a speaker with clip means m_1 .. m_n has mean mu_s and variance var_s over them (per channel);
* with few clips these are shrunk towards the training set's global ones (mu_g, var_g):
  ``w = n / (n + k)``, ``mu = w mu_s + (1 - w) mu_g``, ``var = w var_s + (1 - w) var_g``, so one
  clip (var_s = 0) or none degrades gracefully to a global normalisation (``k`` is
  ``student.speaker_shrink``);
* the student sees ``(frames - mu) / sqrt(var + EPS)``.

The statistics are label-free. :class:`SpeakerStats` keeps sufficient statistics (count, sums
and sums of squares in float64, seconds of speech), so clips can be added one at a time (a
stream) and a profile written to JSON round-trips exactly.

A **speaker profile** (``emodistill enroll``) is a :class:`SpeakerStats` with the fingerprint of
the model it was enrolled with; :func:`read_profile` checks it against the model that uses it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: added to the variance before the square root (channels that never vary stay finite)
EPS = 1e-5
#: ``format`` of a speaker-profile JSON file
PROFILE_FORMAT = "emodistill-speaker-profile"
PROFILE_VERSION = 1
#: an enrolment with less speech than this is refused (statistics of a second of speech are
#: mostly noise); ``enroll --min-seconds`` lowers it
MIN_ENROL_SECONDS = 3.0
#: a profile file larger than this is refused before it is parsed (a real one is ~20 KB per
#: 384 channels)
MAX_PROFILE_BYTES = 1 << 20


class BadProfile(ValueError):
    """A speaker profile that cannot be used with this model (the message says why and what to
    do)."""


@dataclass
class SpeakerStats:
    """Sufficient statistics of one speaker's clip means (count, sums, seconds).

    >>> s = SpeakerStats.of(np.array([[1.0, 2.0], [3.0, 2.0]]), seconds=4.0)
    >>> s.n, s.mean().tolist(), s.var().tolist()
    (2, [2.0, 2.0], [1.0, 0.0])
    """

    n: int = 0
    total: np.ndarray | None = None  # (H,) float64 sum of clip means
    total_sq: np.ndarray | None = None  # (H,) float64 sum of squared clip means
    seconds: float = 0.0

    @classmethod
    def of(cls, clip_means: np.ndarray, seconds: float = 0.0) -> SpeakerStats:
        """Statistics of clip means (N, H)."""
        stats = cls()
        for m in np.asarray(clip_means, dtype=np.float64).reshape(-1, np.shape(clip_means)[-1]):
            stats.add(m)
        stats.seconds = float(seconds)
        return stats

    def add(self, clip_mean: np.ndarray, seconds: float = 0.0) -> None:
        """Add one clip's mean (H,) and its duration."""
        m = np.asarray(clip_mean, dtype=np.float64).reshape(-1)
        if self.total is None:
            self.total, self.total_sq = np.zeros_like(m), np.zeros_like(m)
        if m.shape != self.total.shape:
            raise ValueError(f"clip mean of size {m.size} added to statistics of {self.total.size}")
        self.total += m
        self.total_sq += m * m
        self.n += 1
        self.seconds += float(seconds)

    @property
    def size(self) -> int | None:
        return None if self.total is None else int(self.total.size)

    def mean(self) -> np.ndarray:
        """(H,) float64 mean of the clip means."""
        if not self.n:
            raise ValueError("no clips in these statistics")
        return self.total / self.n

    def var(self) -> np.ndarray:
        """(H,) float64 population variance of the clip means (>= 0)."""
        mu = self.mean()
        return np.maximum(self.total_sq / self.n - mu * mu, 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "clips": self.n,
            "seconds": round(self.seconds, 3),
            "sum": [] if self.total is None else self.total.tolist(),
            "sum_sq": [] if self.total_sq is None else self.total_sq.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpeakerStats:
        n = int(data["clips"])
        total = np.asarray(data["sum"], dtype=np.float64)
        total_sq = np.asarray(data["sum_sq"], dtype=np.float64)
        if n < 0 or total.ndim != 1 or total.shape != total_sq.shape:
            raise ValueError("clips must be >= 0 and sum / sum_sq lists of one length")
        if (n and not total.size) or not np.all(np.isfinite(total)) or np.any(total_sq < 0):
            raise ValueError("sum / sum_sq must be finite (sum_sq >= 0)")
        if not n:
            return cls(seconds=float(data.get("seconds", 0.0)))
        return cls(n, total, total_sq, float(data.get("seconds", 0.0)))


@dataclass(frozen=True)
class GlobalStats:
    """The training set's clip-mean statistics: mean and variance (H,) over every training
    clip (saved in the model's weights as ``speaker_mean`` / ``speaker_var``)."""

    mean: np.ndarray
    var: np.ndarray
    shrink: float = 2.0


def normaliser(stats: SpeakerStats | None, glob: GlobalStats) -> np.ndarray:
    """(2, H) float32 ``[mu, sigma]`` the student divides a speaker's frames by: the speaker's
    statistics shrunk towards the global ones (``w = n / (n + k)``); no statistics or no clips
    -> the global ones."""
    n = 0 if stats is None else stats.n
    w = n / (n + glob.shrink) if n else 0.0
    mu, var = np.asarray(glob.mean, np.float64), np.asarray(glob.var, np.float64)
    if n:
        if stats.size != mu.size:
            raise BadProfile(f"statistics of {stats.size} channels for a model of {mu.size}")
        mu = w * stats.mean() + (1 - w) * mu
        var = w * stats.var() + (1 - w) * var
    return np.stack([mu, np.sqrt(var + EPS)]).astype(np.float32)


def speaker_normalisers(
    clip_means: Mapping[str, np.ndarray],
    speakers: Mapping[str, str],
    glob: GlobalStats,
    ids: Iterable[str] | None = None,
) -> dict[str, np.ndarray]:
    """Utterance id -> (2, H) normaliser from the statistics of its speaker's clips in
    ``clip_means``, for every id of ``ids`` (default: those of ``clip_means``); a speaker with
    no clip there gets the global normaliser."""
    by_speaker: dict[str, SpeakerStats] = {}
    for utt_id, m in clip_means.items():
        by_speaker.setdefault(speakers[utt_id], SpeakerStats()).add(m)
    norms = {spk: normaliser(s, glob) for spk, s in by_speaker.items()}
    fallback = None
    out = {}
    for utt_id in clip_means if ids is None else ids:
        norm = norms.get(speakers[utt_id])
        if norm is None:
            fallback = normaliser(None, glob) if fallback is None else fallback
            norm = fallback
        out[utt_id] = norm
    return out


def global_stats(clip_means: np.ndarray, shrink: float) -> GlobalStats:
    """:class:`GlobalStats` of training clip means (N, H)."""
    s = SpeakerStats.of(clip_means)
    return GlobalStats(s.mean().astype(np.float32), s.var().astype(np.float32), float(shrink))


# --- profiles -------------------------------------------------------------------------------


@dataclass
class SpeakerProfile:
    """One voice's statistics, enrolled with one model (``emodistill enroll``)."""

    stats: SpeakerStats
    model: str  # fingerprint of the model folder it was enrolled with (model_fingerprint)
    layer: int  # the pooled encoder layer the clip means come from
    sources: list[str] = field(default_factory=list)  # display names of the enrolment clips

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PROFILE_FORMAT,
            "format_version": PROFILE_VERSION,
            "model": self.model,
            "layer": self.layer,
            **self.stats.to_dict(),
            "sources": list(self.sources),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "profile") -> SpeakerProfile:
        """Parse and check a profile's JSON object; :class:`BadProfile` names what is wrong."""
        if not isinstance(data, Mapping) or data.get("format") != PROFILE_FORMAT:
            raise BadProfile(
                f'{where}: not a speaker profile (no "format": "{PROFILE_FORMAT}"); write one '
                "with `emodistill enroll MODEL CLIP... --out PROFILE.json`"
            )
        if data.get("format_version") != PROFILE_VERSION:
            raise BadProfile(
                f"{where}: profile format_version {data.get('format_version')!r}; this version "
                f"reads {PROFILE_VERSION}: enrol again"
            )
        try:
            stats = SpeakerStats.from_dict(data)
            model, layer = str(data["model"]), int(data["layer"])
        except (KeyError, TypeError, ValueError) as err:
            raise BadProfile(f"{where}: malformed speaker profile ({err})") from err
        if stats.n < 1 or not math.isfinite(stats.seconds):
            raise BadProfile(f"{where}: the profile holds no clips: enrol again")
        return cls(stats, model, layer, [str(s) for s in data.get("sources", [])][:1000])

    def check(self, model_fingerprint: str, layer: int, size: int, where: str) -> None:
        """Refuse a profile enrolled with another model (or a malformed one)."""
        if self.model != model_fingerprint:
            raise BadProfile(
                f"{where}: enrolled with another model (fingerprint {self.model[:12]}, this "
                f"model's is {model_fingerprint[:12]}); a profile holds statistics of one "
                "model's encoder: enrol again with `emodistill enroll MODEL CLIP...`"
            )
        if self.layer != layer or self.stats.size != size:
            raise BadProfile(
                f"{where}: statistics of layer {self.layer} ({self.stats.size} channels); "
                f"this model pools layer {layer} ({size} channels): enrol again"
            )


def model_fingerprint(module: Any) -> str:
    """Hex sha256 of a student network: its head configuration (``dims``) and every parameter
    and buffer (name, dtype, shape, bytes), so a profile is only used with the model whose
    encoder computed its statistics (the same weights loaded again give the same value)."""
    import hashlib
    import json

    h = hashlib.sha256()
    dims = getattr(module, "dims", None)
    meta = dims.to_dict() if hasattr(dims, "to_dict") else {}
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        if str(t.dtype) == "torch.bfloat16":  # numpy has no bfloat16
            t = t.float()
        h.update(t.numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def write_profile(profile: SpeakerProfile, path: str | Path) -> Path:
    """Write ``profile`` as JSON (atomically)."""
    from emodistill.util.files import write_json_atomic

    write_json_atomic(path, profile.to_dict())
    return Path(path)


def read_profile(path: str | Path) -> SpeakerProfile:
    """Read a profile written by :func:`write_profile`; :class:`BadProfile` says what is wrong."""
    from emodistill.util.files import read_json

    path = Path(path)
    if not path.is_file():
        raise BadProfile(f"{path}: no such profile file")
    if path.stat().st_size > MAX_PROFILE_BYTES:
        raise BadProfile(f"{path}: {path.stat().st_size} bytes, too large for a speaker profile")
    try:
        data = read_json(path)
    except (OSError, ValueError) as err:
        raise BadProfile(f"{path}: not readable JSON ({err})") from err
    return SpeakerProfile.from_dict(data, str(path))


def profile_from_bytes(data: bytes, where: str = "profile") -> SpeakerProfile:
    """A profile sent as bytes (the service): size-bounded, then parsed and checked."""
    import json

    if len(data) > MAX_PROFILE_BYTES:
        raise BadProfile(f"{where}: {len(data)} bytes, too large for a speaker profile")
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise BadProfile(f"{where}: not JSON ({err})") from err
    return SpeakerProfile.from_dict(obj, where)


__all__ = [
    "EPS",
    "MIN_ENROL_SECONDS",
    "PROFILE_FORMAT",
    "BadProfile",
    "GlobalStats",
    "SpeakerProfile",
    "SpeakerStats",
    "global_stats",
    "model_fingerprint",
    "normaliser",
    "profile_from_bytes",
    "read_profile",
    "speaker_normalisers",
    "write_profile",
]
