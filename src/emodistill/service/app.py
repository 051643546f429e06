"""HTTP service: ``POST /predict`` (multipart audio) -> the same JSON as ``emodistill predict``.

Endpoints:

* ``POST /predict`` — multipart field ``file``; query ``segment=true`` (timeline), ``window``,
  ``hop``, ``vad``. Answers ``{"file", "label", "probabilities"}`` (+ ``"segments"`` and
  ``"summary"`` with ``segment=true``). Errors, each ``{"detail": message}``: 413 for an upload
  over ``max_upload_mb``, audio longer than ``max_seconds`` or more decoding work than the budget;
  415 for bytes that are none of the supported formats (sniffed, never from the file name); 422
  for anything else that is not usable audio and for bad parameters (non-finite, under the
  floors, more windows than ``max_windows``); 503 with ``Retry-After`` when ``max_concurrent``
  requests are already admitted or a request passes ``request_timeout``. Optional multipart field
  ``profile``: a speaker profile for a ``student.speaker_norm`` model (``profile_upload``; the
  answer then holds ``"speaker_norm": "profile"`` and ``"profile": {"name", "clips",
  "seconds"}``; a speaker_norm model without one answers ``"speaker_norm": "global"``).
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

import os
from typing import Any

from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.staticfiles import StaticFiles

from emodistill.audio import (
    SUPPORTED_TEXT,
)
from emodistill.inference.model import EmoDistill
from emodistill.service.limits import Admission, ServiceLimits, UploadLimit
from emodistill.service.routes import WEB_DIR, Service, health, index, info, predict_upload

#: Multipart framing around the file (boundaries, part headers) allowed on top of the limit.
MULTIPART_SLACK = 64 * 1024
#: Host names served by default when bound to a loopback address (DNS rebinding defence).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


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

    from emodistill.util.version import __version__

    lim = replace(limits or ServiceLimits(), max_upload_mb=max_upload_mb, max_seconds=max_seconds)
    m = model or EmoDistill.from_pretrained(model_dir, device=device, backend=backend)
    service = Service(m, lim, window, hop, str(m.path or model_dir), show_paths)
    lock, load = service.lock, service.load

    app = FastAPI(
        title="emodistill",
        version=__version__,
        description="Speech emotion recognition from audio alone (EmoDistill student).",
    )
    # Outermost last: the Host check, then admission, then the upload size.
    app.add_middleware(
        UploadLimit,
        limit=service.limit_bytes + MULTIPART_SLACK,
        message=f"upload too large: this server accepts files up to {max_upload_mb:g} MB",
    )
    app.add_middleware(Admission, load=load)
    if allowed_hosts is not None and "*" not in allowed_hosts:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.state.service = service
    app.add_api_route("/health", health, methods=["GET"])
    app.add_api_route("/info", info, methods=["GET"])

    # Bound here only for the defaults of window and hop, which are this app's.
    @app.post("/predict")
    async def predict(
        request: Request,
        file: UploadFile = File(..., description=f"Audio file ({SUPPORTED_TEXT})."),
        segment: bool = Query(False, description="Timeline over windows of the recording."),
        window: float = Query(window, description="Segment window, seconds."),
        hop: float = Query(hop, description="Segment hop, seconds."),
        vad: bool = Query(False, description="Segment on voice activity, not fixed windows."),
        profile: UploadFile | str | None = File(
            None,
            description="Speaker profile (the JSON `emodistill enroll` writes) of a "
            "student.speaker_norm model: the speaker's statistics normalise the audio.",
        ),
    ) -> Any:
        """Emotion of one uploaded recording (same JSON as one entry of ``emodistill predict``)."""
        return await predict_upload(service, request, file, segment, window, hop, vad, profile)

    app.add_api_route("/", index, methods=["GET"], include_in_schema=False)

    from emodistill.service.stream_route import add_stream_route

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

    from emodistill.util.files import sweep_stale_tmp

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
