"""The routes of the HTTP service at module level (``serve.create_app`` mounts them): each
reads the served model, its limits, lock and load counters from ``app.state.service``."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, Response

from emodistill.audio import (
    SUPPORTED_TEXT,
    AudioError,
    AudioTooLargeError,
    UnsupportedFormatError,
    audio_info,
    load_audio,
)
from emodistill.inference.model import STREAM_ABOVE_SECONDS, EmoDistill
from emodistill.inference.prediction import safe_text
from emodistill.service.limits import FifoLock, Load, ServiceLimits
from emodistill.service.profile_upload import has_profile, read_uploaded_profile

WEB_DIR = Path(__file__).parent / "web"


def client_name(filename: str | None) -> str:
    """An upload's file name as shown in answers: valid UTF-8, control characters (NUL...)
    escaped, at most 255 characters.

    >>> print(client_name("a" + chr(0) + "b.wav"), client_name(None))
    a\\x00b.wav upload
    """
    text = safe_text(filename or "upload")
    text = "".join(f"\\x{ord(c):02x}" if unicodedata.category(c) == "Cc" else c for c in text)
    return text[:255]


class _Abandoned(Exception):
    """The client went away: nobody will read the answer."""


_PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>emodistill</title></head>
<body><h1>emodistill</h1>
<p>Speech emotion recognition service. POST an audio file as multipart field <code>file</code>
to <code>/predict</code>; see <a href="docs">/docs</a> and <a href="info">/info</a>.</p>
</body></html>
"""


@dataclass
class Service:
    """One served model and what its routes share (``app.state.service``): the limits, the
    model lock and the load counters."""

    model: EmoDistill
    limits: ServiceLimits
    window: float
    hop: float
    full_name: str
    show_paths: bool = False
    lock: FifoLock = field(default_factory=FifoLock)
    load: Load = field(init=False)

    def __post_init__(self) -> None:
        self.load = Load(self.limits.max_concurrent)
        self.audio_limits = self.limits.audio()
        self.model_name = self.full_name if self.show_paths else Path(self.full_name).name

    @property
    def max_upload_mb(self) -> float:
        return self.limits.max_upload_mb

    @property
    def max_seconds(self) -> float:
        return self.limits.max_seconds

    @property
    def limit_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def shown(self, value: Any) -> Any:
        """A path-like string reduced to its last part unless paths are shown."""
        if self.show_paths or not isinstance(value, str):
            return value
        if os.path.isabs(value) or value.startswith(("~", ".")):
            return Path(value).name
        return value

    def run_bounded(self, work, deadline: float, gone: threading.Event):
        """Run ``work(check)`` holding the model lock; ``check`` raises past the deadline or
        once the client is gone. Waits for the lock in short steps so both are seen."""

        def check() -> None:
            if gone.is_set():
                raise _Abandoned
            if time.monotonic() > deadline:
                raise TimeoutError

        ticket = self.lock.ticket()
        try:
            while not ticket.wait(0.05):
                check()
        except BaseException:
            self.lock.cancel(ticket)
            raise
        try:
            self.load.running += 1
            check()
            return work(check)
        finally:
            self.load.running -= 1
            self.lock.release()


def _service(request: Request) -> Service:
    return request.app.state.service


# --------------------------------------------------------------------------- routes


async def health(request: Request) -> dict[str, Any]:
    """Liveness, the loaded model and how busy the server is (never waits for the model)."""
    s = _service(request)
    return {
        "status": "ok",
        "model_loaded": True,
        "model": s.model_name,
        "labels": s.model.labels,
        "busy": s.load.snapshot(),
    }


async def info(request: Request) -> dict[str, Any]:
    """Model facts and server limits (for the web page)."""
    s = _service(request)
    facts = s.model.info()
    out = {
        "model": s.model_name,
        "labels": s.model.labels,
        "backbone": facts.get("encoder"),
        "encoder": facts.get("encoder"),
        "encoder_source": s.shown(facts.get("encoder_source")),
        "sample_rate": s.model.sample_rate,
        "backend": s.model.backend,
        "summary": facts.get("summary"),  # the model card's one line (None: no card)
        "max_upload_mb": s.max_upload_mb,
        "max_seconds": s.max_seconds,
        "max_window_seconds": s.model.max_seconds,
        "window": s.window,
        "hop": s.hop,
        "min_window": s.limits.min_window,
        "min_hop": s.limits.min_hop,
        "max_windows": s.limits.max_windows,
        "max_concurrent": s.limits.max_concurrent,
        "request_timeout": s.limits.request_timeout,
        "formats": SUPPORTED_TEXT,
        # POST /predict's profile field and /stream?speaker_norm=1 (docs/speaker.md)
        "speaker_norm": bool(s.model.speaker_norm and hasattr(s.model.runner, "clip_means")),
    }
    if s.show_paths:
        out["model_dir"] = s.full_name
    return out


async def predict_upload(
    s: Service,
    request: Request,
    file: UploadFile,
    segment: bool,
    window: float,
    hop: float,
    vad: bool,
    profile: UploadFile | str | None = None,
) -> Any:
    """``POST /predict``: the upload's header checked in the threadpool, then its decoding and
    forward passes behind the model lock, abandoned past the deadline or once the client left.
    ``profile``: a speaker profile (``service.profile_upload``), checked before the audio."""
    from emodistill.inference.segment import (
        TooManyWindowsError,
        check_segment_params,
        predict_timeline,
    )

    name = client_name(file.filename)
    deadline = time.monotonic() + s.limits.request_timeout
    segment = segment or vad
    try:
        if segment:
            try:
                check_segment_params(window, hop)
            except ValueError as err:
                raise HTTPException(422, str(err)) from err
            if window < s.limits.min_window or hop < s.limits.min_hop:
                raise HTTPException(
                    422,
                    f"window must be >= {s.limits.min_window:g} s and hop >= "
                    f"{s.limits.min_hop:g} s (got {window:g}, {hop:g})",
                )
        if (file.size or 0) > s.limit_bytes:
            raise HTTPException(
                413,
                f"{name}: upload too large: this server accepts files up to {s.max_upload_mb:g} MB",
            )
        prof = None
        if has_profile(profile):
            prof = await run_in_threadpool(
                read_uploaded_profile,
                s.model,
                profile,
                "field" if isinstance(profile, str) else client_name(profile.filename),
                file.size or 0,
                s.limit_bytes,
            )
        speaker = None if prof is None else prof.speaker
        src = file.file  # Starlette's spooled temporary file: memory, then an unnamed file
        try:
            # The header alone refuses bombs, absurd rates and foreign bytes, before any
            # decoding and without waiting for the model.
            header = await run_in_threadpool(audio_info, src, s.audio_limits, name)
        except UnsupportedFormatError as err:
            raise HTTPException(415, str(err)) from err
        except AudioTooLargeError as err:
            raise HTTPException(413, str(err)) from err
        except AudioError as err:
            raise HTTPException(422, str(err)) from err

        def work(check):
            if segment:
                return predict_timeline(
                    s.model,
                    src,
                    window,
                    hop,
                    vad,
                    limits=s.audio_limits,
                    name=name,
                    check=check,
                    max_windows=s.limits.max_windows,
                    speaker=speaker,
                )
            if header.duration > STREAM_ABOVE_SECONDS:
                return s.model.predict_long_file(
                    src,
                    limits=s.audio_limits,
                    name=name,
                    check=check,
                    profile=None if prof is None else prof.profile,
                )
            signal = load_audio(
                src, s.model.sample_rate, limits=s.audio_limits, name=name, check=check
            )
            probs = s.model.predict_proba([signal], check=check, speaker=speaker)[0]
            return s.model._prediction(name, probs)

        gone = threading.Event()
        job = asyncio.ensure_future(run_in_threadpool(s.run_bounded, work, deadline, gone))
        while not job.done():
            await asyncio.wait({job}, timeout=0.1)
            if not job.done() and await request.is_disconnected():
                gone.set()  # the worker stops at its next check
        try:
            result = job.result()
        except _Abandoned:
            s.load.abandoned += 1
            return Response(status_code=499)  # nobody reads it; for the access log
        except TimeoutError as err:
            s.load.timed_out += 1
            raise HTTPException(
                503,
                f"{name}: not done within this server's {s.limits.request_timeout:g} s per "
                "request; retry later",
                headers={"Retry-After": str(s.load.retry_after())},
            ) from err
        except AudioTooLargeError as err:
            raise HTTPException(413, str(err)) from err
        except (AudioError, TooManyWindowsError, ValueError) as err:
            raise HTTPException(422, str(err)) from err
    except HTTPException as err:
        raise HTTPException(err.status_code, safe_text(str(err.detail)), err.headers) from None
    finally:
        await file.close()
        if profile is not None and not isinstance(profile, str):
            await profile.close()
    if segment:
        summary = result["summary"]
        out = {
            "file": name,
            "label": summary["label"],
            "probabilities": summary["probabilities"],
            "segments": result["segments"],
            "summary": summary,
        }
    else:
        out = result.to_dict()
        out["file"] = name
    if prof is not None:  # which statistics normalised the speaker (docs/speaker.md)
        out["speaker_norm"], out["profile"] = "profile", prof.summary()
    elif s.model.speaker_norm:
        out["speaker_norm"] = "global"
    return out


def index():
    page = WEB_DIR / "index.html"
    if page.is_file():
        return FileResponse(page, media_type="text/html")
    return HTMLResponse(_PLACEHOLDER)
