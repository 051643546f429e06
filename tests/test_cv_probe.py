"""`cv --probe`: the linear probe on the student's frozen features, beside the students."""

from __future__ import annotations

import json

import pytest
import yaml
from test_distill import _one_thread, fresh_run, one_thread, prepared  # noqa: F401 - fixtures
from typer.testing import CliRunner


def test_cv_probe_writes_probe_json_and_report_rows(prepared, tmp_path, monkeypatch):  # noqa: F811
    """A frozen tiny random encoder: `cv` runs the probe by default (probe.json in the format
    `emodistill probe` writes), the report and the model card put it beside the student, and a
    second `cv` reuses it; `--no-probe` leaves it out."""
    from emodistill.cli.app import app
    from emodistill.features.prefix_cache import LayerMeans

    cfg = prepared["config"].override(
        {"seeds": [0], "student": {"trainable_layers": 0, "optim": {"epochs": 1}}}
    )
    cfg_file = tmp_path / "frozen.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg.to_dict()))
    run = fresh_run(prepared, tmp_path / "run")
    args = ["cv", str(prepared["manifest"]), "--out", str(run), "--config", str(cfg_file)]
    # The students' prefix pass leaves every layer's means in the cache: the probe runs no
    # encoder of its own.
    monkeypatch.setattr(
        LayerMeans, "_compute", lambda *a: pytest.fail("the probe ran the encoder again")
    )
    with one_thread():
        result = CliRunner().invoke(app, [*args, "--variant", "no_teachers"])
    assert result.exit_code == 0, result.output
    monkeypatch.undo()

    probe = json.loads((run / "probe" / "probe.json").read_text())
    assert probe["folds"] == ["g1", "g2"] and probe["key"]
    layers = probe["layers"]
    assert [r["layer"] for r in layers] == list(range(len(layers))) and len(layers) >= 2
    assert probe["best_layer"] == max(layers, key=lambda r: r["mean"])["layer"]
    for r in layers:
        assert set(r["ua"]) == set(r["wa"]) == {"g1", "g2"}
        assert all(0.0 <= v <= 1.0 for v in r["ua"].values())
    assert (run / "probe" / "probe.png").stat().st_size > 1000

    report = (run / "variants" / "no_teachers" / "report.md").read_text()
    best = probe["best_layer"]
    assert "## Linear probe on the same frozen features and folds" in report
    assert f"linear probe (layer {best}, best layer)" in report
    best_ua = 100 * layers[best]["mean"]
    assert f"| {best_ua:.2f} |" in report
    card = next(run.glob("g1/variants/no_teachers/student/README.md")).read_text()
    assert f"mean-pooled layer {best}" in card

    # Reused, not recomputed: the file is untouched by a second run.
    mtime = (run / "probe" / "probe.json").stat().st_mtime_ns
    with one_thread():
        result = CliRunner().invoke(app, [*args, "--variant", "no_teachers"])
    assert result.exit_code == 0, result.output
    assert (run / "probe" / "probe.json").stat().st_mtime_ns == mtime

    # --no-probe: a run folder without it has no probe row.
    other = fresh_run(prepared, tmp_path / "noprobe")
    args = ["cv", str(prepared["manifest"]), "--out", str(other), "--config", str(cfg_file)]
    with one_thread():
        result = CliRunner().invoke(app, [*args, "--variant", "no_teachers", "--no-probe"])
    assert result.exit_code == 0, result.output
    assert not (other / "probe").exists()
    assert "Linear probe" not in (other / "variants" / "no_teachers" / "report.md").read_text()


def test_probe_comparison_pairs_folds_and_says_where_the_student_stands():
    from emodistill.evaluation.probe import probe_comparison, probe_markdown

    probe = {
        "best_layer": 1,
        "layers": [
            {"layer": 0, "ua": {"a": 0.5, "b": 0.5, "c": 0.5}},
            {"layer": 1, "ua": {"a": 0.7, "b": 0.8, "c": 0.9}},
            {"layer": 2, "ua": {"a": 0.5, "b": 0.5, "c": 0.5}},
        ],
    }
    results = {"folds": [{"fold": f, "ua": u} for f, u in (("a", 0.6), ("b", 0.7), ("c", 0.8))]}
    cmp = probe_comparison(probe, results)
    assert cmp["best_layer"] == 1 and cmp["last_layer"] == 2
    assert abs(cmp["diff_best"] + 0.1) < 1e-12 and abs(cmp["diff_last"] - 0.2) < 1e-12
    assert cmp["ci95_best"][1] < 0 < cmp["ci95_last"][0]
    md = probe_markdown(cmp)
    assert "| linear probe (layer 1, best layer) | 80.00 | -10.00 |" in md
    assert "below its probe" in md and "above its probe" in md
