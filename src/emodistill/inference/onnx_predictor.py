"""The onnxruntime predictor of an exported model (:mod:`emodistill.inference.onnx`), and the
graph's interface: input and output names, metadata keys.

    inputs   wav (B, N) float32;  lengths (B,) int64;  [speaker (B, 2, H) float32 [mu, sigma]]
    outputs  probabilities (B, C);  logits (B, C);  [clip_means (B, H)]

The bracketed ones exist only for a ``speaker_norm`` student. Its file also holds, under
``emodistill_speaker``, the training set's global statistics (mean, var, shrink), the pooled
encoder layer and the model fingerprint
(:func:`~emodistill.models.speaker_stats.model_fingerprint` of the torch student), so an
``.onnx`` file alone can enrol a speaker and predict with a profile.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from emodistill.models.folder import ModelLoadError
from emodistill.models.speaker_stats import GlobalStats, normaliser

#: Metadata key holding the model folder's config (minus the training config).
CONFIG_KEY = "emodistill_config"
#: Metadata key of a ``speaker_norm`` model's global statistics, layer and fingerprint (JSON).
SPEAKER_KEY = "emodistill_speaker"
INPUT_NAMES = ("wav", "lengths")
OUTPUT_NAMES = ("probabilities", "logits")
#: The extra input and output of a ``speaker_norm`` model's graph.
SPEAKER_INPUT = "speaker"
CLIP_MEANS_OUTPUT = "clip_means"


class OnnxPredictor:
    """onnxruntime session for an exported model, with the contract of
    :class:`~emodistill.inference.runner.TorchRunner`: ``(wav (B, N), lengths (B,)[, speaker
    (B, 2, H)]) -> probs (B, C)``; a ``speaker_norm`` model also has :meth:`clip_means`,
    :meth:`global_stats` and :meth:`fingerprint`.

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
        #: whether the graph takes a speaker normaliser (a ``speaker_norm`` student)
        self.speaker_norm = SPEAKER_INPUT in {i.name for i in self.session.get_inputs()}
        self._speaker: dict[str, Any] | None = None
        if self.speaker_norm:
            if SPEAKER_KEY not in meta:
                raise ModelLoadError(
                    f"{self.path}: takes a speaker input but holds no {SPEAKER_KEY} metadata "
                    "(global statistics); export it again with `emodistill export-onnx`"
                )
            self._speaker = json.loads(meta[SPEAKER_KEY])
            self._global = GlobalStats(
                np.asarray(self._speaker["mean"], np.float32),
                np.asarray(self._speaker["var"], np.float32),
                float(self._speaker["shrink"]),
            )
            # The normaliser fed when no speaker is given: what torch uses from its buffers.
            self._global_norm = normaliser(None, self._global)

    @property
    def labels(self) -> list[str]:
        return list(self.config.get("labels", []))

    def _require_speaker_norm(self, what: str) -> dict[str, Any]:
        if self._speaker is None:
            raise ValueError(f"{self.path}: {what}: this model was trained without speaker_norm")
        return self._speaker

    def _feeds(
        self, wav: np.ndarray, lengths: np.ndarray, speaker: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        feeds = {
            "wav": np.ascontiguousarray(wav, np.float32),
            "lengths": np.asarray(lengths).astype(np.int64),
        }
        if not self.speaker_norm:
            if speaker is not None:
                self._require_speaker_norm("a speaker normaliser was given")
            return feeds
        batch, size = feeds["wav"].shape[0], self._global_norm.shape[1]
        if speaker is None:  # the global statistics for every clip, like torch's speaker=None
            speaker = np.broadcast_to(self._global_norm, (batch, 2, size))
        if np.shape(speaker) != (batch, 2, size):
            raise ValueError(
                f"speaker must be (batch, 2, hidden) = ({batch}, 2, {size}), "
                f"got {np.shape(speaker)}"
            )
        feeds[SPEAKER_INPUT] = np.ascontiguousarray(speaker, np.float32)
        return feeds

    def __call__(
        self, wav: np.ndarray, lengths: np.ndarray, speaker: np.ndarray | None = None
    ) -> np.ndarray:
        """wav (B, N) float32, lengths (B,) int64, speaker (B, 2, H) float32 ``[mu, sigma]``
        (``speaker_norm`` models; None: the training set's global statistics) -> probabilities
        (B, C) float32."""
        (probs,) = self.session.run([OUTPUT_NAMES[0]], self._feeds(wav, lengths, speaker))
        return probs

    def clip_means(self, wav: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """wav (B, N) float32, lengths (B,) int64 -> (B, H) float32: each clip's mean over its
        valid frames of the pooled layer, before speaker normalisation (enrolment)."""
        self._require_speaker_norm("clip means")
        (means,) = self.session.run([CLIP_MEANS_OUTPUT], self._feeds(wav, lengths, None))
        return means

    def global_stats(self) -> GlobalStats:
        """The training set's :class:`~emodistill.models.speaker_stats.GlobalStats` (stored in
        the file at export)."""
        self._require_speaker_norm("global statistics")
        return self._global

    @property
    def layer(self) -> int:
        """The pooled encoder layer (what a speaker profile's statistics are of)."""
        return int(self._require_speaker_norm("layer")["layer"])

    def fingerprint(self) -> str:
        """The torch student's :func:`~emodistill.models.speaker_stats.model_fingerprint`,
        stored at export: a profile enrolled with the model folder works with its ONNX file."""
        return str(self._require_speaker_norm("fingerprint")["fingerprint"])


__all__ = [
    "CLIP_MEANS_OUTPUT",
    "CONFIG_KEY",
    "INPUT_NAMES",
    "OUTPUT_NAMES",
    "SPEAKER_INPUT",
    "SPEAKER_KEY",
    "OnnxPredictor",
]
