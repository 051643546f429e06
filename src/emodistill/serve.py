"""HTTP service: ``POST /predict`` (multipart audio) -> the same JSON as ``emodistill predict``.

Endpoints:

* ``POST /predict`` — multipart field ``file``; query ``segment=true`` (timeline), ``window``,
  ``hop``, ``vad``. Answers ``{"file", "label", "probabilities"}`` (+ ``"segments"`` and
  ``"summary"`` with ``segment=true``). Errors, each ``{"detail": message}``: 413 for an upload
  over ``max_upload_mb`` or audio longer than ``max_seconds``; 422 for anything that is not
  usable audio (and for bad parameters).
* ``WS /stream`` — live audio chunks in, one JSON event per window out (``stream_server``).
* ``GET /health`` — ``{"status": "ok", "model", "labels"}``.
* ``GET /info`` — model facts and the server's limits, for the web page.
* ``GET /`` — the web page (``emodistill/web/index.html``); ``/static/*`` its files.
* ``GET /openapi.json``, ``/docs`` — the schema, from FastAPI.

Concurrency: requests are parsed concurrently; the model runs in FastAPI's threadpool behind a
lock (one forward at a time, each using all intra-op threads), so concurrent requests queue
instead of oversubscribing the CPU. An upload is streamed to a temporary file, never held in
memory, and refused (413) as soon as it passes the size limit.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, HTTPException, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from emodistill.audio import AudioError
from emodistill.inference import EmoDistill, check_audio_file, safe_text

WEB_DIR = Path(__file__).parent / "web"
#: Multipart framing around the file (boundaries, part headers) allowed on top of the limit.
MULTIPART_SLACK = 64 * 1024

_PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>emodistill</title></head>
<body><h1>emodistill</h1>
<p>Speech emotion recognition service. POST an audio file as multipart field <code>file</code>
to <code>/predict</code>; see <a href="docs">/docs</a> and <a href="info">/info</a>.</p>
</body></html>
"""


class _TooLarge(Exception):
    """Raised from inside the request body stream when the upload passes the limit."""


class UploadLimit:
    """ASGI middleware: 413 for ``POST /predict`` bodies over ``limit`` bytes.

    Checks ``Content-Length`` first (no body read at all), and counts streamed bytes for
    chunked uploads, aborting as soon as the count passes the limit.
    """

    def __init__(self, app: Any, limit: int, message: str) -> None:
        self.app = app
        self.limit = limit
        self.message = message

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._reject(send)
            return
        seen = 0
        too_large = False
        rejected = False

        async def counting_receive() -> dict:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    too_large = True
                    raise _TooLarge
            return message

        async def guarded_send(message: dict) -> None:
            nonlocal rejected
            # Whatever the app answers once the body overflowed (FastAPI turns the abort into
            # a 400 "error parsing the body"), the client gets the 413.
            if too_large:
                if not rejected:
                    rejected = True
                    await self._reject(send)
                return
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _TooLarge:
            pass
        if too_large and not rejected:
            await self._reject(send)

    async def _reject(self, send: Any) -> None:
        body = json.dumps({"detail": self.message}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def create_app(
    model_dir: str | os.PathLike,
    max_upload_mb: float = 20,
    max_seconds: float = 600,
    backend: str = "torch",
    device: str = "cpu",
    window: float = 3.0,
    hop: float = 1.5,
    model: EmoDistill | None = None,
) -> FastAPI:
    """The FastAPI app serving one model folder.

    Args:
        model_dir: model folder (or hub id).
        max_upload_mb: largest accepted upload, MiB (413 above).
        max_seconds: longest accepted audio, seconds (413 above).
        backend, device: as :meth:`EmoDistill.from_pretrained`.
        window, hop: default segment settings for ``segment=true``.
        model: an already loaded model (skips loading ``model_dir``).
    """
    from emodistill import __version__
    from emodistill.segment import predict_timeline

    m = model or EmoDistill.from_pretrained(model_dir, device=device, backend=backend)
    lock = threading.Lock()
    limit_bytes = int(max_upload_mb * 1024 * 1024)
    model_name = str(m.path or model_dir)

    app = FastAPI(
        title="emodistill",
        version=__version__,
        description="Speech emotion recognition from audio alone (EmoDistill student).",
    )
    app.add_middleware(
        UploadLimit,
        limit=limit_bytes + MULTIPART_SLACK,
        message=f"upload too large: this server accepts files up to {max_upload_mb:g} MB",
    )

    def run_locked(fn, *args, **kwargs):
        with lock:
            return fn(*args, **kwargs)

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Liveness and the loaded model."""
        return {"status": "ok", "model": model_name, "labels": m.labels}

    @app.get("/info")
    def info() -> dict[str, Any]:
        """Model facts and server limits (for the web page)."""
        facts = m.info()
        return {
            "model": model_name,
            "model_dir": model_name,
            "labels": m.labels,
            "backbone": facts.get("encoder"),
            "encoder": facts.get("encoder"),
            "encoder_source": facts.get("encoder_source"),
            "sample_rate": m.sample_rate,
            "backend": m.backend,
            "max_upload_mb": max_upload_mb,
            "max_seconds": max_seconds,
            "max_window_seconds": m.max_seconds,
            "window": window,
            "hop": hop,
        }

    @app.post("/predict")
    async def predict(
        file: UploadFile = File(..., description="Audio file (wav, flac, ogg, mp3, ...)."),
        segment: bool = Query(False, description="Timeline over windows of the recording."),
        window: float = Query(window, gt=0, description="Segment window, seconds."),
        hop: float = Query(hop, gt=0, description="Segment hop, seconds."),
        vad: bool = Query(False, description="Segment on voice activity, not fixed windows."),
    ) -> dict[str, Any]:
        """Emotion of one uploaded recording (same JSON as one entry of ``emodistill predict``)."""
        name = safe_text(file.filename or "upload")
        suffix = Path(file.filename or "").suffix[:16]
        fd, tmp_name = tempfile.mkstemp(prefix="emodistill-", suffix=suffix)
        tmp = Path(tmp_name)

        def fail(status: int, err: Exception | str) -> HTTPException:
            return HTTPException(status, safe_text(str(err)).replace(str(tmp), name))

        try:
            size = 0
            with os.fdopen(fd, "wb") as out:
                while chunk := await file.read(1 << 20):
                    size += len(chunk)
                    if size > limit_bytes:
                        raise fail(
                            413,
                            f"{name}: upload too large: this server accepts files up to "
                            f"{max_upload_mb:g} MB",
                        )
                    out.write(chunk)
            try:
                info = check_audio_file(tmp)
            except AudioError as err:
                raise fail(422, err) from err
            duration = info.frames / info.samplerate if info.samplerate else 0.0
            if duration > max_seconds:
                raise fail(
                    413,
                    f"{name}: audio too long ({duration:.1f} s); this server accepts at most "
                    f"{max_seconds:g} s",
                )
            try:
                if segment:
                    timeline = await run_in_threadpool(
                        run_locked, predict_timeline, m, tmp, window, hop, vad
                    )
                    summary = timeline["summary"]
                    return {
                        "file": name,
                        "label": summary["label"],
                        "probabilities": summary["probabilities"],
                        "segments": timeline["segments"],
                        "summary": summary,
                    }
                pred = await run_in_threadpool(run_locked, m.predict, tmp)
            except (AudioError, ValueError) as err:
                raise fail(422, err) from err
            result = pred.to_dict()
            result["file"] = name
            return result
        finally:
            await file.close()
            tmp.unlink(missing_ok=True)

    @app.get("/", include_in_schema=False)
    def index():
        page = WEB_DIR / "index.html"
        if page.is_file():
            return FileResponse(page, media_type="text/html")
        return HTMLResponse(_PLACEHOLDER)

    from emodistill.stream_server import add_stream_route

    add_stream_route(app, m, lock, window=window, hop=hop)  # WebSocket /stream (live audio)
    app.mount("/static", StaticFiles(directory=WEB_DIR, check_dir=False), name="static")
    app.state.model = m
    return app


def serve(
    model_dir: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_upload_mb: float = 20,
    max_seconds: float = 600,
    backend: str = "torch",
    log_level: str = "info",
) -> None:
    """Run the service with uvicorn until interrupted."""
    import uvicorn

    app = create_app(
        model_dir, max_upload_mb=max_upload_mb, max_seconds=max_seconds, backend=backend
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level)
