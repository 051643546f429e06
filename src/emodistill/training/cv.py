"""Speaker-independent cross-validation, the paper's ablations and its temperature sweep.

Every function here is restartable and cluster-friendly: teachers are trained (or reused) per
fold by ``train_teachers``; a fold whose predictions already exist is not retrained; and the
results are always aggregated from *every* fold found on disk for the variant, so array jobs
that each run ``cv --folds ID`` followed by one more ``cv`` run (any ``--folds``) give the full
report. Layout (see also ``docs/ARCHITECTURE.md``)::

    RUN_DIR/results.json, report.md, confusion.png,       variant "full"
            curves.png
    RUN_DIR/variants/<variant>/results.json, ...          other variants and sweep points
    RUN_DIR/ablation.json, ablation.md, ablation.png      ablate()
    RUN_DIR/sweep_<teacher>.json, .md, .png               sweep_temperature()
    RUN_DIR/<fold>/student/                               the fold's speech-only model
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from emodistill.config import Config, resolve_config
from emodistill.config.variants import (
    BASELINE,
    FULL,
    VARIANTS,
    Variant,
    get_variant,
    sweep_variant,
)
from emodistill.corpora.manifest import Manifest, as_manifest
from emodistill.corpora.splits import Fold
from emodistill.evaluation.report import (
    ablation_markdown,
    aggregate_runs,
    plot_ablation,
    plot_confusion,
    plot_sweep,
    results_markdown,
    sweep_markdown,
    teaching_markdown,
    teaching_of,
)
from emodistill.runs.layout import (
    ablation_path,
    confusion_path,
    curves_path,
    metrics_csv_path,
    predictions_path,
    probe_dir,
    probe_path,
    report_path,
    results_path,
    run_config_path,
    student_dir,
    sweep_path,
    teaching_path,
    work_dir,
)
from emodistill.training.distill import distill
from emodistill.training.teacher_cache import TeacherOutputs
from emodistill.util.files import (
    folder_lock,
    read_json,
    write_json_atomic,
    write_text_atomic,
)
from emodistill.util.log import PLAIN, get_logger

log = get_logger(__name__)


def all_folds(manifest: Manifest, cfg: Config) -> list:
    """Every fold of the config's scheme (the selection never changes fold definitions)."""
    from emodistill.corpora.splits import config_folds

    return config_folds(manifest, cfg.folds)


def _select(manifest: Manifest, cfg: Config, folds: str | Sequence[str]) -> tuple[list, list]:
    from emodistill.corpora.splits import select_folds

    every = all_folds(manifest, cfg)
    spec = folds if isinstance(folds, str) else ",".join(folds)
    return every, select_folds(every, spec)


def ensure_teachers(
    manifest: Manifest, run_dir: Path, cfg: Config, folds: Sequence[Fold], progress: bool = True
) -> dict[str, dict[str, TeacherOutputs]]:
    """Train (or reuse) both teachers and their cached outputs for ``folds``.

    Always goes through ``train_teachers``: it reuses a fold's teachers only when they were
    trained with this config's teacher sections (and refreshes a stale output cache), so a
    changed teacher setting can never be paired silently with old teachers. Returns the
    outputs in memory (``{fold_id: {kind: TeacherOutputs}}``), to hand to :func:`distill`.
    """
    from emodistill.training.teachers import train_teachers

    outputs: dict[str, dict[str, TeacherOutputs]] = {}
    train_teachers(manifest, run_dir, config=cfg, folds=folds, progress=progress, outputs=outputs)
    return outputs


def aggregate_run(
    manifest: Manifest | str | Path,
    run_dir: str | Path,
    config: Config | str | Path | None = None,
    variant: str | Variant = FULL,
    title: str | None = None,
) -> dict[str, Any] | None:
    """Aggregate every fold of ``variant`` found under ``run_dir`` and write its reports.

    Writes ``results.json`` (keys: folds, mean, std, pooled, labels, confusion), ``report.md``,
    ``confusion.png`` and, for a student variant, ``curves.png``
    (``emodistill.evaluation.curves``) into :func:`results_dir` (and ``teaching.json``, which
    teachers taught each student: :func:`~emodistill.evaluation.report.teaching_of`). Returns
    the results, or None when no fold of this variant has predictions yet.
    """
    m = as_manifest(manifest)
    cfg = resolve_config(config)
    v = get_variant(variant)
    run_dir = Path(run_dir)
    preds: dict[tuple[str, int], dict[str, Any]] = {}
    missing = []
    # A teacher-only variant does not depend on the student seed: one run per fold.
    seeds = [cfg.seed] if v.teacher is not None else cfg.run_seeds()
    for fold in all_folds(m, cfg):
        for seed in seeds:
            path = predictions_path(run_dir, fold.id, v, None if seed == cfg.seed else seed)
            if path.is_file():
                preds[(fold.id, seed)] = read_json(path)
            else:
                missing.append(fold.id if len(seeds) == 1 else f"{fold.id} (seed {seed})")
    if not preds:
        return None
    results = aggregate_runs(preds, m.labels)
    if v.teacher is None and cfg.student.speaker_norm:  # only then: results.json's keys stay
        results["speaker_norm"] = True
    teaching = teaching_of(preds)
    probe_note = _probe_note(run_dir, v, results)
    with folder_lock(results_path(run_dir, v), f"the results of {v.name}"):  # one set of files
        write_json_atomic(results_path(run_dir, v), results)
        if teaching:
            write_json_atomic(teaching_path(run_dir, v), teaching)
        heading = title or f"Cross-validation: {v.name}"
        notes = [
            f"Config: `{cfg.name}`; fold scheme `{cfg.folds.scheme}`; "
            f"seeds {', '.join(str(s) for s in results['seeds'])}."
        ]
        if teaching:
            notes.append(teaching_markdown(teaching))
        curves = _plot_curves(run_dir, cfg, v, list(preds), heading)
        if curves:
            notes.append(curves)
        if probe_note:
            notes.append(probe_note)
        paper_row = v.name if v.name in VARIANTS else ""
        write_text_atomic(
            report_path(run_dir, v), results_markdown(results, heading, paper_row, missing, notes)
        )
        plot_confusion(results["confusion"], results["labels"], confusion_path(run_dir, v), heading)
    write_model_cards(run_dir, m, cfg, v, list(preds))
    return results


def probe_enabled(cfg: Config, probe: bool | None = None) -> bool:
    """``cv --probe``: on by default when the student's encoder is frozen (the probe then reads
    the very features the student trains on, and costs a logistic regression per layer)."""
    if probe is not None:
        return bool(probe)
    return str(cfg.student.trainable_layers) == "0"


def ensure_run_probe(
    manifest: Manifest, run_dir: Path, cfg: Config, progress: bool = True
) -> dict[str, Any]:
    """The linear probe of the student's frozen encoder on every fold of the config, in
    ``RUN/probe/`` (reused when the data and settings are unchanged)."""
    from emodistill.evaluation.probe import run_probe
    from emodistill.training.distill import prefix_cache_dir

    return run_probe(
        manifest,
        all_folds(manifest, cfg),
        probe_dir(run_dir),
        cfg.student.encoder,
        prefix_cache_dir(manifest, run_dir),
        max_seconds=cfg.student.max_seconds,
        progress=progress,
        reuse=True,
    )


def _probe_note(run_dir: Path, v: Variant, results: dict[str, Any]) -> str:
    """The report's "linear probe" section for a student variant, when the run folder has a
    probe."""
    from emodistill.evaluation.probe import probe_comparison, probe_markdown

    if v.teacher is not None or not probe_path(run_dir).is_file():
        return ""
    cmp = probe_comparison(read_json(probe_path(run_dir)), results)
    if not cmp.get("folds"):
        return ""
    return probe_markdown(cmp, f"this student (`{v.name}`)")


def write_model_cards(
    run_dir: Path, manifest: Manifest, cfg: Config, v: Variant, runs: Sequence[tuple[str, int]]
) -> None:
    """(Re)write the model card of every (fold, seed) student of ``v`` in ``runs`` from the
    run's files (``emodistill.evaluation.model_card``); teacher-only variants have no student
    folder."""
    from emodistill.evaluation.model_card import write_model_card

    if v.teacher is not None:
        return
    for fold_id, seed in runs:
        folder = student_dir(run_dir, fold_id, v, None if seed == cfg.seed else seed)
        if folder.is_dir():
            write_model_card(folder, run_dir, manifest)


def _plot_curves(
    run_dir: Path, cfg: Config, v: Variant, runs: Sequence[tuple[str, int]], title: str
) -> str:
    """Draw the variant's ``curves.png`` from its students' ``metrics.csv`` logs and return the
    report's section on it; ``""`` for a teacher-only variant or when no log exists."""
    from emodistill.evaluation.curves import curves_markdown, plot_curves, read_epochs

    if v.teacher is not None:
        return ""
    logs = {}
    for fold_id, seed in runs:
        wdir = work_dir(run_dir, fold_id, v, None if seed == cfg.seed else seed)
        if metrics_csv_path(wdir).is_file():
            logs[f"{fold_id}, seed {seed}"] = metrics_csv_path(wdir)
    if not logs:
        return ""
    image = plot_curves([read_epochs(p) for p in logs.values()], curves_path(run_dir, v), title)
    return curves_markdown(logs, image, report_path(run_dir, v))


def cross_validate(
    manifest: Manifest | str | Path,
    out: str | Path,
    config: Config | str | Path | None = None,
    folds: str | Sequence[str] = "all",
    variant: str | Variant = FULL,
    overrides: Mapping[str, Any] | None = None,
    *,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    trainer_overrides: Mapping[str, Any] | None = None,
    teachers_ready: bool = False,
    seeds: Sequence[int] | None = None,
    probe: bool | None = None,
    teacher_outputs: Mapping[str, Mapping[str, TeacherOutputs]] | None = None,
    aggregate: bool = True,
) -> dict[str, Any]:
    """Teachers (reused if present), the linear probe, then the student of ``variant`` per
    selected fold and seed; report.

    Args:
        manifest: manifest CSV (or a loaded :class:`Manifest` that has a path).
        out: RUN_DIR.
        config: preset name, YAML file, Config, or None (``demo``).
        folds: ``"all"`` or comma-separated fold ids (as ``train-teachers``).
        variant: a Table 2 variant name (:data:`~emodistill.config.variants.VARIANTS`) or a
            :class:`Variant`.
        overrides: dotted config overrides (``{"trainer.devices": "4"}``).
        progress, callbacks, trainer_overrides: passed to :func:`distill`.
        teachers_ready: skip the teacher check (callers that just ran :func:`ensure_teachers`
            for these folds and this config: ``ablate``, ``sweep_temperature``, the demo).
        seeds: student seeds (default ``config.seeds``, else ``[config.seed]``); every fold is
            trained once per seed.
        probe: the linear probe on the student's frozen features, on every fold, in
            ``RUN/probe/`` and beside the students in the reports (:func:`probe_enabled`: None =
            when the encoder is frozen).
        teacher_outputs: the folds' teacher outputs in memory (``{fold_id: {kind: outputs}}``,
            from :func:`ensure_teachers`), handed to :func:`distill`; a fold or kind missing
            here is read from its cache on disk.
        aggregate: False trains only (fold workers: their parent aggregates once, at the end).

    Returns:
        The aggregated results over every fold of the variant found on disk (see
        :func:`aggregate_run`); ``{}`` on DDP ranks other than 0 and without ``aggregate``.
    """
    m = as_manifest(manifest)
    cfg = resolve_config(config, overrides)
    if seeds is not None:
        cfg = cfg.override({"seeds": [int(s) for s in seeds]})
    v = get_variant(variant)
    run_dir = Path(out)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not run_config_path(run_dir).is_file():
        write_json_atomic(run_config_path(run_dir), cfg.to_dict())
    _, selected = _select(m, cfg, folds)
    teacher_outputs = dict(teacher_outputs or {})
    if v.teachers_needed(cfg.distill) and not teachers_ready:
        teacher_outputs.update(ensure_teachers(m, run_dir, cfg, selected, progress))
    rank0 = True
    for fold in selected:
        for seed in [cfg.seed] if v.teacher is not None else cfg.run_seeds():
            result = distill(
                m,
                fold,
                cfg,
                run_dir,
                v,
                seed=seed,
                progress=progress,
                callbacks=callbacks,
                trainer_overrides=trainer_overrides,
                teachers=teacher_outputs.get(fold.id),
            )
            rank0 = rank0 and result != {}
    if not rank0 or not aggregate:
        return {}
    # After the students: a frozen student's prefix pass left every layer's means in the cache,
    # so the probe runs no encoder. An array task (one fold) leaves it to the aggregating run.
    every = all_folds(m, cfg)
    if v.teacher is None and probe_enabled(cfg, probe) and len(selected) == len(every):
        ensure_run_probe(m, run_dir, cfg, progress)
    return aggregate_run(m, run_dir, cfg, v) or {}


def ablate(
    manifest: Manifest | str | Path,
    out: str | Path,
    config: Config | str | Path | None = None,
    folds: str | Sequence[str] = "all",
    variants: Sequence[str] | None = None,
    *,
    progress: bool = True,
    trainer_overrides: Mapping[str, Any] | None = None,
    seeds: Sequence[int] | None = None,
) -> dict[str, dict[str, Any]]:
    """The paper's eight Table 2 variants on the same folds, teachers trained once.

    Writes ``RUN_DIR/ablation.json`` (variant name -> that variant's results.json content),
    ``ablation.md`` (beside the paper's numbers) and ``ablation.png``.
    """
    m = as_manifest(manifest)
    cfg = resolve_config(config)
    if seeds is not None:
        cfg = cfg.override({"seeds": [int(s) for s in seeds]})
    names = list(variants or VARIANTS)
    run_dir = Path(out)
    _, selected = _select(m, cfg, folds)
    outputs = ensure_teachers(m, run_dir, cfg, selected, progress)
    ablation = {
        name: _cv_on_ready_teachers(
            m, run_dir, cfg, selected, name, progress, trainer_overrides, outputs
        )
        for name in names
    }
    write_json_atomic(ablation_path(run_dir, ".json"), ablation)
    md = ablation_markdown(ablation) + compare_markdown_against_baseline(run_dir, ablation)
    write_text_atomic(ablation_path(run_dir, ".md"), md)
    for name, res in ablation.items():  # the cards now have their paired comparison
        runs = [(r["fold"], r["seed"]) for r in res.get("runs", [])]
        write_model_cards(run_dir, m, cfg, get_variant(name), runs)
    plot_ablation(ablation, ablation_path(run_dir, ".png"))
    return ablation


def compare_markdown_against_baseline(
    run_dir: Path, results: Mapping[str, Mapping[str, Any]]
) -> str:
    """Paired statistics of every variant in ``results`` against plain fine-tuning
    (:func:`emodistill.evaluation.compare.compare_against_baseline`, which writes the JSON files):
    printed, and returned as markdown."""
    from emodistill.evaluation.compare import compare_against_baseline, compare_markdown

    if not results.get(BASELINE):
        return (
            f"\n\nNo paired comparison: `{BASELINE}` (plain fine-tuning) was not run in "
            f"this folder (`emodistill cv ... --variant {BASELINE}`).\n"
        )
    parts = ["", "", "## Paired against plain fine-tuning", ""]
    for name, cmp in compare_against_baseline(run_dir, results).items():
        if isinstance(cmp, str):
            parts += [f"`{name}`: {cmp}", ""]
            continue
        text = compare_markdown(cmp)
        log.info(text, extra=PLAIN)
        parts += [text, ""]
    return "\n".join(parts)


def _cv_on_ready_teachers(m, run_dir, cfg, selected, variant, progress, trainer_overrides, outputs):
    """One variant's cross-validation on ``selected`` folds whose teachers are already trained
    (``outputs``: theirs, in memory)."""
    return cross_validate(
        m,
        run_dir,
        cfg,
        folds=[f.id for f in selected],
        variant=variant,
        progress=progress,
        trainer_overrides=trainer_overrides,
        teachers_ready=True,
        teacher_outputs=outputs,
    )


def sweep_temperature(
    manifest: Manifest | str | Path,
    out: str | Path,
    teacher: str,
    values: Sequence[float],
    config: Config | str | Path | None = None,
    folds: str | Sequence[str] = "all",
    *,
    progress: bool = True,
    trainer_overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Paper Fig. 2: one cross-validation per temperature of ``teacher``'s logit KD.

    The other teacher's logit KD is removed (its embedding KD stays, as in the full model).
    Writes ``RUN_DIR/sweep_<teacher>.json`` (``{"teacher", "values", "results": [results.json
    content + "tau" + "variant", ...]}``), ``.md`` and a line plot ``.png`` (UA and WA vs tau).
    """
    m = as_manifest(manifest)
    cfg = resolve_config(config)
    run_dir = Path(out)
    values = [float(t) for t in values]
    if not values:
        raise ValueError("sweep_temperature: no temperatures given")
    _, selected = _select(m, cfg, folds)
    outputs = ensure_teachers(m, run_dir, cfg, selected, progress)
    rows = []
    for tau in values:
        v = sweep_variant(teacher, tau)
        res = _cv_on_ready_teachers(
            m, run_dir, cfg, selected, v, progress, trainer_overrides, outputs
        )
        rows.append({"tau": tau, "variant": v.name, **res})
    sweep = {"teacher": teacher, "values": values, "results": rows}
    write_json_atomic(sweep_path(run_dir, teacher, ".json"), sweep)
    base = results_path(run_dir, BASELINE)
    paired = {row["variant"]: row for row in rows}
    if base.is_file():
        paired[BASELINE] = read_json(base)
    md = sweep_markdown(sweep) + compare_markdown_against_baseline(run_dir, paired)
    write_text_atomic(sweep_path(run_dir, teacher, ".md"), md)
    plot_sweep(sweep, sweep_path(run_dir, teacher, ".png"))
    return sweep
