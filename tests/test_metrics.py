"""WA, UA and macro-F1 against hand-computed values: one definition for validation and test."""

from __future__ import annotations

import math

import pytest
import torch

from emodistill.evaluation.metrics import SERMetrics, compute_metrics, scores_from_confusion
from emodistill.evaluation.report import aggregate, aggregate_runs

# 4 classes; class 3 never occurs in the targets but is predicted once.
Y_TRUE = [0, 0, 0, 0, 1, 1, 2, 2]
Y_PRED = [0, 0, 0, 1, 1, 3, 2, 0]
# Confusion (rows = true): [3 1 0 0] [0 1 0 1] [1 0 1 0] [0 0 0 0]
WA = 5 / 8
UA = (3 / 4 + 1 / 2 + 1 / 2) / 3  # over the present classes 0, 1, 2 (not / 4 with a 0)
# F1 per class = 2 tp / (support + predicted), over classes in targets or predictions:
F1 = (2 * 3 / (4 + 4) + 2 * 1 / (2 + 2) + 2 * 1 / (2 + 1) + 0.0) / 4


def test_hand_computed_scores_with_an_absent_class():
    m = compute_metrics(Y_TRUE, Y_PRED, 4)
    assert m["confusion"] == [[3, 1, 0, 0], [0, 1, 0, 1], [1, 0, 1, 0], [0, 0, 0, 0]]
    assert m["wa"] == pytest.approx(WA)
    assert m["ua"] == pytest.approx(UA)  # 0.5833, not 0.4375
    assert m["f1"] == pytest.approx(F1)


def test_matches_scikit_learn():
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    m = compute_metrics(Y_TRUE, Y_PRED, 4)
    assert m["wa"] == pytest.approx(accuracy_score(Y_TRUE, Y_PRED))
    assert m["ua"] == pytest.approx(recall_score(Y_TRUE, Y_PRED, labels=[0, 1, 2], average="macro"))
    assert m["f1"] == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="macro"))


def test_validation_metric_is_the_test_metric():
    # Lightning's validation metric (batched updates, DDP-summed counts) selects checkpoints
    # on the same UA the test folds report.
    metric = SERMetrics(4)
    metric.update(torch.tensor(Y_PRED[:3]), torch.tensor(Y_TRUE[:3]))
    metric.update(torch.tensor(Y_PRED[3:]), torch.tensor(Y_TRUE[3:]))
    got = {k: float(v) for k, v in metric.compute().items()}
    assert got == pytest.approx({"wa": WA, "ua": UA, "f1": F1})
    metric.reset()
    metric.update(torch.tensor([1]), torch.tensor([1]))
    assert float(metric.compute()["ua"]) == 1.0


def test_empty_is_nan():
    m = compute_metrics([], [], 3)
    assert all(math.isnan(m[k]) for k in ("wa", "ua", "f1"))
    assert m["confusion"] == [[0, 0, 0]] * 3
    assert math.isnan(scores_from_confusion(torch.zeros(2, 2))["ua"])


def test_mean_over_folds_differs_from_pooled():
    # Fold a: 2 utterances, both right. Fold b: 6 utterances of classes 0/1, 3 right.
    labels = ["n", "h"]
    a = {"y_true": [0, 1], "y_pred": [0, 1]}
    b = {"y_true": [0, 0, 0, 0, 1, 1], "y_pred": [0, 0, 1, 1, 0, 1]}
    res = aggregate({"a": a, "b": b}, labels)
    # b: recall 2/4 and 1/2 -> UA 0.5; mean over folds (1.0 + 0.5) / 2 = 0.75
    assert [f["ua"] for f in res["folds"]] == pytest.approx([1.0, 0.5])
    assert res["mean"]["ua"] == pytest.approx(0.75)
    assert res["std"]["ua"] == pytest.approx(0.25)  # population std over folds
    # pooled: class 0 3/5 right, class 1 2/3 -> (0.6 + 0.6667) / 2; WA 5/8
    assert res["pooled"]["ua"] == pytest.approx((3 / 5 + 2 / 3) / 2)
    assert res["pooled"]["wa"] == pytest.approx(5 / 8)
    assert res["confusion"] == [[3, 2], [1, 2]]


def test_seeds_average_within_a_fold_before_the_mean():
    labels = ["n", "h"]
    right = {"y_true": [0, 1], "y_pred": [0, 1]}
    wrong = {"y_true": [0, 1], "y_pred": [1, 0]}
    res = aggregate_runs(
        {("a", 0): right, ("a", 1): wrong, ("b", 0): right, ("b", 1): right}, labels
    )
    assert [f["ua"] for f in res["folds"]] == pytest.approx([0.5, 1.0])
    assert res["mean"]["ua"] == pytest.approx(0.75)
    assert res["seeds"] == [0, 1] and len(res["runs"]) == 4
    assert res["pooled"]["wa"] == pytest.approx(6 / 8)
