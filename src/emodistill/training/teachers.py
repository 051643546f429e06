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

import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler

from emodistill.config import TEACHER_KINDS, Config, OptimConfig, resolve_config
from emodistill.corpora.manifest import Manifest, as_manifest
from emodistill.corpora.splits import Fold, FoldSplit
from emodistill.evaluation.metrics import compute_metrics, mean_std
from emodistill.models.folder import is_model_folder, read_config
from emodistill.runs.layout import (
    checkpoint_path,
    checkpoints_dir,
    teacher_dir,
    teacher_metrics_by_fold,
    teacher_metrics_path,
    teacher_result_path,
    teacher_work_dir,
    teachers_dir,
    teachers_summary_path,
)
from emodistill.runs.layout import fold_dir as fold_folder
from emodistill.training.common import (
    class_weights_of,
    make_optim_trainer,
    seed_everything,
    total_steps,
)
from emodistill.training.resume import ResumeState, resume_checkpoint, stage_key
from emodistill.training.sampling import MergingBatchSampler, check_trainable
from emodistill.training.teacher_cache import TeacherOutputs, write_teacher_outputs
from emodistill.training.teacher_data import (
    LLDDataset,
    TextCollator,
    TextDataset,
    collate_llds,
    prosodic_features,
    with_features,
)
from emodistill.training.teacher_module import TeacherModule
from emodistill.training.teacher_weighting import validation_chance_report
from emodistill.util.files import folder_lock, read_json, write_json_atomic
from emodistill.util.log import get_logger

if TYPE_CHECKING:
    from emodistill.features import FeatureStore

log = get_logger(__name__)


# --------------------------------------------------------------------------- one teacher


def _kind_section(cfg: Config, kind: str):
    if kind == "linguistic":
        return cfg.linguistic
    if kind == "prosodic":
        return cfg.prosodic
    raise ValueError(f"teacher kind must be one of {TEACHER_KINDS}, got {kind!r}")


def _relevant_config(cfg_dict: dict[str, Any], kind: str) -> dict[str, Any]:
    """The parts of a Config dict that change a teacher (to decide whether one can be reused)."""
    folds = dict(cfg_dict.get("folds") or {})
    if folds.get("scheme") != "groups":
        folds.pop("groups", None)  # only the groups scheme reads it
    return {
        "seed": cfg_dict.get("seed"),
        "folds": folds,
        kind: cfg_dict.get(kind),
        "limit_train_batches": (cfg_dict.get("trainer") or {}).get("limit_train_batches"),
    }


def _cuda_device(cfg: Config) -> str:
    on_cuda = torch.cuda.is_available() and cfg.trainer.accelerator in ("auto", "gpu", "cuda")
    return "cuda" if on_cuda else "cpu"


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
    return _relevant_config(saved, kind) == _relevant_config(cfg.to_dict(), kind)


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
    """Train one teacher on ``fold``, save it, cache its outputs, and test it.

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
    split = split or FoldSplit.of(manifest, fold)
    run = (features, progress, keep_checkpoints, callbacks, trainer_overrides)
    return _train_teacher(kind, manifest, split, cfg, out_dir, *run)[0]


def _train_teacher(
    kind: str, manifest: Manifest, split: FoldSplit, cfg: Config, out_dir: str | Path,
    features: FeatureStore | None, progress: bool, keep_checkpoints: bool,
    callbacks: Sequence[Any], trainer_overrides: dict[str, Any],
) -> tuple[dict[str, Any], TeacherOutputs | None]:  # fmt: skip
    """:func:`train_teacher`'s work; also returns the teacher's outputs (in memory, for the
    caller: nothing reads them back from disk)."""
    from emodistill.models.linguistic import LinguisticTeacher, check_transcripts
    from emodistill.models.prosodic import ProsodicNetConfig, build_prosodic_net

    section = _kind_section(cfg, kind)
    optim: OptimConfig = section.optim
    fold_dir = Path(out_dir)
    work_dir = teacher_work_dir(fold_dir, kind)
    labels = list(manifest.labels)
    fold = split.fold
    train, val, test = split.parts
    if not train or not val:
        raise ValueError(
            f"fold {fold.id}: needs training and validation speakers "
            f"(train {fold.train_speakers}, val {fold.val_speakers})"
        )
    if kind == "linguistic":
        check_transcripts(train + val + test, manifest.path)
    else:
        features = prosodic_features(manifest, features, cfg)
        train = with_features(train, features, "training")
        val = with_features(val, features, "validation")
        test = with_features(test, features, "test")
    check_trainable(len(train), f"fold {fold.id}'s {kind} teacher")

    seed_everything(cfg.seed)
    if kind == "linguistic":
        ling = cfg.linguistic
        net: nn.Module = LinguisticTeacher.from_encoder(
            ling.model,
            labels,
            pooling=ling.pooling,
            dropout=ling.dropout,
            max_length=ling.max_length,
        )
        collate = TextCollator(net.tokenizer, ling.max_length)
        train_set: Dataset = TextDataset(train, labels)
        val_set: Dataset = TextDataset(val, labels)
    else:
        pros = cfg.prosodic
        net = build_prosodic_net(ProsodicNetConfig.from_prosodic_config(pros, labels))
        # Normalisation statistics from the training speakers only (never val/test).
        net.set_normalization(*features.normalization_stats([u.id for u in train]))
        collate = collate_llds
        train_set = LLDDataset(train, labels, features, max_frames=pros.max_frames, train=True)
        val_set = LLDDataset(val, labels, features)

    targets = [labels.index(u.label) for u in train]
    weights = class_weights_of(targets, len(labels)) if optim.class_weights else None
    steps = total_steps(
        int(len(train_set) * cfg.trainer.limit_train_batches)
        if cfg.trainer.limit_train_batches <= 1
        else int(cfg.trainer.limit_train_batches) * optim.batch_size,
        optim.batch_size,
        optim.epochs,
        optim.accumulate_grad_batches,
    )
    # from_pretrained returns eval mode and Lightning keeps module modes: fine-tune with dropout.
    net.train()
    module = TeacherModule(net, optim, steps, len(labels), class_weights=weights)
    loader_kw = dict(
        collate_fn=collate,
        num_workers=cfg.trainer.num_workers,
        persistent_workers=cfg.trainer.num_workers > 0,
    )
    generator = torch.Generator().manual_seed(cfg.seed)
    # Never a training batch of one clip (BatchNorm): a last one joins the batch before it.
    sampler = RandomSampler(train_set, generator=generator)
    train_loader = DataLoader(
        train_set,
        batch_sampler=MergingBatchSampler(sampler, optim.batch_size, drop_last=False),
        generator=generator,
        **loader_kw,
    )
    val_loader = DataLoader(val_set, batch_size=max(optim.batch_size, 32), **loader_kw)

    # Resume the last finished epoch of an interrupted run of this very stage (same config
    # section, same fold data); anything else starts from epoch 0 (training/resume.py).
    data = split.fingerprint
    key = stage_key({"config": _relevant_config(cfg.to_dict(), kind), "data": data})
    resume = resume_checkpoint(work_dir, key, f"{kind} teacher (fold {fold.id})")
    trainer = make_optim_trainer(
        cfg.trainer, work_dir, optim, progress=progress, **trainer_overrides
    )
    trainer.callbacks.extend([ResumeState(key, generators=[generator]), *callbacks])
    started = time.perf_counter()
    trainer.fit(module, train_loader, val_loader, ckpt_path=str(resume) if resume else None)
    train_seconds = time.perf_counter() - started
    if not trainer.is_global_zero:
        return {}, None

    # Best validation-UA weights -> model folder.
    ckpt_cb = trainer.checkpoint_callback
    best_path = Path(ckpt_cb.best_model_path) if ckpt_cb and ckpt_cb.best_model_path else None
    if best_path is None or not best_path.is_file():
        best_path = checkpoint_path(work_dir, "best")
    if best_path.is_file():
        state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    score = ckpt_cb.best_model_score if ckpt_cb is not None else None
    best_val_ua = float(score) if score is not None else None
    net = module.net.cpu().eval()
    net.save_pretrained(teacher_dir(fold_dir, kind), training_config=cfg.to_dict())

    # Outputs for every utterance of the fold, cached once; test metrics from the test rows.
    cached = write_teacher_outputs(
        fold_dir,
        kind,
        train + val + test,
        features=features,
        device=_cuda_device(cfg),
        progress=progress,
    )
    result: dict[str, Any] = {}
    if test:
        preds = np.asarray(cached.logits_of([u.id for u in test])).argmax(axis=1)
        result = compute_metrics(
            [labels.index(u.label) for u in test], preds, num_classes=len(labels)
        )
    else:
        result = {"wa": float("nan"), "ua": float("nan"), "f1": float("nan"), "confusion": []}
    result.update(
        val_ua=best_val_ua,
        epochs=int(trainer.current_epoch),
        global_step=int(trainer.global_step),
        resumed=resume is not None,
        train_seconds=round(train_seconds, 2),
        n_train=len(train),
        n_val=len(val),
        n_test=len(test),
        data=data,
        best_checkpoint=best_path.name if best_path.is_file() else None,
    )
    write_json_atomic(teacher_result_path(fold_dir, kind), result)
    if not keep_checkpoints:
        shutil.rmtree(checkpoints_dir(work_dir), ignore_errors=True)
    return result, cached


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
        split = FoldSplit.of(manifest, fold)
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
                        device=_cuda_device(cfg),
                        progress=progress,
                    )
                    state = "reused"
                else:
                    log.info(
                        f"[bold]fold {fold.id}[/] ({n}/{len(chosen)}): training the {kind} "
                        f"teacher (test {', '.join(fold.test_speakers)}, "
                        f"val {', '.join(fold.val_speakers)})"
                    )
                    res, fold_outputs[kind] = _train_teacher(
                        kind, manifest, split, cfg, fold_dir, features, progress, False, (), {}
                    )
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
