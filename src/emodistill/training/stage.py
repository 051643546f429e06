"""What a per-fold stage function (``train_teacher``, ``distill``) is handed: one small frozen
context instead of a dozen parameters."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from emodistill.config import Config
from emodistill.corpora.manifest import Manifest
from emodistill.corpora.splits import Fold, FoldSplit
from emodistill.runs.layout import fold_dir as fold_folder


@dataclass(frozen=True)
class StageContext:
    """One fold of one run, and how its stages train.

    Attributes:
        manifest: the corpus (labels = class order).
        fold: the :class:`~emodistill.corpora.splits.Fold`.
        cfg: the run's config.
        run_dir: RUN_DIR.
        fold_dir: the fold's folder (``RUN_DIR/<fold.id>``; a teacher trained on its own is
            handed that folder directly).
        progress: progress bars.
        callbacks: extra Lightning callbacks (tests use them to interrupt or count steps).
        trainer_overrides: extra ``lightning.Trainer`` arguments.
        keep_checkpoints: keep the stage's checkpoints after success.
        known_split: the fold's :class:`FoldSplit` when the caller made it already.
    """

    manifest: Manifest
    fold: Fold
    cfg: Config
    run_dir: Path
    fold_dir: Path
    progress: bool = True
    callbacks: tuple[Any, ...] = ()
    trainer_overrides: Mapping[str, Any] = field(default_factory=dict)
    keep_checkpoints: bool = False
    known_split: FoldSplit | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(
        cls, manifest: Manifest, fold: Fold, cfg: Config, run_dir: str | Path, **kw: Any
    ) -> StageContext:
        """The context of ``fold`` in the run folder ``run_dir``."""
        run_dir = Path(run_dir)
        return cls(manifest, fold, cfg, run_dir, fold_folder(run_dir, fold.id), **kw)

    @cached_property
    def split(self) -> FoldSplit:
        """The fold's utterances and data fingerprint, computed on first use and kept."""
        return self.known_split or FoldSplit.of(self.manifest, self.fold)

    def replace(self, **changes: Any) -> StageContext:
        """A copy with ``changes`` (the fold's split, once computed, comes along)."""
        split = self.__dict__.get("split", self.known_split)
        return dataclasses.replace(self, **{"known_split": split, **changes})
