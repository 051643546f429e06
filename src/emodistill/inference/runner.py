"""What runs the network in :class:`emodistill.inference.model.EmoDistill`: a :data:`Runner`
(padded batch in, probabilities out); :class:`TorchRunner` for the torch backend (the onnxruntime
one is :class:`emodistill.inference.onnx.OnnxPredictor`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from emodistill.models.folder import ModelLoadError

#: (wav (B, N) float32, lengths (B,) int64[, speaker (B, 2, H) float32]) -> probabilities
#: (B, C) float32; a runner of a ``speaker_norm`` model also has ``clip_means(wav, lengths)``
#: -> (B, H) and ``global_stats()`` (docs/speaker.md)
Runner = Callable[..., np.ndarray]


class TorchRunner:
    """Runs an ``EmoDistillStudent`` under ``torch.inference_mode`` and returns softmax probs."""

    def __init__(self, module: Any, device: str = "cpu") -> None:
        import torch

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ModelLoadError(f"device {device!r} requested but CUDA is not available")
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()

    def __call__(
        self, wav: np.ndarray, lengths: np.ndarray, speaker: np.ndarray | None = None
    ) -> np.ndarray:
        """wav (B, N) float32, lengths (B,) int64, speaker (B, 2, H) float32 ``[mu, sigma]``
        (``speaker_norm`` models; None: the training set's statistics) -> probabilities
        (B, C) float32."""
        import torch

        args = [torch.from_numpy(wav).to(self.device), torch.from_numpy(lengths).to(self.device)]
        if speaker is not None:
            args.append(torch.from_numpy(np.asarray(speaker, np.float32)).to(self.device))
        with torch.inference_mode():
            out = self.module(*args)
            logits = out.logits if hasattr(out, "logits") else out[0]
            return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    def clip_means(self, wav: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """(B, H) float32 clip means of the pooled layer (what speaker statistics are made of)."""
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(wav).to(self.device), torch.from_numpy(lengths).to(self.device)
            return self.module.clip_means(*x).float().cpu().numpy()

    def global_stats(self):
        """The model's :class:`~emodistill.models.speaker_stats.GlobalStats`."""
        return self.module.global_stats()

    def fingerprint(self) -> str:
        """:func:`~emodistill.models.speaker_stats.model_fingerprint` of the module (cached)."""
        if getattr(self, "_fingerprint", None) is None:
            from emodistill.models.speaker_stats import model_fingerprint

            self._fingerprint = model_fingerprint(self.module)
        return self._fingerprint
