"""What runs the network in :class:`emodistill.inference.model.EmoDistill`: a :data:`Runner`
(padded batch in, probabilities out); :class:`TorchRunner` for the torch backend (the onnxruntime
one is :class:`emodistill.inference.onnx.OnnxPredictor`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from emodistill.models.folder import ModelLoadError

#: (wav (B, N) float32, lengths (B,) int64) -> probabilities (B, C) float32; a runner of a
#: ``speaker_norm`` model (:class:`TorchRunner`) also takes ``speaker`` (B, 2, H) float32.
Runner = Callable[..., np.ndarray]


class TorchRunner:
    """Runs an ``EmoDistillStudent`` under ``torch.inference_mode`` and returns softmax probs."""

    def __init__(self, module: Any, device: str = "cpu") -> None:
        import torch

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ModelLoadError(f"device {device!r} requested but CUDA is not available")
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()

        self._fingerprint: str | None = None

    def __call__(
        self, wav: np.ndarray, lengths: np.ndarray, speaker: np.ndarray | None = None
    ) -> np.ndarray:
        """wav (B, N) float32, lengths (B,) int64, speaker (B, 2, H) float32 ``[mu, sigma]``
        (``speaker_norm`` models; None: the training set's global statistics) -> probabilities
        (B, C) float32."""
        import torch

        with torch.inference_mode():
            arrays = [wav, lengths] + ([] if speaker is None else [speaker.astype(np.float32)])
            out = self.module(*(torch.from_numpy(a).to(self.device) for a in arrays))
            logits = out.logits if hasattr(out, "logits") else out[0]
            return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    def clip_means(self, wav: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """wav (B, N) float32, lengths (B,) int64 -> (B, H) float32: each clip's mean over its
        valid frames of the pooled layer, before speaker normalisation."""
        import torch

        with torch.inference_mode():
            means = self.module.clip_means(
                torch.from_numpy(wav).to(self.device), torch.from_numpy(lengths).to(self.device)
            )
            return means.float().cpu().numpy()

    def global_stats(self) -> Any:
        """The training set's :class:`~emodistill.models.speaker_stats.GlobalStats`."""
        return self.module.global_stats()

    @property
    def layer(self) -> int:
        """The pooled encoder layer (what a speaker profile's statistics are of)."""
        return int(self.module.depth)

    def fingerprint(self) -> str:
        """:func:`~emodistill.models.speaker_stats.model_fingerprint` of the network (cached)."""
        if self._fingerprint is None:
            from emodistill.models.speaker_stats import model_fingerprint

            self._fingerprint = model_fingerprint(self.module)
        return self._fingerprint
