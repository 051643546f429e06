"""Cross-corpus evaluation of a tiny random student on a manifest with other labels."""

from __future__ import annotations

import json

import soundfile as sf
from test_inference import SR, build_tiny_model, tone
from typer.testing import CliRunner

from emodistill.cli.app import app
from emodistill.corpora.manifest import Utterance, load_manifest, write_manifest
from emodistill.evaluation.report import RESULT_KEYS


def test_evaluate_intersects_labels(tmp_path):
    model = build_tiny_model(tmp_path / "model")  # labels neutral, happy, angry, sad
    utts = []
    for i, label in enumerate(["neutral", "angry", "sad", "boredom", "neutral", "angry"]):
        path = tmp_path / "wav" / f"u{i}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, tone(0.4 + 0.1 * i, freq=150.0 + 40 * i), SR)
        utts.append(Utterance(f"u{i}", path, label, f"spk{i % 2}"))
    write_manifest(utts, tmp_path / "m.csv")
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        app, ["evaluate", str(model), str(tmp_path / "m.csv"), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())
    assert tuple(res) == RESULT_KEYS
    assert res["labels"] == ["neutral", "angry", "sad"]  # the model's order, shared only
    assert [f["fold"] for f in res["folds"]] == ["all"] and res["folds"][0]["n"] == 5
    assert len(res["confusion"]) == 3 and sum(map(sum, res["confusion"])) == 5
    labels = json.loads((out / "labels.json").read_text())
    assert labels["corpus_only"] == {"boredom": 1} and labels["model_only"] == ["happy"]
    pred = json.loads((out / "predictions.json").read_text())
    assert pred["ids"] == ["u0", "u1", "u2", "u4", "u5"]
    assert all(0 <= p < 3 for p in pred["y_pred"]) and len(pred["probabilities"][0]) == 4
    assert "boredom (1)" in (out / "report.md").read_text()
    assert (out / "confusion.png").is_file()
    # No shared label: an error that names both label sets.
    m = load_manifest(tmp_path / "m.csv")
    write_manifest([u for u in m if u.label == "boredom"] + [
        Utterance("x", utts[0].path, "boredom", "spk9")], tmp_path / "b.csv")  # fmt: skip
    bad = CliRunner().invoke(app, ["evaluate", str(model), str(tmp_path / "b.csv"), "-o", str(out)])
    assert bad.exit_code == 2 and "none in common" in " ".join(bad.output.split())
