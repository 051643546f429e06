"""A speaker profile sent with ``POST /predict`` (multipart field ``profile``; docs/speaker.md).

Stateless: the profile (the JSON ``emodistill enroll`` writes) travels with each request, as a
file part or as a text field, and is read, size-bounded, parsed and checked against the served
model before any audio is decoded.
What can go wrong, each answered ``{"detail": message}`` naming the profile and what is wrong:

* the model was trained without ``student.speaker_norm`` (422): a profile is never ignored;
* the profile is over ``MAX_PROFILE_BYTES``, or audio and profile together are over the
  server's upload limit (413);
* not JSON, not a speaker profile, malformed, or enrolled with another model (another
  fingerprint, pooled layer or width) (422).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import HTTPException, UploadFile

from emodistill.inference.speaker import SpeakerNormError, require_speaker_norm
from emodistill.models.speaker_stats import (
    MAX_PROFILE_BYTES,
    BadProfile,
    SpeakerProfile,
    normaliser,
    profile_from_bytes,
)
from emodistill.util.log import get_logger

log = get_logger(__name__)


@dataclass
class UploadedProfile:
    """A checked profile of one request: the profile, its (2, H) float32 ``[mu, sigma]`` for
    the served model, and the client's name for it."""

    profile: SpeakerProfile
    speaker: np.ndarray
    name: str

    def summary(self) -> dict[str, Any]:
        """``{"name", "clips", "seconds"}`` for the answer."""
        stats = self.profile.stats
        return {"name": self.name, "clips": stats.n, "seconds": round(stats.seconds, 3)}


def has_profile(upload: UploadFile | str | None) -> bool:
    """Whether the request holds a ``profile`` part (an empty, unnamed part, as a form with no
    file chosen sends, and an empty text field are none)."""
    if isinstance(upload, str):
        return bool(upload)
    return upload is not None and bool(upload.filename or upload.size)


def read_uploaded_profile(
    model: Any, upload: UploadFile | str, name: str, audio_bytes: int, limit_bytes: int
) -> UploadedProfile:
    """Read, parse and check ``upload`` (blocking: run it in the threadpool).

    Args:
        model: the served :class:`~emodistill.inference.model.EmoDistill`.
        upload: the file part, or a text field's value.
        name: the client's file name of the profile (for messages; ``field`` for text).
        audio_bytes, limit_bytes: the audio's size and the request's byte limit, which the
            profile counts toward.

    Raises:
        HTTPException: 413 (too large) or 422 (anything else), the detail naming the profile.
    """
    where = f"profile {name}"
    try:
        require_speaker_norm(model, where)
    except SpeakerNormError as err:
        raise HTTPException(422, str(err)) from err
    if isinstance(upload, str):
        data = upload.encode("utf-8", "surrogateescape")
    else:
        data = upload.file.read(MAX_PROFILE_BYTES + 1)
    if len(data) > MAX_PROFILE_BYTES:
        raise HTTPException(
            413, f"{where}: over {MAX_PROFILE_BYTES} bytes, too large for a speaker profile"
        )
    if audio_bytes + len(data) > limit_bytes:
        raise HTTPException(
            413,
            f"{where}: upload too large: audio ({audio_bytes} bytes) and profile ({len(data)} "
            f"bytes) together are over this server's limit of {limit_bytes} bytes",
        )
    try:
        profile = profile_from_bytes(data, where)
        runner = model.runner
        glob = runner.global_stats()
        profile.check(runner.fingerprint(), runner.layer, int(np.asarray(glob.mean).size), where)
    except BadProfile as err:
        raise HTTPException(422, str(err)) from err
    log.debug(f"{where}: {profile.stats.n} clips, {profile.stats.seconds:.1f} s")
    return UploadedProfile(profile, normaliser(profile.stats, glob), name)


__all__ = ["UploadedProfile", "has_profile", "read_uploaded_profile"]
