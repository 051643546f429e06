"""Streaming through the service's WebSocket ``/stream``: latency and a long stream's memory.

Starts ``emodistill serve`` on 127.0.0.1 in a child process with the embedded-size student
(Whisper tiny.en encoder, random heads; weights do not matter for cost) and streams synthetic
speech-like 16 kHz s16le PCM to it with ``websocket-client``:

* ``--realtime S``: S seconds paced like a live microphone (100 ms chunks sent at wall-clock
  rate); latency = time from sending the chunk that completes a window to receiving its
  event, p50/p95/max. Target: p95 <= one hop + 100 ms.
* ``--minutes M``: M minutes sent as fast as the server answers (0.5 s chunks); events
  counted, the server's RSS sampled along the way and its peak (VmHWM) printed: memory must not
  grow with the stream's length.

    .venv/bin/python bench/stream.py --realtime 30 --minutes 60 [--backend onnx-int8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

SR = 16000


def rss_mib(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def speechlike_pcm(start: int, n: int) -> bytes:
    """n int16 samples from absolute sample ``start`` of a gliding, pulsing harmonic tone."""
    t = (start + np.arange(n)) / SR
    f0 = 150 + 50 * np.sin(t / 7)
    x = 0.2 * np.sin(2 * np.pi * f0 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * t / 5) ** 2)
    x += 0.01 * np.random.default_rng(start).standard_normal(n)
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def start_server(model: Path, backend: str, threads: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("emodistill")
    cmd = [str(exe), "serve", str(model), "--port", str(port), "--backend", backend]
    env = {**os.environ, "EMODISTILL_NUM_THREADS": str(threads)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://{base}/health", timeout=1).read()
            return proc, base
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode()[-2000:]) from None
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not start")


def run_stream(base: str, seconds: float, chunk_s: float, realtime: bool, pid: int) -> dict:
    import websocket  # websocket-client

    ws = websocket.create_connection(f"ws://{base}/stream")
    chunk = int(chunk_s * SR)
    n_chunks = int(np.ceil(seconds * SR / chunk))
    sent_at = [0.0] * n_chunks
    latencies: list[float] = []
    events = errors = 0
    done = threading.Event()
    final: dict = {}

    def reader() -> None:
        nonlocal events, errors
        while True:
            msg = json.loads(ws.recv())
            now = time.perf_counter()
            if msg.get("type") == "end":
                final.update(msg)
                done.set()
                return
            if "error" in msg:
                errors += 1
                continue
            events += 1
            k = min(n_chunks - 1, int(np.ceil(round(msg["end"] * SR) / chunk)) - 1)
            latencies.append(now - sent_at[k])

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    samples_rss = []
    t0 = time.perf_counter()
    for k in range(n_chunks):
        if realtime:
            delay = t0 + k * chunk_s - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        n = min(chunk, int(seconds * SR) - k * chunk)
        sent_at[k] = time.perf_counter()
        ws.send_binary(speechlike_pcm(k * chunk, n))
        if k % max(1, n_chunks // 10) == 0:
            samples_rss.append(round(rss_mib(pid)))
    ws.send(json.dumps({"type": "end"}))
    done.wait(600)
    wall = time.perf_counter() - t0
    ws.close()
    lat = np.array(latencies[:-1] if realtime else latencies)  # the last: end-aligned tail
    return {
        "seconds": seconds,
        "events": events,
        "errors": errors,
        "final": final,
        "wall_s": wall,
        "rss_samples_mib": samples_rss,
        "p50_ms": 1000 * float(np.percentile(lat, 50)) if lat.size else None,
        "p95_ms": 1000 * float(np.percentile(lat, 95)) if lat.size else None,
        "max_ms": 1000 * float(lat.max()) if lat.size else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--realtime", type=float, default=30.0, help="seconds paced in real time")
    ap.add_argument("--minutes", type=float, default=60.0, help="minutes as fast as possible")
    ap.add_argument("--backend", default="torch", help="torch, onnx or onnx-int8")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from inference import build_student_folder

    from emodistill.inference.onnx import export_onnx
    from emodistill.models.folder import ONNX_FILES

    work = Path(tempfile.mkdtemp(prefix="emodistill-stream-"))
    proc = None
    try:
        build_student_folder(work / "model")
        if args.backend in ONNX_FILES:
            quantize = "int8" if args.backend == "onnx-int8" else None
            export_onnx(
                work / "model", work / "model" / ONNX_FILES[args.backend], quantize=quantize
            )
        proc, base = start_server(work / "model", args.backend, args.threads)
        idle = rss_mib(proc.pid)
        print(f"server: emodistill serve (backend {args.backend}, {args.threads} threads)")
        print(f"server RSS after start: {idle:.0f} MiB")
        if args.realtime:
            r = run_stream(base, args.realtime, 0.1, True, proc.pid)
            print(
                f"real time: {r['seconds']:g} s in 100 ms chunks, {r['events']} events, "
                f"{r['errors']} errors; latency chunk in -> event out p50 {r['p50_ms']:.0f} ms, "
                f"p95 {r['p95_ms']:.0f} ms, max {r['max_ms']:.0f} ms (target p95 <= 1600 ms)"
            )
        if args.minutes:
            r = run_stream(base, 60 * args.minutes, 0.5, False, proc.pid)
            print(
                f"long stream: {args.minutes:g} min in 0.5 s chunks as fast as possible: "
                f"{r['events']} events, {r['errors']} errors, end {r['final']}, "
                f"wall {r['wall_s']:.0f} s ({60 * args.minutes / r['wall_s']:.0f}x real time)"
            )
            print(f"server RSS along the stream (MiB): {r['rss_samples_mib']}")
        print(f"server peak RSS (VmHWM): {rss_mib(proc.pid, 'VmHWM'):.0f} MiB")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
