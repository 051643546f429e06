"""Test-speaker predictions of a fold: computing, writing, reading, and the reuse check."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emodistill.config import Config
from emodistill.config.variants import Variant, get_variant
from emodistill.corpora.manifest import Manifest, Utterance
from emodistill.corpora.splits import Fold
from emodistill.evaluation.metrics import compute_metrics
from emodistill.runs.layout import predictions_path
from emodistill.training.data import EVAL_MAX_SECONDS, DistillDataset, collate_batch
from emodistill.training.teacher_cache import TeacherOutputs, load_fold_teachers
from emodistill.util.files import read_json, write_json_atomic
from emodistill.util.log import get_logger

log = get_logger(__name__)


class ConfigMismatch(ValueError):
    """A run folder holds results of another config (:func:`check_reusable`)."""


@torch.inference_mode()
def predict(
    student: torch.nn.Module,
    dataset: DistillDataset,
    batch_size: int,
    device: torch.device | str = "cpu",
    precision: str = "32-true",
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities for every item of ``dataset``, in dataset order (audio items, or
    the cached frozen-bottom outputs of a dataset with a prefix cache).

    Returns:
        ``(indices (N,), probabilities (N, C))`` with ``indices`` = ``arange(N)``.
    """
    student.eval()
    device = torch.device(device)
    student.to(device)
    probs = np.zeros((len(dataset), 0), dtype=np.float32)
    use_bf16 = device.type == "cuda" and precision.startswith("bf16")
    order = np.argsort(-dataset.lengths, kind="stable")
    bs = max(1, batch_size)
    for start in range(0, len(order), bs):
        batch = collate_batch([dataset[int(i)] for i in order[start : start + bs]])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            if "prefix" in batch:  # speaker-normalised by the dataset where needed
                out = student.from_prefix(
                    batch["prefix"].to(device), batch["frame_lengths"].to(device)
                )
            else:
                speaker = batch.get("speaker")
                speaker = None if speaker is None else speaker.to(device)
                out = student(batch["wav"].to(device), batch["lengths"].to(device), speaker)
        p = torch.softmax(out.logits.float(), dim=-1).cpu().numpy()
        if probs.shape[1] == 0:
            probs = np.zeros((len(dataset), p.shape[1]), dtype=np.float32)
        probs[batch["index"].numpy()] = p
    return np.arange(len(dataset)), probs


def predict_test_clips(
    student: torch.nn.Module,
    utterances: Sequence[Utterance],
    label_index: Mapping[str, int],
    cache_dir: str | Path,
    run: tuple[int, torch.device | str, str] = (16, "cpu", "32-true"),
    speaker_norms: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Probabilities (N, C) of whole test clips (up to ``EVAL_MAX_SECONDS``), in order.

    A student with a frozen bottom reads it from the prefix cache under ``cache_dir``: each clip
    goes through the bottom once per corpus (alone: what predicting it alone computes), not once
    per seed and variant. ``run``: (batch size, device, precision); ``speaker_norms``: id ->
    (2, H) for a ``speaker_norm`` student.
    """
    prefix = None
    if getattr(student, "trainable_layers", None) is not None:
        from emodistill.features.prefix_cache import PrefixCache

        prefix = PrefixCache(student, utterances, cache_dir, EVAL_MAX_SECONDS, False)
    dataset = DistillDataset(
        utterances, label_index, EVAL_MAX_SECONDS, False, None, 0, prefix, speaker_norms
    )
    return predict(student, dataset, *run)[1]


def config_key(cfg: Config, teacher_only: bool = False) -> dict[str, Any]:
    """The parts of a config that determine a result: everything but the trainer settings for a
    student; only labels, seed, folds and the teachers' sections for a teacher-only variant."""
    data = cfg.to_dict()
    data.pop("trainer", None)
    data.pop("name", None)
    data.pop("seeds", None)  # which other seeds a run trains does not change this one
    if teacher_only:
        data = {k: data[k] for k in ("labels", "seed", "folds", "linguistic", "prosodic")}
    return data


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += _diff(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def check_reusable(
    path: Path,
    cfg: Config,
    teacher_only: bool = False,
    data: str | None = None,
    alternatives: Sequence[Config] = (),
) -> bool:
    """True when ``path`` (a predictions.json) exists and was made with ``cfg`` or one of the
    ``alternatives`` (a student no teacher taught is made with the plain schedule), and, when
    ``data`` is given, from the same fold data (see ``splits.fold_fingerprint``).

    Returns False for predictions made from other data (the fold must be retrained).

    Raises:
        ConfigMismatch: it exists but was made with another config (names the differing keys):
            results of two configs must never be mixed in one run folder.
    """
    if not path.is_file():
        return False
    saved_all = read_json(path)
    saved = saved_all.get("config")
    if saved is not None:
        diff = _diff(saved, config_key(cfg, teacher_only))
        if diff and any(not _diff(saved, config_key(c, teacher_only)) for c in alternatives):
            diff = []
        if diff:
            raise ConfigMismatch(
                f"{path} was made with a different config (differs in: {', '.join(diff)}); use "
                "a new --out folder or delete that fold's folder"
            )
    old = saved_all.get("data")
    if data is not None and old is not None and old != data:
        log.warning(
            f"{path}: the fold's data changed since it was made (manifest rows, audio or "
            "speaker split); retraining"
        )
        return False
    return True


def write_predictions(
    path: Path,
    utterances: Sequence[Utterance],
    y_true: Sequence[int],
    probs: np.ndarray,
    labels: Sequence[str],
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    y_pred = probs.argmax(axis=1).astype(int).tolist()
    metrics = compute_metrics(list(y_true), y_pred, len(labels))
    data = {
        "ids": [u.id for u in utterances],
        "y_true": [int(v) for v in y_true],
        "y_pred": y_pred,
        "probabilities": np.round(probs.astype(np.float64), 6).tolist(),
        "labels": list(labels),
        "metrics": metrics,
        **extra,
    }
    write_json_atomic(path, data)
    return data


def teacher_predictions(
    manifest: Manifest,
    fold: Fold,
    cfg: Config,
    run_dir: str | Path,
    variant: str | Variant,
    outputs: TeacherOutputs | None = None,
) -> dict[str, Any]:
    """A teacher-only variant: the teacher's own test-speaker predictions, from its outputs
    (``outputs`` when the caller has them in memory, else the fold's cache on disk)."""
    from emodistill.corpora.splits import fold_fingerprint, fold_utterances

    v = get_variant(variant)
    path = predictions_path(run_dir, fold.id, v)
    data = fold_fingerprint(manifest, fold)
    if check_reusable(path, cfg, teacher_only=True, data=data):
        return read_json(path)
    _, _, test = fold_utterances(manifest, fold)
    if outputs is None:
        outputs = load_fold_teachers(Path(run_dir) / fold.id, [v.teacher])[v.teacher]
    try:
        rows = np.asarray(outputs.rows([u.id for u in test]), dtype=np.int64)
    except KeyError as err:
        raise ValueError(
            f"{Path(run_dir) / fold.id}: cached {v.teacher} teacher outputs lack test utterance "
            f"{err}; re-run train-teachers for fold {fold.id}"
        ) from err
    logits = torch.as_tensor(np.asarray(outputs.logits)[rows])
    probs = torch.softmax(logits.float(), dim=-1).numpy()
    y_true = [manifest.label_index(u.label) for u in test]
    return write_predictions(
        path,
        test,
        y_true,
        probs,
        manifest.labels,
        {
            "fold": fold.id,
            "variant": v.name,
            "config": config_key(cfg, teacher_only=True),
            "data": data,
        },
    )


def load_predictions(path: str | Path) -> dict[str, Any]:
    """A predictions.json (ids, y_true, y_pred, probabilities, labels, metrics, ...)."""
    return read_json(path)
