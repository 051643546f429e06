"""Every path inside a run folder, in one place (see docs/ARCHITECTURE.md)::

RUN_DIR/config.json, results.json, report.md, confusion.png, curves.png   variant "full"
RUN_DIR/variants/<variant>/results.json, ...                    other variants
RUN_DIR/compare-<variant>-vs-<baseline>.json                    paired statistics
RUN_DIR/<fold>/teachers/{linguistic,prosodic,outputs,train}/    teachers of a fold
RUN_DIR/<fold>/student/ (+ predictions.json)                    full, seed = config seed
RUN_DIR/<fold>/variants/<variant>/student/                      other variants
RUN_DIR/<fold>/.../seeds/<seed>/student/                        other seeds
RUN_DIR/<fold>/.../student_train/logs/metrics.csv               a student's training log
<work>/checkpoints/{best,last}.ckpt                             a stage's checkpoints
RUN_DIR/.prefix-cache/                                          frozen-bottom outputs (no CSV)
RUN_DIR/probe/probe.{json,png}                                  the linear probe
RUN_DIR/folds/<fold>/predictions.json, baseline.json            the eGeMAPS baseline
OUT/predictions.json, labels.json (+ results.json, ...)          a cross-corpus evaluation

No other module joins these names onto a run folder (tests/test_structure.py checks it).
"""

from __future__ import annotations

from pathlib import Path

from emodistill.config import TEACHER_KINDS
from emodistill.config.variants import FULL, VARIANTS, Variant, get_variant
from emodistill.models.folder import CONFIG_NAME

#: Folder of a training stage's logs inside its work folder (Lightning's CSVLogger name).
LOGS_NAME = "logs"
#: The file Lightning's CSVLogger writes into :data:`LOGS_NAME`.
METRICS_CSV_NAME = "metrics.csv"
#: Folder of the TensorBoard event files inside a work folder (``trainer.logger: tensorboard``).
TENSORBOARD_NAME = "tensorboard"
#: Folder of a training stage's checkpoints inside its work folder.
CHECKPOINTS_NAME = "checkpoints"


def run_config_path(run_dir: str | Path) -> Path:
    """``RUN_DIR/config.json``: the full config a run was started with."""
    return Path(run_dir) / CONFIG_NAME


def results_dir(run_dir: str | Path, variant: str | Variant = FULL) -> Path:
    """``RUN_DIR`` for ``full``, else ``RUN_DIR/variants/<variant>``."""
    name = get_variant(variant).name
    return Path(run_dir) if name == FULL else Path(run_dir) / "variants" / name


def fold_dir(run_dir: str | Path, fold_id: str) -> Path:
    """``RUN_DIR/<fold>``: the fold's teachers and students."""
    return Path(run_dir) / fold_id


def teachers_dir(run_dir: str | Path, fold_id: str) -> Path:
    """``RUN_DIR/<fold>/teachers``."""
    return fold_dir(run_dir, fold_id) / "teachers"


def variant_dir(
    run_dir: str | Path, fold_id: str, variant: str | Variant = FULL, seed: int | None = None
) -> Path:
    """``RUN_DIR/<fold>`` for ``full``, else ``RUN_DIR/<fold>/variants/<variant>``; a seed other
    than the config's own (``seed=None``) adds ``seeds/<seed>``."""
    name = get_variant(variant).name
    base = fold_dir(run_dir, fold_id)
    base = base if name == FULL else base / "variants" / name
    return base if seed is None else base / "seeds" / str(int(seed))


def student_dir(
    run_dir: str | Path, fold_id: str, variant: str | Variant = FULL, seed: int | None = None
) -> Path:
    """The fold's speech-only model folder: ``RUN_DIR/<fold>/student`` for ``full``."""
    return variant_dir(run_dir, fold_id, variant, seed) / "student"


def predictions_path(
    run_dir: str | Path, fold_id: str, variant: str | Variant = FULL, seed: int | None = None
) -> Path:
    """Where the fold's test-speaker predictions of ``variant`` (and seed) live."""
    v = get_variant(variant)
    if v.teacher is not None:
        return variant_dir(run_dir, fold_id, v) / "predictions.json"
    return student_dir(run_dir, fold_id, v, seed) / "predictions.json"


def work_dir(
    run_dir: str | Path, fold_id: str, variant: str | Variant = FULL, seed: int | None = None
) -> Path:
    """Training state (checkpoints, CSV logs) of a student: beside, not inside, the model."""
    return variant_dir(run_dir, fold_id, variant, seed) / "student_train"


def metrics_csv_path(work: str | Path) -> Path:
    """``<work>/logs/metrics.csv``: the CSV log of the training stage whose work folder (student
    :func:`work_dir`, teacher :func:`teacher_work_dir`) is ``work``."""
    return Path(work) / LOGS_NAME / METRICS_CSV_NAME


def checkpoints_dir(work: str | Path) -> Path:
    """``<work>/checkpoints``: a training stage's ``best.ckpt`` and ``last.ckpt``."""
    return Path(work) / CHECKPOINTS_NAME


def checkpoint_path(work: str | Path, which: str) -> Path:
    """``<work>/checkpoints/<which>.ckpt`` (``which``: ``best`` or ``last``)."""
    return checkpoints_dir(work) / f"{which}.ckpt"


def run_prefix_cache_dir(run_dir: str | Path) -> Path:
    """``RUN_DIR/.prefix-cache``: frozen-bottom outputs of a run whose manifest has no file."""
    return Path(run_dir) / ".prefix-cache"


def results_path(run_dir: str | Path, variant: str | Variant = FULL) -> Path:
    """A variant's ``results.json`` (a name outside Table 2, such as a sweep point, too)."""
    if isinstance(variant, str):
        variant = VARIANTS.get(variant) or Variant(variant)
    return results_dir(run_dir, variant) / "results.json"


def _teacher_kind(kind: str) -> str:
    if kind not in TEACHER_KINDS:
        raise ValueError(f"teacher kind must be one of {TEACHER_KINDS}, got {kind!r}")
    return kind


def teacher_dir(fold_dir: str | Path, kind: str) -> Path:
    """``<fold_dir>/teachers/<kind>``: the teacher's model folder."""
    return Path(fold_dir) / "teachers" / _teacher_kind(kind)


def teacher_outputs_dir(fold_dir: str | Path, kind: str) -> Path:
    """``<fold_dir>/teachers/outputs/<kind>``: the teacher's cached outputs."""
    return Path(fold_dir) / "teachers" / "outputs" / _teacher_kind(kind)


def teacher_work_dir(fold_dir: str | Path, kind: str) -> Path:
    """``<fold_dir>/teachers/train/<kind>``: training state and ``result.json``."""
    return Path(fold_dir) / "teachers" / "train" / _teacher_kind(kind)


def teacher_result_path(fold_dir: str | Path, kind: str) -> Path:
    """``<fold_dir>/teachers/train/<kind>/result.json``: the trained teacher's test result."""
    return teacher_work_dir(fold_dir, kind) / "result.json"


def teacher_metrics_path(fold_dir: str | Path) -> Path:
    """``<fold_dir>/teachers/metrics.json``: both teachers' test metrics."""
    return Path(fold_dir) / "teachers" / "metrics.json"


def report_path(run_dir: str | Path, variant: str | Variant = FULL) -> Path:
    """A variant's ``report.md`` (beside its results.json)."""
    return results_path(run_dir, variant).with_name("report.md")


def confusion_path(run_dir: str | Path, variant: str | Variant = FULL) -> Path:
    """A variant's ``confusion.png`` (beside its results.json)."""
    return results_path(run_dir, variant).with_name("confusion.png")


def curves_path(run_dir: str | Path, variant: str | Variant = FULL) -> Path:
    """A variant's ``curves.png`` (training curves over folds x seeds; beside results.json)."""
    return results_path(run_dir, variant).with_name("curves.png")


def teaching_path(run_dir: str | Path, variant: str | Variant = FULL) -> Path:
    """A variant's ``teaching.json`` (which teachers taught each student; beside results.json)."""
    return results_path(run_dir, variant).with_name("teaching.json")


def ablation_path(run_dir: str | Path, suffix: str) -> Path:
    """``RUN_DIR/ablation<suffix>`` (``.json``, ``.md``, ``.png``)."""
    return Path(run_dir) / f"ablation{suffix}"


def sweep_path(run_dir: str | Path, teacher: str, suffix: str) -> Path:
    """``RUN_DIR/sweep_<teacher><suffix>`` (``.json``, ``.md``, ``.png``)."""
    return Path(run_dir) / f"sweep_{_teacher_kind(teacher)}{suffix}"


def teachers_summary_path(run_dir: str | Path) -> Path:
    """``RUN_DIR/teachers.json``: every fold's teacher metrics, mean and std."""
    return Path(run_dir) / "teachers.json"


def all_teacher_metrics(run_dir: str | Path) -> list[Path]:
    """Every fold's ``teachers/metrics.json`` under ``RUN_DIR``, sorted."""
    return sorted(Path(run_dir).glob("*/teachers/metrics.json"))


def teacher_metrics_by_fold(run_dir: str | Path) -> dict[str, Path]:
    """Fold id -> its ``teachers/metrics.json``, for every fold on disk (sorted)."""
    return {path.parent.parent.name: path for path in all_teacher_metrics(run_dir)}


def compare_path(run_dir: str | Path, variant: str, baseline: str) -> Path:
    """``RUN_DIR/compare-<variant>-vs-<baseline>.json``."""
    return Path(run_dir) / f"compare-{variant}-vs-{baseline}.json"


def probe_dir(run_dir: str | Path) -> Path:
    """``RUN/probe/``: the linear probe on the student's frozen features (``cv --probe``)."""
    return Path(run_dir) / "probe"


def probe_path(run_dir: str | Path) -> Path:
    """``RUN/probe/probe.json`` (the format ``emodistill probe`` writes)."""
    return probe_file(probe_dir(run_dir))


def probe_file(folder: str | Path, suffix: str = ".json") -> Path:
    """``<folder>/probe<suffix>`` in a probe's output folder (``.json``: result, ``.png``)."""
    return Path(folder) / f"probe{suffix}"


def baseline_predictions_path(run_dir: str | Path, fold_id: str) -> Path:
    """``RUN_DIR/folds/<fold>/predictions.json``: the eGeMAPS baseline's test predictions."""
    return Path(run_dir) / "folds" / fold_id / "predictions.json"


def baseline_summary_path(run_dir: str | Path) -> Path:
    """``RUN_DIR/baseline.json``: the baseline's settings and each fold's chosen C."""
    return Path(run_dir) / "baseline.json"


def evaluation_predictions_path(out: str | Path) -> Path:
    """``OUT/predictions.json`` of a cross-corpus evaluation (beside its results.json)."""
    return Path(out) / "predictions.json"


def evaluation_labels_path(out: str | Path) -> Path:
    """``OUT/labels.json`` of a cross-corpus evaluation: how the label sets were matched."""
    return Path(out) / "labels.json"
