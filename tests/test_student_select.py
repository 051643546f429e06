"""``student.select``: keep the best-validation epoch (default) or the last epoch."""

from __future__ import annotations

import pytest
import torch
from test_distill import _fold, fresh_run, one_thread, prepared  # noqa: F401 - fixtures


def test_select_last_keeps_the_final_epoch_and_reports_its_validation_ua(prepared, tmp_path):  # noqa: F811
    from emodistill.evaluation.curves import read_epochs
    from emodistill.models.folder import load_weights
    from emodistill.runs.layout import checkpoints_dir, metrics_csv_path, student_dir, work_dir
    from emodistill.training.distill import distill

    m, fold = _fold(prepared)
    cfg = prepared["config"].override(
        {"student": {"select": "last", "optim": {"epochs": 3, "patience": 0}}}
    )
    run = fresh_run(prepared, tmp_path / "run")
    with one_thread():
        res = distill(m, fold, cfg, run, "no_teachers", progress=False, keep_checkpoints=True)
    epochs = read_epochs(metrics_csv_path(work_dir(run, fold.id, "no_teachers")))["val_ua"]
    assert sorted(epochs) == [0, 1, 2]
    assert res["val_ua"] == pytest.approx(epochs[2])  # the last epoch's, not the best one's
    # and the saved weights are the last checkpoint's
    wdir = work_dir(run, fold.id, "no_teachers")
    last = torch.load(checkpoints_dir(wdir) / "last.ckpt", weights_only=True)["state_dict"]
    saved = load_weights(student_dir(run, fold.id, "no_teachers"))
    name = "classifier.3.weight"
    assert torch.equal(saved[name], next(v for k, v in last.items() if k.endswith(name)))
    # best.ckpt is only read for its weights: it leaves AdamW's moments to last.ckpt (resuming)
    best = torch.load(checkpoints_dir(wdir) / "best.ckpt", weights_only=True)
    assert "state_dict" in best and "optimizer_states" not in best
    assert "optimizer_states" in torch.load(checkpoints_dir(wdir) / "last.ckpt", weights_only=True)


def test_select_refuses_other_values():
    from emodistill.config import StudentConfig

    with pytest.raises(ValueError, match="student.select must be 'best' or 'last'"):
        StudentConfig(select="middle")
