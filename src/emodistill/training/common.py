"""Shared training plumbing: seeding, the Lightning ``Trainer`` factory, AdamW + schedule.

Every stage (teachers, student) trains through :func:`make_trainer` so checkpoints, early
stopping on validation UA, CSV logs (with the learning rate), progress bars and precision choices
are the same everywhere.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emodistill.config import OptimConfig, TrainerConfig
from emodistill.runs.layout import LOGS_NAME, TENSORBOARD_NAME, checkpoints_dir

#: Values of ``trainer.logger``.
LOGGERS = ("csv", "tensorboard")

#: Metric that selects checkpoints and stops training (mean per-class recall on validation).
MONITOR = "val_ua"


def seed_everything(seed: int) -> int:
    """Seed Python, NumPy and torch (all devices) and make dataloader workers derive from it."""
    import lightning as L

    return L.seed_everything(seed, workers=True, verbose=False)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX): there autocast to bf16
    runs convolutions and matrix products about twice as fast as float32 (docs/results.md);
    without the instructions it is emulated and slower."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # private helpers: a torch without them gets float32
        return False


def trains_on_cuda(accelerator: str = "auto") -> bool:
    """Whether training runs on CUDA: a GPU is present and ``trainer.accelerator`` allows it."""
    return torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda")


def resolve_precision(precision: str, accelerator: str = "auto") -> str:
    """``"auto"`` -> ``"bf16-mixed"`` when training runs on CUDA or on a CPU with native bf16
    (:func:`cpu_has_bf16`), else ``"32-true"``."""
    if precision != "auto":
        return precision
    on_cuda = trains_on_cuda(accelerator)
    on_cpu = accelerator in ("auto", "cpu") and not on_cuda
    return "bf16-mixed" if on_cuda or (on_cpu and cpu_has_bf16()) else "32-true"


def _devices(value: str | int) -> str | int:
    """``TrainerConfig.devices`` is a string ("auto", "4", "0,1"); Lightning wants int or str."""
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if text.isdigit() else text


def make_trainer(
    cfg: TrainerConfig,
    out_dir: str | Path,
    max_epochs: int,
    monitor: str = MONITOR,
    patience: int | None = 5,
    grad_clip: float | None = None,
    accumulate_grad_batches: int = 1,
    progress: bool = True,
    logger_name: str = LOGS_NAME,
    **overrides: Any,
):
    """A ``lightning.Trainer`` writing into ``out_dir``.

    Callbacks: ``ModelCheckpoint`` (``best.ckpt`` on ``monitor``, mode max, weights only) and
    a second one writing ``last.ckpt`` every epoch for resuming, both in ``out_dir/checkpoints``;
    ``EarlyStopping`` on ``monitor`` (skipped when ``patience`` is None or <= 0); a progress bar
    (rich on a terminal, TQDM otherwise); :func:`learning_rate_callback` (an ``lr`` column).
    Logs go to ``out_dir/<logger_name>/metrics.csv`` via ``CSVLogger`` (always; the report's
    curves read it) and, with ``cfg.logger == "tensorboard"``, to ``out_dir/tensorboard/``
    too. Extra keyword arguments override any Trainer argument (the tests pass e.g.
    ``limit_val_batches``).
    """
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from emodistill.training.resume import AtomicCheckpointIO

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    callbacks: list[Any] = [
        # First, so trainer.checkpoint_callback is the best-on-monitor one.
        ModelCheckpoint(
            dirpath=checkpoints_dir(out_dir),
            filename="best",
            monitor=monitor,
            mode="max",
            save_top_k=1,
            enable_version_counter=False,
            # Only its weights are ever read back (resuming reads last.ckpt): without AdamW's
            # two moments it is a third of the size (MiniLM: 90 MB instead of 270 MB a save).
            save_weights_only=True,
        ),
        # last.ckpt after every epoch, for resuming. (save_last=True on the callback above only
        # writes it in epochs where the monitored metric improved, in Lightning 2.6.)
        ModelCheckpoint(
            dirpath=checkpoints_dir(out_dir),
            filename="last",
            monitor=None,
            save_top_k=1,
            enable_version_counter=False,
        ),
        learning_rate_callback(),
    ]
    if patience is not None and patience > 0:
        callbacks.append(EarlyStopping(monitor=monitor, mode="max", patience=patience))
    if progress:
        callbacks.append(_progress_bar())
    kwargs: dict[str, Any] = dict(
        default_root_dir=str(out_dir),
        max_epochs=max_epochs,
        accelerator=cfg.accelerator,
        devices=_devices(cfg.devices),
        num_nodes=cfg.num_nodes,
        strategy=cfg.strategy,
        precision=resolve_precision(cfg.precision, cfg.accelerator),
        limit_train_batches=cfg.limit_train_batches,
        log_every_n_steps=cfg.log_every_n_steps,
        callbacks=callbacks,
        logger=make_loggers(cfg, out_dir, logger_name),
        enable_progress_bar=progress,
        enable_model_summary=False,
        gradient_clip_val=grad_clip if grad_clip else None,
        accumulate_grad_batches=accumulate_grad_batches,
        deterministic=False,
        num_sanity_val_steps=0,
        # Checkpoints written beside their target and renamed: a kill never leaves half a file.
        plugins=[AtomicCheckpointIO()],
    )
    kwargs.update(overrides)
    # Lightning warns about few dataloader workers and small log intervals on tiny data: noise.
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*log_every_n_steps.*")
    return L.Trainer(**kwargs)


def make_loggers(cfg: TrainerConfig, out_dir: str | Path, logger_name: str = LOGS_NAME) -> list:
    """``CSVLogger`` into ``out_dir/<logger_name>/`` and, for ``cfg.logger == "tensorboard"``,
    a ``TensorBoardLogger`` into ``out_dir/tensorboard/``.

    Raises:
        ValueError: ``cfg.logger`` is not one of :data:`LOGGERS`.
        ImportError: ``tensorboard`` asked for but not installed (says how to install it).
    """
    from emodistill.training.resume import continuing_csv_logger

    if cfg.logger not in LOGGERS:
        raise ValueError(f"trainer.logger must be one of {', '.join(LOGGERS)}; got {cfg.logger!r}")
    # A resumed stage continues its metrics.csv (Lightning's CSVLogger would start it afresh).
    loggers: list[Any] = [continuing_csv_logger(out_dir, logger_name)]
    if cfg.logger == "tensorboard":
        import importlib.util

        # Lightning's TensorBoardLogger takes tensorboard or tensorboardX; checked here so the
        # error says which emodistill extra provides it, before any training starts.
        if not any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")):
            raise ImportError(
                "trainer.logger is 'tensorboard' but the tensorboard package is not installed: "
                "pip install 'emodistill[tensorboard]' (or set trainer.logger: csv)"
            )
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(str(out_dir), name=TENSORBOARD_NAME, version=""))
    return loggers


def learning_rate_callback():
    """A Lightning callback logging the learning rate of each training step as ``lr``.

    Every parameter group follows the same warm-up/cosine schedule (:func:`configure_adamw`), so
    the first group's rate is the run's: one ``lr`` column rather than one per group (what
    ``LearningRateMonitor`` would write).
    """
    from lightning.pytorch.callbacks import Callback

    class LearningRate(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            # The rate this step's optimizer update uses (the scheduler steps after it).
            lr = float(trainer.optimizers[0].param_groups[0]["lr"])
            pl_module.log("lr", lr, on_step=True, on_epoch=False, batch_size=1)

    return LearningRate()


def make_optim_trainer(
    cfg: TrainerConfig, out_dir: str | Path, optim: Any, progress: bool = True, **overrides: Any
):
    """:func:`make_trainer` with epochs, patience, clipping and accumulation from ``optim``
    (an :class:`~emodistill.config.OptimConfig`)."""
    return make_trainer(
        cfg,
        out_dir,
        max_epochs=optim.epochs,
        patience=optim.patience,
        grad_clip=optim.grad_clip,
        accumulate_grad_batches=optim.accumulate_grad_batches,
        progress=progress,
        **overrides,
    )


def _progress_bar():
    try:
        import rich  # noqa: F401
        from lightning.pytorch.callbacks import RichProgressBar

        # Rich redraws badly when output is not a terminal (CI logs): fall back to TQDM there.
        if os.isatty(2):
            return RichProgressBar()
    except ImportError:
        pass
    from lightning.pytorch.callbacks import TQDMProgressBar

    return TQDMProgressBar(refresh_rate=max(1, int(os.environ.get("EMODISTILL_TQDM_RATE", "10"))))


def warmup_cosine(total_steps: int, warmup_ratio: float):
    """LR multiplier: linear 0 -> 1 over ``warmup_ratio * total_steps``, then cosine 1 -> 0."""
    total_steps = max(1, int(total_steps))
    warmup = int(round(warmup_ratio * total_steps))

    def factor(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, progress))))

    return factor


def student_param_groups(student: torch.nn.Module, optim: OptimConfig) -> list[dict[str, Any]]:
    """AdamW parameter groups of a student's trainable parameters: weight decay on matrices
    only, and the encoder's trainable layers at ``optim.encoder_lr`` when it is set (the heads
    keep ``optim.lr``). Empty groups are left out."""
    encoder = getattr(student, "encoder", None)
    in_encoder = {id(p) for p in encoder.parameters()} if encoder is not None else set()
    groups: list[dict[str, Any]] = []
    for is_encoder in (False, True):
        lr = optim.encoder_lr if is_encoder and optim.encoder_lr is not None else optim.lr
        params = [p for p in student.parameters() if (id(p) in in_encoder) == is_encoder]
        groups += [g for g in decay_groups(params, optim.weight_decay, lr=lr) if g["params"]]
    return groups


def decay_groups(
    params: Iterable[torch.nn.Parameter], weight_decay: float, **extra: Any
) -> list[dict[str, Any]]:
    """Two AdamW groups of the trainable ``params`` (``extra``: more group keys, e.g. ``lr``):
    matrices with ``weight_decay``; biases and normalisation weights (1-D) without."""
    params = [p for p in params if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay, **extra},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0, **extra},
    ]


def configure_adamw(
    params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]],
    optim: OptimConfig,
    total_steps: int,
) -> dict[str, Any]:
    """AdamW + per-step warm-up/cosine LambdaLR, in the dict form ``configure_optimizers`` returns.

    Biases and normalisation weights (1-D parameters) get no weight decay.
    """
    params = list(params)
    if params and isinstance(params[0], dict):
        groups = params
    else:
        groups = decay_groups(params, optim.weight_decay)
    optimizer = torch.optim.AdamW(groups, lr=optim.lr, weight_decay=optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(total_steps, optim.warmup_ratio)
    )
    return {
        "optimizer": optimizer,
        "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
    }


def total_steps(n_examples: int, batch_size: int, epochs: int, accumulate: int = 1) -> int:
    """Optimizer steps of a full run (for the LR schedule), at least 1."""
    from emodistill.training.sampling import num_batches

    per_epoch = num_batches(max(1, n_examples), batch_size)  # a last batch of one is merged
    return max(1, math.ceil(per_epoch / max(1, accumulate)) * max(1, epochs))


def class_weights_of(targets: Sequence[int], num_classes: int) -> torch.Tensor:
    """Inverse-frequency cross-entropy weights N / (C * n_c), the one rule for teachers and
    students; a class absent from the training targets gets weight 0 (it cannot be learnt)."""
    counts = np.bincount(np.asarray(targets, dtype=np.int64), minlength=num_classes).astype(float)
    weights = np.where(counts > 0, counts.sum() / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def class_weights_if_needed(
    targets: Sequence[int], num_classes: int, enabled: bool
) -> torch.Tensor | None:
    """``optim.class_weights`` applied: the :func:`class_weights_of` weights, or None when off
    or when every class is equally frequent (all weights 1: the same loss, computed unweighted,
    so a balanced corpus trains exactly as with the setting off)."""
    if not enabled:
        return None
    weights = class_weights_of(targets, num_classes)
    return None if bool((weights == 1.0).all()) else weights


def ddp_strategy_for(strategy: str, student: torch.nn.Module) -> str:
    """``ddp`` -> ``ddp_find_unused_parameters_true`` for encoders whose steps may leave
    parameters unused, which plain DDP rejects mid-training: wav2vec2-family
    ``masked_spec_embed`` (used only when SpecAugment masks something) and LayerDrop
    (``config.layerdrop > 0`` skips whole layers at random; HuBERT's default is 0.1)."""
    if strategy != "ddp":
        return strategy
    conditional = any(
        n.endswith("masked_spec_embed") and p.requires_grad for n, p in student.named_parameters()
    ) or any(
        float(getattr(getattr(m, "config", None), "layerdrop", 0.0) or 0.0) > 0.0
        for m in student.modules()
    )
    return "ddp_find_unused_parameters_true" if conditional else strategy
