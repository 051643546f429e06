"""The classic reference: eGeMAPS v02 functionals + a linear model, on the same folds as cv.

Per fold: 88 opensmile functionals per utterance (cached by :mod:`emodistill.features`),
standardised with statistics of the *training speakers only* (or per speaker, each speaker by
its own statistics: ``normalization="speaker"``), a linear classifier (logistic regression or a
linear SVM, class-balanced) whose C is chosen by UA on the fold's *validation speakers*, then
trained on the training + validation speakers (``refit``; training speakers only with
``refit=False``) and scored on the test speakers. A fold without validation
speakers (TESS's two speakers) uses ``default_c``.

Writes ``RUN/results.json`` in the cv format (:func:`emodistill.evaluation.report.aggregate`: keys
``folds``, ``mean``, ``std``, ``pooled``, ``labels``, ``confusion``), ``RUN/report.md``,
``RUN/confusion.png``, ``RUN/baseline.json`` (settings and the C chosen per fold) and per fold
``RUN/folds/<fold>/predictions.json`` (ids, y_true, y_pred).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emodistill.corpora.manifest import Manifest
from emodistill.corpora.splits import Fold, fold_utterances
from emodistill.evaluation.metrics import compute_metrics

CLASSIFIERS = ("logreg", "svm")
NORMALIZATIONS = ("global", "speaker")


@dataclass
class BaselineConfig:
    """Settings of the functionals baseline (every choice a field, saved in baseline.json)."""

    classifier: str = "logreg"  # logreg | svm (linear)
    c_values: list[float] = field(default_factory=lambda: [0.001, 0.01, 0.1, 1.0, 10.0])
    default_c: float = 0.1  # folds without validation speakers
    normalization: str = "global"  # global (training speakers' statistics) | speaker
    class_weight: str | None = "balanced"  # UA weighs every class equally; so does the loss
    # After choosing C, train the final model on training + validation speakers (still never
    # the test speakers). Demo corpus, 3 speaker groups: UA 54.9 with, 52.9 without.
    refit: bool = True
    max_iter: int = 5000

    def __post_init__(self) -> None:
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {self.classifier!r}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}"
            )
        if not self.c_values:
            raise ValueError("c_values must not be empty")


def functionals(
    manifest: Manifest, cache_dir: str | Path, workers: int = 1, progress: bool = False
) -> tuple[np.ndarray, list[int]]:
    """(N, 88) float64 eGeMAPS v02 functionals of the manifest's utterances, through the cache.

    Returns:
        ``(features, kept)``: rows for the utterances that have features, and their indices in
        ``manifest.utterances`` (files that could not be used are reported by the extractor).
    """
    from emodistill.features import extract_features, functional_settings

    store = extract_features(
        manifest, cache_dir, workers=workers, progress=progress, settings=functional_settings()
    )
    kept = [i for i, u in enumerate(manifest.utterances) if u.id in store]
    if not kept:
        raise ValueError(f"{manifest.path}: no utterance has usable audio for the baseline")
    rows = [np.asarray(store[manifest.utterances[i].id], dtype=np.float64)[0] for i in kept]
    return np.stack(rows), kept


def _standardize(
    x: np.ndarray, fit_rows: np.ndarray, speakers: np.ndarray, mode: str
) -> np.ndarray:
    """``global``: mean/std of ``fit_rows`` (the training speakers); ``speaker``: each speaker
    by its own statistics (labels are never used, but a test speaker's own features are)."""
    from sklearn.preprocessing import StandardScaler

    if mode == "global":
        return StandardScaler().fit(x[fit_rows]).transform(x)
    out = np.empty_like(x)
    for spk in np.unique(speakers):
        rows = speakers == spk
        out[rows] = StandardScaler().fit_transform(x[rows])
    return out


def _classifier(cfg: BaselineConfig, c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    if cfg.classifier == "svm":
        return LinearSVC(C=c, class_weight=cfg.class_weight, max_iter=cfg.max_iter)
    return LogisticRegression(C=c, class_weight=cfg.class_weight, max_iter=cfg.max_iter)


def _fit_predict(cfg: BaselineConfig, c: float, x, y, x_new) -> np.ndarray:
    """Fit on (x, y), predict ``x_new``; a training set of one class predicts that class (the
    linear models refuse to fit one class)."""
    classes = np.unique(y)
    if classes.size < 2:
        return np.full(len(x_new), classes[0] if classes.size else 0, dtype=np.int64)
    return _classifier(cfg, c).fit(x, y).predict(x_new)


def _ua(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    return compute_metrics(y_true, y_pred, num_classes)["ua"]


def run_fold(
    x: np.ndarray,
    y: np.ndarray,
    speakers: np.ndarray,
    parts: tuple[np.ndarray, np.ndarray, np.ndarray],
    num_classes: int,
    cfg: BaselineConfig,
) -> dict[str, Any]:
    """Choose C on the validation rows, train on the training (+ validation) rows, predict the
    test rows.

    Args:
        x: (N, F) features; y: (N,) class indices; speakers: (N,) speaker names.
        parts: boolean masks (N,) of the training, validation and test rows.

    Returns:
        ``{"y_true", "y_pred" (test rows, in order), "c", "val_ua" (per C tried)}``.
    """
    from threadpoolctl import threadpool_limits

    # A few hundred rows by a few hundred features: BLAS threads synchronise for longer than
    # they compute. On 2 cores the demo's probe took 98 s with numpy's default threads and 11 s
    # with one (same results to the digit; bench/probe_threads.py).
    with threadpool_limits(limits=1, user_api="blas"):
        return _run_fold(x, y, speakers, parts, num_classes, cfg)


def _run_fold(x, y, speakers, parts, num_classes: int, cfg: BaselineConfig) -> dict[str, Any]:
    train, val, test = parts
    xs = _standardize(x, train, speakers, cfg.normalization)
    val_ua: dict[str, float] = {}
    c = cfg.default_c
    if val.any():
        best = -1.0
        for value in cfg.c_values:  # ascending; a tie keeps the smaller (stronger-regularised) C
            pred = _fit_predict(cfg, value, xs[train], y[train], xs[val])
            val_ua[f"{value:g}"] = score = _ua(y[val], pred, num_classes)
            if score > best:
                best, c = score, value
    fit = train | val if cfg.refit else train
    if cfg.refit and val.any():
        xs = _standardize(x, fit, speakers, cfg.normalization)
    pred = _fit_predict(cfg, c, xs[fit], y[fit], xs[test])
    return {
        "y_true": y[test].tolist(),
        "y_pred": pred.astype(int).tolist(),
        "c": c,
        "val_ua": val_ua,
    }


def run_baseline(
    manifest: Manifest,
    folds: Sequence[Fold],
    out: str | Path,
    config: BaselineConfig | None = None,
    cache_dir: str | Path | None = None,
    workers: int = 1,
    progress: bool = False,
) -> dict[str, Any]:
    """Cross-validate the functionals baseline over ``folds``; write the run folder ``out``.

    Args:
        manifest: the loaded corpus (class indices = ``manifest.labels``).
        folds: the folds to run (from :func:`~emodistill.corpora.splits.make_folds`).
        out: run folder for results.json, report.md, confusion.png, baseline.json, folds/.
        cache_dir: feature cache (default: the manifest's, as for the LLDs).
        workers: opensmile processes for files not yet cached.

    Returns:
        The results dict written to ``results.json`` (cv format).
    """
    from emodistill.evaluation.report import aggregate, plot_confusion, results_markdown
    from emodistill.features import default_cache_dir
    from emodistill.runs.layout import (
        baseline_predictions_path,
        baseline_summary_path,
        confusion_path,
        report_path,
        results_path,
    )
    from emodistill.util.files import write_json_atomic, write_text_atomic

    cfg = config or BaselineConfig()
    out = Path(out)
    start = time.perf_counter()
    if cache_dir is None:
        if manifest.path is None:
            raise ValueError("a manifest without a path needs an explicit cache_dir")
        cache_dir = default_cache_dir(manifest.path)
    x, kept = functionals(manifest, cache_dir, workers=workers, progress=progress)
    utts = [manifest.utterances[i] for i in kept]
    ids = np.array([u.id for u in utts])
    y = np.array([manifest.label_index(u.label) for u in utts])
    speakers = np.array([u.speaker for u in utts])
    row_of = {uid: i for i, uid in enumerate(ids)}

    def mask(part) -> np.ndarray:
        m = np.zeros(len(ids), dtype=bool)
        m[[row_of[u.id] for u in part if u.id in row_of]] = True
        return m

    predictions: dict[str, dict[str, Any]] = {}
    chosen: dict[str, Any] = {}
    for fold in folds:
        train, val, test = (mask(p) for p in fold_utterances(manifest, fold))
        if not train.any() or not test.any():
            raise ValueError(f"fold {fold.id}: no training or no test utterances with features")
        result = run_fold(x, y, speakers, (train, val, test), len(manifest.labels), cfg)
        pred = {"ids": ids[test].tolist(), "y_true": result["y_true"], "y_pred": result["y_pred"]}
        write_json_atomic(baseline_predictions_path(out, fold.id), pred)
        predictions[fold.id] = pred
        chosen[fold.id] = {"c": result["c"], "val_ua": result["val_ua"]}
    results = aggregate(predictions, manifest.labels)
    seconds = time.perf_counter() - start
    write_json_atomic(results_path(out), results)
    write_json_atomic(
        baseline_summary_path(out),
        {
            "config": asdict(cfg),
            "features": "eGeMAPSv02 functionals (88)",
            "manifest": str(manifest.path),
            "folds": chosen,
            "seconds": seconds,
        },
    )
    name = "logistic regression" if cfg.classifier == "logreg" else "linear SVM"
    title = f"Baseline: eGeMAPS v02 functionals + {name}"
    scaling = {"global": "training speakers only", "speaker": "each speaker by its own"}
    notes = [
        f"Standardisation: {cfg.normalization} ({scaling[cfg.normalization]}); "
        f"C per fold chosen on the validation speakers from {cfg.c_values}: "
        + ", ".join(f"{k} {v['c']:g}" for k, v in chosen.items())
        + "."
    ]
    write_text_atomic(
        report_path(out), results_markdown(results, title, "egemaps-baseline", (), notes)
    )
    plot_confusion(results["confusion"], results["labels"], confusion_path(out), title)
    return results


def fold_ua(results: dict[str, Any]) -> dict[str, float]:
    """Fold id -> test UA of a results dict (baseline's or cv's), to pair systems per fold."""
    return {f["fold"]: f["ua"] for f in results["folds"]}
