"""Resuming a training stage where it stopped: per-epoch checkpoints keyed like the stage's reuse.

Every stage (each teacher, each student) trains through Lightning, which writes
``<work dir>/checkpoints/last.ckpt`` after every epoch (weights, optimiser, LR scheduler,
early-stopping and best-checkpoint state: ``training/common.py``). This module adds what a
resumed run needs to end exactly where an uninterrupted one ends, and what keeps a resume safe:

* :class:`ResumeState` — a callback whose state travels in every checkpoint: the stage's *key*
  and the random-number generators (Python, NumPy, torch CPU and CUDA, and the data loader's
  shuffling generator), restored when training resumes.
* :func:`stage_key` — hex digest of what the stage's reuse check compares (its config section
  and the fold's data fingerprint): a checkpoint made under another config or from other data
  is never resumed.
* :func:`resume_checkpoint` — the checkpoint to resume, or None: prints ``resumed <stage> from
  epoch N``; a stale checkpoint (other key) or an unreadable one (a truncated file) is moved
  aside with a message naming it, and the stage starts from epoch 0.
* Preemption (Slurm ``--signal=USR1``): Lightning's ``SLURMEnvironment`` requeues the job and
  writes a mid-epoch ``hpc_ckpt_<n>.ckpt``; the requeued job resumes the last finished epoch
  instead (exactness), and :func:`resume_checkpoint` removes the ``hpc_ckpt`` files.
* :class:`AtomicCheckpointIO` — Lightning's checkpoint writer, but the temporary file lies beside
  the target (``_io.atomic_path``: fsync, rename): Lightning's own goes through ``/tmp`` and a
  cross-device move, which a kill can leave truncated, and holds a second copy in memory.

The stage deletes ``checkpoints/`` once its model is saved (``keep_checkpoints`` keeps it).
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback
from rich.console import Console
from rich.markup import escape

from emodistill.runs.layout import LOGS_NAME, checkpoints_dir, metrics_csv_path
from emodistill.util.files import EnvironmentFault, atomic_path

console = Console(stderr=True)

#: The checkpoint a stage resumes from, inside its work folder.
LAST_NAME = "last.ckpt"
#: Where :class:`ResumeState` keeps its state in a checkpoint's ``callbacks`` dict.
STATE_KEY = "emodistill_resume"


def stage_key(parts: Mapping[str, Any]) -> str:
    """Hex digest of ``parts`` (JSON, sorted keys): what must match for a checkpoint to resume.

    >>> a = stage_key({"config": {"lr": 0.1}, "data": "ab"})
    >>> a == stage_key({"data": "ab", "config": {"lr": 0.1}}), a == stage_key({"data": "ab"})
    (True, False)
    """
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        # Plain values: Lightning and the stages read checkpoints with weights_only=True.
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        states = state["cuda"]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


class ResumeState(Callback):
    """Saves the stage key and the random generators in every checkpoint; restores them on resume.

    Args:
        key: :func:`stage_key` of the stage.
        generators: extra ``torch.Generator`` objects (a DataLoader's shuffling generator).
    """

    def __init__(self, key: str, generators: Sequence[torch.Generator] = ()) -> None:
        self.key = key
        self.generators = list(generators)

    @property
    def state_key(self) -> str:
        return STATE_KEY

    def state_dict(self) -> dict[str, Any]:
        # Called when a checkpoint is written (end of an epoch's validation): the generators
        # are where the next epoch of an uninterrupted run starts from.
        return {
            "key": self.key,
            "rng": _rng_state(),
            "generators": [g.get_state() for g in self.generators],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("key") != self.key:  # resume_checkpoint never lets this happen
            raise ValueError("checkpoint made for another config or other data")
        _set_rng_state(state_dict["rng"])
        for gen, saved in zip(self.generators, state_dict.get("generators", []), strict=False):
            gen.set_state(saved)

    def on_validation_end(self, trainer, pl_module) -> None:
        # Before this epoch's checkpoint is written (checkpoint callbacks run last): its log rows
        # on disk, so a kill after the checkpoint loses none of the epochs a resume skips.
        _flush_logs(trainer)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        _flush_logs(trainer)  # the previous epoch's training means, logged after its checkpoint


def _flush_logs(trainer) -> None:
    if trainer.is_global_zero:
        for logger in trainer.loggers:
            logger.save()


def continuing_csv_logger(save_dir: str | Path, name: str):
    """Lightning's ``CSVLogger`` (version ``""``) that continues an existing ``metrics.csv``
    instead of deleting it (Lightning's does, which loses a resumed run's earlier epochs);
    :func:`resume_checkpoint` clears or trims the file first."""
    from lightning.fabric.loggers.logger import rank_zero_experiment
    from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
    from lightning.pytorch.loggers.csv_logs import ExperimentWriter

    class ContinuingWriter(ExperimentWriter):
        def _check_log_dir_exists(self) -> None:
            if self._fs.isfile(self.metrics_file_path):
                with self._fs.open(self.metrics_file_path, "r", newline="") as fh:
                    self.metrics_keys = list(csv.DictReader(fh).fieldnames or [])

    class CSVLogger(LightningCSVLogger):  # the same logger, but continuing its file
        @property
        @rank_zero_experiment
        def experiment(self) -> ExperimentWriter:
            if self._experiment is None:
                self._fs.makedirs(self.root_dir, exist_ok=True)
                self._experiment = ContinuingWriter(log_dir=self.log_dir)
            return self._experiment

    return CSVLogger(str(save_dir), name=name, version="")


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into a temporary file beside the checkpoint, fsync, rename into place."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        path = Path(path)
        try:
            with atomic_path(path) as tmp:
                torch.save(checkpoint, tmp)
        except Exception as err:  # torch reports a full disk as a RuntimeError
            try:
                free = f"{shutil.disk_usage(path.parent).free / 2**20:.0f} MiB free there"
            except OSError:
                free = "its disk cannot be read"
            raise EnvironmentFault(
                f"cannot write checkpoint {path} ({type(err).__name__}: {err}; {free}): the "
                "last complete checkpoint is kept; free space (or make the folder writable) "
                "and rerun the same command to resume"
            ) from err


def read_checkpoint_head(path: Path) -> dict[str, Any]:
    """The checkpoint's epoch, global step and :class:`ResumeState` entry (tensors memory-mapped,
    not read: cheap even for a large model).

    Raises:
        Exception: whatever ``torch.load`` raises on an unreadable (truncated, corrupt) file.
    """
    ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    state = (ckpt.get("callbacks") or {}).get(STATE_KEY) or {}
    return {
        "epoch": int(ckpt.get("epoch", -1)),
        "global_step": int(ckpt.get("global_step", 0)),
        "key": state.get("key"),
    }


def _set_aside(work_dir: Path, path: Path, why: str) -> Path:
    """Move ``path`` to ``work_dir/stale/<time>-<name>`` (kept for inspection, never resumed)."""
    dest = work_dir / "stale" / f"{time.strftime('%Y%m%d-%H%M%S')}-{path.name}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), dest)
    return dest


def _fresh_start(work_dir: Path) -> None:
    """Clear what an earlier attempt left (checkpoints, training logs) before epoch 0."""
    for folder in (checkpoints_dir(work_dir), work_dir / LOGS_NAME):
        shutil.rmtree(folder, ignore_errors=True)


def _trim_logs(work_dir: Path, global_step: int) -> None:
    """Drop the CSV log rows an interrupted epoch wrote after the checkpoint (the resumed epoch
    logs them again), so the logs read like an uninterrupted run's."""
    path = metrics_csv_path(work_dir)
    if not path.is_file():
        return
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        rows = list(reader)
    if "step" not in fields:
        return
    kept = [r for r in rows if r.get("step", "").isdigit() and int(r["step"]) < global_step]
    if len(kept) == len(rows):
        return
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept)


def resume_checkpoint(work_dir: str | Path, key: str, stage: str) -> Path | None:
    """The checkpoint to pass as ``ckpt_path``, or None to train from epoch 0.

    Resumes ``work_dir/checkpoints/last.ckpt`` when it reads and carries ``key``, printing
    ``resumed <stage> from epoch N`` (N epochs were done; training continues with epoch N,
    counted from 0). Otherwise the checkpoint is moved to ``work_dir/stale/`` with a message
    naming it (made under another config or from other data, or unreadable), the work folder's
    checkpoints and logs are cleared, and None is returned.
    """
    work_dir = Path(work_dir)
    # Lightning's SLURM requeue handler writes hpc_ckpt_<n>.ckpt mid-epoch, and would resume
    # from it when ckpt_path is None: resuming there is not exact (the epoch's batches would
    # restart), so the last finished epoch's checkpoint is the one resumed, always.
    for hpc in work_dir.glob("hpc_ckpt_*.ckpt"):
        hpc.unlink()
    path = checkpoints_dir(work_dir) / LAST_NAME
    if not path.is_file():
        if checkpoints_dir(work_dir).exists() or (work_dir / LOGS_NAME).exists():
            _fresh_start(work_dir)  # killed before the first epoch ended
        return None
    try:
        head = read_checkpoint_head(path)
    except Exception as err:  # noqa: BLE001 - any unreadable file: set aside, named
        dest = _set_aside(work_dir, path, "unreadable")
        console.print(
            f"[yellow]warning:[/] {stage}: checkpoint {path} is unreadable "
            f"({type(err).__name__}: {escape(str(err))}); moved to {dest}, training starts "
            "from epoch 0",
            soft_wrap=True,
        )
        _fresh_start(work_dir)
        return None
    if head["key"] != key:
        dest = _set_aside(work_dir, path, "stale")
        console.print(
            f"[yellow]{stage}:[/] checkpoint {path} was made under another config or from "
            f"other data; moved to {dest}, training starts from epoch 0",
            soft_wrap=True,
        )
        _fresh_start(work_dir)
        return None
    done = head["epoch"] + 1
    _trim_logs(work_dir, head["global_step"])
    console.print(f"resumed {stage} from epoch {done} ({path})", soft_wrap=True, markup=False)
    return path
