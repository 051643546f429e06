"""Training the two teachers per fold: ``train_teacher`` (one fold) and ``train_teachers``.

Per fold (``fold_dir = RUN_DIR/<fold.id>``)::

    teachers/linguistic/, teachers/prosodic/   model folders (config.json + model.safetensors)
    teachers/outputs/<kind>/                   cached logits + embeddings (teacher_cache.py)
    teachers/metrics.json                      {"linguistic": {wa, ua, f1}, "prosodic": {...}}
    teachers/train/<kind>/                     Lightning work: checkpoints/, logs/metrics.csv,
                                               result.json (test metrics + training facts)

Model selection uses validation speakers only; test speakers are scored once, after training.
Per-epoch checkpoints (``training/resume.py``) resume an interrupted run at its last finished
epoch and are deleted once a teacher is saved (unless ``keep_checkpoints``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emodistill.config import TEACHER_KINDS, Config, resolve_config
from emodistill.corpora.manifest import Manifest, as_manifest
from emodistill.corpora.splits import Fold, FoldSplit
from emodistill.evaluation.metrics import mean_std
from emodistill.models.folder import is_model_folder, read_config
from emodistill.runs.layout import fold_dir as fold_folder
from emodistill.runs.layout import (
    teacher_dir,
    teacher_metrics_by_fold,
    teacher_metrics_path,
    teacher_result_path,
    teachers_dir,
    teachers_summary_path,
)
from emodistill.training.stage import StageContext
from emodistill.training.teacher_cache import TeacherOutputs, write_teacher_outputs
from emodistill.training.teacher_data import prosodic_features
from emodistill.training.teacher_stage import cuda_device, relevant_config, teacher_stage
from emodistill.training.teacher_weighting import validation_chance_report
from emodistill.util.files import folder_lock, read_json, write_json_atomic
from emodistill.util.log import get_logger

if TYPE_CHECKING:
    from emodistill.features import FeatureStore

log = get_logger(__name__)


# --------------------------------------------------------------------------- one teacher


def teacher_done(
    fold_dir: str | Path, kind: str, cfg: Config | None = None, data: str | None = None
) -> bool:
    """True when ``kind``'s model folder and test result exist (and match ``cfg``, if given,
    and were trained on the fold data ``data`` = ``fold_fingerprint``, if given)."""
    folder = teacher_dir(fold_dir, kind)
    result = teacher_result_path(fold_dir, kind)
    if not (is_model_folder(folder) and result.is_file()):
        return False
    if cfg is None:
        return True
    if data is not None:
        old = read_json(result).get("data")
        if old is not None and old != data:
            log.warning(
                f"[yellow]{kind} teacher of {fold_dir}:[/] the fold's data changed (manifest "
                "rows, audio or speaker split); retraining"
            )
            return False
    saved = read_config(folder, "any").get("training_config") or {}
    return relevant_config(saved, kind) == relevant_config(cfg.to_dict(), kind)


def train_teacher(
    kind: str,
    manifest: Manifest,
    fold: Fold,
    cfg: Config,
    out_dir: str | Path,
    features: FeatureStore | None = None,
    progress: bool = True,
    keep_checkpoints: bool = False,
    callbacks: Sequence[Any] = (),
    split: FoldSplit | None = None,
    **trainer_overrides: Any,
) -> dict[str, Any]:
    """Train one teacher on ``fold``, save it, cache its outputs, and test it (the
    :class:`~emodistill.training.stage.StageContext` form: ``teacher_stage.teacher_stage``).

    Args:
        kind: ``linguistic`` or ``prosodic``.
        manifest: the :class:`~emodistill.corpora.manifest.Manifest` (labels = class order).
        fold: a :class:`~emodistill.corpora.splits.Fold`.
        cfg: the run's :class:`~emodistill.config.Config` (``cfg.linguistic``/``cfg.prosodic``
            and ``cfg.trainer``).
        out_dir: the fold's folder ``RUN_DIR/<fold.id>``.
        features: a FeatureStore (prosodic only; default: extracted/cached beside the manifest).
        progress: progress bars.
        keep_checkpoints: keep ``teachers/train/<kind>/checkpoints`` after success.
        callbacks: extra Lightning callbacks (tests use them to interrupt or count steps).
        split: the fold's :class:`~emodistill.corpora.splits.FoldSplit`, when the caller made
            it already (default: computed here).
        trainer_overrides: passed to ``lightning.Trainer``.

    Returns:
        Test-speaker metrics ``{"wa", "ua", "f1", "confusion"}`` plus ``val_ua`` (best
        validation UA), ``epochs``, ``global_step``, ``resumed`` and ``train_seconds``.

    Raises:
        MissingTranscriptsError: linguistic teacher on utterances without transcripts.
    """
    out_dir = Path(out_dir)
    ctx = StageContext(
        manifest,
        fold,
        cfg,
        out_dir.parent,
        out_dir,
        progress,
        tuple(callbacks),
        trainer_overrides,
        keep_checkpoints,
        known_split=split,
    )
    return teacher_stage(ctx, kind, features)[0]


# --------------------------------------------------------------------------- all folds


def train_teachers(
    manifest: Manifest | str | Path,
    out: str | Path,
    config: Config | str | Path | None = None,
    folds: str | Sequence[Fold] = "all",
    kinds: Sequence[str] = TEACHER_KINDS,
    progress: bool = True,
    workers: int = 1,
    *,
    outputs: dict[str, dict[str, TeacherOutputs]] | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """Train both teachers for every selected fold (the ``train-teachers`` command).

    Folds whose teachers, cached outputs and ``teachers/metrics.json`` already exist (for the
    same config) are skipped; a fold interrupted mid-training resumes from its checkpoint.

    Args:
        manifest: a loaded :class:`Manifest` (from a CSV: its folder holds the feature cache) or
            the manifest CSV (with transcripts for the linguistic teacher).
        out: run folder ``RUN_DIR``.
        config: a Config, preset name, YAML file, or None (demo).
        folds: the :class:`Fold` objects to train, or ``"all"`` or comma-separated fold ids
            (test speaker/session names) of the config's folds.
        kinds: which teachers (default both).
        workers: feature-extraction processes.
        outputs: filled with ``{fold_id: {kind: TeacherOutputs}}``, the outputs in memory, for
            a caller that distils next (``distill(teachers=...)``: nothing read back).

    Returns:
        ``{fold_id: {"linguistic": {"wa", "ua", "f1"}, "prosodic": {...}}}``; also written to
        ``RUN_DIR/teachers.json`` with mean and std over the folds.
    """
    from emodistill.corpora.splits import config_folds, select_folds
    from emodistill.features import default_cache_dir, extract_features
    from emodistill.models.linguistic import check_transcripts

    cfg = resolve_config(config)
    named = manifest.path if isinstance(manifest, Manifest) else manifest  # as the user gave it
    manifest = as_manifest(manifest)
    if manifest.path is None:
        raise ValueError("training teachers needs a manifest loaded from a CSV file (path is None)")
    if "linguistic" in kinds:  # fail before any training, naming the manifest
        check_transcripts(manifest.utterances, named)
    if isinstance(folds, str):
        chosen = select_folds(config_folds(manifest, cfg.folds), folds)
    else:
        chosen = list(folds)
    features = None
    if "prosodic" in kinds:
        features = extract_features(
            manifest, default_cache_dir(manifest.path), workers=workers, progress=progress
        )
        features = prosodic_features(manifest, features, cfg)
    out = Path(out)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for n, fold in enumerate(chosen, 1):
        fold_dir = fold_folder(out, fold.id)
        metrics_path = teacher_metrics_path(fold_dir)
        per_kind: dict[str, dict[str, float]] = {}
        started = time.perf_counter()
        ctx = StageContext.of(manifest, fold, cfg, out, progress=progress)
        split = ctx.split
        fold_outputs: dict[str, TeacherOutputs | None] = {}
        # A second process on this run folder waits, then reuses these teachers.
        with folder_lock(teachers_dir(out, fold.id), f"fold {fold.id}'s teachers"):
            for kind in kinds:
                if teacher_done(fold_dir, kind, cfg, split.fingerprint):
                    res = read_json(teacher_result_path(fold_dir, kind))
                    # Cached outputs are keyed: this recomputes only if missing or stale.
                    utts = split.train + split.val + split.test
                    if kind == "prosodic":
                        utts = [u for u in utts if u.id in features]
                    fold_outputs[kind] = write_teacher_outputs(
                        fold_dir,
                        kind,
                        utts,
                        features=features,
                        device=cuda_device(cfg),
                        progress=progress,
                    )
                    state = "reused"
                else:
                    log.info(
                        f"[bold]fold {fold.id}[/] ({n}/{len(chosen)}): training the {kind} "
                        f"teacher (test {', '.join(fold.test_speakers)}, "
                        f"val {', '.join(fold.val_speakers)})"
                    )
                    res, fold_outputs[kind] = teacher_stage(ctx, kind, features)
                    state = "trained"
                if not res:  # non-zero DDP rank
                    continue
                per_kind[kind] = {k: float(res[k]) for k in ("wa", "ua", "f1")}
                log.info(
                    f"  {kind:10s} {state}: test WA {100 * res['wa']:.2f}  "
                    f"UA {100 * res['ua']:.2f}  F1 {100 * res['f1']:.2f}"
                )
        if not per_kind:
            continue
        # Each teacher's validation UA beside chance, from the outputs in memory.
        outs = {kind: fold_outputs[kind] for kind in per_kind}
        if outputs is not None:
            outputs[fold.id] = outs  # type: ignore[assignment]
        for line in validation_chance_report(manifest.labels, split.val, outs):
            log.info(f"  {line}")
        previous = read_json(metrics_path) if metrics_path.is_file() else {}
        previous.update(per_kind)
        write_json_atomic(metrics_path, previous)
        results[fold.id] = previous
        log.info(f"  fold {fold.id} done in {time.perf_counter() - started:.1f} s")
    if results:
        _write_summary(out, results, kinds)
    return results


def _write_summary(out: Path, results: dict[str, dict[str, dict[str, float]]], kinds) -> None:
    """``RUN_DIR/teachers.json``: every fold's metrics (all folds on disk) and mean/std."""
    folds_on_disk = {fold: read_json(p) for fold, p in teacher_metrics_by_fold(out).items()}
    folds_on_disk.update(results)
    summary: dict[str, Any] = {"folds": folds_on_disk, "mean": {}, "std": {}}
    for kind in kinds:
        for metric in ("wa", "ua", "f1"):
            values = [m[kind][metric] for m in folds_on_disk.values() if kind in m]
            mean, std = mean_std(values)
            summary["mean"].setdefault(kind, {})[metric] = mean
            summary["std"].setdefault(kind, {})[metric] = std
    write_json_atomic(teachers_summary_path(out), summary)
    for kind in kinds:
        mean, std = summary["mean"].get(kind, {}), summary["std"].get(kind, {})
        if mean:
            log.info(
                f"[bold]{kind}[/] over {len(folds_on_disk)} fold(s): "
                f"WA {100 * mean['wa']:.2f} ± {100 * std['wa']:.2f}  "
                f"UA {100 * mean['ua']:.2f} ± {100 * std['ua']:.2f}"
            )
