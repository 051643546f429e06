"""ONNX export: dynamic batch and length, parity with torch, and the four entry points agreeing.

CLI, Python API, ONNX and HTTP must give the same probabilities for the same input.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from test_inference import LABELS, build_tiny_model, tone
from typer.testing import CliRunner

from emodistill.cli.app import app
from emodistill.inference.batching import pad_batch
from emodistill.inference.model import EmoDistill, ModelLoadError
from emodistill.inference.onnx import ExportError, OnnxPredictor, export_onnx
from emodistill.service.app import create_app


@pytest.fixture(scope="module", params=["whisper", "hubert"])
def exported(request, tmp_path_factory):
    """(model folder, its model.onnx) for a tiny Whisper and a tiny HuBERT student."""
    folder = build_tiny_model(tmp_path_factory.mktemp(request.param) / "model", request.param)
    if request.param == "whisper":  # through the command line
        result = CliRunner().invoke(app, ["export-onnx", str(folder), str(folder / "model.onnx")])
        assert result.exit_code == 0, result.output
    else:
        report = export_onnx(folder, folder / "model.onnx")
        assert report["max_abs_diff"] < 1e-4
    return folder, folder / "model.onnx"


def test_parity_on_a_padded_batch_and_dynamic_axes(exported):
    folder, onnx_path = exported
    torch_model = EmoDistill.from_pretrained(folder)
    onnx_model = OnnxPredictor(onnx_path)
    clips = [tone(s, freq=f) for s, f in ((1.7, 200), (0.35, 450), (2.9, 310))]
    wav, lengths = pad_batch(clips)  # one batch, three lengths
    want = torch_model.runner(wav, lengths)
    got = onnx_model(wav, lengths)
    assert got.shape == (3, len(LABELS))
    assert np.abs(got - want).max() < 1e-4
    one = onnx_model(*pad_batch([tone(4.2)]))  # another batch size and length
    assert np.abs(one - torch_model.runner(*pad_batch([tone(4.2)]))).max() < 1e-4
    assert onnx_model.labels == LABELS  # the file carries its config


def test_cli_api_onnx_http_agree(exported, tmp_path):
    folder, onnx_path = exported
    path = tmp_path / "same.wav"
    sf.write(path, tone(1.4, 22050, freq=280, channels=2), 22050)  # resampled + downmixed
    api = EmoDistill.from_pretrained(folder).predict(path).probabilities
    onnx = EmoDistill.from_pretrained(folder, backend="onnx").predict(path).probabilities
    only_file = EmoDistill.from_pretrained(onnx_path, backend="onnx").predict(path).probabilities
    cli = CliRunner().invoke(
        app, ["predict", str(folder), str(path), "--format", "json", "--backend", "onnx"]
    )
    assert cli.exit_code == 0, cli.output
    cli_probs = json.loads(cli.stdout)[0]["probabilities"]
    with TestClient(create_app(folder)) as client:
        http = client.post("/predict", files={"file": ("same.wav", path.read_bytes())}).json()
    for other in (onnx, only_file, cli_probs, http["probabilities"]):
        assert max(abs(api[k] - other[k]) for k in LABELS) < 1e-4


def test_export_errors(tmp_path):
    folder = build_tiny_model(tmp_path / "m", "whisper")
    with pytest.raises(ModelLoadError, match="no model.onnx"):
        EmoDistill.from_pretrained(folder, backend="onnx")
    with pytest.raises(ModelLoadError, match="not a model folder"):
        export_onnx(tmp_path, tmp_path / "x.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(ModelLoadError, match="not a loadable ONNX model"):
        OnnxPredictor(bad)
    assert issubclass(ExportError, RuntimeError)
