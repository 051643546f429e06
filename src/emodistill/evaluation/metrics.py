"""Metrics for speech emotion recognition: WA, UA, macro-F1 and the confusion matrix.

One definition, used everywhere (validation inside Lightning, test folds, reports, baselines):
all three come from the C x C confusion matrix ``M`` (rows = true class) of one set of
utterances, by :func:`scores_from_confusion`:

* WA (weighted accuracy) = trace(M) / sum(M): plain accuracy over utterances.
* UA (unweighted accuracy) = mean, over the classes **present in the targets**, of their recall
  M[c, c] / sum(M[c, :]) (docs/results.md). A class absent from a fold's test speakers is
  left out, not counted as recall 0: a fold would otherwise be penalised for its speakers'
  label mix.
* macro-F1 = mean, over the classes present in the targets **or** the predictions, of
  2 M[c, c] / (sum(M[c, :]) + sum(M[:, c])) (scikit-learn's default label set).

Mean over folds vs pooled: ``report.aggregate`` gives both, the mean of the per-fold values
(the paper's protocol) and the same scores on the summed confusion matrix of all folds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.classification import MulticlassConfusionMatrix


def scores_from_confusion(confusion: np.ndarray | torch.Tensor) -> dict[str, float]:
    """WA, UA and macro-F1 (floats in [0, 1]; NaN for an empty matrix) from (C, C) counts."""
    m = torch.as_tensor(np.asarray(confusion), dtype=torch.float64)
    total = m.sum()
    if total == 0:
        nan = float("nan")
        return {"wa": nan, "ua": nan, "f1": nan}
    hits = m.diagonal()
    support = m.sum(dim=1)  # true count per class
    predicted = m.sum(dim=0)
    present = support > 0
    seen = present | (predicted > 0)
    f1 = 2 * hits[seen] / (support[seen] + predicted[seen])
    return {
        "wa": float(hits.sum() / total),
        "ua": float((hits[present] / support[present]).mean()),
        "f1": float(f1.mean()),
    }


class SERMetrics(Metric):
    """WA, UA and macro-F1 as one torchmetrics ``Metric`` (DDP-synchronised confusion counts).

    ``update(preds (B,), target (B,))`` per batch, ``compute()`` -> ``{"wa", "ua", "f1"}``
    (0-d tensors) by :func:`scores_from_confusion`, so validation selects checkpoints on the
    same UA that test folds report.
    """

    full_state_update = False

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.add_state(
            "confusion",
            default=torch.zeros(num_classes, num_classes, dtype=torch.long),
            dist_reduce_fx="sum",
        )

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        idx = target.reshape(-1).long() * self.num_classes + preds.reshape(-1).long()
        counts = torch.bincount(idx, minlength=self.num_classes**2)
        self.confusion += counts.reshape(self.num_classes, self.num_classes).to(self.confusion)

    def compute(self) -> dict[str, torch.Tensor]:
        scores = scores_from_confusion(self.confusion.cpu())
        return {k: torch.tensor(v, dtype=torch.float32) for k, v in scores.items()}


def compute_metrics(
    y_true: Sequence[int] | np.ndarray | torch.Tensor,
    y_pred: Sequence[int] | np.ndarray | torch.Tensor,
    num_classes: int,
) -> dict[str, Any]:
    """WA, UA, macro-F1 (floats in [0, 1]) and the confusion matrix (rows = true class).

    Args:
        y_true: (N,) integer class indices.
        y_pred: (N,) integer class indices (argmax of logits).
        num_classes: C.

    Returns:
        ``{"wa": float, "ua": float, "f1": float, "confusion": list[list[int]] (C x C)}``, the
        scores as defined in this module's docstring (NaN for no utterances).
    """
    target = torch.as_tensor(np.asarray(y_true), dtype=torch.long).reshape(-1)
    preds = torch.as_tensor(np.asarray(y_pred), dtype=torch.long).reshape(-1)
    if target.shape != preds.shape:
        raise ValueError(f"y_true has {target.numel()} items but y_pred has {preds.numel()}")
    if target.numel() == 0:
        confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    else:
        confusion = MulticlassConfusionMatrix(num_classes)(preds, target).to(torch.long)
    return {**scores_from_confusion(confusion), "confusion": confusion.tolist()}


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and (population) standard deviation of per-fold values, ignoring NaNs."""
    arr = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if arr.size == 0:
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std())
