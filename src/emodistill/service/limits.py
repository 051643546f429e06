"""The HTTP service's bounds: :class:`ServiceLimits` (every number), a first-come-first-served
model lock, admission control (503 before the body is read) and the upload-size limit (413), as
ASGI pieces ``serve`` assembles."""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from emodistill.audio import AudioLimits

#: Decoding budget per second of accepted audio: duration x rate x channels may reach
#: ``max_seconds`` x this (48 kHz x 4 channels, 96 kHz stereo or 192 kHz mono at full length).
SAMPLES_PER_SECOND_BUDGET = 192_000


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


class FifoLock:
    """A lock served first come, first served, waited for through a ticket.

    ``threading.Lock`` wakes an arbitrary waiter, and a waiter that polls (to notice its client
    leaving) can be overtaken again and again: the latency tail grows. A ticket keeps its place.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._queue: deque[threading.Event] = deque()
        self._held = False

    def ticket(self) -> threading.Event:
        """A place in the queue; it is set when the lock is this ticket's."""
        ev = threading.Event()
        with self._mutex:
            if self._held:
                self._queue.append(ev)
            else:
                self._held = True
                ev.set()
        return ev

    def cancel(self, ticket: threading.Event) -> None:
        """Give up a place (or, if the lock was just handed over, pass it on)."""
        with self._mutex:
            if ticket in self._queue:
                self._queue.remove(ticket)
                return
        self.release()

    def release(self) -> None:
        with self._mutex:
            if self._queue:
                self._queue.popleft().set()  # handed over: stays held
            else:
                self._held = False

    def __enter__(self) -> FifoLock:
        """Wait for a ticket without polling (``with lock:``; the WebSocket stream's windows)."""
        self.ticket().wait()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class _TooLarge(Exception):
    """Raised from inside the request body stream when the upload passes the limit."""


def _json_response(status: int, detail: str, extra: list[tuple[bytes, bytes]] = ()) -> tuple:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *extra,
    ]
    return (
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    )


class Load:
    """Counters of the service's work, read by ``/health`` and the admission control."""

    def __init__(self, max_concurrent: int) -> None:
        self.max_concurrent = max_concurrent
        self.admitted = 0  # /predict requests inside the app (waiting or running)
        self.running = 0  # holding the model
        self.rejected = 0  # 503 at the door
        self.timed_out = 0  # 503 after the time limit
        self.abandoned = 0  # client went away mid-request
        self.mean_seconds = 0.5  # moving average of an admitted request's duration

    def retry_after(self) -> int:
        """Seconds until a slot is likely free (the moving average times the queue), 1..60."""
        return int(min(60, max(1, math.ceil(self.mean_seconds * max(1, self.admitted)))))

    def snapshot(self) -> dict[str, int]:
        return {
            "admitted": self.admitted,
            "running": self.running,
            "max_concurrent": self.max_concurrent,
            "rejected": self.rejected,
            "timed_out": self.timed_out,
            "abandoned": self.abandoned,
        }


class Admission:
    """ASGI middleware: at most ``load.max_concurrent`` ``POST /predict`` at once, else 503.

    Refused before the body is read, with ``Retry-After``; counted on the event loop, so no lock.
    """

    def __init__(self, app: Any, load: Load) -> None:
        self.app = app
        self.load = load

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        load = self.load
        if load.admitted >= load.max_concurrent:
            load.rejected += 1
            retry = str(load.retry_after()).encode()
            for message in _json_response(
                503,
                f"server busy: {load.admitted} requests in progress (limit "
                f"{load.max_concurrent}); retry later",
                [(b"retry-after", retry)],
            ):
                await send(message)
            return
        load.admitted += 1
        started = time.monotonic()
        try:
            await self.app(scope, receive, send)
        finally:
            load.admitted -= 1
            load.mean_seconds = 0.8 * load.mean_seconds + 0.2 * (time.monotonic() - started)


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
        for message in _json_response(413, self.message):
            await send(message)
