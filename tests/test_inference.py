"""EmoDistill model-folder API and long-recording segmentation, on tiny random models.

The model folders are written by the real ``save_student`` and loaded by the real
``EmoDistill.from_pretrained``, the path users take. The builders here are also imported by
test_predict_cli.py, test_export.py and test_serve.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from emodistill.audio import AudioError
from emodistill.inference.model import EmoDistill, ModelLoadError, Prediction
from emodistill.inference.segment import fixed_windows, predict_timeline, summarize, vad_segments

LABELS = ["neutral", "happy", "angry", "sad"]
SR = 16000


def build_tiny_model(
    folder, kind: str = "whisper", extra: dict | None = None, seed: int = 0, **heads
):
    """Save a tiny random student (whisper | hubert | hubert-group) to ``folder``; return it.

    ``heads``: further :class:`EmoDistillStudent` options (``pooling``, ``pooled_norm``, ...).
    """
    import torch
    from transformers import HubertConfig, HubertModel

    from emodistill.models.encoders import (
        TransformersSpeechEncoder,
        WhisperSpeechEncoder,
        whisper_encoder_config,
    )
    from emodistill.models.student import EmoDistillStudent
    from emodistill.models.student_folder import save_student

    torch.manual_seed(seed)
    if kind == "whisper":
        encoder = WhisperSpeechEncoder(
            whisper_encoder_config(
                d_model=32,
                encoder_layers=1,
                encoder_attention_heads=2,
                encoder_ffn_dim=64,
                num_mel_bins=80,
                max_source_positions=1500,
            )
        )
    else:
        layer = kind == "hubert"
        cfg = HubertConfig(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            conv_dim=(16, 16),
            conv_stride=(10, 32),  # 320x down: 50 frames/s like HuBERT
            conv_kernel=(10, 32),
            num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=2,
            feat_extract_norm="layer" if layer else "group",
            do_stable_layer_norm=layer,
        )
        encoder = TransformersSpeechEncoder(HubertModel(cfg))
    student = EmoDistillStudent(encoder, len(LABELS), 16, 8, 16, 16, **heads)
    # Random heads give near-uniform probabilities; scale the last layer so labels differ.
    with torch.no_grad():
        student.classifier[-1].weight.mul_(20.0)
    save_student(student, folder, LABELS, extra=extra)
    return folder


def tone(seconds: float, sr: int = SR, freq: float = 220.0, amp: float = 0.3, channels: int = 1):
    """(N,) or (N, channels) float32 sine with a little noise (deterministic)."""
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    rng = np.random.default_rng(int(freq))
    x = amp * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(n)
    x = x.astype(np.float32)
    if channels > 1:
        x = np.stack([x * (1 - 0.1 * c) for c in range(channels)], axis=1)
    return x


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("whisper") / "model", "whisper")


@pytest.fixture(scope="module")
def whisper_model(whisper_dir):
    return EmoDistill.from_pretrained(whisper_dir)


def assert_onnx_parity(folder, onnx_path):
    """Export ``folder`` to ``onnx_path``; the model folder and the ONNX file give the same
    probabilities on three padded tones of odd frame counts. Returns ``(clips, probabilities)``."""
    from emodistill.inference.batching import pad_batch
    from emodistill.inference.onnx import OnnxPredictor, export_onnx

    report = export_onnx(folder, onnx_path)
    assert report["max_abs_diff"] < 1e-4
    clips = [tone(s, freq=f) for s, f in ((1.3, 200), (0.41, 450), (2.2, 310))]
    wav, lengths = pad_batch(clips)
    want = EmoDistill.from_pretrained(folder).runner(wav, lengths)
    got = OnnxPredictor(onnx_path)(wav, lengths)
    assert np.abs(got - want).max() < 1e-4
    return clips, want


def _maxdiff(a: Prediction, b: Prediction) -> float:
    return max(abs(a.probabilities[k] - b.probabilities[k]) for k in a.probabilities)


def test_predict_path_array_and_list(whisper_model, tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, tone(1.2), SR)
    p = whisper_model.predict(str(path))
    assert isinstance(p, Prediction)
    assert list(p.to_dict()) == ["file", "label", "probabilities"]
    assert p.file == str(path) and p.label in LABELS
    assert list(p.probabilities) == LABELS
    assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    q = whisper_model.predict(sf.read(path, dtype="float32")[0], sampling_rate=SR)
    assert q.file is None and _maxdiff(p, q) < 1e-6
    both = whisper_model.predict([path, tone(0.5)], sampling_rate=SR)
    assert isinstance(both, list) and len(both) == 2 and _maxdiff(both[0], p) < 1e-5
    with pytest.raises(ValueError, match="sampling_rate"):
        whisper_model.predict(tone(0.5))


@pytest.mark.parametrize("kind", ["whisper", "hubert", "hubert-group"])
def test_batched_equals_single_in_input_order(kind, tmp_path):
    """Sorted, padded batches give each clip its own result, in the caller's order."""
    model = EmoDistill.from_pretrained(build_tiny_model(tmp_path / kind, kind))
    clips = [tone(s, freq=f) for s, f in ((0.9, 180), (2.1, 300), (0.4, 500), (1.3, 250))]
    batched = model.predict(clips, sampling_rate=SR, batch_size=4)
    single = [model.predict(c, sampling_rate=SR) for c in clips]
    assert max(_maxdiff(a, b) for a, b in zip(batched, single, strict=True)) < 1e-5
    # Group-norm encoders would change with padding: they are batched by equal length only.
    assert model.pad_invariant is (kind != "hubert-group")


def test_any_rate_and_channels_match_resampled_mono(whisper_model):
    x16 = tone(1.0, SR)
    for sr in (8000, 96000):
        p = whisper_model.predict(tone(1.0, sr, channels=8), sampling_rate=sr)
        assert p.label in LABELS
    p = whisper_model.predict(tone(1.0, channels=2), sampling_rate=SR)
    mono = tone(1.0, channels=2).mean(axis=1)
    assert _maxdiff(p, whisper_model.predict(mono, sampling_rate=SR)) < 1e-6
    assert whisper_model.predict(np.zeros(SR, np.float32), sampling_rate=SR).label in LABELS
    assert whisper_model.predict(x16, sampling_rate=SR).label in LABELS


@pytest.mark.parametrize(
    ("signal", "match"),
    [
        (np.zeros(0, np.float32), "empty"),
        (np.zeros(160, np.float32), "too short"),
        (np.array([0.1, np.nan] * 8000, np.float32), "non-finite"),
    ],
)
def test_bad_arrays_are_named(whisper_model, signal, match):
    with pytest.raises(AudioError, match=match):
        whisper_model.predict(signal, sampling_rate=SR)


def test_long_input_windows_are_averaged_not_truncated(tmp_path):
    """Beyond max_seconds: equal windows, probabilities averaged by window length."""
    model = EmoDistill.from_pretrained(
        build_tiny_model(tmp_path / "m", "whisper", extra={"inference": {"max_seconds": 1.0}})
    )
    assert model.max_seconds == 1.0
    x = np.concatenate([tone(1.2, freq=200), tone(1.2, freq=600, amp=0.05)])  # 2.4 s
    got = model.predict(x, sampling_rate=SR).probabilities
    parts = [x[0:12800], x[12800:25600], x[25600:]]  # 3 equal windows of 0.8 s
    probs = [model.predict(p, sampling_rate=SR).probabilities for p in parts]
    want = {k: np.mean([p[k] for p in probs]) for k in LABELS}
    assert max(abs(got[k] - want[k]) for k in LABELS) < 1e-5
    first_only = model.predict(x[:16000], sampling_rate=SR).probabilities
    assert max(abs(got[k] - first_only[k]) for k in LABELS) > 1e-4  # the tail counts


def test_long_file_is_streamed(whisper_model, tmp_path, monkeypatch):
    import emodistill.inference.model as inference

    path = tmp_path / "long.wav"
    x = np.concatenate([tone(2.0), tone(1.2, freq=400)])
    sf.write(path, x, SR, subtype="FLOAT")
    monkeypatch.setattr(inference, "STREAM_ABOVE_SECONDS", 1.0)
    monkeypatch.setattr(whisper_model, "max_seconds", 1.0)
    streamed = whisper_model.predict(path)
    assert streamed.file == str(path) and list(streamed.probabilities) == LABELS
    # 1 s blocks; the short 0.2 s tail is merged with the block before, split in two halves.
    pieces = [x[:16000], x[16000:32000], x[32000:41600], x[41600:]]
    probs = whisper_model.predict_proba(pieces)
    weights = np.array([p.size for p in pieces], dtype=np.float64)
    want = (probs * weights[:, None]).sum(0) / weights.sum()
    got = np.array([streamed.probabilities[k] for k in LABELS])
    assert np.abs(got - want).max() < 1e-5


def test_save_pretrained_round_trip(whisper_model, tmp_path):
    whisper_model.save_pretrained(tmp_path / "copy")
    again = EmoDistill.from_pretrained(tmp_path / "copy")
    x = tone(0.8)
    a = whisper_model.predict(x, sampling_rate=SR)
    assert _maxdiff(a, again.predict(x, sampling_rate=SR)) < 1e-7
    assert again.info()["encoder"] == "whisper"


def test_missing_folder_and_offline_hub_id_fail_clearly(tmp_path):
    with pytest.raises(ModelLoadError, match="no such model folder"):
        EmoDistill.from_pretrained(tmp_path / "nope")
    with pytest.raises(ModelLoadError, match="no config.json"):
        EmoDistill.from_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="hub download failed"):
        EmoDistill.from_pretrained("someone/emodistill-model-that-does-not-exist")


# --------------------------------------------------------------------------- segmentation


def _blocks(x: np.ndarray, size: int):
    for i in range(0, x.size, size):
        yield x[i : i + size]


def test_fixed_windows_cover_the_stream_with_full_windows():
    x = np.arange(int(7.3 * SR), dtype=np.float32)
    segs = list(fixed_windows(_blocks(x, 2400), window=3.0, hop=1.5))
    assert [s.start for s in segs] == [0.0, 1.5, 3.0, 4.3]  # last one aligned to the end
    assert all(s.signal.size == 3 * SR for s in segs)
    for s in segs:  # each window holds exactly its samples
        assert s.signal[0] == x[int(round(s.start * SR))]
    assert segs[-1].end == pytest.approx(7.3)
    short = list(fixed_windows(_blocks(x[:SR], 999), window=3.0, hop=1.5))
    assert len(short) == 1 and short[0].signal.size == SR


def test_vad_finds_the_voiced_bursts():
    silence = np.zeros(SR, np.float32)
    x = np.concatenate([silence, tone(0.8), silence, tone(4.0), silence])
    segs = list(vad_segments(_blocks(x, 4000), window=3.0))
    assert len(segs) == 3  # burst 1; burst 2 cut at the 3 s window
    assert segs[0].start == pytest.approx(1.0, abs=0.03) and segs[0].end == pytest.approx(1.8, 0.03)
    assert segs[1].start == pytest.approx(2.8, abs=0.03)
    assert segs[1].end - segs[1].start == pytest.approx(3.0, abs=0.03)
    assert segs[2].end == pytest.approx(6.8, abs=0.03)
    assert not list(vad_segments(_blocks(silence, 4000)))


def test_predict_timeline_segments_and_summary(whisper_model, tmp_path):
    path = tmp_path / "rec.wav"
    sf.write(path, np.concatenate([tone(3.0, freq=200), tone(3.5, freq=700)]), SR)
    out = predict_timeline(whisper_model, path, window=2.0, hop=1.0)
    assert list(out) == ["segments", "summary"]
    segs = out["segments"]
    assert [s["start"] for s in segs] == [0.0, 1.0, 2.0, 3.0, 4.0, 4.5]
    assert all(list(s) == ["start", "end", "label", "probabilities"] for s in segs)
    # Windows match predicting the same samples directly.
    x = sf.read(path, dtype="float32")[0]
    direct = whisper_model.predict(x[SR : 3 * SR], sampling_rate=SR).probabilities
    assert max(abs(segs[1]["probabilities"][k] - direct[k]) for k in LABELS) < 1e-5
    summ = out["summary"]
    assert summ["duration"] == pytest.approx(6.5)
    assert summ["analysed_seconds"] == pytest.approx(6.5)
    assert sum(summ["label_fractions"].values()) == pytest.approx(1.0, abs=1e-3)
    assert summ["dominant_label"] in LABELS and summ["label"] in LABELS
    vad = predict_timeline(whisper_model, path, window=2.0, vad=True)
    assert vad["segments"] and vad["summary"]["analysed_seconds"] <= 6.5


def test_timeline_bad_inputs(whisper_model, tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR, np.float32), SR)
    assert predict_timeline(whisper_model, silent)["segments"]  # silence is valid audio
    with pytest.raises(AudioError, match="no voice activity"):
        predict_timeline(whisper_model, silent, vad=True)
    tiny = tmp_path / "tiny.wav"
    sf.write(tiny, tone(0.01), SR)
    with pytest.raises(AudioError, match="too short"):
        predict_timeline(whisper_model, tiny)
    with pytest.raises(ValueError, match="exceeds"):
        predict_timeline(whisper_model, silent, window=60.0)


def test_summary_counts_overlaps_once():
    segs = [
        {"start": 0.0, "end": 3.0, "label": "happy", "probabilities": dict.fromkeys(LABELS, 0.25)},
        {"start": 1.5, "end": 4.5, "label": "sad", "probabilities": dict.fromkeys(LABELS, 0.25)},
    ]
    s = summarize(segs, LABELS, 4.5)
    assert s["label_seconds"]["happy"] == pytest.approx(2.25)
    assert s["label_seconds"]["sad"] == pytest.approx(2.25)
    assert s["analysed_seconds"] == pytest.approx(4.5)


def test_batches_bound_padding():
    from emodistill.inference.batching import length_batches as _batches

    sizes = [100, 95, 90, 70, 69, 10]
    order = list(range(len(sizes)))
    assert list(_batches(order, sizes, 8, True)) == [[0, 1, 2], [3, 4], [5]]
    assert list(_batches(order, sizes, 2, True)) == [[0, 1], [2], [3, 4], [5]]
    assert list(_batches([0, 1, 2], [5, 5, 4], 8, False)) == [[0, 1], [2]]


def test_windowing_memory_is_bounded():
    """Ten minutes streamed through both cutters: peak traced memory stays ~ one window."""
    import tracemalloc

    def stream(minutes: float):
        rng = np.random.default_rng(0)
        for _ in range(int(minutes * 40)):  # 1.5 s blocks
            yield (0.1 * rng.standard_normal(24000)).astype(np.float32)

    for cut in (lambda b: fixed_windows(b, 3.0, 1.5), lambda b: vad_segments(b, 3.0)):
        tracemalloc.start()
        n = sum(1 for _ in cut(stream(10)))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert n >= 199  # 600 s of audio really went through
        assert peak < 4_000_000, peak  # a 3 s window is 192 kB; 10 min of audio is 38 MB


def test_mistyped_local_path_is_not_a_hub_id(tmp_path, monkeypatch):
    import huggingface_hub

    from emodistill.models.assets import AssetError, resolve

    def no_hub(*args, **kwargs):
        raise AssertionError("a local path was sent to the hub")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_hub)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    for typo in ("runs/modle", "./runs/modle", "runs/demo/modle", "~/m/x"):
        with pytest.raises(ModelLoadError, match="no such model folder"):
            EmoDistill.from_pretrained(typo)
    with pytest.raises(AssetError, match="runs/ exists here"):
        resolve("runs/modle")
    assert resolve("facebook/hubert-base-ls960") == "facebook/hubert-base-ls960"  # a hub id
    with pytest.raises(AssetError, match="not a hub id"):
        resolve("../encoders/hubert")
