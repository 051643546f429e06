"""The speech-encoder interface every encoder implements (:class:`SpeechEncoder`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class EncoderError(ValueError):
    """A speech encoder that cannot be loaded or run; the message says which and why."""


def valid_mask(lengths: Tensor, size: int) -> Tensor:
    """(B, size) bool mask, True where index < lengths[b]."""
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]


class SpeechEncoder(nn.Module):
    """Common interface of every speech encoder.

    ``forward(wav (B, N) float32 at 16 kHz, lengths (B,) long)`` returns
    ``(hidden (B, T, H), frame_lengths (B,) long)``; frames at or beyond ``frame_lengths[b]``
    are padding. ``hidden_size`` is H.

    The same computation is also available in three stages, which partial fine-tuning uses to
    run (and cache) a frozen bottom once and train only the top layers::

        hidden, frame_lengths = embed(wav, lengths)          # front end -> input of layer 0
        hidden = run_layers(hidden, frame_lengths, i, j)      # transformer layers i .. j-1
        hidden = finish(hidden)                               # final layer norm, if any

    ``finish(run_layers(*embed(wav, lengths), 0, num_layers))`` equals ``forward`` in eval mode.
    ``freeze_bottom(k)`` freezes the front end and layers ``0 .. k-1`` and keeps them in eval
    mode (no dropout, no SpecAugment) even while the rest trains, so that their output is a
    deterministic function of the audio that may be cached.
    """

    hidden_size: int
    num_layers: int
    kind: str = "abstract"
    frozen_layers: int | None = None  # None: only what freeze_feature_encoder froze

    def forward(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover
        raise NotImplementedError

    def embed(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover
        """wav (B, N), lengths (B,) -> (input of layer 0 (B, T, H), frame_lengths (B,))."""
        raise NotImplementedError

    def run_layers(
        self, hidden: Tensor, frame_lengths: Tensor, start: int, stop: int
    ) -> Tensor:  # pragma: no cover
        """Transformer layers ``start .. stop-1`` on hidden (B, T, H) -> (B, T, H)."""
        raise NotImplementedError

    def finish(self, hidden: Tensor) -> Tensor:
        """What follows the last layer (a final layer norm for some models): (B, T, H)."""
        return hidden

    def bottom_modules(self) -> list[nn.Module]:  # pragma: no cover
        """The modules of :meth:`embed` (front end, stem, positional embedding)."""
        raise NotImplementedError

    def layer_modules(self) -> list[nn.Module]:  # pragma: no cover
        """The transformer layers, bottom first."""
        raise NotImplementedError

    def freeze_bottom(self, layers: int) -> None:
        """Freeze :meth:`embed` and the first ``layers`` transformer layers (0 .. num_layers);
        with ``num_layers`` the final :meth:`finish` is frozen too."""
        if not 0 <= layers <= self.num_layers:
            raise EncoderError(f"can freeze 0..{self.num_layers} layers, not {layers}")
        self.frozen_layers = int(layers)
        for module in self._frozen_modules():
            module.requires_grad_(False)
        self.train(self.training)

    def _frozen_modules(self) -> list[nn.Module]:
        if self.frozen_layers is None:
            return []
        mods = self.bottom_modules() + self.layer_modules()[: self.frozen_layers]
        if self.frozen_layers == self.num_layers:
            mods += self.finish_modules()
        return mods

    def finish_modules(self) -> list[nn.Module]:
        """The modules of :meth:`finish` (none by default)."""
        return []

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()  # frozen = deterministic: no dropout, no SpecAugment, no LayerDrop
        return self

    def config_dict(self) -> dict[str, Any]:  # pragma: no cover
        """JSON-serialisable description from which :func:`build_encoder_from_config` rebuilds
        the architecture."""
        raise NotImplementedError


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with requires_grad)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def parse_trainable_layers(value: Any, num_layers: int) -> int | None:
    """``student.trainable_layers`` -> number of trainable top layers (None = ``all``).

    ``all`` trains everything (except a frozen CNN front end); an integer N in 0..num_layers
    trains the top N layers (0 = frozen encoder, heads only).
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == "all"):
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"student.trainable_layers must be 'all' or an integer, got {value!r}"
        ) from None
    if not 0 <= n <= num_layers:
        raise ValueError(
            f"student.trainable_layers = {n}, but the encoder has {num_layers} layers "
            f"(0..{num_layers})"
        )
    return n
