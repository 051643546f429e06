"""HTTP service: ``POST /predict`` (multipart audio) -> the same JSON as ``emodistill predict``.

Endpoints:

* ``POST /predict`` — multipart field ``file``; query ``segment=true`` (timeline), ``window``,
  ``hop``, ``vad``. Answers ``{"file", "label", "probabilities"}`` (+ ``"segments"`` and
  ``"summary"`` with ``segment=true``). Errors, each ``{"detail": message}``: 413 for an upload
  over ``max_upload_mb``, audio longer than ``max_seconds`` or more decoding work than the budget;
  415 for bytes that are none of the supported formats (sniffed, never from the file name); 422
  for anything else that is not usable audio and for bad parameters (non-finite, under the
  floors, more windows than ``max_windows``); 503 with ``Retry-After`` when ``max_concurrent``
  requests are already admitted or a request passes ``request_timeout``.
* ``WS /stream`` — live audio chunks in, one JSON event per window out (``stream_server``);
  the same Host check, window floors and model lock as ``POST /predict``.
* ``GET /health`` — ``{"status": "ok", "model_loaded", "model", "labels", "busy": {...}}``,
  answered on the event loop (never behind the model).
* ``GET /info`` — model facts and the server's limits, for the web page (no server paths unless
  ``show_paths``).
* ``GET /`` — the web page (``emodistill/web/index.html``); ``/static/*`` its files.
* ``GET /openapi.json``, ``/docs`` — the schema, from FastAPI.

Concurrency and bounded work: at most ``max_concurrent`` ``/predict`` requests are admitted at
once (the rest get 503 at once, before their body is read). An admitted request's header is
checked in FastAPI's threadpool; its decoding and forward passes then run behind one lock (one at
a time, each using all intra-op threads, so requests queue instead of oversubscribing the CPU;
first come, first served).
The work checks a deadline and the client's connection between blocks and batches, and is
abandoned when either is gone. The upload stays in Starlette's spooled temporary file (memory up
to 1 MiB, then an unnamed temporary file): it is decoded from there, so nothing named is left on
disk, even if the server is killed.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from emodistill.audio import (
    SUPPORTED_TEXT,
    AudioError,
    AudioLimits,
    AudioTooLargeError,
    UnsupportedFormatError,
    audio_info,
    load_audio,
)
from emodistill.inference import STREAM_ABOVE_SECONDS, EmoDistill
from emodistill.prediction import safe_text
from emodistill.serve_limits import Admission, FifoLock, Load, UploadLimit

WEB_DIR = Path(__file__).parent / "web"
#: Multipart framing around the file (boundaries, part headers) allowed on top of the limit.
MULTIPART_SLACK = 64 * 1024
#: Decoding budget per second of accepted audio: duration x rate x channels may reach
#: ``max_seconds`` x this (48 kHz x 4 channels, 96 kHz stereo or 192 kHz mono at full length).
SAMPLES_PER_SECOND_BUDGET = 192_000
#: Host names served by default when bound to a loopback address (DNS rebinding defence).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass(frozen=True)
class ServiceLimits:
    """Per-request and whole-server bounds of the service (each documented in docs/inference.md).

    Attributes:
        max_upload_mb: largest upload, MiB (413).
        max_seconds: longest audio, seconds (413).
        max_concurrent: ``/predict`` requests admitted at once, waiting ones included (503).
        request_timeout: seconds a request may take, waiting for the model included (503).
        min_window, min_hop: floors of the segment parameters, seconds (422).
        max_windows: most timeline windows per request (422).
    """

    max_upload_mb: float = 20
    max_seconds: float = 600
    max_concurrent: int = 16
    request_timeout: float = 60.0
    min_window: float = 0.25
    min_hop: float = 0.1
    max_windows: int = 1000

    def audio(self) -> AudioLimits:
        """The decoding limits: ``max_seconds`` and its decoded-sample budget."""
        return AudioLimits(
            max_seconds=self.max_seconds,
            max_samples=int(self.max_seconds * SAMPLES_PER_SECOND_BUDGET),
        )


def default_allowed_hosts(bind_host: str) -> list[str]:
    """Host headers served by default: loopback names on a loopback bind, else any (``*``).

    >>> default_allowed_hosts("127.0.0.1")[:2], default_allowed_hosts("0.0.0.0")
    (['127.0.0.1', 'localhost'], ['*'])
    """
    if bind_host in LOOPBACK_HOSTS or bind_host.startswith("127."):
        return list(dict.fromkeys([bind_host, *LOOPBACK_HOSTS]))
    if bind_host in ("0.0.0.0", "::", ""):
        return ["*"]
    return [bind_host, *LOOPBACK_HOSTS]


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


def create_app(
    model_dir: str | os.PathLike,
    max_upload_mb: float = 20,
    max_seconds: float = 600,
    backend: str = "torch",
    device: str = "cpu",
    window: float = 3.0,
    hop: float = 1.5,
    model: EmoDistill | None = None,
    limits: ServiceLimits | None = None,
    allowed_hosts: list[str] | None = None,
    show_paths: bool = False,
) -> FastAPI:
    """The FastAPI app serving one model folder.

    Args:
        model_dir: model folder (or hub id).
        max_upload_mb: largest accepted upload, MiB (413 above).
        max_seconds: longest accepted audio, seconds (413 above).
        backend, device: as :meth:`EmoDistill.from_pretrained`.
        window, hop: default segment settings for ``segment=true``.
        model: an already loaded model (skips loading ``model_dir``).
        limits: every bound of the service; its ``max_upload_mb`` / ``max_seconds`` are replaced
            by the arguments of the same name.
        allowed_hosts: ``Host`` headers served (Starlette's TrustedHostMiddleware; 400 for
            others); None serves any (``serve()`` passes a loopback default).
        show_paths: ``/info`` and ``/health`` give the model's full path, not only its name.
    """
    from dataclasses import replace

    from emodistill import __version__
    from emodistill.segment import TooManyWindowsError, check_segment_params, predict_timeline

    lim = replace(limits or ServiceLimits(), max_upload_mb=max_upload_mb, max_seconds=max_seconds)
    audio_limits = lim.audio()
    m = model or EmoDistill.from_pretrained(model_dir, device=device, backend=backend)
    lock = FifoLock()
    load = Load(lim.max_concurrent)
    limit_bytes = int(max_upload_mb * 1024 * 1024)
    full_name = str(m.path or model_dir)
    model_name = full_name if show_paths else Path(full_name).name

    def shown(value: Any) -> Any:
        """A path-like string reduced to its last part unless paths are shown."""
        if show_paths or not isinstance(value, str):
            return value
        if os.path.isabs(value) or value.startswith(("~", ".")):
            return Path(value).name
        return value

    app = FastAPI(
        title="emodistill",
        version=__version__,
        description="Speech emotion recognition from audio alone (EmoDistill student).",
    )
    # Outermost last: the Host check, then admission, then the upload size.
    app.add_middleware(
        UploadLimit,
        limit=limit_bytes + MULTIPART_SLACK,
        message=f"upload too large: this server accepts files up to {max_upload_mb:g} MB",
    )
    app.add_middleware(Admission, load=load)
    if allowed_hosts is not None and "*" not in allowed_hosts:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))

    def run_bounded(work, deadline: float, gone: threading.Event):
        """Run ``work(check)`` holding the model lock; ``check`` raises past the deadline or
        once the client is gone. Waits for the lock in short steps so both are seen."""

        def check() -> None:
            if gone.is_set():
                raise _Abandoned
            if time.monotonic() > deadline:
                raise TimeoutError

        ticket = lock.ticket()
        try:
            while not ticket.wait(0.05):
                check()
        except BaseException:
            lock.cancel(ticket)
            raise
        try:
            load.running += 1
            check()
            return work(check)
        finally:
            load.running -= 1
            lock.release()

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness, the loaded model and how busy the server is (never waits for the model)."""
        return {
            "status": "ok",
            "model_loaded": True,
            "model": model_name,
            "labels": m.labels,
            "busy": load.snapshot(),
        }

    @app.get("/info")
    async def info() -> dict[str, Any]:
        """Model facts and server limits (for the web page)."""
        facts = m.info()
        out = {
            "model": model_name,
            "labels": m.labels,
            "backbone": facts.get("encoder"),
            "encoder": facts.get("encoder"),
            "encoder_source": shown(facts.get("encoder_source")),
            "sample_rate": m.sample_rate,
            "backend": m.backend,
            "max_upload_mb": max_upload_mb,
            "max_seconds": max_seconds,
            "max_window_seconds": m.max_seconds,
            "window": window,
            "hop": hop,
            "min_window": lim.min_window,
            "min_hop": lim.min_hop,
            "max_windows": lim.max_windows,
            "max_concurrent": lim.max_concurrent,
            "request_timeout": lim.request_timeout,
            "formats": SUPPORTED_TEXT,
        }
        if show_paths:
            out["model_dir"] = full_name
        return out

    @app.post("/predict")
    async def predict(
        request: Request,
        file: UploadFile = File(..., description=f"Audio file ({SUPPORTED_TEXT})."),
        segment: bool = Query(False, description="Timeline over windows of the recording."),
        window: float = Query(window, description="Segment window, seconds."),
        hop: float = Query(hop, description="Segment hop, seconds."),
        vad: bool = Query(False, description="Segment on voice activity, not fixed windows."),
    ) -> Any:
        """Emotion of one uploaded recording (same JSON as one entry of ``emodistill predict``)."""
        name = client_name(file.filename)
        deadline = time.monotonic() + lim.request_timeout
        segment = segment or vad
        try:
            if segment:
                try:
                    check_segment_params(window, hop)
                except ValueError as err:
                    raise HTTPException(422, str(err)) from err
                if window < lim.min_window or hop < lim.min_hop:
                    raise HTTPException(
                        422,
                        f"window must be >= {lim.min_window:g} s and hop >= {lim.min_hop:g} s "
                        f"(got {window:g}, {hop:g})",
                    )
            if (file.size or 0) > limit_bytes:
                raise HTTPException(
                    413,
                    f"{name}: upload too large: this server accepts files up to "
                    f"{max_upload_mb:g} MB",
                )
            src = file.file  # Starlette's spooled temporary file: memory, then an unnamed file
            try:
                # The header alone refuses bombs, absurd rates and foreign bytes, before any
                # decoding and without waiting for the model.
                header = await run_in_threadpool(audio_info, src, audio_limits, name)
            except UnsupportedFormatError as err:
                raise HTTPException(415, str(err)) from err
            except AudioTooLargeError as err:
                raise HTTPException(413, str(err)) from err
            except AudioError as err:
                raise HTTPException(422, str(err)) from err

            def work(check):
                if segment:
                    return predict_timeline(
                        m,
                        src,
                        window,
                        hop,
                        vad,
                        limits=audio_limits,
                        name=name,
                        check=check,
                        max_windows=lim.max_windows,
                    )
                if header.duration > STREAM_ABOVE_SECONDS:
                    return m.predict_long_file(src, limits=audio_limits, name=name, check=check)
                signal = load_audio(src, m.sample_rate, limits=audio_limits, name=name, check=check)
                return m._prediction(name, m.predict_proba([signal], check=check)[0])

            gone = threading.Event()
            job = asyncio.ensure_future(run_in_threadpool(run_bounded, work, deadline, gone))
            while not job.done():
                await asyncio.wait({job}, timeout=0.1)
                if not job.done() and await request.is_disconnected():
                    gone.set()  # the worker stops at its next check
            try:
                result = job.result()
            except _Abandoned:
                load.abandoned += 1
                return Response(status_code=499)  # nobody reads it; for the access log
            except TimeoutError as err:
                load.timed_out += 1
                raise HTTPException(
                    503,
                    f"{name}: not done within this server's {lim.request_timeout:g} s per request; "
                    "retry later",
                    headers={"Retry-After": str(load.retry_after())},
                ) from err
            except AudioTooLargeError as err:
                raise HTTPException(413, str(err)) from err
            except (AudioError, TooManyWindowsError, ValueError) as err:
                raise HTTPException(422, str(err)) from err
        except HTTPException as err:
            raise HTTPException(err.status_code, safe_text(str(err.detail)), err.headers) from None
        finally:
            await file.close()
        if segment:
            summary = result["summary"]
            return {
                "file": name,
                "label": summary["label"],
                "probabilities": summary["probabilities"],
                "segments": result["segments"],
                "summary": summary,
            }
        out = result.to_dict()
        out["file"] = name
        return out

    @app.get("/", include_in_schema=False)
    def index():
        page = WEB_DIR / "index.html"
        if page.is_file():
            return FileResponse(page, media_type="text/html")
        return HTMLResponse(_PLACEHOLDER)

    from emodistill.stream_server import add_stream_route

    # WebSocket /stream (live audio): the same model lock, window floors and session cap.
    add_stream_route(
        app,
        m,
        lock,
        window=window,
        hop=hop,
        min_window=lim.min_window,
        min_hop=lim.min_hop,
        max_sessions=lim.max_concurrent,
    )
    app.mount("/static", StaticFiles(directory=WEB_DIR, check_dir=False), name="static")
    app.state.model = m
    app.state.load = load
    return app


def serve(
    model_dir: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_upload_mb: float = 20,
    max_seconds: float = 600,
    backend: str = "torch",
    log_level: str = "info",
    limits: ServiceLimits | None = None,
    allowed_hosts: list[str] | None = None,
    show_paths: bool = False,
) -> None:
    """Run the service with uvicorn until interrupted.

    ``allowed_hosts`` None: :func:`default_allowed_hosts` of ``host`` (loopback names only on a
    loopback bind). Other arguments as :func:`create_app`.
    """
    import tempfile

    import uvicorn

    from emodistill._io import sweep_stale_tmp

    # Uploads of servers before issue 10 were named temporary files a kill left behind.
    sweep_stale_tmp(tempfile.gettempdir(), "emodistill-*", older_than=600)
    hosts = allowed_hosts if allowed_hosts is not None else default_allowed_hosts(host)
    app = create_app(
        model_dir,
        max_upload_mb=max_upload_mb,
        max_seconds=max_seconds,
        backend=backend,
        limits=limits,
        allowed_hosts=hosts,
        show_paths=show_paths,
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level)
