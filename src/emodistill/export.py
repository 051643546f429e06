"""ONNX export of the speech-only model, and the onnxruntime predictor that runs it.

The exported graph takes raw audio, exactly like the torch model:

    inputs   wav (B, N) float32, 16 kHz mono, zero-padded;  lengths (B,) int64 valid samples
    outputs  probabilities (B, C) float32 (softmax);  logits (B, C) float32

Batch and length axes are dynamic. The model folder's ``config.json`` (labels, sample rate,
encoder) is stored in the ONNX file's metadata under ``emodistill_config``, so an ``.onnx`` file
is usable on its own. After writing, the export checks that onnxruntime and torch agree on a
batch of clips of different lengths (max abs difference of probabilities < ``tolerance``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from emodistill.inference import ModelLoadError, pad_batch, read_config

#: Metadata key holding the model folder's config (minus the training config).
CONFIG_KEY = "emodistill_config"
INPUT_NAMES = ("wav", "lengths")
OUTPUT_NAMES = ("probabilities", "logits")


class ExportError(RuntimeError):
    """The export failed or its output disagrees with torch; the message says how."""


def _wrapper(module: Any):
    import torch

    class ProbabilitiesAndLogits(torch.nn.Module):
        """(wav (B, N), lengths (B,)) -> (probabilities (B, C), logits (B, C))."""

        def __init__(self, student: torch.nn.Module) -> None:
            super().__init__()
            self.student = student

        def forward(self, wav: torch.Tensor, lengths: torch.Tensor):
            logits = self.student(wav, lengths).logits
            return torch.softmax(logits, dim=-1), logits

    return ProbabilitiesAndLogits(module).eval()


def export_onnx(
    model_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    opset: int = 17,
    tolerance: float = 1e-4,
) -> dict[str, Any]:
    """Export a model folder to ONNX with dynamic batch and length axes.

    Args:
        model_dir: model folder (``config.json`` + ``model.safetensors``).
        out_path: ``.onnx`` file to write (atomically).
        opset: ONNX opset.
        tolerance: largest accepted |p_onnx - p_torch| on the check batch.

    Returns:
        ``{"path", "max_abs_diff", "opset"}``.

    Raises:
        ExportError: the export failed, or onnxruntime and torch disagree by more than
            ``tolerance``.
    """
    import warnings

    import torch

    from emodistill.models.student import load_student

    model_dir, out_path = Path(model_dir), Path(out_path)
    config = read_config(model_dir)
    module, _ = load_student(model_dir, map_location="cpu")
    wrapper = _wrapper(module.eval())
    sr = int(config.get("sample_rate", 16000))
    rng = np.random.default_rng(0)
    # Two clips of different lengths: the traced graph must not bake in either.
    example = pad_batch([0.1 * rng.standard_normal(n).astype(np.float32) for n in (sr, sr // 2)])
    args = (torch.from_numpy(example[0]), torch.from_numpy(example[1]))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            # The TorchScript-based exporter: no onnxscript dependency, and it keeps the
            # length-dependent slicing (Whisper positions, masks) dynamic.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                args,
                str(tmp),
                input_names=list(INPUT_NAMES),
                output_names=list(OUTPUT_NAMES),
                dynamic_axes={
                    "wav": {0: "batch", 1: "samples"},
                    "lengths": {0: "batch"},
                    "probabilities": {0: "batch"},
                    "logits": {0: "batch"},
                },
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        import onnx

        proto = onnx.load(str(tmp))
        meta = {k: v for k, v in config.items() if k != "training_config"}
        entry = proto.metadata_props.add()
        entry.key, entry.value = CONFIG_KEY, json.dumps(meta)
        onnx.save(proto, str(tmp))
        diff = parity(wrapper, tmp, sr)
        if diff > tolerance:
            raise ExportError(
                f"{out_path}: onnxruntime and torch disagree (max |dp| = {diff:.2e} > "
                f"{tolerance:.0e})"
            )
        os.replace(tmp, out_path)
    except ExportError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as err:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"{model_dir}: ONNX export failed: {type(err).__name__}: {err}") from err
    return {"path": str(out_path), "max_abs_diff": diff, "opset": opset}


def parity(wrapper: Any, onnx_path: str | os.PathLike, sample_rate: int = 16000) -> float:
    """Max |probabilities| difference, onnxruntime vs torch, on a batch of 3 unequal clips."""
    import torch

    rng = np.random.default_rng(1)
    clips = [
        0.1 * rng.standard_normal(int(s * sample_rate)).astype(np.float32) for s in (2.3, 0.7, 1.1)
    ]
    wav, lengths = pad_batch(clips)
    with torch.inference_mode():
        ref = wrapper(torch.from_numpy(wav), torch.from_numpy(lengths))[0].numpy()
    got = OnnxPredictor(onnx_path)(wav, lengths)
    return float(np.abs(ref - got).max())


class OnnxPredictor:
    """onnxruntime session for an exported model: ``(wav (B, N), lengths (B,)) -> probs (B, C)``.

    Args:
        path: the ``.onnx`` file.
        num_threads: intra-op threads (``None``: onnxruntime's default, one per core).
        device: ``cpu``, or ``cuda`` to prefer the CUDA provider when installed.
    """

    def __init__(
        self, path: str | os.PathLike, num_threads: int | None = None, device: str = "cpu"
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ModelLoadError(
                    f"device {device!r} requested but onnxruntime has no CUDA provider"
                )
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelLoadError(f"{self.path}: not a loadable ONNX model ({err})") from err
        meta = self.session.get_modelmeta().custom_metadata_map
        self.config: dict[str, Any] = json.loads(meta[CONFIG_KEY]) if CONFIG_KEY in meta else {}

    @property
    def labels(self) -> list[str]:
        return list(self.config.get("labels", []))

    def __call__(self, wav: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """wav (B, N) float32, lengths (B,) int64 -> probabilities (B, C) float32."""
        probs, _ = self.session.run(
            list(OUTPUT_NAMES),
            {"wav": np.ascontiguousarray(wav, np.float32), "lengths": lengths.astype(np.int64)},
        )
        return probs
