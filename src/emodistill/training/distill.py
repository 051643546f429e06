"""Distil the speech-only student from the cached teachers of one fold (docs/student.md).

The teachers never run here: their logits and embeddings were written once per fold by
``train_teachers`` and are read row by row from the cache (``training/teacher_cache.py``), so a
distillation step costs what a plain fine-tuning step costs. With ``student.trainable_layers``
set, the frozen bottom of the encoder runs once per utterance too (``prefix_cache.py``).

The pieces live beside it: :mod:`.data` (dataset, sampler, collate), :mod:`.module` (the
LightningModule), :mod:`.predictions`, :mod:`.teacher_weighting`, :mod:`.precise_bn`.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from emodistill.config import TEACHER_KINDS, Config
from emodistill.config.variants import BASELINE, FULL, HELDOUT_PLAIN, Variant, get_variant
from emodistill.corpora.manifest import Manifest, Utterance
from emodistill.features import MIN_SECONDS as FEATURES_MIN_SECONDS
from emodistill.runs.layout import (
    checkpoints_dir,
    predictions_path,
    run_prefix_cache_dir,
    student_dir,
    work_dir,
)
from emodistill.training.common import (
    MONITOR,
    class_weights_if_needed,
    ddp_strategy_for,
    make_optim_trainer,
    resolve_precision,
    seed_everything,
)
from emodistill.training.data import (
    EVAL_MAX_SECONDS,
    DistillDataset,
    make_loader,
    too_short_for_training,
)
from emodistill.training.module import StudentModule
from emodistill.training.precise_bn import precise_student_norms
from emodistill.training.predictions import (
    check_reusable,
    config_key,
    predict_test_clips,
    teacher_predictions,
    write_predictions,
)
from emodistill.training.resume import ResumeState, resume_checkpoint, stage_key
from emodistill.training.sampling import check_trainable
from emodistill.training.stage import StageContext
from emodistill.training.teacher_cache import (
    TeacherOutputs,
    configured_embedding_dims,
    embedding_dims,
    load_fold_teachers,
)
from emodistill.training.teacher_weighting import (
    chance_report,
    teacher_validation_ua,
    teacher_weights,
    weight_reasons,
)
from emodistill.util.files import folder_lock, read_json
from emodistill.util.log import get_logger

if TYPE_CHECKING:
    from emodistill.corpora.splits import Fold

log = get_logger(__name__)

__all__ = ["distill", "prefix_cache_dir"]


def prefix_cache_dir(manifest: Manifest, run_dir: Path) -> Path:
    """Where frozen-bottom outputs are cached: beside the manifest (shared by every run on the
    corpus, like the eGeMAPS cache), else inside the run folder."""
    if manifest.path is not None:
        return Path(manifest.path).absolute().parent / ".emodistill-cache" / "student-prefix"
    return run_prefix_cache_dir(run_dir)


def distill(
    manifest: Manifest,
    fold: Fold,
    cfg: Config,
    run_dir: str | Path,
    variant: str | Variant = FULL,
    *,
    seed: int | None = None,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    trainer_overrides: Mapping[str, Any] | None = None,
    keep_checkpoints: bool = False,
    teachers: Mapping[str, TeacherOutputs | None] | None = None,
) -> dict[str, Any]:
    """Train one fold's student (or evaluate a teacher-only variant) and predict its test speakers.

    Reads the fold's cached teacher outputs (``RUN_DIR/<fold>/teachers/outputs``), trains with
    AdamW + warm-up/cosine, early stopping and checkpoint selection on validation UA, resuming
    from ``last.ckpt`` when an earlier run was interrupted. Writes the model folder
    (:func:`student_dir`, via ``save_student`` with this ``cfg`` as ``training_config``) and
    ``predictions.json`` in it (ids, y_true, y_pred, probabilities, metrics). A fold whose
    predictions exist (made with the same config) is not retrained. The
    :class:`~emodistill.training.stage.StageContext` form is :func:`distill_stage`.

    Args:
        manifest: the corpus.
        fold: a :class:`~emodistill.corpora.splits.Fold`.
        cfg: the run's config (the variant's overrides are applied on top).
        run_dir: RUN_DIR.
        variant: a name in :data:`VARIANTS` or a :class:`Variant`.
        seed: train with this seed instead of ``cfg.seed`` (a seed other than ``cfg.seed``
            gets its own folder, ``.../seeds/<seed>/``).
        progress: show Lightning's progress bar.
        callbacks: extra Lightning callbacks (tests use them to interrupt training).
        trainer_overrides: extra ``lightning.Trainer`` arguments.
        keep_checkpoints: keep ``best.ckpt``/``last.ckpt`` after success (default: deleted, the
            model folder holds the selected weights).
        teachers: the fold's teacher outputs by kind, when the caller has them in memory
            (``train_teachers(outputs=...)``); a kind missing here is read from the fold's cache
            on disk (a run that restarts).

    Returns:
        The predictions dict (``metrics`` holds test WA/UA/F1/confusion; ``seed``; and, when
        teachers were read, ``teacher_val_ua`` and ``teacher_weights``); ``{}`` on DDP ranks
        other than 0.
    """
    ctx = StageContext.of(
        manifest,
        fold,
        cfg,
        run_dir,
        progress=progress,
        callbacks=tuple(callbacks),
        trainer_overrides=dict(trainer_overrides or {}),
        keep_checkpoints=keep_checkpoints,
    )
    return distill_stage(ctx, variant, seed=seed, teachers=teachers)


@dataclass(frozen=True)
class _Student:
    """One student of a stage: its variant, seed and configs, and where it is written."""

    v: Variant
    cfg: Config  # the run's config with the seed applied
    eff_cfg: Config  # ... and the variant's distillation settings
    seed_dir: int | None  # a seed other than the config's: its own folder
    wdir: Path  # training state (checkpoints, logs)
    out_path: Path  # predictions.json

    @classmethod
    def of(cls, ctx: StageContext, v: Variant, seed: int | None, taught: bool = True) -> _Student:
        """``taught=False``: every teacher got weight 0 (``teacher_weighting``), so the student
        learns as the plain one does, on its schedule (``distill.epochs`` is a taught one's)."""
        cfg = ctx.cfg if seed is None else dataclasses.replace(ctx.cfg, seed=int(seed))
        plain = cfg.student.optim.epochs
        epochs = v.student_epochs(cfg.distill, plain) if taught else plain
        if epochs != cfg.student.optim.epochs:
            cfg = cfg.override({"student.optim.epochs": epochs})
        eff_cfg = dataclasses.replace(cfg, distill=v.distill_config(cfg.distill))
        seed_dir = None if seed is None or int(seed) == ctx.cfg.seed else int(seed)
        wdir = work_dir(ctx.run_dir, ctx.fold.id, v, seed_dir)
        out_path = predictions_path(ctx.run_dir, ctx.fold.id, v, seed_dir)
        return cls(v, cfg, eff_cfg, seed_dir, wdir, out_path)


@dataclass
class _Data:
    """The student's utterances (too-short clips left out) and what its teachers bring."""

    train: list[Utterance]
    val: list[Utterance]
    test: list[Utterance]
    teachers: dict[str, TeacherOutputs]
    dims: tuple[int, int]  # (d_L, d_P)
    val_ua: dict[str, float] = field(default_factory=dict)
    weights: dict[str, float] | None = None
    reasons: dict[str, str] = field(default_factory=dict)
    student_val_ua: float | None = None


@dataclass
class _Built:
    """The student network, its Lightning module and loaders."""

    student: torch.nn.Module
    module: StudentModule
    train_loader: Any
    val_loader: Any
    test_norms: dict[str, np.ndarray] | None = None  # speaker_norm: id -> (2, H)


def distill_stage(
    ctx: StageContext,
    variant: str | Variant = FULL,
    *,
    seed: int | None = None,
    teachers: Mapping[str, TeacherOutputs | None] | None = None,
) -> dict[str, Any]:
    """:func:`distill` of the context's fold: data, module, fit, save."""
    v = get_variant(variant)
    s = _Student.of(ctx, v, seed)
    given = {k: o for k, o in (teachers or {}).items() if o is not None}
    if v.teacher is not None:
        manifest, fold, run_dir = ctx.manifest, ctx.fold, ctx.run_dir
        return teacher_predictions(manifest, fold, s.eff_cfg, run_dir, v, given.get(v.teacher))
    # Two processes on one run folder (a retried array job, two cv runs): the second waits here,
    # then reuses the first one's student instead of training into the same checkpoints.
    with folder_lock(s.wdir, f"fold {ctx.fold.id}'s {v.name} student (seed {s.cfg.seed})"):
        untaught = _Student.of(ctx, v, seed, taught=False)
        fingerprint, other = ctx.split.fingerprint, [untaught.eff_cfg]
        if check_reusable(s.out_path, s.eff_cfg, data=fingerprint, alternatives=other):
            return read_json(s.out_path)
        if s.out_path.is_file():  # stale: made from other data; never resume its checkpoints
            shutil.rmtree(s.wdir, ignore_errors=True)
        data = _student_data(ctx, s, given)
        if data.weights is not None and not any(data.weights.values()):
            s = untaught  # no teacher teaches: the plain student's schedule
        built = _student_module(ctx, s, data)
        trainer = _student_fit(ctx, s, built)
        if trainer.global_rank != 0:
            return {}
        return _student_save(ctx, s, data, built, trainer)


def _student_data(ctx: StageContext, s: _Student, given: Mapping[str, TeacherOutputs]) -> _Data:
    """The teachers' outputs, the fold's utterances, and the teachers' validation UA and
    weights (training the plain student first when the weighting needs it)."""
    fold, manifest, cfg, dcfg = ctx.fold, ctx.manifest, s.cfg, s.eff_cfg.distill
    needed = s.v.teachers_needed(cfg.distill)
    loaded = load_fold_teachers(ctx.fold_dir, [k for k in needed if k not in given])
    teachers = {k: given[k] if k in given else loaded[k] for k in needed}
    configured = configured_embedding_dims(cfg) if len(teachers) < len(TEACHER_KINDS) else None
    dims = embedding_dims(
        ctx.fold_dir, {**given, **teachers}, cfg.student.projection_hidden, configured
    )
    splits = ctx.split.parts
    short = {u.id for part in splits for u in too_short_for_training(part)}
    if short:
        counts = [sum(u.id in short for u in part) for part in splits]
        log.warning(
            f"  fold {fold.id}: left out {len(short)} utterance(s) shorter than "
            f"{1000 * FEATURES_MIN_SECONDS:.0f} ms (training {counts[0]}, validation "
            f"{counts[1]}, test {counts[2]}): no prosodic features exist for them"
        )
    train_utts, val_utts, test_utts = ([u for u in part if u.id not in short] for part in splits)
    if not train_utts or not val_utts or not test_utts:
        raise ValueError(
            f"fold {fold.id}: needs training, validation and test utterances (got "
            f"{len(train_utts)}, {len(val_utts)}, {len(test_utts)})"
        )
    check_trainable(len(train_utts), f"fold {fold.id}'s {s.v.name} student")
    data = _Data(train_utts, val_utts, test_utts, teachers, dims)
    if not teachers:
        return data
    n_classes, n_val = len(manifest.labels), len(val_utts)
    y_val = [manifest.label_index(u.label) for u in val_utts]
    data.val_ua = teacher_validation_ua(teachers, [u.id for u in val_utts], y_val, n_classes)
    if dcfg.teacher_weighting == "student":
        data.student_val_ua = _plain_student_val_ua(ctx, cfg.seed)
    data.weights = teacher_weights(
        dcfg.teacher_weighting, data.val_ua, n_classes, n_val, data.student_val_ua
    )
    data.reasons = weight_reasons(data.val_ua, data.weights, n_classes, n_val, data.student_val_ua)
    if ctx.progress or data.weights is not None:
        for line in chance_report(data.val_ua, n_classes, n_val, data.weights):
            log.info(f"  fold {fold.id}: {line}")
    if data.student_val_ua is not None:
        for kind, why in data.reasons.items():
            log.info(f"  fold {fold.id}: {kind} teacher {why}")
    return data


def _student_module(ctx: StageContext, s: _Student, data: _Data) -> _Built:
    """The student network (+ augmentation, frozen-bottom cache), its loaders and module."""
    from emodistill.models.student import build_student

    cfg, labels = s.cfg, ctx.manifest.labels
    scfg, optim, n_classes = cfg.student, cfg.student.optim, len(labels)
    label_index = {lab: i for i, lab in enumerate(labels)}
    # Seeded here, after the data: a plain student trained first for the `student` weighting
    # must not shift this one's initialisation (an untaught student is the plain one of its seed)
    seed_everything(cfg.seed)
    student = build_student(scfg, n_classes, *data.dims)
    aug = scfg.augment
    if aug.time_mask > 0 or aug.channel_mask > 0:
        from emodistill.models.augment import StateAugment

        student.augment = StateAugment(aug.time_mask, aug.channel_mask)
    prefix = None
    if student.trainable_layers is not None:
        from emodistill.features.prefix_cache import PrefixCache

        prefix = PrefixCache(
            student,
            data.train + data.val,
            prefix_cache_dir(ctx.manifest, ctx.run_dir),
            max_seconds=scfg.max_seconds,
            progress=ctx.progress,
        )
    norms: tuple[Any, Any, Any] = (None, None, None)
    if scfg.speaker_norm:
        from emodistill.training.speaker_data import fold_speaker_norms

        cache_dir = prefix_cache_dir(ctx.manifest, ctx.run_dir)
        splits = (data.train, data.val, data.test)
        labels = scfg.speaker_stats_labels
        norms = fold_speaker_norms(student, prefix, splits, cache_dir, ctx.progress, labels)
    teachers = data.teachers
    fit, fit_norms = data.train, norms[0]
    if scfg.train_on_validation:  # as the probe refits: the validation speakers train too
        fit, fit_norms = data.train + data.val, norms[0] and {**norms[0], **(norms[1] or {})}
    train_ds = DistillDataset(
        fit, label_index, scfg.max_seconds, True, teachers, cfg.seed, prefix, fit_norms
    )
    val_max = scfg.max_seconds if prefix is not None else EVAL_MAX_SECONDS
    val_ds = DistillDataset(
        data.val, label_index, val_max, False, teachers, cfg.seed, prefix, norms[1]
    )
    workers = cfg.trainer.num_workers
    train_loader = make_loader(
        train_ds, optim.batch_size, True, cfg.seed, workers, scfg.group_by_length
    )
    val_loader = make_loader(val_ds, optim.batch_size, False, cfg.seed, workers)

    class_weights = class_weights_if_needed(train_ds.labels, n_classes, optim.class_weights)
    module = StudentModule(
        student,
        s.eff_cfg.distill,
        optim,
        n_classes,
        logit_teachers=s.v.logit_teachers or TEACHER_KINDS,
        class_weights=class_weights,
        seed=cfg.seed,
        teacher_weights=data.weights,
        mixup=aug.mixup,
    )
    return _Built(student, module, train_loader, val_loader, norms[2])


def _student_fit(ctx: StageContext, s: _Student, built: _Built) -> Any:
    """Fit, resuming an interrupted run of this very stage (same config, same fold data)."""
    cfg = s.cfg
    overrides = {"use_distributed_sampler": False, **dict(ctx.trainer_overrides)}
    strategy = ddp_strategy_for(cfg.trainer.strategy, built.student)
    if strategy != cfg.trainer.strategy and "strategy" not in overrides:
        overrides["strategy"] = strategy
    # Resume only this very stage (same config, same fold data): training/resume.py.
    key = stage_key({"config": config_key(s.eff_cfg), "data": ctx.split.fingerprint})
    stage = f"{s.v.name} student (fold {ctx.fold.id}, seed {cfg.seed})"
    resume = resume_checkpoint(s.wdir, key, stage)
    trainer = make_optim_trainer(
        cfg.trainer, s.wdir, cfg.student.optim, progress=ctx.progress, **overrides
    )
    trainer.callbacks.extend([ResumeState(key), *ctx.callbacks])
    ckpt = str(resume) if resume else None
    trainer.fit(built.module, built.train_loader, built.val_loader, ckpt_path=ckpt)
    return trainer


def _student_save(
    ctx: StageContext, s: _Student, data: _Data, built: _Built, trainer: Any
) -> dict[str, Any]:
    """The selected weights -> model folder; test predictions -> predictions.json."""
    from emodistill.models.student_folder import save_student

    cfg, fold, manifest = s.cfg, ctx.fold, ctx.manifest
    module, student = built.module, built.student
    best_path = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    best_score = (
        trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
    )
    if cfg.student.select == "last":  # the weights as training left them
        last = trainer.callback_metrics.get(MONITOR)
        best_score = None if last is None else float(last)
    elif best_path and Path(best_path).is_file():
        state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_trained_state(state)
    if cfg.student.precise_bn:
        precise_student_norms(module, built.train_loader)
    label_index = {lab: i for i, lab in enumerate(manifest.labels)}
    device = module.device if module.device.type != "meta" else torch.device("cpu")
    precision = resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    run = (cfg.student.optim.batch_size, device, precision)
    cache = prefix_cache_dir(manifest, ctx.run_dir)
    probs = predict_test_clips(student, data.test, label_index, cache, run, built.test_norms)
    student.cpu()
    sdir = student_dir(ctx.run_dir, fold.id, s.v, s.seed_dir)
    extra = {
        "fold": fold.id,
        "variant": s.v.name,
        "seed": cfg.seed,
        "val_ua": None if best_score is None else float(best_score),
        "test_speakers": list(fold.test_speakers),
        "val_speakers": list(fold.val_speakers),
        "trained_on_validation": bool(cfg.student.train_on_validation),
        "teacher_val_ua": data.val_ua,
        "teacher_weights": data.weights,
        "teacher_weight_reasons": data.reasons,
        "student_val_ua": data.student_val_ua,
        "data": ctx.split.fingerprint,
        # read the test speakers' unlabelled audio: reported apart from single-clip results
        "speaker_norm": bool(cfg.student.speaker_norm),
    }
    save_student(student, sdir, list(manifest.labels), s.eff_cfg.to_dict(), extra)
    result = write_predictions(
        s.out_path,
        data.test,
        [label_index[u.label] for u in data.test],
        probs,
        manifest.labels,
        {**extra, "config": config_key(s.eff_cfg), "epochs_run": int(trainer.current_epoch)},
    )
    if not ctx.keep_checkpoints:
        shutil.rmtree(checkpoints_dir(s.wdir), ignore_errors=True)
    return result


def _plain_student_val_ua(ctx: StageContext, seed: int) -> float:
    """Validation UA of the plain student (same fold, ``seed`` and student settings; the
    context's config is the run's, before the seed is applied), training it first if the run
    folder has none yet; a later ``--variant no_teachers`` reuses it instead of training it
    again."""
    plain_ctx = ctx.replace(callbacks=(), trainer_overrides={}, keep_checkpoints=False)
    variant: str | Variant = BASELINE
    if ctx.cfg.student.train_on_validation:  # a validation UA still held out
        cfg = ctx.cfg.override({"student.train_on_validation": False})
        plain_ctx, variant = plain_ctx.replace(cfg=cfg), HELDOUT_PLAIN
    plain = distill_stage(plain_ctx, variant, seed=seed)
    if plain.get("val_ua") is None:
        raise ValueError(
            f"fold {ctx.fold.id}: the plain student (seed {seed}) has no validation UA"
        )
    return float(plain["val_ua"])
