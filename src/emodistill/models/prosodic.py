"""Prosodic teacher T_P: a 2D ResNet over eGeMAPS LLDs treated as a 1 x time x 25 image.

Variable lengths without padding leaking into the result: a time mask is carried through every
stride, padded frames are zeroed before every convolution (so a convolution at the last valid
frame sees exactly the zeros that its own zero padding would give an unpadded input), batch norm
computes its training statistics over valid frames only, and the final pooling averages valid
frames only. In eval mode an utterance therefore gives the same output alone or padded in a batch.

LLDs are normalised inside the network with per-descriptor mean/std fit on the fold's training
speakers; they are buffers, so they travel in the weights file.

A trained network is saved as a model folder (:mod:`emodistill.models.folder`: config + weights)
and loads back with :meth:`ProsodicResNet.from_pretrained`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emodistill.models.folder import (
    BadModelConfig,
    load_weights,
    read_config,
    weights_path,
    write_model_folder,
)

MODEL_TYPE = "emodistill-prosodic-resnet"
N_LLD = 25


@dataclass
class ProsodicNetConfig:
    """Architecture of a :class:`ProsodicResNet` (saved in its model folder's config)."""

    labels: list[str] = field(default_factory=list)
    channels: list[int] = field(default_factory=lambda: [16, 32, 64])
    blocks: list[int] = field(default_factory=lambda: [1, 1, 1])
    embedding_dim: int = 128
    dropout: float = 0.2
    n_lld: int = N_LLD
    stem_stride: int = 2  # time stride of the stem: 50 frames/s is plenty for prosody, 2x cheaper
    arch: str = "resnet"  # resnet (the paper's) | functionals (ProsodicFunctionals)

    @classmethod
    def from_prosodic_config(cls, cfg: Any, labels: Sequence[str]) -> ProsodicNetConfig:
        """From a :class:`emodistill.config.ProsodicConfig` and the label list."""
        return cls(
            labels=list(labels),
            channels=list(cfg.channels),
            blocks=list(cfg.blocks),
            embedding_dim=int(cfg.embedding_dim),
            dropout=float(cfg.dropout),
            arch=str(getattr(cfg, "arch", "resnet")),
        )


def _strided_lengths(lengths: torch.Tensor, stride: int) -> torch.Tensor:
    """Valid length after a kernel-3, padding-1 convolution with ``stride``: ceil(L / stride)."""
    return torch.div(lengths + stride - 1, stride, rounding_mode="floor")


def _time_mask(lengths: torch.Tensor, frames: int, dtype: torch.dtype) -> torch.Tensor:
    """(B, 1, T, 1) mask, 1 on valid frames."""
    steps = torch.arange(frames, device=lengths.device)
    return (steps[None, :] < lengths[:, None]).to(dtype)[:, None, :, None]


class MaskedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics ignore padded frames.

    ``forward(x (B, C, T, F), mask (B, 1, T, 1))``. In eval mode it is plain BatchNorm2d
    (running statistics), which is already independent of the batch.
    """

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        if not self.training or mask is None:
            return super().forward(x)
        # Under mixed precision the statistics and the running buffers stay float32, as in
        # PyTorch's own batch norm (einsum would otherwise run, and return, in bf16).
        with torch.autocast(x.device.type, enabled=False):
            return self._normalise(x.float(), mask.float())

    def _normalise(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Statistics over valid (batch, time) positions and all frequencies. The mask is
        # constant over frequency, so summing frequency first keeps the weighted sums at
        # (B, C, T) instead of full size (masked batch norm was half of a training step).
        m = mask[:, 0, :, 0]  # (B, T)
        n = (m.sum() * x.shape[3]).clamp_min(2.0)
        mean = torch.einsum("bct,bt->c", x.sum(dim=3), m) / n  # (C,)
        centred = x - mean[None, :, None, None]
        var = torch.einsum("bct,bt->c", centred.square().sum(dim=3), m) / n
        if self.track_running_stats:
            with torch.no_grad():
                momentum = 0.1 if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_((var * n / (n - 1)).detach(), momentum)
                self.num_batches_tracked += 1
        scale = torch.rsqrt(var + self.eps)
        if self.affine:
            scale = scale * self.weight
            return torch.addcmul(
                self.bias[None, :, None, None], centred, scale[None, :, None, None]
            )
        return centred * scale[None, :, None, None]


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convolutions) with a time mask; stride in time and frequency."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = MaskedBatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1, bias=False)
        self.bn2 = MaskedBatchNorm2d(out_ch)
        self.shortcut_conv: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.shortcut_conv = nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)
            self.shortcut_bn = MaskedBatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, C_in, T, F) with padded frames already zero -> (B, C_out, T', F'), lengths'."""
        out_lengths = _strided_lengths(lengths, self.stride)
        out = self.conv1(x)
        mask = _time_mask(out_lengths, out.shape[2], out.dtype)
        out = F.relu(self.bn1(out, mask)) * mask  # zero padding before the next convolution
        out = self.bn2(self.conv2(out), mask)
        if self.shortcut_conv is not None:
            skip = self.shortcut_bn(self.shortcut_conv(x), mask)
        else:
            skip = x
        return F.relu(out + skip) * mask, out_lengths


#: ``prosodic.arch`` values.
ARCHS = ("resnet", "functionals")


class ProsodicNet(nn.Module):
    """What every prosodic teacher network shares: the label list, the LLD normalisation
    buffers (fit on the training speakers), ``forward(llds (B, T, 25), lengths (B,)) ->
    (logits (B, C), e_P (B, embedding_dim))`` and its model folder."""

    config: ProsodicNetConfig

    def _init_common(self, config: ProsodicNetConfig) -> None:
        if not config.labels:
            raise ValueError("ProsodicNetConfig.labels is empty")
        self.config = config
        self.register_buffer("lld_mean", torch.zeros(config.n_lld))
        self.register_buffer("lld_std", torch.ones(config.n_lld))

    @property
    def embedding_dim(self) -> int:
        """d_P."""
        return self.config.embedding_dim

    @property
    def num_classes(self) -> int:
        return len(self.config.labels)

    def set_normalization(self, mean: Any, std: Any) -> None:
        """Store per-LLD mean/std (25,) fit on training speakers; std is floored at 1e-5."""
        mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std_t = torch.as_tensor(std, dtype=torch.float32).reshape(-1).clamp_min(1e-5)
        if mean_t.numel() != self.config.n_lld or std_t.numel() != self.config.n_lld:
            raise ValueError(f"normalisation stats must have {self.config.n_lld} values")
        self.lld_mean.copy_(mean_t)
        self.lld_std.copy_(std_t)

    # ------------------------------------------------------------------ persistence

    def save_pretrained(
        self, folder: str | Path, training_config: dict[str, Any] | None = None
    ) -> Path:
        """Write the model folder: config (with the LLD normalisation stats) and weights."""
        config: dict[str, Any] = {
            "model_type": MODEL_TYPE,
            "net": asdict(self.config),
            "labels": list(self.config.labels),
            "embedding_dim": self.embedding_dim,
            "lld_mean": self.lld_mean.tolist(),
            "lld_std": self.lld_std.tolist(),
        }
        if training_config is not None:
            config["training_config"] = training_config
        state = {k: v.detach().cpu().contiguous().clone() for k, v in self.state_dict().items()}
        return write_model_folder(folder, config, state)

    @classmethod
    def from_pretrained(cls, folder: str | Path, map_location: str = "cpu") -> ProsodicNet:
        """Load a network saved by :meth:`save_pretrained` (either arch), in eval mode."""
        folder = Path(folder)
        data = read_config(folder, MODEL_TYPE, "prosodic teacher")
        model = build_prosodic_net(ProsodicNetConfig(**data["net"]))
        state = load_weights(folder, device=map_location)
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise BadModelConfig(f"{weights_path(folder)}: weights do not match: {err}") from err
        return model.eval()


class ProsodicResNet(ProsodicNet):
    """2D ResNet over LLDs: stem -> stages of basic blocks -> masked pooling -> e_P -> classifier.

    The stem (3x3 convolution) strides time by ``stem_stride``; stage ``i`` has ``channels[i]``
    channels and ``blocks[i]`` blocks; every stage after the first halves time and frequency.
    Pooling: mean over frequency, then mean and standard deviation over valid time steps
    (2 x channels[-1]) -> linear -> embedding e_P (``embedding_dim``) -> ReLU -> dropout ->
    linear -> logits.
    """

    def __init__(self, config: ProsodicNetConfig):
        super().__init__()
        if len(config.channels) != len(config.blocks) or not config.channels:
            raise ValueError(
                f"channels {config.channels} and blocks {config.blocks} must be non-empty lists "
                "of the same length"
            )
        self._init_common(config)
        c0 = config.channels[0]
        self.stem = nn.Conv2d(1, c0, 3, stride=(config.stem_stride, 1), padding=1, bias=False)
        self.stem_bn = MaskedBatchNorm2d(c0)
        blocks: list[BasicBlock] = []
        in_ch = c0
        for i, (ch, n) in enumerate(zip(config.channels, config.blocks, strict=True)):
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(in_ch, ch, stride))
                in_ch = ch
        self.blocks = nn.ModuleList(blocks)
        self.embed = nn.Linear(2 * in_ch, config.embedding_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.embedding_dim, len(config.labels))

    def forward(
        self, llds: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Classify LLD sequences.

        Args:
            llds: (B, T, 25) raw eGeMAPS LLDs, zero- or anything-padded after each length.
            lengths: (B,) valid frames per item (None: all T frames are valid).

        Returns:
            logits (B, C) and the embedding e_P (B, embedding_dim).
        """
        b, t, _ = llds.shape
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.long, device=llds.device)
        lengths = lengths.to(llds.device).long().clamp(min=1, max=t)
        x = (llds - self.lld_mean) / self.lld_std
        mask = _time_mask(lengths, t, x.dtype)
        x = x.unsqueeze(1) * mask  # (B, 1, T, 25), padded frames exactly zero
        x = self.stem(x)
        lengths = _strided_lengths(lengths, self.config.stem_stride)
        mask = _time_mask(lengths, x.shape[2], x.dtype)
        x = F.relu(self.stem_bn(x, mask)) * mask
        for block in self.blocks:
            x, lengths = block(x, lengths)
        # (B, C, T', F') -> mean over frequency -> masked mean/std over valid time
        x = x.mean(dim=3)  # (B, C, T')
        valid = _time_mask(lengths, x.shape[2], x.dtype)[:, 0, :, 0]  # (B, T')
        count = valid.sum(dim=1, keepdim=True)  # (B, 1)
        mean = (x * valid[:, None]).sum(dim=2) / count
        var = ((x - mean[..., None]).pow(2) * valid[:, None]).sum(dim=2) / count
        pooled = torch.cat([mean, torch.sqrt(var + 1e-6)], dim=1)  # (B, 2C)
        emb = self.embed(pooled)
        logits = self.classifier(self.dropout(F.relu(emb)))
        return logits, emb


class ProsodicFunctionals(ProsodicNet):
    """Prosodic teacher over utterance statistics of the LLDs (``prosodic.arch: functionals``).

    The classic eGeMAPS recipe (functionals + a linear model: the baseline of docs/data.md)
    as a network with an embedding: per LLD, over the valid frames, the mean, standard
    deviation, 20th/50th/80th percentiles and the mean absolute frame-to-frame change
    (6 x 25 = 150 statistics) -> batch norm -> linear -> e_P (``embedding_dim``) -> ReLU ->
    dropout -> linear -> logits. Cheap (no convolution over time) and strong when emotion lives
    in utterance-level prosody; the ResNet can also read its time course.
    """

    QUANTILES = (0.2, 0.5, 0.8)

    def __init__(self, config: ProsodicNetConfig):
        super().__init__()
        self._init_common(config)
        n_stats = (3 + len(self.QUANTILES)) * config.n_lld
        self.stats_norm = nn.BatchNorm1d(n_stats)
        self.embed = nn.Linear(n_stats, config.embedding_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.embedding_dim, len(config.labels))

    def statistics(self, llds: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, 25) normalised LLDs, (B,) valid frames -> (B, 150) statistics."""
        b, t, f = llds.shape
        valid = _time_mask(lengths, t, llds.dtype)[:, 0]  # (B, T, 1)
        count = valid.sum(dim=1)  # (B, 1)
        mean = (llds * valid).sum(dim=1) / count
        var = ((llds - mean[:, None]).pow(2) * valid).sum(dim=1) / count
        step = (llds[:, 1:] - llds[:, :-1]).abs() * valid[:, 1:]
        delta = step.sum(dim=1) / (count - 1).clamp(min=1)
        ordered = _sorted_over_time(llds.masked_fill(valid == 0, float("inf")))
        quantiles = []
        for q in self.QUANTILES:
            idx = ((lengths - 1).clamp(min=0).float() * q).round().long()
            quantiles.append(ordered.gather(1, idx[:, None, None].expand(b, 1, f))[:, 0])
        return torch.cat([mean, torch.sqrt(var + 1e-6), *quantiles, delta], dim=1)

    def forward(
        self, llds: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """llds (B, T, 25) raw LLDs, lengths (B,) -> logits (B, C), e_P (B, embedding_dim)."""
        b, t, _ = llds.shape
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.long, device=llds.device)
        lengths = lengths.to(llds.device).long().clamp(min=1, max=t)
        x = (llds - self.lld_mean) / self.lld_std
        emb = self.embed(self.stats_norm(self.statistics(x, lengths)))
        logits = self.classifier(self.dropout(F.relu(emb)))
        return logits, emb


def build_prosodic_net(config: ProsodicNetConfig) -> ProsodicNet:
    """The network ``config.arch`` names, with random weights."""
    if config.arch == "resnet":
        return ProsodicResNet(config)
    if config.arch == "functionals":
        return ProsodicFunctionals(config)
    raise ValueError(f"prosodic.arch must be one of {ARCHS}, got {config.arch!r}")


def _sorted_over_time(x: torch.Tensor) -> torch.Tensor:
    """``x`` (B, T, F) sorted along T. The quantiles need no gradient (they are statistics of
    the input), so on the CPU NumPy sorts them: its vectorised sort took 0.7-1 ms where
    ``torch.sort`` took 11-14 ms for a (32, 300, 25) batch, half of the demo's prosodic
    teacher's training time. Traced or exported models, and tensors that need a gradient,
    keep ``torch.sort``."""
    plain = not (x.requires_grad or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export())
    if plain and x.device.type == "cpu" and x.dtype != torch.bfloat16:  # NumPy has no bf16
        return torch.from_numpy(np.sort(x.detach().numpy(), axis=1))
    return x.sort(dim=1).values
