"""What runs the network in :class:`emodistill.inference.model.EmoDistill`: a :data:`Runner`
(padded batch in, probabilities out); :class:`TorchRunner` for the torch backend (the onnxruntime
one is :class:`emodistill.inference.onnx.OnnxPredictor`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from emodistill.models.folder import ModelLoadError

#: (wav (B, N) float32, lengths (B,) int64) -> probabilities (B, C) float32
Runner = Callable[[np.ndarray, np.ndarray], np.ndarray]


class TorchRunner:
    """Runs an ``EmoDistillStudent`` under ``torch.inference_mode`` and returns softmax probs."""

    def __init__(self, module: Any, device: str = "cpu") -> None:
        import torch

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ModelLoadError(f"device {device!r} requested but CUDA is not available")
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()

    def __call__(self, wav: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """wav (B, N) float32, lengths (B,) int64 -> probabilities (B, C) float32."""
        import torch

        with torch.inference_mode():
            out = self.module(
                torch.from_numpy(wav).to(self.device), torch.from_numpy(lengths).to(self.device)
            )
            logits = out.logits if hasattr(out, "logits") else out[0]
            return torch.softmax(logits.float(), dim=-1).cpu().numpy()
