"""ONNX export of a speaker_norm student (#28): the speaker input, the clip-means output, the
metadata that lets the file alone enrol and predict, and parity with torch under a profile."""

from __future__ import annotations

import numpy as np
import pytest
from test_inference import LABELS, build_tiny_model, tone

from emodistill.inference.batching import pad_batch
from emodistill.inference.model import EmoDistill
from emodistill.inference.onnx import OnnxPredictor, export_onnx
from emodistill.inference.onnx_predictor import SPEAKER_KEY
from emodistill.inference.runner import TorchRunner
from emodistill.models.speaker_stats import (
    SpeakerStats,
    global_stats,
    model_fingerprint,
    normaliser,
)
from emodistill.models.student_folder import load_student, save_student


def _clips(n: int, first: float = 0.8, f0: float = 150.0) -> list[np.ndarray]:
    return [tone(first + 0.3 * k, freq=f0 + 60 * k) for k in range(n)]


@pytest.fixture(scope="module")
def speaker_model(tmp_path_factory):
    """(folder, its model.onnx, export report) of a tiny Whisper speaker_norm student whose
    global statistics are those of some tones (not the zero/one defaults)."""
    folder = build_tiny_model(
        tmp_path_factory.mktemp("spk") / "model", "whisper", trainable_layers=0, speaker_norm=True
    )
    student, _ = load_student(folder)
    means = TorchRunner(student).clip_means(*pad_batch(_clips(6)))
    student.set_global_stats(global_stats(means, shrink=2.0))
    save_student(student, folder, LABELS)
    report = export_onnx(folder, folder / "model.onnx")
    return folder, folder / "model.onnx", report


def test_parity_with_a_speaker_profile(speaker_model):
    folder, onnx_path, report = speaker_model
    assert report["max_abs_diff"] < 1e-4 and report["clip_means_max_rel_diff"] < 1e-4
    student, _ = load_student(folder)
    torch_runner, onnx_runner = TorchRunner(student), OnnxPredictor(onnx_path)
    glob = student.global_stats()
    assert glob.var.std() > 0 and np.abs(glob.mean).max() > 0  # non-trivial statistics

    # enrolment through onnxruntime gives torch's clip means
    enrol = pad_batch(_clips(4, first=1.1, f0=330.0))
    want_means = torch_runner.clip_means(*enrol)
    got_means = onnx_runner.clip_means(*enrol)
    assert got_means.shape == want_means.shape == (4, glob.mean.size)
    assert np.abs(got_means - want_means).max() < 1e-4 * max(1.0, np.abs(want_means).max())

    norm = normaliser(SpeakerStats.of(want_means), glob)  # (2, H), not the global one
    assert np.abs(norm - normaliser(None, glob)).max() > 1e-2
    wav, lengths = pad_batch([tone(s, freq=f) for s, f in ((1.7, 200), (0.35, 450), (2.9, 310))])
    speaker = np.broadcast_to(norm, (3, *norm.shape)).copy()
    want, got = torch_runner(wav, lengths, speaker), onnx_runner(wav, lengths, speaker)
    assert got.shape == (3, len(LABELS))
    assert np.abs(got - want).max() < 1e-4
    # no speaker: both use the global statistics, and the profile did change the output
    glob_want, glob_got = torch_runner(wav, lengths), onnx_runner(wav, lengths)
    assert np.abs(glob_got - glob_want).max() < 1e-4
    assert np.abs(glob_want - want).max() > 1e-3
    # each row its own normaliser (a mixed batch), another batch size and length
    mixed = np.stack([norm, normaliser(None, glob), norm])
    assert np.abs(onnx_runner(wav, lengths, mixed) - torch_runner(wav, lengths, mixed)).max() < 1e-4
    one = pad_batch([tone(4.2)])
    assert np.abs(onnx_runner(*one, norm[None]) - torch_runner(*one, norm[None])).max() < 1e-4


def test_metadata_lets_the_file_alone_enrol_and_predict(speaker_model):
    folder, onnx_path, _ = speaker_model
    student, _ = load_student(folder)
    onnx_runner = OnnxPredictor(onnx_path)
    assert onnx_runner.fingerprint() == model_fingerprint(student)
    assert onnx_runner.fingerprint() == TorchRunner(student).fingerprint()
    glob, got = student.global_stats(), onnx_runner.global_stats()
    assert np.array_equal(got.mean, glob.mean) and np.array_equal(got.var, glob.var)
    assert got.shrink == glob.shrink and onnx_runner.layer == student.depth
    # the model API's onnx backend runs this predictor, with the same fingerprint
    api = EmoDistill.from_pretrained(onnx_path, backend="onnx")
    assert isinstance(api.runner, OnnxPredictor)
    assert api.runner.fingerprint() == model_fingerprint(student)
    with pytest.raises(ValueError, match="speaker must be"):
        onnx_runner(*pad_batch([tone(1.0)]), np.ones((1, 2, 3), np.float32))


def test_int8_export_of_a_speaker_model_keeps_its_inputs_and_metadata(speaker_model, tmp_path):
    import onnx

    folder, _, _ = speaker_model
    out = tmp_path / "m.int8.onnx"
    report = export_onnx(folder, out, quantize="int8")
    assert report["quantize"] == "int8" and report["clips"] == 8
    assert 0.0 <= report["label_agreement"] <= 1.0 and report["max_abs_diff"] < 0.1
    assert report["float_max_abs_diff"] < 1e-4
    graph = onnx.load(str(out)).graph
    assert [i.name for i in graph.input] == ["wav", "lengths", "speaker"]
    assert [o.name for o in graph.output] == ["probabilities", "logits", "clip_means"]
    quantised = [n.name for n in graph.node if n.op_type == "MatMulInteger"]
    assert quantised and all(n.startswith("/student/encoder/") for n in quantised)
    predictor = OnnxPredictor(out)
    student, _ = load_student(folder)
    assert predictor.fingerprint() == model_fingerprint(student)
    assert predictor.clip_means(*pad_batch([tone(1.0)])).shape == (
        1,
        student.global_stats().mean.size,
    )


def test_a_model_without_speaker_norm_exports_as_before(tmp_path):
    import onnx

    folder = build_tiny_model(tmp_path / "plain", "whisper")
    export_onnx(folder, tmp_path / "plain.onnx")
    proto = onnx.load(str(tmp_path / "plain.onnx"))
    assert [i.name for i in proto.graph.input] == ["wav", "lengths"]
    assert [o.name for o in proto.graph.output] == ["probabilities", "logits"]
    assert SPEAKER_KEY not in {p.key for p in proto.metadata_props}
    predictor = OnnxPredictor(tmp_path / "plain.onnx")
    assert not predictor.speaker_norm
    wav, lengths = pad_batch([tone(1.0)])
    for call in (
        lambda: predictor.clip_means(wav, lengths),
        predictor.global_stats,
        predictor.fingerprint,
        lambda: predictor(wav, lengths, np.ones((1, 2, 32), np.float32)),
    ):
        with pytest.raises(ValueError, match="without speaker_norm"):
            call()


def test_the_api_enrols_and_predicts_with_a_profile_on_the_onnx_backend(speaker_model):
    """`EmoDistill` on the ONNX file: a profile enrolled there is the torch backend's profile
    (same fingerprint, clip means within 1e-4) and predicts the same probabilities."""
    from emodistill import EmoDistill

    folder = speaker_model[0]
    torch_model = EmoDistill.from_pretrained(folder)
    onnx_model = EmoDistill.from_pretrained(folder, backend="onnx")
    assert onnx_model.speaker_norm
    clips = _clips(4)
    p_torch = torch_model.enroll(clips, sampling_rate=16000, min_seconds=0.5)
    p_onnx = onnx_model.enroll(clips, sampling_rate=16000, min_seconds=0.5)
    assert p_onnx.model == p_torch.model and p_onnx.stats.n == p_torch.stats.n == 4
    assert np.abs(p_onnx.stats.total - p_torch.stats.total).max() < 1e-4 * 4
    new = _clips(2, first=1.1, f0=210.0)
    a = torch_model.predict(new, sampling_rate=16000, profile=p_torch)
    b = onnx_model.predict(new, sampling_rate=16000, profile=p_torch)
    pa = np.array([[r.probabilities[k] for k in torch_model.labels] for r in a])
    pb = np.array([[r.probabilities[k] for k in torch_model.labels] for r in b])
    assert np.abs(pa - pb).max() < 1e-4
