"""Load test of ``emodistill serve`` on loopback: N requests, C concurrent, errors and latency.

Starts the real server (``emodistill serve MODEL --host 127.0.0.1 --port PORT``) as a child
process, waits for ``/health``, then posts a small set of clips round-robin from C client
threads (httpx), and prints errors, throughput and p50/p95/max latency.

    .venv/bin/python bench/loadtest.py MODEL_DIR                  # 200 requests, 8 concurrent
    .venv/bin/python bench/loadtest.py --embedded                  # builds the Whisper tiny.en
                                                                   # student (random heads)
"""

from __future__ import annotations

import argparse
import io
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clips(n: int = 8) -> list[bytes]:
    """n wav files of 1-4 s (voiced tones with noise; content does not matter for timing)."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        sr = (16000, 22050, 44100)[i % 3]
        sec = 1.0 + 3.0 * rng.random()
        t = np.arange(int(sr * sec)) / sr
        x = 0.3 * np.sin(2 * np.pi * (140 + 20 * i) * t) * (1 + np.sin(2 * np.pi * 4 * t)) / 2
        buf = io.BytesIO()
        sf.write(buf, (x + 0.01 * rng.standard_normal(t.size)).astype(np.float32), sr, format="WAV")
        out.append(buf.getvalue())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("model", nargs="?", help="model folder")
    ap.add_argument("--embedded", action="store_true", help="build the embedded student")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--segment", action="store_true", help="ask for timelines (segment=true)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="emodistill-load-"))
    model = args.model
    if args.embedded or not model:
        from emodistill.config import StudentConfig
        from emodistill.models.student import build_student
        from emodistill.models.student_folder import save_student

        labels = ["neutral", "happy", "angry", "sad"]
        save_student(build_student(StudentConfig(), 4, 384, 128).eval(), work / "model", labels)
        model = str(work / "model")
    port = free_port()
    exe = Path(sys.executable).with_name("emodistill")
    server = subprocess.Popen(
        [str(exe), "serve", model, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.time() > deadline:
                raise SystemExit(f"server did not start:\n{server.stderr.read()[-2000:]}")
            time.sleep(0.5)
        data = clips()
        params = {"segment": "true"} if args.segment else {}
        client = httpx.Client(timeout=120, limits=httpx.Limits(max_connections=args.concurrency))

        def one(i: int) -> tuple[float, int, str]:
            t = time.perf_counter()
            try:
                r = client.post(
                    f"{base}/predict",
                    files={"file": (f"clip{i % len(data)}.wav", data[i % len(data)], "audio/wav")},
                    params=params,
                )
                ok = r.status_code == 200 and "probabilities" in r.json()
                return time.perf_counter() - t, r.status_code, "" if ok else r.text[:200]
            except httpx.HTTPError as err:
                return time.perf_counter() - t, 0, repr(err)

        one(0)  # warm-up, not counted
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(one, range(args.requests)))
        wall = time.perf_counter() - t0
        lat = sorted(r[0] for r in results)
        errors = [r for r in results if r[1] != 200 or r[2]]
        q = statistics.quantiles(lat, n=100)
        print(f"{args.requests} requests, {args.concurrency} concurrent, loopback, model {model}")
        print(f"errors {len(errors)}; wall {wall:.1f} s; {args.requests / wall:.1f} requests/s")
        print(
            f"latency p50 {1000 * q[49]:.0f} ms, p95 {1000 * q[94]:.0f} ms, "
            f"max {1000 * lat[-1]:.0f} ms"
        )
        for e in errors[:5]:
            print("  error:", e)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
