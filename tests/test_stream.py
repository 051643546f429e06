"""Live streaming (session, stdin CLI, WebSocket /stream) and the int8 ONNX backend.

The stream must reproduce ``predict --segment`` on the same 16 kHz audio, whatever the chunking.
"""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse
from test_inference import LABELS, SR, build_tiny_model, tone
from typer.testing import CliRunner

from emodistill.audio import AudioError
from emodistill.cli.app import app
from emodistill.inference.model import EmoDistill, ModelLoadError
from emodistill.inference.segment import predict_timeline
from emodistill.inference.stream import PcmDecoder, StreamError, StreamSession
from emodistill.service.app import create_app

WINDOW, HOP = 1.0, 0.5


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("stream") / "model", "whisper")


@pytest.fixture(scope="module")
def model(model_dir):
    return EmoDistill.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A 4.3 s 16 kHz PCM_16 file whose pitch changes (so windows differ), and its int16 PCM."""
    x = np.concatenate([tone(1.6, freq=180), tone(1.4, freq=420, amp=0.6), tone(1.3, freq=260)])
    path = tmp_path_factory.mktemp("rec") / "rec.wav"
    sf.write(path, x, SR, subtype="PCM_16")
    pcm, _ = sf.read(path, dtype="int16")
    return path, pcm.astype("<i2").tobytes()


@pytest.fixture(scope="module")
def expected(model, recording):
    return predict_timeline(model, recording[0], WINDOW, HOP)["segments"]


def assert_same(events, segments):
    assert [(e["start"], e["end"]) for e in events] == [(s["start"], s["end"]) for s in segments]
    worst = max(
        abs(e["probabilities"][k] - s["probabilities"][k])
        for e, s in zip(events, segments, strict=True)
        for k in LABELS
    )
    assert worst < 1e-4
    assert [e["label"] for e in events] == [s["label"] for s in segments]
    assert all(list(e) == ["start", "end", "label", "probabilities"] for e in events)


def test_session_equals_segment_for_any_chunking(model, recording, expected):
    assert len(expected) >= 6  # end-aligned tail included
    pcm = recording[1]
    rng = np.random.default_rng(0)
    for sizes in ([len(pcm)], [1, 3, 7, 3201], list(rng.integers(1, 9000, 40))):
        session = StreamSession(model, WINDOW, HOP)
        events, pos, k = [], 0, 0
        while pos < len(pcm):
            n = int(sizes[k % len(sizes)])
            events += session.feed(pcm[pos : pos + n])
            pos, k = pos + n, k + 1
        events += session.finish()
        assert_same(events, expected)
        # Bounded: one window plus one hop at most, however big the chunks were.
        assert session.windower.buf.size <= session.windower.win + session.windower.step


def test_events_come_as_soon_as_a_window_completes(model):
    session = StreamSession(model, WINDOW, HOP)
    x = tone(2.0)
    assert session.push(x[: SR - 1]) == []  # one sample short of the first window
    first = session.push(x[SR - 1 : SR])
    assert [(e["start"], e["end"]) for e in first] == [(0.0, 1.0)]
    assert [(e["start"], e["end"]) for e in session.push(x[SR : SR + SR // 2])] == [(0.5, 1.5)]


def test_decoder_wav_header_resampling_and_errors(model, recording):
    path, _ = recording
    x, _ = sf.read(path, dtype="float32")
    stereo8k = io.BytesIO()
    sf.write(stereo8k, np.stack([x[::2], x[::2]], 1), 8000, format="WAV", subtype="PCM_16")
    data = stereo8k.getvalue()
    dec = PcmDecoder(SR)
    out = np.concatenate([dec.feed(data[i : i + 333]) for i in range(0, len(data), 333)])
    out = np.concatenate([out, dec.flush()])
    assert dec.channels == 2 and dec.rate == 8000
    assert abs(out.size - 2 * (x.size // 2)) <= 2  # resampled to 16 kHz
    with pytest.raises(StreamError, match="whole number of 2-byte"):
        PcmDecoder(SR).feed(b"\x00\x01\x02", strict=True)
    with pytest.raises(StreamError, match="RIFF but not WAVE"):
        PcmDecoder(SR).feed(b"RIFF\x00\x00\x00\x00AVI LIST")
    fmt = struct.pack("<4sI4s4sIHHIIHH", b"RIFF", 0, b"WAVE", b"fmt ", 16, 1, 1, SR, SR, 1, 8)
    with pytest.raises(StreamError, match="unsupported WAV format"):
        PcmDecoder(SR).feed(fmt + b"data\x00\x00\x00\x00")
    session = StreamSession(model)
    with pytest.raises(AudioError, match="too short"):
        session.feed(b"\x00\x00" * 100)
        session.finish()


def test_stdin_cli_prints_one_json_event_per_line(model_dir, recording, expected):
    path, pcm = recording
    for data in (path.read_bytes(), pcm):  # a WAV, and raw s16le
        args = ["predict", str(model_dir), "-", "--stream", "--format", "json"]
        result = CliRunner().invoke(
            app, [*args, "--window", str(WINDOW), "--hop", str(HOP)], input=data
        )
        assert result.exit_code == 0, result.output
        assert_same([json.loads(line) for line in result.stdout.splitlines()], expected)
    bad = CliRunner().invoke(app, ["predict", str(model_dir), "-", "--stream"], input=b"")
    assert bad.exit_code == 1 and "audio is empty" in bad.output
    both = CliRunner().invoke(app, ["predict", str(model_dir), "x.wav", "--stream"])
    assert both.exit_code == 2


def test_websocket_stream_errors_and_vanished_client(model_dir, recording, expected):
    pcm = recording[1]
    url = f"/stream?window={WINDOW}&hop={HOP}"
    with TestClient(create_app(model_dir)) as client:
        with client.websocket_connect(url) as gone, client.websocket_connect(url) as ws:
            gone.send_bytes(pcm[:40000])  # this client then vanishes mid-stream
            gone.close()
            events, errors = [], []

            def read_until(n_events):
                while len(events) < n_events:
                    msg = ws.receive_json()
                    (errors if "error" in msg else events).append(msg)

            ws.send_bytes(b"\x01\x02\x03")  # odd byte count: an error, the session goes on
            assert "error" in ws.receive_json()
            ws.send_text("hello")
            assert "unknown text message" in ws.receive_json()["error"]
            ws.send_bytes(b"\x00" * (2 << 20))  # over the per-message limit
            assert "limit" in ws.receive_json()["error"]
            step = 6400  # 0.2 s chunks
            for a in range(0, len(pcm), step):
                ws.send_bytes(pcm[a : a + step])
            ws.send_text(json.dumps({"type": "end"}))
            while True:
                msg = ws.receive_json()
                if msg.get("type") == "end":
                    break
                events.append(msg)
            assert msg["windows"] == len(expected) and msg["seconds"] == pytest.approx(4.3)
            assert_same(events, expected)
        with client.websocket_connect("/stream?window=0") as ws:
            assert "positive" in ws.receive_json()["error"]


def test_int8_export_and_backend(model_dir, tmp_path):
    out = model_dir / "model.int8.onnx"
    result = CliRunner().invoke(
        app, ["export-onnx", str(model_dir), str(out), "--quantize", "int8"]
    )
    assert result.exit_code == 0, result.output
    assert "label agreement" in result.output and out.is_file()
    import onnx

    from emodistill.inference.onnx import in_transformer_layer

    graph = onnx.load(str(out)).graph
    quantised = {n.name for n in graph.node if "Integer" in n.op_type or "Quant" in n.op_type}
    float_mm = {n.name for n in graph.node if n.op_type in ("MatMul", "Gemm")}
    weights = {i.name for i in graph.initializer}
    float_weight_mm = {
        n.name for n in graph.node if n.op_type in ("MatMul", "Gemm") and n.input[1] in weights
    }
    assert any(in_transformer_layer(n) for n in quantised)  # the transformer layers are int8
    assert not any(in_transformer_layer(n) for n in float_weight_mm)  # every weight of them
    assert "/student/encoder/frontend/MatMul" in float_mm  # the log-mel DFT stays float
    heads = [
        n for n in float_mm | quantised if n.startswith(("/student/classifier", "/student/proj"))
    ]
    assert heads and all(n in float_mm for n in heads)  # the heads stay float
    int8 = EmoDistill.from_pretrained(model_dir, backend="onnx-int8")
    assert int8.backend == "onnx-int8" and int8.labels == LABELS
    ref = EmoDistill.from_pretrained(model_dir)
    clips = [tone(1.0 + 0.3 * k, freq=150 + 40 * k) for k in range(6)]
    p_int8 = int8.predict_proba(clips)
    p_ref = ref.predict_proba(clips)
    assert np.abs(p_int8 - p_ref).max() < 0.1  # quantised, not equal, but close
    path = tmp_path / "c.wav"
    sf.write(path, clips[0], SR)
    cli = CliRunner().invoke(
        app, ["predict", str(model_dir), str(path), "--format", "json", "--backend", "onnx-int8"]
    )
    assert cli.exit_code == 0, cli.output
    got = json.loads(cli.stdout)[0]["probabilities"]
    assert max(abs(got[k] - float(p_int8[0][i])) for i, k in enumerate(LABELS)) < 1e-5
    with TestClient(create_app(model_dir, backend="onnx-int8")) as client:
        assert client.get("/info").json()["backend"] == "onnx-int8"
        http = client.post("/predict", files={"file": ("c.wav", path.read_bytes())}).json()
    assert max(abs(http["probabilities"][k] - got[k]) for k in LABELS) < 1e-5
    with pytest.raises(ModelLoadError, match="--quantize int8"):
        EmoDistill.from_pretrained(build_tiny_model(tmp_path / "m"), backend="onnx-int8")
    with pytest.raises(ValueError, match="backend must be one of"):
        EmoDistill.from_pretrained(model_dir, backend="int4")


def test_websocket_stream_keeps_the_service_limits(model_dir):
    """The HTTP hardening applies to /stream: Host check, window/hop floors, a session cap."""
    from emodistill.service.app import ServiceLimits

    limits = ServiceLimits(max_concurrent=1, min_window=0.5, min_hop=0.25)
    with TestClient(create_app(model_dir, limits=limits)) as client:
        with client.websocket_connect("/stream?window=0.3&hop=0.3") as ws:
            assert "window must be >= 0.5 s" in ws.receive_json()["error"]
        with client.websocket_connect("/stream?window=nan") as ws:
            assert "finite" in ws.receive_json()["error"]
        with client.websocket_connect("/stream") as first:
            with client.websocket_connect("/stream") as second:  # over max_concurrent=1
                assert "server busy" in second.receive_json()["error"]
            first.send_bytes(b"\x00\x00" * SR)  # the first session still works
            first.send_text("end")
            assert first.receive_json()["label"] in LABELS
        with client.websocket_connect("/stream") as again:  # its slot was given back
            again.send_text("end")
            assert "audio is empty" in again.receive_json()["error"]  # not "server busy"
    with TestClient(create_app(model_dir, allowed_hosts=["127.0.0.1"])) as client:
        with pytest.raises(WebSocketDenialResponse) as denied:  # refused before the handshake
            with client.websocket_connect("/stream", headers={"host": "evil.example"}):
                pass
        assert denied.value.status_code == 400
        with client.websocket_connect("/stream", headers={"host": "127.0.0.1"}) as ws:
            ws.send_text("end")
            assert "audio is empty" in ws.receive_json()["error"]
