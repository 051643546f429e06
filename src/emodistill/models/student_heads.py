"""The student's trainable top, once per member: pooling, batch norm of the pooled vector, the two
projection heads and the classifier (docs/student.md, "Student" and "Members"), with the
output type and the head dimensions saved in a model folder."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from emodistill.models.encoders import valid_mask
from emodistill.models.pooling import (
    CONV_CHANNELS,
    CONV_STRIDE,
    AttentionPool,
    ConvPool,
    masked_mean,
    pooled_size,
    weighted_stats,
)


class StudentOutput(NamedTuple):
    """logits (B, C); emb_linguistic (B, d_L) = e^_L; emb_prosodic (B, d_P) = e^_P.

    A student of several members returns their combination (:func:`combine_members`); each
    member's own output, which the training loss is computed on, comes with ``members=True``.
    """

    logits: Tensor
    emb_linguistic: Tensor
    emb_prosodic: Tensor


def combine_members(outs: list[StudentOutput]) -> StudentOutput:
    """The ensemble of member outputs: log of the mean softmax (B, C), mean embeddings."""
    probs = torch.stack([o.logits.float().softmax(dim=-1) for o in outs]).mean(dim=0)
    return StudentOutput(
        probs.clamp_min(torch.finfo(probs.dtype).tiny).log(),
        torch.stack([o.emb_linguistic for o in outs]).mean(dim=0),
        torch.stack([o.emb_prosodic for o in outs]).mean(dim=0),
    )


def ffn(d_in: int, d_hidden: int, d_out: int, dropout: float) -> nn.Sequential:
    """Linear -> GELU -> Dropout -> Linear."""
    return nn.Sequential(
        nn.Linear(d_in, d_hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_hidden, d_out)
    )


@dataclass(frozen=True)
class StudentDims:
    """The student's head dimensions and options: saved as ``"heads"`` in its config, rebuilt
    from there (the encoder is described beside it, under ``"encoder"``).

    >>> dims = StudentDims(num_labels=4, d_linguistic=384, d_prosodic=128)
    >>> StudentDims.from_dict(dims.to_dict()) == dims
    True
    """

    num_labels: int
    d_linguistic: int
    d_prosodic: int
    projection_hidden: int = 256
    classifier_hidden: int = 256
    dropout: float = 0.1
    pooling: str = "mean"
    layer_weights: bool = False
    trainable_layers: int | None = None
    layer_norm: bool = False
    pooled_norm: bool = False
    pool_layer: int | None = None
    speaker_norm: bool = False
    speaker_shrink: float = 2.0
    conv_channels: int = CONV_CHANNELS
    conv_stride: int = CONV_STRIDE
    members: int = 1

    def to_dict(self) -> dict[str, Any]:
        """The ``"heads"`` entry of a config."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudentDims:
        """From a config's ``"heads"`` entry (an unknown key is refused)."""
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown student head key(s) {sorted(unknown)}")
        return cls(**data)


class HeadSet(nn.Module):
    """One member's trainable top: pooling (when it has weights), the optional batch norm of
    the pooled vector, the two projection heads and the classifier (docs/student.md)."""

    def __init__(self, dims: StudentDims, hidden_size: int) -> None:
        super().__init__()
        self.pool: nn.Module | None = None
        if dims.pooling.startswith("attention"):
            self.pool = AttentionPool(hidden_size, stats=dims.pooling == "attention_stats")
        elif dims.pooling.startswith("conv"):
            self.pool = ConvPool(
                hidden_size,
                dims.conv_channels,
                stride=dims.conv_stride,
                with_mean=dims.pooling == "conv_mean",
            )
        p = pooled_size(dims.pooling, hidden_size, dims.conv_channels)
        self.pooled_norm = nn.BatchNorm1d(p) if dims.pooled_norm else None
        self.proj_linguistic = ffn(p, dims.projection_hidden, dims.d_linguistic, dims.dropout)
        self.proj_prosodic = ffn(p, dims.projection_hidden, dims.d_prosodic, dims.dropout)
        self.classifier = ffn(
            dims.d_linguistic + dims.d_prosodic,
            dims.classifier_hidden,
            dims.num_labels,
            dims.dropout,
        )


def pool_with(
    m: nn.Module, pooling: str, hidden: Tensor, frame_lengths: Tensor, keep: Tensor | None
) -> Tensor:
    """Frames (B, T, H) -> the pooled vector (B, P) of member ``m`` (a student or HeadSet)."""
    if m.pool is not None:
        return m.pool(hidden, frame_lengths, keep)
    if pooling == "stats":
        if keep is None:
            keep = valid_mask(frame_lengths, hidden.shape[1])
        w = keep.to(hidden.dtype)
        return weighted_stats(hidden, w / w.sum(dim=1, keepdim=True).clamp(min=1.0))
    return masked_mean(hidden, frame_lengths, keep)


def heads_with(m: nn.Module, pooled: Tensor) -> StudentOutput:
    """Member ``m``'s heads on its pooled vector (B, P)."""
    if m.pooled_norm is not None:
        pooled = m.pooled_norm(pooled)
    e_l = m.proj_linguistic(pooled)
    e_p = m.proj_prosodic(pooled)
    logits = m.classifier(torch.cat([e_l, e_p], dim=-1))
    return StudentOutput(logits, e_l, e_p)
