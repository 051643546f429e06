"""``student.train_on_validation``: the student trains on the training and the validation
speakers (as the linear probe refits on both), keeps its last epoch, and the ``student`` teacher
weighting still compares the teachers with a plain student whose validation UA is held out."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_distill import _fold, fresh_run, one_thread, prepared  # noqa: F401 - fixtures


def test_train_on_validation_needs_the_last_epoch():
    from emodistill.config import load_config

    cfg = load_config("demo")
    assert cfg.student.train_on_validation is True and cfg.student.select == "last"
    assert load_config("paper-hubert-base").student.train_on_validation is False
    with pytest.raises(ValueError, match="train_on_validation needs student.select: last"):
        cfg.override({"student.select": "best"})


def _spy_training_ids(monkeypatch) -> list[list[str]]:
    """The utterance ids of every training dataset the student stage builds."""
    import emodistill.training.distill as distill_mod

    seen: list[list[str]] = []
    real = distill_mod.DistillDataset

    def spy(utts, *args, **kwargs):
        if args[2]:  # train=True
            seen.append(sorted(u.id for u in utts))
        return real(utts, *args, **kwargs)

    monkeypatch.setattr(distill_mod, "DistillDataset", spy)
    return seen


def test_the_student_trains_on_the_validation_speakers_too(prepared, tmp_path, monkeypatch):  # noqa: F811
    from emodistill.corpora.splits import fold_utterances
    from emodistill.runs.layout import predictions_path
    from emodistill.training.distill import distill

    m, fold = _fold(prepared)
    train, val, _ = fold_utterances(m, fold)
    seen = _spy_training_ids(monkeypatch)
    base = prepared["config"].override({"student": {"select": "last", "optim": {"epochs": 1}}})
    with one_thread():
        for flag, run in ((False, "off"), (True, "on")):
            cfg = base.override({"student.train_on_validation": flag})
            out = fresh_run(prepared, tmp_path / run)
            distill(m, fold, cfg, out, "no_teachers", progress=False)
            pred = json.loads(predictions_path(tmp_path / run, fold.id, "no_teachers").read_text())
            assert pred["trained_on_validation"] is flag
    assert seen[0] == sorted(u.id for u in train)
    assert seen[1] == sorted(u.id for u in train + val) and len(val) > 0


def test_student_weighting_compares_teachers_with_a_held_out_plain_student(
    prepared,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    from emodistill.config.variants import HELDOUT_PLAIN
    from emodistill.corpora.splits import fold_utterances
    from emodistill.models.student_folder import load_student
    from emodistill.runs.layout import predictions_path, student_dir
    from emodistill.training.distill import distill

    m, fold = _fold(prepared)
    train, val, _ = fold_utterances(m, fold)
    seen = _spy_training_ids(monkeypatch)
    cfg = prepared["config"].override(
        {
            "student": {"select": "last", "train_on_validation": True, "optim": {"epochs": 1}},
            "distill": {"teacher_weighting": "student"},
        }
    )
    run = fresh_run(prepared, tmp_path / "run")
    with one_thread():
        full = distill(m, fold, cfg, run, "full", progress=False)
    # first the held-out plain student (training speakers only), then EmoDistill on both
    assert seen == [sorted(u.id for u in train), sorted(u.id for u in train + val)]
    held = json.loads(predictions_path(run, fold.id, HELDOUT_PLAIN).read_text())
    assert held["trained_on_validation"] is False
    assert full["student_val_ua"] == pytest.approx(held["val_ua"])
    assert full["trained_on_validation"] is True
    _, config = load_student(student_dir(run, fold.id, HELDOUT_PLAIN))
    assert config["training_config"]["student"]["train_on_validation"] is False
    # the plain variant of the run itself is not the held-out one: it trains on both
    assert not predictions_path(run, fold.id, "no_teachers").exists()


def test_the_demo_model_is_not_chosen_on_a_validation_ua_that_was_trained_on(tmp_path):
    from emodistill.runs.deployable import deployable_fold
    from emodistill.runs.layout import predictions_path

    def write(fold, val_ua, trained):
        path = predictions_path(tmp_path, fold)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"val_ua": val_ua, "trained_on_validation": trained}))

    write("g1", 0.5, False)
    write("g2", 0.9, False)
    assert deployable_fold(tmp_path, ["g1", "g2"]) == ("g2", "best validation UA")
    write("g1", 0.5, True)
    write("g2", 1.0, True)
    fold, why = deployable_fold(tmp_path, ["g1", "g2"])
    assert fold == "g1" and "trained on" in why


def test_a_student_no_teacher_teaches_trains_as_the_plain_one(prepared, tmp_path, monkeypatch):  # noqa: F811
    """Every teacher weighted 0 by the teacher weighting: the EmoDistill student keeps the plain
    schedule (`distill.epochs` is a taught student's), so it is the plain student of its seed;
    a second run reuses it."""
    import emodistill.training.distill as distill_mod
    from emodistill.runs.layout import predictions_path

    monkeypatch.setattr(
        distill_mod, "teacher_weights", lambda rule, val_ua, *a: dict.fromkeys(val_ua, 0.0)
    )
    m, fold = _fold(prepared)
    cfg = prepared["config"].override(
        {"student.select": "last", "distill": {"epochs": 3, "teacher_weighting": "student"}}
    )
    assert cfg.student.optim.epochs == 2
    run = fresh_run(prepared, tmp_path / "run")
    with one_thread():
        full = distill_mod.distill(m, fold, cfg, run, "full", progress=False)
        plain = distill_mod.distill(m, fold, cfg, run, "no_teachers", progress=False)
    assert full["teacher_weights"] == {"linguistic": 0.0, "prosodic": 0.0}
    assert full["epochs_run"] == plain["epochs_run"] == 2
    assert np.allclose(full["probabilities"], plain["probabilities"], atol=1e-6)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished student was trained again")

    monkeypatch.setattr(distill_mod, "_student_fit", no_training)
    again = distill_mod.distill(m, fold, cfg, run, "full", progress=False)
    assert again == json.loads(predictions_path(run, fold.id, "full").read_text())
