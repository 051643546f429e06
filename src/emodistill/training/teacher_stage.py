"""One teacher of one fold, as named steps: data, module, fit, save (:func:`teacher_stage`,
what ``teachers.train_teacher`` and ``teachers.train_teachers`` run)."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler

from emodistill.config import TEACHER_KINDS, Config, OptimConfig
from emodistill.corpora.manifest import Utterance
from emodistill.evaluation.metrics import compute_metrics
from emodistill.runs.layout import (
    checkpoint_path,
    checkpoints_dir,
    teacher_dir,
    teacher_result_path,
    teacher_work_dir,
)
from emodistill.training.common import (
    class_weights_if_needed,
    make_optim_trainer,
    seed_everything,
    total_steps,
    trains_on_cuda,
)
from emodistill.training.resume import ResumeState, resume_checkpoint, stage_key
from emodistill.training.sampling import MergingBatchSampler, check_trainable
from emodistill.training.stage import StageContext
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
from emodistill.util.files import write_json_atomic

if TYPE_CHECKING:
    from emodistill.features import FeatureStore


def kind_section(cfg: Config, kind: str):
    """The config section of a teacher kind (``cfg.linguistic`` or ``cfg.prosodic``)."""
    if kind == "linguistic":
        return cfg.linguistic
    if kind == "prosodic":
        return cfg.prosodic
    raise ValueError(f"teacher kind must be one of {TEACHER_KINDS}, got {kind!r}")


def relevant_config(cfg_dict: dict[str, Any], kind: str) -> dict[str, Any]:
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


def cuda_device(cfg: Config) -> str:
    """Where teacher outputs are computed: CUDA when present and the trainer may use it."""
    return "cuda" if trains_on_cuda(cfg.trainer.accelerator) else "cpu"


@dataclass
class _Data:
    """The fold's utterances for one teacher (prosodic: only those with features)."""

    train: list[Utterance]
    val: list[Utterance]
    test: list[Utterance]
    features: FeatureStore | None


@dataclass
class _Built:
    """The teacher's Lightning module, loaders and the training sampler's generator."""

    module: TeacherModule
    train_loader: DataLoader
    val_loader: DataLoader
    generator: torch.Generator


def teacher_stage(
    ctx: StageContext, kind: str, features: FeatureStore | None = None
) -> tuple[dict[str, Any], TeacherOutputs | None]:
    """Train ``kind``'s teacher on the context's fold, save it, cache its outputs, test it.

    Returns:
        The test result (as ``teachers.train_teacher``; ``{}`` on DDP ranks other than 0) and
        the teacher's outputs in memory (for the caller: nothing reads them back from disk).
    """
    data = _teacher_data(ctx, kind, features)
    seed_everything(ctx.cfg.seed)
    built = _teacher_module(ctx, kind, data)
    trainer, resumed, train_seconds = _teacher_fit(ctx, kind, built)
    if not trainer.is_global_zero:
        return {}, None
    return _teacher_save(ctx, kind, data, built, trainer, resumed, train_seconds)


def _teacher_data(ctx: StageContext, kind: str, features: FeatureStore | None) -> _Data:
    """The fold's training, validation and test utterances, checked for this teacher."""
    from emodistill.models.linguistic import check_transcripts

    fold, manifest = ctx.fold, ctx.manifest
    train, val, test = ctx.split.parts
    if not train or not val:
        raise ValueError(
            f"fold {fold.id}: needs training and validation speakers "
            f"(train {fold.train_speakers}, val {fold.val_speakers})"
        )
    if kind == "linguistic":
        check_transcripts(train + val + test, manifest.path)
    else:
        features = prosodic_features(manifest, features, ctx.cfg)
        train = with_features(train, features, "training")
        val = with_features(val, features, "validation")
        test = with_features(test, features, "test")
    check_trainable(len(train), f"fold {fold.id}'s {kind} teacher")
    return _Data(train, val, test, features)


def _teacher_module(ctx: StageContext, kind: str, data: _Data) -> _Built:
    """The network (from its encoder or from scratch), its datasets, loaders and module."""
    from emodistill.models.linguistic import LinguisticTeacher
    from emodistill.models.prosodic import ProsodicNetConfig, build_prosodic_net

    cfg, labels, train = ctx.cfg, list(ctx.manifest.labels), data.train
    optim: OptimConfig = kind_section(cfg, kind).optim
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
        val_set: Dataset = TextDataset(data.val, labels)
    else:
        pros, features = cfg.prosodic, data.features
        net = build_prosodic_net(ProsodicNetConfig.from_prosodic_config(pros, labels))
        # Normalisation statistics from the training speakers only (never val/test).
        net.set_normalization(*features.normalization_stats([u.id for u in train]))
        collate = collate_llds
        train_set = LLDDataset(train, labels, features, max_frames=pros.max_frames, train=True)
        val_set = LLDDataset(data.val, labels, features)

    targets = [labels.index(u.label) for u in train]
    weights = class_weights_if_needed(targets, len(labels), optim.class_weights)
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
    return _Built(module, train_loader, val_loader, generator)


def _teacher_fit(ctx: StageContext, kind: str, built: _Built) -> tuple[Any, bool, float]:
    """Fit (resuming an interrupted run of this very stage); (trainer, resumed, seconds)."""
    cfg = ctx.cfg
    work_dir = teacher_work_dir(ctx.fold_dir, kind)
    # Resume the last finished epoch of an interrupted run of this very stage (same config
    # section, same fold data); anything else starts from epoch 0 (training/resume.py).
    key = stage_key({"config": relevant_config(cfg.to_dict(), kind), "data": ctx.split.fingerprint})
    resume = resume_checkpoint(work_dir, key, f"{kind} teacher (fold {ctx.fold.id})")
    trainer = make_optim_trainer(
        cfg.trainer,
        work_dir,
        kind_section(cfg, kind).optim,
        progress=ctx.progress,
        **ctx.trainer_overrides,
    )
    trainer.callbacks.extend([ResumeState(key, generators=[built.generator]), *ctx.callbacks])
    ckpt = str(resume) if resume else None
    started = time.perf_counter()
    trainer.fit(built.module, built.train_loader, built.val_loader, ckpt_path=ckpt)
    return trainer, resume is not None, time.perf_counter() - started


def _teacher_save(
    ctx: StageContext,
    kind: str,
    data: _Data,
    built: _Built,
    trainer: Any,
    resumed: bool,
    train_seconds: float,
) -> tuple[dict[str, Any], TeacherOutputs]:
    """Best validation-UA weights -> model folder; outputs cached; test result written."""
    fold_dir, cfg, labels = ctx.fold_dir, ctx.cfg, list(ctx.manifest.labels)
    work_dir = teacher_work_dir(fold_dir, kind)
    module, (train, val, test) = built.module, (data.train, data.val, data.test)
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
        features=data.features,
        device=cuda_device(cfg),
        progress=ctx.progress,
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
        resumed=resumed,
        train_seconds=round(train_seconds, 2),
        n_train=len(train),
        n_val=len(val),
        n_test=len(test),
        data=ctx.split.fingerprint,
        best_checkpoint=best_path.name if best_path.is_file() else None,
    )
    write_json_atomic(teacher_result_path(fold_dir, kind), result)
    if not ctx.keep_checkpoints:
        shutil.rmtree(checkpoints_dir(work_dir), ignore_errors=True)
    return result, cached
