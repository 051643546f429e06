"""Pooling frames (B, T, H) over the valid ones into one vector per utterance: mean, additive
attention, and their [mean, std] variants (``POOLINGS``). Padded frames never count, so a clip
pools the same alone or padded in a batch."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from emodistill.models.encoders import valid_mask


def masked_mean(hidden: Tensor, lengths: Tensor, keep: Tensor | None = None) -> Tensor:
    """Mean of hidden (B, T, H) over the first lengths[b] frames -> (B, H).

    ``keep`` (B, T) bool, if given, replaces the length mask (frames a time mask dropped).
    """
    if keep is None:
        keep = valid_mask(lengths, hidden.shape[1])
    mask = keep.to(hidden.dtype)[:, :, None]
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def weighted_stats(hidden: Tensor, weights: Tensor) -> Tensor:
    """Weighted mean and standard deviation over frames: hidden (B, T, H), weights (B, T)
    summing to 1 over each row's frames -> (B, 2H) = [mean, std]."""
    w = weights[:, :, None]
    mean = (w * hidden).sum(dim=1)
    var = (w * (hidden - mean[:, None, :]).square()).sum(dim=1)
    return torch.cat([mean, var.clamp(min=1e-6).sqrt()], dim=-1)


#: mean / attention: one H-vector per utterance (the paper's mean, or additive attention);
#: stats / attention_stats: [mean, std] (2H), uniform or attention-weighted over the frames.
POOLINGS = ("mean", "attention", "stats", "attention_stats")


def pooled_size(pooling: str, hidden_size: int) -> int:
    """Width of the pooled vector for ``pooling``."""
    return 2 * hidden_size if pooling.endswith("stats") else hidden_size


class AttentionPool(nn.Module):
    """Additive attention pooling: score_t = w^T tanh(W h_t); softmax over valid frames.

    ``forward(hidden (B, T, H), lengths (B,), keep=None) -> (B, H)`` (``(B, 2H)`` = weighted
    mean and std with ``stats=True``); padded frames (and frames ``keep`` drops) get weight 0,
    so the result does not depend on padding.
    """

    def __init__(self, hidden_size: int, attention_hidden: int = 128, stats: bool = False):
        super().__init__()
        self.stats = stats
        self.score = nn.Sequential(
            nn.Linear(hidden_size, attention_hidden), nn.Tanh(), nn.Linear(attention_hidden, 1)
        )

    def forward(self, hidden: Tensor, lengths: Tensor, keep: Tensor | None = None) -> Tensor:
        if keep is None:
            keep = valid_mask(lengths, hidden.shape[1])
        scores = self.score(hidden).squeeze(-1).float()
        scores = scores.masked_fill(~keep, float("-inf"))
        weights = torch.softmax(scores, dim=1).to(hidden.dtype)
        if self.stats:
            return weighted_stats(hidden, weights)
        return torch.einsum("bt,bth->bh", weights, hidden)
