"""The ``speaker_norm`` part of an ONNX export (:mod:`emodistill.inference.onnx`): the wrapper
whose graph takes each clip's speaker normaliser and also returns the clip means, the metadata
that lets the file alone enrol and predict, and the normalisers the export is checked with."""

from __future__ import annotations

from typing import Any

import numpy as np


def speaker_wrapper(module: Any):
    """The export wrapper of a ``speaker_norm`` student (eval mode); ``.network`` is the
    student."""
    import torch

    class ForwardAndMeans(torch.nn.Module):
        """The student's logits (B, C) and clip means (B, H) from one run of its encoder
        (its forward and its ``clip_means`` would put the encoder into the graph twice)."""

        def __init__(self, student: torch.nn.Module) -> None:
            super().__init__()
            self.student = student

        def forward(self, wav: torch.Tensor, lengths: torch.Tensor, speaker: torch.Tensor):
            from emodistill.models.pooling import masked_mean

            s = self.student
            hidden, frame_lengths = s.pooled_states(wav, lengths)
            means = masked_mean(hidden, frame_lengths, None)
            logits = s._pool_heads(s.normalise(hidden, speaker), frame_lengths).logits
            return logits, means

    class WithSpeaker(torch.nn.Module):
        """(wav (B, N), lengths (B,), speaker (B, 2, H)) -> (probabilities (B, C), logits
        (B, C), clip_means (B, H)) of a ``speaker_norm`` student."""

        speaker_norm = True

        def __init__(self, student: torch.nn.Module) -> None:
            super().__init__()
            # Called ``student`` (and called, unlike the student itself) so the graph's node
            # names are the plain export's, /student/encoder/...: int8 finds the encoder by them.
            self.student = ForwardAndMeans(student)

        @property
        def network(self) -> torch.nn.Module:
            return self.student.student

        def forward(self, wav: torch.Tensor, lengths: torch.Tensor, speaker: torch.Tensor):
            logits, means = self.student(wav, lengths, speaker)
            return torch.softmax(logits, dim=-1), logits, means

    return WithSpeaker(module).eval()


def speaker_metadata(module: Any) -> dict[str, Any]:
    """What the file's :data:`~emodistill.inference.onnx_predictor.SPEAKER_KEY` metadata holds
    for a ``speaker_norm`` student: ``"mean"``, ``"var"`` (H,) float32 lists, ``"shrink"``,
    ``"layer"`` (the pooled encoder layer) and ``"fingerprint"``
    (:func:`~emodistill.models.speaker_stats.model_fingerprint` of the torch student)."""
    from emodistill.models.speaker_stats import model_fingerprint

    glob = module.global_stats()
    return {
        # float32 -> Python float -> JSON -> float32 gives every value back exactly
        "mean": np.asarray(glob.mean, np.float32).tolist(),
        "var": np.asarray(glob.var, np.float32).tolist(),
        "shrink": float(glob.shrink),
        "layer": int(module.depth),
        "fingerprint": model_fingerprint(module),
    }


def is_speaker_wrapper(wrapper: Any) -> bool:
    """Whether an export wrapper is :func:`speaker_wrapper`'s (three inputs, three outputs)."""
    return bool(getattr(wrapper, "speaker_norm", False))


def check_normalisers(wrapper: Any, wav: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(B, 2, H) normalisers for a check batch that differ from the global one and from row to
    row: row 0 the global statistics, the others those of a speaker enrolled on the batch's
    clips (with 1 .. B-1 of them, so the shrinkage weight varies too)."""
    import torch

    from emodistill.models.speaker_stats import SpeakerStats, normaliser

    student = wrapper.network
    with torch.inference_mode():
        means = student.clip_means(torch.from_numpy(wav), torch.from_numpy(lengths)).numpy()
    glob = student.global_stats()
    rows = [normaliser(None, glob)]
    rows += [normaliser(SpeakerStats.of(means[:k]), glob) for k in range(1, len(means))]
    return np.stack(rows)


__all__ = ["check_normalisers", "is_speaker_wrapper", "speaker_metadata", "speaker_wrapper"]
