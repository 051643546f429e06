"""TeacherModule: the LightningModule that trains either teacher (beside the student's)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from emodistill.config import OptimConfig
from emodistill.evaluation.metrics import SERMetrics
from emodistill.training.common import (
    configure_adamw,
)


class TeacherModule(L.LightningModule):
    """Cross-entropy training of an injected teacher network, validated on UA.

    Args:
        net: ``LinguisticTeacher`` or ``ProsodicResNet``: ``net(**batch["inputs"])`` returns
            (logits (B, C), embedding (B, D)).
        optim: learning rate, weight decay, warm-up ratio.
        num_steps: optimizer steps of the whole run (for the LR schedule).
        class_weights: (C,) cross-entropy weights, or None.
    """

    def __init__(
        self,
        net: nn.Module,
        optim: OptimConfig,
        num_steps: int,
        num_classes: int,
        class_weights: torch.Tensor | None = None,
    ):
        super().__init__()
        self.net = net
        self.optim = optim
        self.num_steps = num_steps
        if class_weights is not None:
            self.register_buffer("class_weights", class_weights.float())
        else:
            self.class_weights = None
        self.val_metrics = SERMetrics(num_classes)

    def forward(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(**inputs)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        logits, _ = self(batch["inputs"])
        loss = F.cross_entropy(logits.float(), batch["labels"], weight=self.class_weights)
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        logits, _ = self(batch["inputs"])
        loss = F.cross_entropy(logits.float(), batch["labels"])
        self.log("val_loss", loss, on_epoch=True, prog_bar=False, sync_dist=True)
        self.val_metrics.update(logits.argmax(dim=1), batch["labels"])

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute()
        self.log_dict({f"val_{k}": v for k, v in values.items()}, prog_bar=True)
        self.val_metrics.reset()

    def configure_optimizers(self):
        return configure_adamw(self.net.parameters(), self.optim, self.num_steps)
