"""Speaker normalisation in the service (#28): ``POST /predict`` with a ``profile`` field,
``/info``, and the ``/stream?speaker_norm=1`` session's running statistics (docs/speaker.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from test_inference import LABELS, SR, build_tiny_model, tone
from test_serve import wav_bytes

from emodistill.inference.batching import pad_batch
from emodistill.inference.model import EmoDistill
from emodistill.inference.runner import TorchRunner
from emodistill.inference.speaker import SpeakerNormError
from emodistill.inference.stream import StreamSession
from emodistill.models.speaker_stats import (
    MAX_PROFILE_BYTES,
    SpeakerStats,
    global_stats,
    normaliser,
)
from emodistill.models.student_folder import load_student, save_student
from emodistill.service.app import create_app

WINDOW, HOP = 1.0, 0.5


def _clips(n: int, first: float = 0.8, f0: float = 150.0) -> list[np.ndarray]:
    return [tone(first + 0.3 * k, freq=f0 + 60 * k) for k in range(n)]


def _speaker_model(folder, seed: int = 0):
    """A tiny Whisper speaker_norm student with non-trivial global statistics."""
    folder = build_tiny_model(folder, "whisper", seed=seed, trainable_layers=0, speaker_norm=True)
    student, _ = load_student(folder)
    means = TorchRunner(student).clip_means(*pad_batch(_clips(6)))
    student.set_global_stats(global_stats(means, shrink=2.0))
    save_student(student, folder, LABELS)
    return folder


@pytest.fixture(scope="module")
def speaker_dir(tmp_path_factory):
    return _speaker_model(tmp_path_factory.mktemp("spk") / "model")


@pytest.fixture(scope="module")
def model(speaker_dir):
    return EmoDistill.from_pretrained(speaker_dir)


@pytest.fixture(scope="module")
def profile(model, tmp_path_factory):
    """(profile, its JSON bytes) of four tones at a higher pitch than the global statistics."""
    prof = model.enroll(_clips(4, first=1.1, f0=330.0), sampling_rate=SR)
    return prof, json.dumps(prof.to_dict()).encode()


@pytest.fixture(scope="module")
def client(speaker_dir, model):
    with TestClient(create_app(speaker_dir, model=model)) as c:
        yield c


def post(client, audio: bytes, profile: bytes | None = None, name="p.json", **params):
    files = {"file": ("clip.wav", audio, "audio/wav")}
    if profile is not None:
        files["profile"] = (name, profile, "application/json")
    return client.post("/predict", files=files, params=params)


# --------------------------------------------------------------------------- POST /predict


def test_info_says_whether_speaker_norm_is_supported(client, model_dir_plain):
    assert client.get("/info").json()["speaker_norm"] is True
    with TestClient(create_app(model_dir_plain)) as plain:
        assert plain.get("/info").json()["speaker_norm"] is False


def test_post_with_a_profile_equals_the_python_api(client, model, profile, tmp_path):
    prof, data = profile
    path = tmp_path / "clip.wav"
    path.write_bytes(wav_bytes(tone(1.7, freq=260)))
    r = post(client, path.read_bytes(), data, name="alice.json")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["speaker_norm"] == "profile"
    assert body["profile"] == {"name": "alice.json", "clips": 4, "seconds": prof.stats.seconds}
    want = model.predict(path, profile=prof)
    diff = max(abs(body["probabilities"][k] - want.probabilities[k]) for k in LABELS)
    print(f"max |POST profile - predict(profile=)| = {diff:.2e}")
    assert diff < 1e-5 and body["label"] == want.label
    # without a profile: the global statistics, said so, and different probabilities
    plain = post(client, path.read_bytes()).json()
    assert plain["speaker_norm"] == "global" and "profile" not in plain
    glob = model.predict(path)
    assert max(abs(plain["probabilities"][k] - glob.probabilities[k]) for k in LABELS) < 1e-5
    assert max(abs(plain["probabilities"][k] - body["probabilities"][k]) for k in LABELS) > 1e-4
    # the timeline too: each window normalised with the profile
    seg = post(client, path.read_bytes(), data, segment="true", window=WINDOW, hop=HOP).json()
    assert seg["speaker_norm"] == "profile" and seg["profile"]["clips"] == 4
    from emodistill.inference.segment import predict_timeline

    want_seg = predict_timeline(model, path, WINDOW, HOP, speaker=normaliser(prof.stats,
                                model.runner.global_stats()))["segments"]  # fmt: skip
    assert len(seg["segments"]) == len(want_seg) > 1
    worst = max(
        abs(a["probabilities"][k] - b["probabilities"][k])
        for a, b in zip(seg["segments"], want_seg, strict=True)
        for k in LABELS
    )
    assert worst < 1e-5


@pytest.fixture(scope="module")
def model_dir_plain(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("plain") / "model", "whisper")


@pytest.fixture(scope="module")
def foreign_profile(tmp_path_factory):
    """A profile of another speaker_norm model (same shape, other weights)."""
    other = EmoDistill.from_pretrained(_speaker_model(tmp_path_factory.mktemp("o") / "m", seed=1))
    return json.dumps(other.enroll(_clips(4), sampling_rate=SR).to_dict()).encode()


def _bad_cases(profile, foreign):
    good = json.loads(profile[1])
    return [
        (b"not json {", 422, "not JSON"),
        (json.dumps({"clips": 3}).encode(), 422, "not a speaker profile"),
        (json.dumps({**good, "sum": "x"}).encode(), 422, "malformed speaker profile"),
        (json.dumps({**good, "layer": 7}).encode(), 422, "statistics of layer 7"),
        (json.dumps({**good, "clips": 0}).encode(), 422, "holds no clips"),
        (b" " * (MAX_PROFILE_BYTES + 10), 413, "too large for a speaker profile"),
        (foreign, 422, "enrolled with another model"),
    ]


def test_bad_profiles_are_4xx_with_a_message(client, profile, foreign_profile):
    audio = wav_bytes(tone(1.0))
    for data, status, words in _bad_cases(profile, foreign_profile):
        r = post(client, audio, data, name="bad.json")
        assert r.status_code == status, (words, r.status_code, r.text)
        detail = r.json()["detail"]
        assert words in detail and "profile bad.json" in detail, detail


def test_profile_sent_as_a_text_field(client, profile):
    """``curl -F profile=<alice.json`` sends a text field: used like a file part."""
    audio = wav_bytes(tone(1.0))
    files = {"file": ("clip.wav", audio, "audio/wav")}
    r = client.post("/predict", files=files, data={"profile": profile[1].decode()})
    assert r.status_code == 200, r.text
    assert r.json()["profile"]["name"] == "field" and r.json()["speaker_norm"] == "profile"
    assert r.json()["probabilities"] == post(client, audio, profile[1]).json()["probabilities"]
    bad = client.post("/predict", files=files, data={"profile": "{}"})
    assert bad.status_code == 422 and "profile field: not a speaker profile" in bad.text


def test_profile_counts_toward_the_upload_limit(speaker_dir, model, profile):
    # 0.1 MiB per request: 60 kB of audio fits alone, not with a (padded) 50 kB profile
    with TestClient(create_app(speaker_dir, model=model, max_upload_mb=0.1)) as c:
        audio = wav_bytes(tone(1.8))
        assert post(c, audio).status_code == 200
        padded = profile[1] + b" " * 50_000
        r = post(c, audio, padded)
        assert r.status_code == 413 and "too large" in r.json()["detail"], r.text


def test_profile_sent_to_a_model_without_speaker_norm(model_dir_plain, profile):
    with TestClient(create_app(model_dir_plain)) as c:
        r = post(c, wav_bytes(tone(1.0)), profile[1], name="alice.json")
        assert r.status_code == 422
        assert "trained without student.speaker_norm" in r.json()["detail"]
        assert "alice.json" in r.json()["detail"]
        ok = post(c, wav_bytes(tone(1.0)))  # no profile: as before, no speaker_norm key
        assert ok.status_code == 200 and list(ok.json()) == ["file", "label", "probabilities"]


# --------------------------------------------------------------------------- /stream


def _by_hand(model, signal: np.ndarray, window: float, hop: float) -> list[np.ndarray]:
    """Each fixed window's probabilities with the running statistics of the windows so far
    (this one included), computed from the runner directly."""
    from emodistill.inference.segment import FixedWindower

    w = FixedWindower(window, hop, SR)
    segs = list(w.push(signal)) + list(w.finish())
    glob, stats, out = model.runner.global_stats(), SpeakerStats(), []
    for seg in segs:
        x = np.asarray(seg.signal, np.float32)
        lengths = np.array([x.size], np.int64)
        stats.add(model.runner.clip_means(x[None], lengths)[0], x.size / SR)
        out.append(model.runner(x[None], lengths, normaliser(stats, glob)[None])[0])
    return out


def test_stream_running_statistics_are_bounded_and_match_by_hand(model):
    x = np.concatenate([tone(1.6, freq=180), tone(1.4, freq=420, amp=0.6), tone(1.3, freq=260)])
    session = StreamSession(model, WINDOW, HOP, speaker_norm=True)
    events, sizes = [], set()
    for a in range(0, x.size, 3000):
        events += session.push(x[a : a + 3000])
        if session.speaker.n:
            sizes.add((session.speaker.total.nbytes, session.speaker.total_sq.nbytes))
    events += session.finish()
    want = _by_hand(model, x, WINDOW, HOP)
    assert len(events) == len(want) > 3
    worst = max(
        abs(e["probabilities"][k] - w[i]) for e, w in zip(events, want, strict=True)
        for i, k in enumerate(LABELS)
    )  # fmt: skip
    print(f"max |stream speaker_norm - by hand| = {worst:.2e}")
    assert worst < 1e-5
    assert [e["speaker_norm"]["windows"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["speaker_norm"]["seconds"] == pytest.approx(len(events) * WINDOW)
    plain = StreamSession(model, WINDOW, HOP)
    glob = plain.push(x) + plain.finish()
    assert "speaker_norm" not in glob[0]
    assert max(abs(e["probabilities"][k] - g["probabilities"][k]) for e, g in zip(events, glob,
               strict=True) for k in LABELS) > 1e-4  # fmt: skip
    assert len(sizes) == 1  # the statistics are sums: the same size after every window
    # a long stream: many windows, the same two (H,) sums
    (size,) = sizes
    long = StreamSession(model, 0.5, 0.1, speaker_norm=True)
    for _ in range(30):
        long.push(x[:8000])
    assert long.speaker.n > 100 and long.windows == long.speaker.n
    assert (long.speaker.total.nbytes, long.speaker.total_sq.nbytes) == size
    assert not [v for v in vars(long.speaker).values() if isinstance(v, list)]


def test_stream_speaker_norm_refused_on_a_plain_model(model_dir_plain):
    with pytest.raises(SpeakerNormError, match="without student.speaker_norm"):
        StreamSession(EmoDistill.from_pretrained(model_dir_plain), speaker_norm=True)
    with TestClient(create_app(model_dir_plain)) as c:
        with c.websocket_connect("/stream?speaker_norm=1") as ws:
            assert "without student.speaker_norm" in ws.receive_json()["error"]
        with c.websocket_connect("/stream?speaker_norm=maybe") as ws:
            assert "speaker_norm must be 1 or 0" in ws.receive_json()["error"]


def test_websocket_stream_with_speaker_norm(client, model, tmp_path):
    x = np.concatenate([tone(1.6, freq=180), tone(1.4, freq=420, amp=0.6)])
    path = tmp_path / "rec.wav"
    sf.write(path, x, SR, subtype="PCM_16")
    pcm, _ = sf.read(path, dtype="int16")
    data = pcm.astype("<i2").tobytes()
    want = _by_hand(model, pcm.astype(np.float32) / 32768.0, WINDOW, HOP)
    with client.websocket_connect(f"/stream?window={WINDOW}&hop={HOP}&speaker_norm=1") as ws:
        for a in range(0, len(data), 6400):
            ws.send_bytes(data[a : a + 6400])
        ws.send_text("end")
        events = []
        while (msg := ws.receive_json()).get("type") != "end":
            events.append(msg)
    assert msg["speaker_norm"] == {"windows": len(want), "seconds": len(want) * WINDOW}
    assert [e["speaker_norm"]["windows"] for e in events] == list(range(1, len(want) + 1))
    worst = max(
        abs(e["probabilities"][k] - w[i]) for e, w in zip(events, want, strict=True)
        for i, k in enumerate(LABELS)
    )  # fmt: skip
    assert worst < 1e-5
    # without the flag: no speaker_norm key, the global statistics
    with client.websocket_connect(f"/stream?window={WINDOW}&hop={HOP}") as ws:
        ws.send_bytes(data)
        ws.send_text("end")
        first = ws.receive_json()
    assert list(first) == ["start", "end", "label", "probabilities"]


def test_cli_stream_with_speaker_norm(speaker_dir, model, model_dir_plain):
    from typer.testing import CliRunner

    from emodistill.cli.app import app

    x = np.concatenate([tone(1.6, freq=180), tone(1.4, freq=420, amp=0.6)])
    data = (np.round(x * 32767).astype("<i2")).tobytes()
    args = ["predict", str(speaker_dir), "-", "--stream", "--window", "1", "--hop", "0.5"]
    res = CliRunner().invoke(app, [*args, "--speaker-norm"], input=data)
    assert res.exit_code == 0, res.output
    events = [json.loads(line) for line in res.stdout.splitlines()]
    want = _by_hand(model, np.frombuffer(data, "<i2").astype(np.float32) / 32768.0, 1.0, 0.5)
    assert [e["speaker_norm"]["windows"] for e in events] == list(range(1, len(want) + 1))
    assert max(abs(e["probabilities"][k] - w[i]) for e, w in zip(events, want, strict=True)
               for i, k in enumerate(LABELS)) < 1e-5  # fmt: skip
    refused = CliRunner().invoke(app, [*args, "--profile", "x.json"], input=data)
    assert refused.exit_code == 2 and "--stream --speaker-norm" in refused.output
    plain = ["predict", str(model_dir_plain), "-", "--stream", "--speaker-norm"]
    refused = CliRunner().invoke(app, plain, input=data)
    assert refused.exit_code == 2 and "without student.speaker_norm" in refused.output
