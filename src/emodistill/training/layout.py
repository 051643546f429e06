"""Every path inside a run folder, in one place (see docs/ARCHITECTURE.md)::

RUN_DIR/config.json, results.json, report.md, confusion.png     variant "full"
RUN_DIR/variants/<variant>/results.json, ...                    other variants
RUN_DIR/compare-<variant>-vs-<baseline>.json                    paired statistics
RUN_DIR/<fold>/teachers/{linguistic,prosodic,outputs,train}/    teachers of a fold
RUN_DIR/<fold>/student/ (+ predictions.json)                    full, seed = config seed
RUN_DIR/<fold>/variants/<variant>/student/                      other variants
RUN_DIR/<fold>/.../seeds/<seed>/student/                        other seeds
"""

from __future__ import annotations

from pathlib import Path

from emodistill.model_folder import CONFIG_NAME
from emodistill.training.variants import Variant, get_variant


def run_config_path(run_dir: str | Path) -> Path:
    """``RUN_DIR/config.json``: the full config a run was started with."""
    return Path(run_dir) / CONFIG_NAME


def results_dir(run_dir: str | Path, variant: str | Variant = "full") -> Path:
    """``RUN_DIR`` for ``full``, else ``RUN_DIR/variants/<variant>``."""
    name = get_variant(variant).name
    return Path(run_dir) if name == "full" else Path(run_dir) / "variants" / name


def fold_dir(run_dir: str | Path, fold_id: str) -> Path:
    """``RUN_DIR/<fold>``: the fold's teachers and students."""
    return Path(run_dir) / fold_id


def teachers_dir(run_dir: str | Path, fold_id: str) -> Path:
    """``RUN_DIR/<fold>/teachers``."""
    return fold_dir(run_dir, fold_id) / "teachers"


def variant_dir(
    run_dir: str | Path, fold_id: str, variant: str | Variant = "full", seed: int | None = None
) -> Path:
    """``RUN_DIR/<fold>`` for ``full``, else ``RUN_DIR/<fold>/variants/<variant>``; a seed other
    than the config's own (``seed=None``) adds ``seeds/<seed>``."""
    name = get_variant(variant).name
    base = fold_dir(run_dir, fold_id)
    base = base if name == "full" else base / "variants" / name
    return base if seed is None else base / "seeds" / str(int(seed))


def student_dir(
    run_dir: str | Path, fold_id: str, variant: str | Variant = "full", seed: int | None = None
) -> Path:
    """The fold's speech-only model folder: ``RUN_DIR/<fold>/student`` for ``full``."""
    return variant_dir(run_dir, fold_id, variant, seed) / "student"


def predictions_path(
    run_dir: str | Path, fold_id: str, variant: str | Variant = "full", seed: int | None = None
) -> Path:
    """Where the fold's test-speaker predictions of ``variant`` (and seed) live."""
    v = get_variant(variant)
    if v.teacher is not None:
        return variant_dir(run_dir, fold_id, v) / "predictions.json"
    return student_dir(run_dir, fold_id, v, seed) / "predictions.json"


def work_dir(
    run_dir: str | Path, fold_id: str, variant: str | Variant = "full", seed: int | None = None
) -> Path:
    """Training state (checkpoints, CSV logs) of a student: beside, not inside, the model."""
    return variant_dir(run_dir, fold_id, variant, seed) / "student_train"


def compare_path(run_dir: str | Path, variant: str, baseline: str) -> Path:
    """``RUN_DIR/compare-<variant>-vs-<baseline>.json``."""
    return Path(run_dir) / f"compare-{variant}-vs-{baseline}.json"
