"""Training logs (learning-rate column, per-epoch loss terms) and the report's curves.png."""

from __future__ import annotations

import csv

import pytest
from test_distill import _one_thread, prepared, reference  # noqa: F401 - shared fixtures

from emodistill.config import TrainerConfig
from emodistill.runs.layout import metrics_csv_path, teacher_work_dir

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _lr_values(path) -> list[float]:
    return [float(r["lr"]) for r in _rows(path) if r.get("lr")]


def test_student_and_teacher_logs_have_a_learning_rate_column(prepared, reference):  # noqa: F811
    student = _lr_values(metrics_csv_path(reference / "g1" / "student_train"))
    # Warm-up then cosine decay: positive rates that change from step to step.
    assert student and all(v > 0 for v in student) and len(set(student)) > 1
    for kind in ("linguistic", "prosodic"):
        teacher = _lr_values(
            metrics_csv_path(teacher_work_dir(prepared["teachers_run"] / "g1", kind))
        )
        assert teacher and all(v > 0 for v in teacher)
    # Eq. 5's terms and the validation UA once per epoch (what curves.png draws).
    rows = _rows(metrics_csv_path(reference / "g2" / "student_train"))
    epochs = prepared["config"].student.optim.epochs
    for column in ("train_loss_epoch", "train_ce_epoch", "train_kd_epoch",
                   "train_embedding_epoch", "val_ua"):  # fmt: skip
        assert sum(1 for r in rows if r.get(column)) == epochs, column


def test_report_embeds_curves_png_and_links_every_run_log(reference):  # noqa: F811
    png = reference / "curves.png"
    data = png.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5000
    report = (reference / "report.md").read_text()
    assert "![training curves](curves.png)" in report
    for fold in ("g1", "g2"):
        link = f"{fold}/student_train/logs/metrics.csv"
        assert f"({link})" in report and (reference / link).is_file()


def test_curves_average_runs_per_epoch(tmp_path):
    from emodistill.evaluation.curves import band, plot_curves, read_epochs

    a = tmp_path / "a.csv"
    a.write_text("epoch,lr,step,train_ce_epoch,val_ua\n0,0.1,0,,\n0,,0,2.0,\n0,,0,,0.5\n"
                 "1,,1,1.0,\n1,,1,,0.7\n")  # fmt: skip
    b = tmp_path / "b.csv"
    b.write_text("epoch,step,train_ce_epoch,val_ua\n0,0,4.0,0.3\n")
    tables = [read_epochs(a), read_epochs(b)]
    assert tables[0]["lr"] == {0: 0.1}
    epochs, mean, std = band(tables, "train_ce_epoch")
    assert epochs.tolist() == [1, 2] and mean.tolist() == [3.0, 1.0] and std.tolist() == [1.0, 0.0]
    out = plot_curves(tables, tmp_path / "curves.png", "t")
    assert out.read_bytes().startswith(PNG_MAGIC)
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n")
    with pytest.raises(ValueError, match="bad.csv.*epoch"):
        read_epochs(tmp_path / "bad.csv")


def test_tensorboard_logger_needs_its_extra(tmp_path, monkeypatch):
    import importlib.util

    from emodistill.training.common import make_loggers

    assert [type(x).__name__ for x in make_loggers(TrainerConfig(), tmp_path)] == ["CSVLogger"]
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec",
        lambda name, *a: None if name.startswith("tensorboard") else real(name, *a),
    )  # fmt: skip
    with pytest.raises(ImportError, match=r"emodistill\[tensorboard\]"):
        make_loggers(TrainerConfig(logger="tensorboard"), tmp_path)
    with pytest.raises(ValueError, match="trainer.logger.*csv, tensorboard.*'wandb'"):
        make_loggers(TrainerConfig(logger="wandb"), tmp_path)


def test_tensorboard_logger_writes_beside_the_csv_log(tmp_path):
    pytest.importorskip("tensorboard")
    from emodistill.training.common import make_loggers

    loggers = make_loggers(TrainerConfig(logger="tensorboard"), tmp_path)
    assert [type(x).__name__ for x in loggers] == ["CSVLogger", "TensorBoardLogger"]
    assert loggers[1].log_dir == str(tmp_path / "tensorboard")
