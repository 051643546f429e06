"""WebSocket ``/stream`` of the service: audio chunks in, one JSON event per window out.

Protocol (one session per connection; query ``window`` and ``hop`` in seconds, default the
server's ``--segment`` settings; ``speaker_norm=1`` on a ``student.speaker_norm`` model: running
speaker statistics of the session's windows, docs/speaker.md):

* binary message: audio bytes, raw PCM s16le 16 kHz mono, or a WAV stream (the first message
  starts with its RIFF header; see ``stream.PcmDecoder``). Each message must hold whole sample
  frames and at most ``max_chunk_bytes`` bytes;
* text message ``{"type": "end"}`` (or ``end``): the stream is over; the server sends the
  end-aligned last window, then ``{"type": "end", "windows": n, "seconds": s}``, and closes;
* the server sends ``{"start", "end", "label", "probabilities"}`` as soon as each window is
  complete, and ``{"error": message}`` for a malformed chunk (which is dropped; the session
  goes on). Bad ``window``/``hop`` (non-finite, under the server's floors) or ``speaker_norm``
  asked of a model trained without it: one error event, then close code 1008. Past the server's
  session limit: one error event, close code 1013;
* with ``speaker_norm=1`` every window event and the end message also carry
  ``"speaker_norm": {"windows": n, "seconds": s}``, what the running statistics hold (O(H)
  sums per session, bounded however long the stream).

A client that vanishes ends only its own session. The model runs in the threadpool behind the
service's one model lock, shared with ``POST /predict``. A session holds at most one window plus
one hop of audio and one chunk; the next chunk is not read until the current one is answered,
so a fast sender is slowed by TCP back-pressure instead of growing a queue.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool

from emodistill.audio import AudioError
from emodistill.inference.model import EmoDistill
from emodistill.inference.prediction import safe_text
from emodistill.inference.segment import check_segment_params
from emodistill.inference.stream import StreamSession

#: Largest accepted binary message (1 MiB: about 33 s of 16 kHz s16le).
MAX_CHUNK_BYTES = 1 << 20


def add_stream_route(
    app: FastAPI,
    model: EmoDistill,
    lock: Any,
    window: float = 3.0,
    hop: float = 1.5,
    max_chunk_bytes: int = MAX_CHUNK_BYTES,
    min_window: float = 0.0,
    min_hop: float = 0.0,
    max_sessions: int | None = None,
) -> None:
    """Register ``/stream`` on ``app`` (see the module docstring for the protocol).

    ``min_window``/``min_hop``: floors of the query parameters (as ``POST /predict``'s), so a
    tiny hop cannot ask for a forward pass per few samples. ``max_sessions``: sessions open at
    once; one more gets an error event and close code 1013 (try again later).
    """
    defaults = (window, hop)
    open_sessions = [0]  # counted on the event loop: no lock

    @app.websocket("/stream")
    async def stream(ws: WebSocket) -> None:
        await ws.accept()
        if max_sessions is not None and open_sessions[0] >= max_sessions:
            await ws.send_json(
                {
                    "error": f"server busy: {open_sessions[0]} streams open (limit "
                    f"{max_sessions}); retry later"
                }
            )
            await ws.close(code=1013)
            return
        try:
            window = float(ws.query_params.get("window", defaults[0]))
            hop = float(ws.query_params.get("hop", defaults[1]))
            check_segment_params(window, hop)
            if window < min_window or hop < min_hop:
                raise ValueError(
                    f"window must be >= {min_window:g} s and hop >= {min_hop:g} s "
                    f"(got {window:g}, {hop:g})"
                )
            speaker_norm = query_flag(ws.query_params.get("speaker_norm"), "speaker_norm")
            session = StreamSession(
                model, window, hop, lock=lock, name="stream", speaker_norm=speaker_norm
            )
        except ValueError as err:
            await ws.send_json({"error": safe_text(str(err))})
            await ws.close(code=1008)
            return
        chunks = 0
        open_sessions[0] += 1
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data, text = message.get("bytes"), message.get("text")
                if data is not None:
                    chunks += 1
                    if len(data) > max_chunk_bytes:
                        await ws.send_json(
                            {
                                "error": f"chunk {chunks}: {len(data)} bytes is over this "
                                f"server's limit of {max_chunk_bytes} bytes per message"
                            }
                        )
                        continue
                    try:
                        events = await run_in_threadpool(session.feed, data, True)
                    except AudioError as err:
                        await ws.send_json(
                            {"error": f"chunk {chunks}: " + safe_text(str(err)).split(": ", 1)[-1]}
                        )
                        continue
                    for event in events:
                        await ws.send_json(event)
                elif text is not None:
                    if _is_end(text):
                        try:
                            events = await run_in_threadpool(session.finish)
                        except AudioError as err:
                            await ws.send_json({"error": safe_text(str(err))})
                            events = []
                        for event in events:
                            await ws.send_json(event)
                        end = {
                            "type": "end",
                            "windows": session.windows,
                            "seconds": round(session.seconds, 3),
                        }
                        if speaker_norm:
                            end["speaker_norm"] = session.speaker_state()
                        await ws.send_json(end)
                        await ws.close()
                        return
                    await ws.send_json(
                        {"error": f"unknown text message {text[:80]!r}; send audio as binary"}
                    )
        except (WebSocketDisconnect, RuntimeError):
            # The client vanished (RuntimeError: a send after the socket closed); only this
            # session ends.
            return
        finally:
            open_sessions[0] -= 1


def _is_end(text: str) -> bool:
    if text.strip() == "end":
        return True
    try:
        body: Any = json.loads(text)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("type") == "end"


def query_flag(value: str | None, name: str) -> bool:
    """A yes/no query parameter: absent, ``0``, ``false``, ``no`` -> False; ``1``, ``true``,
    ``yes`` -> True; anything else a ValueError naming it.

    >>> query_flag(None, "x"), query_flag("1", "x"), query_flag("False", "x")
    (False, True, False)
    """
    if value is None:
        return False
    text = value.strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name} must be 1 or 0 (true or false), got {value[:40]!r}")
