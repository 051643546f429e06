"""Metrics for speech emotion recognition: WA, UA, macro-F1 and the confusion matrix.

WA (weighted accuracy) is plain accuracy over utterances; UA (unweighted accuracy) is the mean
per-class recall (DESIGN.md section 2). Both come from torchmetrics so the same definitions hold
inside Lightning's DDP-synchronised validation loop and in offline evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassRecall,
)


def metric_collection(num_classes: int):
    """A torchmetrics ``MetricCollection`` with keys ``wa``, ``ua`` and ``f1``.

    Used by the Lightning modules (``update(preds (B,), target (B,))`` per batch, ``compute()``
    per epoch, DDP-safe).
    """
    from torchmetrics import MetricCollection

    return MetricCollection(
        {
            "wa": MulticlassAccuracy(num_classes, average="micro"),
            "ua": MulticlassRecall(num_classes, average="macro"),
            "f1": MulticlassF1Score(num_classes, average="macro"),
        }
    )


def compute_metrics(
    y_true: Sequence[int] | np.ndarray | torch.Tensor,
    y_pred: Sequence[int] | np.ndarray | torch.Tensor,
    num_classes: int,
) -> dict[str, Any]:
    """WA, UA, macro-F1 (floats in [0, 1]) and the confusion matrix (rows = true class).

    Args:
        y_true: (N,) integer class indices.
        y_pred: (N,) integer class indices (argmax of logits).
        num_classes: C; classes absent from ``y_true`` are left out of UA's mean (torchmetrics
            counts a class with no support as recall 0 otherwise, which would penalise folds whose
            test speaker lacks a class).

    Returns:
        ``{"wa": float, "ua": float, "f1": float, "confusion": list[list[int]] (C x C)}``.
    """
    target = torch.as_tensor(np.asarray(y_true), dtype=torch.long).reshape(-1)
    preds = torch.as_tensor(np.asarray(y_pred), dtype=torch.long).reshape(-1)
    if target.shape != preds.shape:
        raise ValueError(f"y_true has {target.numel()} items but y_pred has {preds.numel()}")
    if target.numel() == 0:
        nan = float("nan")
        return {"wa": nan, "ua": nan, "f1": nan, "confusion": [[0] * num_classes] * num_classes}
    wa = MulticlassAccuracy(num_classes, average="micro")(preds, target)
    # average="macro" with ignore of absent classes: torchmetrics' per-class recall, then mean
    # over the classes that occur in the targets.
    recall = MulticlassRecall(num_classes, average="none")(preds, target)
    present = torch.bincount(target, minlength=num_classes) > 0
    ua = recall[present].mean()
    f1 = MulticlassF1Score(num_classes, average="macro")(preds, target)
    confusion = MulticlassConfusionMatrix(num_classes)(preds, target)
    return {
        "wa": float(wa),
        "ua": float(ua),
        "f1": float(f1),
        "confusion": confusion.to(torch.long).tolist(),
    }


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and (population) standard deviation of per-fold values, ignoring NaNs."""
    arr = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if arr.size == 0:
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std())
