"""Speaker normalisation at inference (a ``student.speaker_norm`` model; docs/speaker.md).

A speaker-normalised student divides its pooled layer's frames by ``[mu, sigma]`` of the
speaker's statistics (:func:`~emodistill.models.speaker_stats.normaliser`). At inference those
statistics come from

* a **speaker profile** (``enroll`` -> ``predict --profile``): clip means of enrolment clips;
* the inputs themselves (``predict --speaker-norm``): every input of the call is one voice.

Either way a clip contributes one **clip mean** (H,): the mean of the pooled layer over the
clip's valid frames, computed alone (batch of one, no padding), as cross-validation computes a
test speaker's (``features/prefix_cache.LayerMeans``). A clip longer than the model's maximum
window (30 s) contributes one clip mean per window, the windows prediction uses.

Nothing here imports :mod:`emodistill.inference.model` (which imports this module): the model is
passed in.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emodistill.audio import DEFAULT_LIMITS, AudioError, AudioLimits, open_audio
from emodistill.inference.batching import split_equal
from emodistill.inference.long_audio import STREAM_ABOVE_SECONDS, stream_windows
from emodistill.inference.prediction import safe_text, source_display_name
from emodistill.models.speaker_stats import (
    MIN_ENROL_SECONDS,
    SpeakerProfile,
    SpeakerStats,
    normaliser,
    read_profile,
)
from emodistill.util.log import PLAIN, get_logger

log = get_logger(__name__)


class SpeakerNormError(ValueError):
    """Speaker normalisation asked of a model (or backend) that cannot do it, or asked twice."""


class EnrolmentError(ValueError):
    """An enrolment with no usable audio or too little of it (the message says what to do)."""


@dataclass
class ClipMeans:
    """Clip means of one voice's clips: ``means`` (each (H,) float32), the seconds of audio
    they cover, the usable clips' display names and the failed ones' ``(name, reason)``."""

    means: list[np.ndarray] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def add(self, means: Sequence[np.ndarray], seconds: Sequence[float]) -> None:
        self.means.extend(means)
        self.seconds.extend(seconds)

    def stats(self) -> SpeakerStats:
        """:class:`SpeakerStats` of the clip means (one per clip or window)."""
        stats = SpeakerStats()
        for m, sec in zip(self.means, self.seconds, strict=True):
            stats.add(m, sec)
        return stats


@dataclass
class Enrolment:
    """What ``enroll`` made: the profile, and the clips it skipped ``(name, reason)``."""

    profile: SpeakerProfile
    failed: list[tuple[str, str]]


def require_speaker_norm(model: Any, what: str) -> None:
    """Refuse speaker normalisation (``what``: the option asking for it) on a model trained
    without it, or on a runner that cannot compute clip means."""
    if not model.speaker_norm:
        instead = "there is nothing to enrol" if what == "enroll" else f"predict without {what}"
        raise SpeakerNormError(
            f"{what}: this model was trained without student.speaker_norm; it uses no speaker "
            f"statistics: {instead}, or train a model with student.speaker_norm: true "
            "(docs/speaker.md)"
        )
    if not hasattr(model.runner, "clip_means"):
        raise SpeakerNormError(
            f"{what}: the {model.backend} backend cannot compute clip means (an ONNX file "
            "exported before speaker statistics were supported?): export it again or use "
            "--backend torch"
        )


def signal_clip_means(model: Any, signal: np.ndarray) -> tuple[list[np.ndarray], list[float]]:
    """One (H,) clip mean per window of at most ``model.max_seconds`` of a (N,) float32 signal
    (each window alone: a batch of one), and the windows' lengths in seconds."""
    max_len = int(model.max_seconds * model.sample_rate)
    means, seconds = [], []
    for a, b in split_equal(signal.size, max_len):
        wav = np.ascontiguousarray(signal[None, a:b], dtype=np.float32)
        means.append(model.runner.clip_means(wav, np.array([b - a], dtype=np.int64))[0])
        seconds.append((b - a) / model.sample_rate)
    return means, seconds


def collect_clip_means(
    model: Any,
    items: Sequence[Any],
    sampling_rate: int | None = None,
    limits: AudioLimits = DEFAULT_LIMITS,
    name: str | None = None,
) -> ClipMeans:
    """Clip means of files (paths or open binary files) and arrays; an unusable file or array
    is logged, recorded in ``failed`` and skipped. ``name``: the display name of a single
    input. ``sources`` keeps file names without their folders (a profile may be shared)."""
    out = ClipMeans()
    for item in items:
        if isinstance(item, (str, os.PathLike)) or hasattr(item, "read"):
            label = name or source_display_name(item)
            try:
                with open_audio(item, limits, label) as audio:
                    if audio.info.duration > STREAM_ABOVE_SECONDS:
                        for window in stream_windows(audio, model.max_seconds, model.sample_rate):
                            out.add(*signal_clip_means(model, window))
                    else:
                        out.add(*signal_clip_means(model, audio.load(model.sample_rate)))
            except AudioError as err:
                out.failed.append((label, safe_text(str(err))))
                log.warning(f"skipped {label}: {safe_text(str(err))}", extra=PLAIN)
                continue
        else:
            label = name or f"<array {len(out.sources) + len(out.failed)}>"
            try:
                out.add(*signal_clip_means(model, model._array(item, sampling_rate)))
            except AudioError as err:
                out.failed.append((label, safe_text(str(err))))
                log.warning(f"skipped {label}: {safe_text(str(err))}", extra=PLAIN)
                continue
        out.sources.append(label.replace("\\", "/").rsplit("/", 1)[-1])  # a file's name only
    return out


def resolve_profile(model: Any, profile: SpeakerProfile | str | os.PathLike) -> SpeakerProfile:
    """A profile object or JSON file, checked against ``model`` (its fingerprint, pooled layer
    and width); :class:`~emodistill.models.speaker_stats.BadProfile` says what is wrong."""
    require_speaker_norm(model, "--profile")
    if isinstance(profile, SpeakerProfile):
        prof, where = profile, "speaker profile"
    else:
        prof, where = read_profile(profile), str(Path(profile))
    runner = model.runner
    size = int(np.asarray(runner.global_stats().mean).size)
    prof.check(runner.fingerprint(), runner.layer, size, where)
    return prof


def check_request(
    model: Any, profile: SpeakerProfile | str | os.PathLike | None, speaker_norm: bool
) -> SpeakerProfile | None:
    """Check a request for speaker normalisation before any audio is read: the profile
    (checked against the model) or None.

    Raises:
        SpeakerNormError: both asked for, or either on a model trained without speaker_norm.
        BadProfile: a missing, malformed or foreign profile.
    """
    if profile is not None and speaker_norm:
        raise SpeakerNormError(
            "--profile and --speaker-norm both given: a profile holds an enrolled voice's "
            "statistics, --speaker-norm takes them from the inputs; choose one"
        )
    if profile is not None:
        return resolve_profile(model, profile)
    if speaker_norm:
        require_speaker_norm(model, "--speaker-norm")
    return None


def speaker_normaliser(
    model: Any,
    items: Sequence[Any],
    sampling_rate: int | None = None,
    profile: SpeakerProfile | str | os.PathLike | None = None,
    speaker_norm: bool = False,
    limits: AudioLimits = DEFAULT_LIMITS,
    name: str | None = None,
    progress: bool = False,
) -> np.ndarray | None:
    """The (2, H) float32 ``[mu, sigma]`` every input of a call is normalised with: from
    ``profile``, or (``speaker_norm``) from the clip means of ``items`` themselves (one voice);
    None when neither is asked for (the model's global statistics).

    Raises:
        SpeakerNormError: both asked for, or either on a model trained without speaker_norm.
        BadProfile: a missing, malformed or foreign profile.
    """
    prof = check_request(model, profile, speaker_norm)
    if prof is not None:
        return normaliser(prof.stats, model.runner.global_stats())
    if not speaker_norm:
        return None
    glob = model.runner.global_stats()
    if progress:
        log.info(f"speaker statistics of {len(items)} input(s) (pass 1 of 2)")
    clips = collect_clip_means(model, items, sampling_rate, limits, name)
    for item in items:
        if hasattr(item, "seek"):
            item.seek(0)  # an open file: read again to predict
    return shared_normaliser(clips, glob)


def shared_normaliser(clips: ClipMeans, glob: Any) -> np.ndarray:
    """(2, H) normaliser of clips of one voice (shrunk towards ``glob``); a warning when they
    hold less audio than an enrolment needs (the shrinkage then leans on ``glob``)."""
    stats = clips.stats()
    if stats.seconds < MIN_ENROL_SECONDS:
        log.warning(
            f"--speaker-norm: {stats.seconds:.1f} s of audio in {stats.n} clip(s); statistics "
            f"of less than {MIN_ENROL_SECONDS:g} s are mostly noise (shrunk towards the "
            f"training set's with weight n / (n + {glob.shrink:g}))"
        )
    return normaliser(stats if stats.n else None, glob)


def enroll(
    model: Any,
    items: Any,
    sampling_rate: int | None = None,
    min_seconds: float = MIN_ENROL_SECONDS,
    progress: bool = False,
) -> Enrolment:
    """A :class:`SpeakerProfile` of one voice from clips (paths, arrays or a list of them).

    Raises:
        SpeakerNormError: the model was trained without speaker_norm.
        EnrolmentError: no usable clip, or less than ``min_seconds`` of audio in them.
    """
    require_speaker_norm(model, "enroll")
    if not isinstance(min_seconds, (int, float)) or not math.isfinite(min_seconds):
        raise ValueError(f"min_seconds must be a finite number of seconds, got {min_seconds!r}")
    items = list(items) if isinstance(items, (list, tuple)) else [items]
    if not items:
        raise EnrolmentError("enroll: no clips given; give recordings of the speaker's speech")
    if progress:
        log.info(f"enrolling {len(items)} clip(s)")
    clips = collect_clip_means(model, items, sampling_rate)
    if not clips.means:
        reasons = "; ".join(f"{n}: {why}" for n, why in clips.failed[:3])
        raise EnrolmentError(
            f"no usable enrolment audio: all {len(clips.failed)} clip(s) failed ({reasons}); "
            "enrol with readable recordings of the speaker's speech"
        )
    stats = clips.stats()
    if stats.seconds < min_seconds:
        raise EnrolmentError(
            f"{stats.seconds:.1f} s of audio in {len(clips.sources)} usable clip(s) is less "
            f"than the {min_seconds:g} s a speaker profile needs (statistics of less speech are "
            "mostly noise): add clips of this speaker, or lower --min-seconds"
        )
    runner = model.runner
    profile = SpeakerProfile(stats, runner.fingerprint(), runner.layer, clips.sources)
    return Enrolment(profile, clips.failed)


__all__ = [
    "ClipMeans",
    "EnrolmentError",
    "Enrolment",
    "SpeakerNormError",
    "check_request",
    "collect_clip_means",
    "enroll",
    "require_speaker_norm",
    "resolve_profile",
    "shared_normaliser",
    "signal_clip_means",
    "speaker_normaliser",
]
