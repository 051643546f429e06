"""Which fold's EmoDistill student a run hands out as its speech-only model (``emodistill
demo``'s ``OUT/model``, ``emodistill pick-model``, the recipes), and why."""

from __future__ import annotations

from pathlib import Path

from emodistill.runs.layout import predictions_path, results_path, student_dir
from emodistill.util.files import read_json


def run_fold_ids(run_dir: str | Path) -> list[str]:
    """The folds of a run's EmoDistill students, in the order its results.json lists them
    (the folds' order), else every fold folder with a student, sorted."""
    results = results_path(run_dir)
    if results.is_file():
        folds = [f["fold"] for f in read_json(results).get("folds", []) if "fold" in f]
        if folds:
            return folds
    folders = sorted(p.name for p in Path(run_dir).iterdir() if p.is_dir())
    return [name for name in folders if predictions_path(run_dir, name).is_file()]


def deployable_fold(run_dir: str | Path, fold_ids: list[str] | None = None) -> tuple[str, str]:
    """(fold id, why) of the student to deploy: the best validation UA (ties: the first fold);
    the first fold when the students trained on their validation speakers
    (``student.train_on_validation``: the validation UA is then a training score). Test
    speakers never choose.

    Raises:
        FileNotFoundError: the run has no trained EmoDistill student.
    """
    fold_ids = run_fold_ids(run_dir) if fold_ids is None else list(fold_ids)
    trained = [f for f in fold_ids if predictions_path(run_dir, f).is_file()]
    if not trained:
        raise FileNotFoundError(
            f"{run_dir}: no trained EmoDistill student (no <fold>/student/predictions.json); "
            "run `emodistill cv` first"
        )
    best, best_ua = trained[0], float("-inf")
    for fid in trained:
        pred = read_json(predictions_path(run_dir, fid))
        if pred.get("trained_on_validation"):
            return trained[0], "the first fold: its validation speakers were trained on"
        ua = pred.get("val_ua")
        if ua is not None and ua > best_ua:
            best, best_ua = fid, float(ua)
    return best, "best validation UA"


def deployable_student(run_dir: str | Path) -> tuple[Path, str, str]:
    """(student folder, fold id, why) of :func:`deployable_fold`."""
    fold, why = deployable_fold(run_dir)
    return student_dir(run_dir, fold), fold, why
