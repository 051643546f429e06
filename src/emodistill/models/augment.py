"""Training-only augmentation of a student's frames, cheap enough to run on cached states.

With a frozen (cached) encoder bottom the audio cannot be augmented without recomputing the
cache, so the augmentation acts on the frame states that enter the pooling instead:

* **time masking** leaves up to ``time_mask`` of each clip's valid frames, in two random spans,
  out of the pooling (the pooling's keep mask; at least one frame always stays);
* **channel masking** zeroes ``channel_mask`` of the hidden channels, drawn per clip.

Mixup of two clips and their targets needs the loss and lives in the training module
(:class:`emodistill.training.module.StudentModule`). Everything here is a no-op in eval mode:
the student calls it only while training, and it holds no weights.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from emodistill.models.encoders import valid_mask

#: Spans per clip of the time mask (SpecAugment uses two).
TIME_MASK_SPANS = 2


class StateAugment(nn.Module):
    """``forward(hidden (B, T, H), lengths (B,)) -> (hidden (B, T, H), keep (B, T) bool)``.

    ``keep`` is False on padded frames and on masked ones; ``hidden`` keeps its shape (masked
    channels are zero). Randomness comes from torch's global generator, which the training
    module re-seeds at every epoch start (a resumed run draws the same masks).
    """

    def __init__(self, time_mask: float = 0.0, channel_mask: float = 0.0):
        super().__init__()
        for name, value in (("time_mask", time_mask), ("channel_mask", channel_mask)):
            if not 0.0 <= float(value) < 1.0:
                raise ValueError(f"student.augment.{name} must be in [0, 1), got {value}")
        self.time_mask = float(time_mask)
        self.channel_mask = float(channel_mask)

    @property
    def active(self) -> bool:
        return self.time_mask > 0 or self.channel_mask > 0

    def forward(self, hidden: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        b, t, h = hidden.shape
        keep = valid_mask(lengths, t)
        if not self.training:
            return hidden, keep
        if self.time_mask > 0:
            steps = torch.arange(t, device=hidden.device)[None, :]
            span_max = (lengths.float() * self.time_mask / TIME_MASK_SPANS).clamp(min=0)
            masked = torch.zeros_like(keep)
            for _ in range(TIME_MASK_SPANS):
                width = (torch.rand(b, device=hidden.device) * (span_max + 1)).floor().long()
                room = (lengths - width).clamp(min=1)
                start = (torch.rand(b, device=hidden.device) * room).floor().long()
                masked |= (steps >= start[:, None]) & (steps < (start + width)[:, None])
            dropped = keep & ~masked
            # a clip never loses every frame
            keep = torch.where(dropped.any(dim=1, keepdim=True), dropped, keep)
        if self.channel_mask > 0:
            on = (torch.rand(b, 1, h, device=hidden.device) >= self.channel_mask).to(hidden.dtype)
            hidden = hidden * on
        return hidden, keep


def mixup_lambda(alpha: float) -> float:
    """A mixing weight from Beta(alpha, alpha), folded to >= 0.5 (the first clip dominates)."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    return max(lam, 1.0 - lam)


__all__ = ["StateAugment", "TIME_MASK_SPANS", "mixup_lambda"]
