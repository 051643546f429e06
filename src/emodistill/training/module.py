"""The LightningModule that trains an injected student with the EmoDistill loss."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor

from emodistill.config import TEACHER_KINDS, DistillConfig, OptimConfig
from emodistill.evaluation.metrics import SERMetrics
from emodistill.training.common import configure_adamw, student_param_groups

#: Terms of Eq. 5 logged as epoch means (``train_<term>_epoch``), beside the total
#: (``train_loss``, per step and per epoch).
LOGGED_TERMS = ("ce", "kd", "embedding")


class StudentModule(L.LightningModule):
    """Trains an injected student with :func:`~emodistill.models.losses.emodistill_loss`.

    Args:
        student: ``forward(wav (B, N), lengths (B,)) -> StudentOutput(logits (B, C),
            emb_linguistic (B, d_L), emb_prosodic (B, d_P))``.
        distill_cfg: loss coefficients, temperatures and switches.
        optim: AdamW settings (lr, weight decay, warm-up ratio).
        num_classes: C.
        logit_teachers: teachers whose logits enter L_KD (others keep their embedding term).
        class_weights: optional (C,) cross-entropy weights.
        teacher_weights: per-teacher factors on its KD and embedding terms (teacher-aware
            distillation; None = 1 for both).
        mixup: Beta(mixup, mixup) mixup of pairs of training clips (their audio or cached
            frames) and of their targets; 0 = off. Validation never mixes.
        seed: dropout randomness is re-seeded from ``(seed, epoch, rank)`` at each epoch start,
            so a resumed run continues exactly as an uninterrupted one.
    """

    def __init__(
        self,
        student: torch.nn.Module,
        distill_cfg: DistillConfig,
        optim: OptimConfig,
        num_classes: int,
        logit_teachers: Sequence[str] = TEACHER_KINDS,
        class_weights: Tensor | None = None,
        seed: int = 0,
        teacher_weights: Mapping[str, float] | None = None,
        mixup: float = 0.0,
    ) -> None:
        super().__init__()
        self.mixup = float(mixup)
        self.student = student
        self.distill_cfg = distill_cfg
        self.optim = optim
        self.num_classes = int(num_classes)
        self.logit_teachers = tuple(logit_teachers)
        self.seed = int(seed)
        self.teacher_weights = dict(teacher_weights) if teacher_weights else None
        self.register_buffer(
            "class_weights", None if class_weights is None else class_weights.float()
        )
        self.val_metrics = SERMetrics(num_classes)
        # A frozen bottom is the pretrained encoder's, rebuilt by build_student: checkpoints
        # leave it out (tens of MB written every epoch otherwise) and load without it.
        self.frozen_keys = frozen_state_keys(student, prefix="student.")
        self.strict_loading = not self.frozen_keys

    def forward(self, wav: Tensor, lengths: Tensor):
        return self.student(wav, lengths)

    def run_student(
        self, batch: Mapping[str, Any], members: bool = False, member: int | None = None
    ):
        """The student's output on a batch of audio, or of cached frozen-bottom outputs; with
        ``members`` (a student of several members only) the list of each member's output, with
        ``member`` = k member k's alone."""
        kw: dict[str, Any] = {"members": True} if members else {}
        if member is not None:
            kw["member"] = member
        if "prefix" in batch:
            return self.student.from_prefix(batch["prefix"], batch["frame_lengths"], **kw)
        return self.student(batch["wav"], batch["lengths"], batch.get("speaker"), **kw)

    def _train_outputs(self, batch: Mapping[str, Any]):
        """What the training loss is computed on: the output, or each member's."""
        return self.run_student(batch, members=getattr(self.student, "num_members", 1) > 1)

    def loss(self, batch: Mapping[str, Any]):
        """The EmoDistill loss of a batch (``LossOutput``: total + terms)."""
        return self._loss_of(self._train_outputs(batch), batch)

    def mixup_loss(self, batch: Mapping[str, Any]):
        """Mixup: the student sees lam * x + (1 - lam) * x[perm] (frames or audio, lengths the
        longer of the two) and the loss is lam * L(targets) + (1 - lam) * L(targets[perm]) --
        for the KL terms the same gradient as distilling from the mixed teacher distribution."""
        n = getattr(self.student, "num_members", 1)
        if n == 1:
            return self._mixup_loss(batch)
        # Each member draws its own mixing partners and lambda: an ensemble's members learn
        # from different views of the batch, as they would from different runs.
        return mean_loss([self._mixup_loss(batch, member=k) for k in range(n)])

    def _mixup_loss(self, batch: Mapping[str, Any], member: int | None = None):
        from emodistill.models.augment import mixup_lambda
        from emodistill.models.losses import LossOutput

        lam = mixup_lambda(self.mixup)
        labels = batch["labels"]
        perm = torch.randperm(labels.shape[0], device=labels.device)
        key, lengths = ("prefix", "frame_lengths") if "prefix" in batch else ("wav", "lengths")
        mixed = dict(batch)
        # In place on the gathered copy: the same products and sum, rounded the same way, as
        # lam * x + (1 - lam) * x[perm], without two more batch-sized temporaries (a third of a
        # demo step's mixing time).
        partner = batch[key][perm]
        mixed[key] = partner.mul_(1.0 - lam).add_(lam * batch[key])
        mixed[lengths] = torch.maximum(batch[lengths], batch[lengths][perm])
        other = {
            "labels": labels[perm],
            "teacher_logits": {k: v[perm] for k, v in batch["teacher_logits"].items()},
            "teacher_emb": {k: v[perm] for k, v in batch["teacher_emb"].items()},
        }
        out = self.run_student(mixed, member=member)
        a, b = self._loss_of(out, batch), self._loss_of(out, other)
        terms = {k: lam * a.terms[k] + (1.0 - lam) * b.terms[k] for k in a.terms}
        return LossOutput(lam * a.total + (1.0 - lam) * b.total, terms)

    def _loss_of(self, out, batch: Mapping[str, Any]):
        """The loss of a student output; of a list of members' outputs, the mean of each
        member's own loss (an ensemble whose members learn on their own, not one model of their
        mean output)."""
        if not isinstance(out, list):
            return self._member_loss(out, batch)
        return mean_loss([self._member_loss(m, batch) for m in out])

    def _member_loss(self, out, batch: Mapping[str, Any]):
        from emodistill.models.losses import emodistill_loss

        teacher_logits = {
            k: v for k, v in batch["teacher_logits"].items() if k in self.logit_teachers
        }
        student_emb = {"linguistic": out.emb_linguistic, "prosodic": out.emb_prosodic}
        return emodistill_loss(
            out.logits,
            batch["labels"],
            self.distill_cfg,
            teacher_logits=teacher_logits,
            teacher_emb=dict(batch["teacher_emb"]),
            student_emb=student_emb,
            class_weights=self.class_weights,
            teacher_weights=self.teacher_weights,
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("state_dict", {})
        for key in self.frozen_keys:
            state.pop(key, None)

    def load_trained_state(self, state: Mapping[str, Tensor]) -> None:
        """Load a checkpoint's state dict; only frozen-bottom keys may be missing from it."""
        missing, unexpected = self.load_state_dict(state, strict=False)
        bad = sorted(set(missing) - set(self.frozen_keys)) + sorted(unexpected)
        if bad:
            raise ValueError(f"checkpoint does not match the student: {bad[:5]}")

    def on_train_epoch_start(self) -> None:
        # Dropout draws from torch's global generator: tie it to the epoch, not to history.
        torch.manual_seed(_mix(self.seed, self.current_epoch, self.global_rank))
        self._term_sums: dict[str, Tensor | float] = dict.fromkeys(LOGGED_TERMS, 0.0)
        self._term_count = 0

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        out = self.mixup_loss(batch) if self.mixup > 0 else self.loss(batch)
        bs = int(batch["labels"].shape[0])
        self.log("train_loss", out.total, prog_bar=True, on_step=True, on_epoch=True, batch_size=bs)
        # The terms' epoch means are summed here and logged once an epoch: a Lightning log
        # call costs about a millisecond, 5 % of a demo student's run at four per step.
        for name in LOGGED_TERMS:
            self._term_sums[name] = self._term_sums[name] + out.terms[name].detach() * bs
        self._term_count += bs
        return out.total

    def on_train_epoch_end(self) -> None:
        # ``train_<term>_epoch`` columns of metrics.csv, the batch-size-weighted epoch means
        # (what on_epoch logging gives): the report's curves.png draws them.
        if self._term_count:
            for name in LOGGED_TERMS:
                mean = self._term_sums[name] / self._term_count
                self.log(f"train_{name}_epoch", mean, on_step=False, on_epoch=True)

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        out = self.run_student(batch)
        valid = batch["valid"]
        preds = out.logits.argmax(dim=-1)
        if bool(valid.any()):  # a DDP padding batch has no valid item (torchmetrics refuses empty)
            self.val_metrics.update(preds[valid], batch["labels"][valid])

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute()  # synchronised over DDP ranks by torchmetrics
        self.val_metrics.reset()
        for key, value in values.items():
            self.log(f"val_{key}", value, prog_bar=key == "ua", sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        groups = student_param_groups(self.student, self.optim)
        return configure_adamw(groups, self.optim, int(self.trainer.estimated_stepping_batches))


def mean_loss(losses: Sequence[Any]):
    """The mean of several members' ``LossOutput`` (total and every term)."""
    from emodistill.models.losses import LossOutput

    terms = {k: torch.stack([x.terms[k] for x in losses]).mean() for k in losses[0].terms}
    return LossOutput(torch.stack([x.total for x in losses]).mean(), terms)


def _mix(*parts: int) -> int:
    """A 63-bit seed from integers (stable across processes, unlike ``hash``)."""
    digest = hashlib.sha256(",".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def frozen_state_keys(student: torch.nn.Module, prefix: str = "") -> set[str]:
    """State-dict keys of the student's frozen encoder bottom (empty when none is frozen)."""
    encoder = getattr(student, "encoder", None)
    if encoder is None or getattr(encoder, "frozen_layers", None) is None:
        return set()
    frozen_ids = {
        id(t) for m in encoder._frozen_modules() for t in m.state_dict(keep_vars=True).values()
    }
    return {
        prefix + name
        for name, t in student.state_dict(keep_vars=True).items()
        if id(t) in frozen_ids
    }
