"""Speaker statistics of one fold for a ``speaker_norm`` student (docs/speaker.md).

As the prosodic teacher does with its LLDs, every speaker is normalised with label-free
statistics of their own clips *in the same split*: training speakers from their training clips,
validation speakers from theirs, test speakers from their test clips. The training set's global
statistics go into the student (its buffers), for shrinkage and for clips of no known speaker.

Clip means of training and validation clips are read off the prefix cache (the frozen pooled
layer's frames, centre-cropped to ``student.max_seconds``, what training sees). Test clips are
predicted whole (up to ``EVAL_MAX_SECONDS``), so their clip means come from whole clips too, the
way ``emodistill enroll`` computes them (:class:`~emodistill.features.prefix_cache.LayerMeans`,
cached like the prefix).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emodistill.corpora.manifest import Utterance
from emodistill.models.speaker_stats import global_stats, speaker_normalisers


def prefix_clip_means(prefix: Any, utterances: Sequence[Utterance]) -> dict[str, np.ndarray]:
    """id -> (H,) float64 mean over the clip's cached frames (the last cached state)."""
    return {u.id: np.asarray(prefix[u.id][-1], dtype=np.float64).mean(axis=0) for u in utterances}


def whole_clip_means(
    student: Any, utterances: Sequence[Utterance], cache_dir: str | Path, progress: bool = True
) -> dict[str, np.ndarray]:
    """id -> (H,) clip mean of the student's pooled layer over the whole clip (up to
    ``EVAL_MAX_SECONDS``), as ``enroll`` and prediction see it."""
    from emodistill.features.prefix_cache import LayerMeans
    from emodistill.training.data import EVAL_MAX_SECONDS

    cache = LayerMeans(student.encoder, utterances, cache_dir, EVAL_MAX_SECONDS, progress)
    means = cache.array([u.id for u in utterances])[:, student.depth]
    return {u.id: m.astype(np.float64) for u, m in zip(utterances, means, strict=True)}


def fold_speaker_norms(
    student: Any,
    prefix: Any,
    splits: tuple[Sequence[Utterance], Sequence[Utterance], Sequence[Utterance]],
    cache_dir: str | Path,
    progress: bool = True,
    labels: Sequence[str] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Set the student's global statistics from the training clips and return each split's
    utterance id -> (2, H) ``[mu, sigma]``, from its own speakers' clips.

    Args:
        student: a ``speaker_norm`` :class:`~emodistill.models.student.EmoDistillStudent`.
        prefix: its :class:`~emodistill.features.prefix_cache.PrefixCache` of the training and
            validation clips.
        splits: (training, validation, test) utterances.
        cache_dir: the prefix cache's root (test clips' whole-clip means are cached there).
        labels: statistics from the clips of these labels only (``student.speaker_stats_labels``;
            a speaker with none of them gets the global statistics); None: every clip.
    """
    train, val, test = ([u for u in part if labels is None or u.label in labels] for part in splits)
    if not train:
        raise ValueError(
            f"student.speaker_stats_labels {list(labels or [])}: no training clip has one of "
            "these labels"
        )
    train_means = prefix_clip_means(prefix, train)
    glob = global_stats(np.stack(list(train_means.values())), student.dims.speaker_shrink)
    student.set_global_stats(glob)
    means = (
        train_means,
        prefix_clip_means(prefix, val),
        whole_clip_means(student, test, cache_dir, progress),
    )
    speakers = {u.id: u.speaker for part in splits for u in part}
    train_n, val_n, test_n = (
        speaker_normalisers(part_means, speakers, glob, [u.id for u in part])
        for part, part_means in zip(splits, means, strict=True)
    )
    return train_n, val_n, test_n


__all__ = ["fold_speaker_norms", "prefix_clip_means", "whole_clip_means"]
