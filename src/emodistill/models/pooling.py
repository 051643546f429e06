"""Pooling frames (B, T, H) over the valid ones into one vector per utterance: mean, additive
attention, and their [mean, std] variants (``POOLINGS``). Padded frames never count, so a clip
pools the same alone or padded in a batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


#: The ``conv`` pooling's temporal CNN: channels, kernel and the first layer's stride. With
#: Whisper's 20 ms frames, the first layer sees 140 ms and the second 7 frames of 40 ms: about
#: 380 ms, a short word; the stride halves the cost of the second layer and of the pooling.
CONV_CHANNELS = 128
CONV_KERNEL = 7
CONV_STRIDE = 2

#: mean / attention: one H-vector per utterance (the paper's mean, or additive attention);
#: stats / attention_stats: [mean, std] (2H), uniform or attention-weighted over the frames;
#: conv: [mean, max] over time of a small temporal CNN (:class:`ConvPool`, 2 * CONV_CHANNELS).
POOLINGS = ("mean", "attention", "stats", "attention_stats", "conv", "conv_mean")


def pooled_size(pooling: str, hidden_size: int, conv_channels: int = CONV_CHANNELS) -> int:
    """Width of the pooled vector for ``pooling`` (``conv_channels``: :class:`ConvPool`'s)."""
    if pooling == "conv":
        return 2 * conv_channels
    if pooling == "conv_mean":
        return hidden_size + 2 * conv_channels
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


class ConvPool(nn.Module):
    """Keyword-spotting pooling (``pooling: conv``): two temporal convolutions over the valid
    frames (the first strided), then [masked mean, masked max] over time.

    Mean or attention pooling of a frozen speech encoder averages a few emotional words away
    among the other frames; a convolution followed by a max over time answers "does any stretch
    of the clip look like X", which is what a word detector does (KWS-style CNNs).

    ``with_mean`` (``pooling: conv_mean``) puts the plain masked mean of the input frames in
    front, so the heads see what a linear probe sees beside the keyword detectors.

    ``forward(hidden (B, T, H), lengths (B,), keep=None) -> (B, 2 * CONV_CHANNELS)`` (``(B, H +
    2 * CONV_CHANNELS)`` with ``with_mean``). Invalid
    frames (padding, and frames ``keep`` drops) are zeroed before each convolution and excluded
    from mean and max, so a clip pools the same alone (the convolution's own zero padding) or
    padded in a batch.
    """

    def __init__(
        self,
        hidden_size: int,
        channels: int = CONV_CHANNELS,
        kernel: int = CONV_KERNEL,
        stride: int = CONV_STRIDE,
        with_mean: bool = False,
    ):
        super().__init__()
        if kernel % 2 == 0:
            # Same-length padding and the packed layout both need a centre frame.
            raise ValueError(f"ConvPool kernel must be odd, got {kernel}")
        self.with_mean = with_mean
        pad = kernel // 2
        self.stride = stride
        self.conv1 = nn.Conv1d(hidden_size, channels, kernel, stride=stride, padding=pad)
        self.conv2 = nn.Conv1d(channels, channels, kernel, padding=pad)

    def forward(self, hidden: Tensor, lengths: Tensor, keep: Tensor | None = None) -> Tensor:
        if keep is None:
            keep = valid_mask(lengths, hidden.shape[1])
        frames_mean = masked_mean(hidden, lengths, keep) if self.with_mean else None
        # Output frame j of the first layer is centred on input frame stride * j (odd kernel,
        # same-length padding): it is valid where that frame is.
        out_keep = keep[:, :: self.stride]
        if hidden.shape[0] > 1 and not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()):
            x = self._convolve_packed(hidden, lengths, keep, out_keep)
        else:
            x = self._convolve_padded(hidden, keep, out_keep)
        mean = masked_mean(x.transpose(1, 2), lengths, out_keep)
        # A time mask may keep only odd frames, which the stride drops: such a row has no
        # valid output frame, and its max falls back to 0 (its mean already is 0).
        peak = x.masked_fill(~out_keep[:, None, :], float("-inf")).amax(dim=2)
        peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
        if frames_mean is not None:
            return torch.cat([frames_mean, mean, peak], dim=-1)
        return torch.cat([mean, peak], dim=-1)

    def _convolve_padded(self, hidden: Tensor, keep: Tensor, out_keep: Tensor) -> Tensor:
        """The two convolutions over the padded batch: (B, T, H) -> (B, C, T_out)."""
        x = hidden * keep.to(hidden.dtype)[:, :, None]
        x = F.gelu(self.conv1(x.transpose(1, 2)))
        # An output frame is valid where its centre input frame is: every valid input frame
        # of a clip alone is valid padded in a batch, and nothing beyond it. Zero the others
        # before the second layer: the first one's output beyond a clip's end is its bias,
        # where a clip alone sees the convolution's zeros.
        return F.gelu(self.conv2(x * out_keep.to(x.dtype)[:, None, :]))

    def _convolve_packed(
        self, hidden: Tensor, lengths: Tensor, keep: Tensor, out_keep: Tensor
    ) -> Tensor:
        """The same convolutions over the batch's clips laid end to end, without their padding
        (a third of the frames of random batches of the demo's clips): (B, T, H) -> (B, C,
        T_out), equal to :meth:`_convolve_padded` on every valid output frame.

        Each clip starts at an offset the stride divides and is followed by zeros wide enough
        that neither layer's kernel reaches the next clip: it sees exactly what it sees alone.
        """
        frames = hidden.shape[1]
        half = self.conv2.kernel_size[0] // 2
        length = lengths.clamp(min=0, max=frames)
        valid = valid_mask(length, frames)
        n_out = (length + self.stride - 1) // self.stride
        # The second layer's kernel reaches `half` outputs past a clip's last one: that many
        # zero outputs, i.e. stride * half zero inputs, which also cover the first layer's.
        span = self.stride * (n_out + half)
        start = torch.cumsum(span, 0) - span
        total = int(span.sum())
        steps = torch.arange(frames, device=hidden.device)
        packed = hidden.new_zeros(total, hidden.shape[2])
        packed[(start[:, None] + steps)[valid]] = (
            hidden[valid] * keep[valid].to(hidden.dtype)[:, None]
        )
        x = F.gelu(self.conv1(packed.t()[None]))[0]  # (C, total / stride)
        n_packed = x.shape[1]
        out_steps = steps[: out_keep.shape[1]]
        at = start[:, None] // self.stride + out_steps  # (B, T_out) packed output positions
        is_out = out_steps[None, :] < n_out[:, None]
        mask = x.new_zeros(n_packed)
        mask[at[is_out]] = out_keep[is_out].to(x.dtype)
        x = F.gelu(self.conv2((x * mask)[None]))[0]
        # Positions past a clip's outputs are read from the gap (or the next clip) and masked
        # out of the mean and max by out_keep, as the padded path's are.
        return x[:, at.clamp(max=n_packed - 1)].permute(1, 0, 2)
