"""``make demo``: the whole method on the embedded default, from nothing to a speech-only model.

Steps (each reused when a previous run left it, so an interrupted demo continues)::

    OUT/corpus/            synthetic espeak-ng corpus (emotion in words and in prosody)
    .../.emodistill-cache  eGeMAPS LLDs (content-keyed cache beside the manifest)
    OUT/<fold>/teachers/   T_L (MiniLM text teacher) and T_P (prosodic teacher), per fold
    OUT/<fold>/variants/no_teachers/student/   plain fine-tuned Whisper-tiny student
    OUT/<fold>/student/    EmoDistill student (both teachers, logit + embedding KD)
    OUT/demo.md, demo.json the comparison table; OUT/report.md etc.: cv reports per variant
    OUT/model/             the speech-only model (the EmoDistill student of the fold with the
                           best *validation* UA — never chosen on test speakers)

Folds hold out speakers (``groups`` scheme, see ``docs/defaults.md``); the plain and the
EmoDistill students share folds, seeds, architecture and schedule, so their difference is the
teachers' knowledge alone.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from emodistill.cli.common import output_console
from emodistill.cli.demo_tables import (
    COLUMNS,
    DEMO_VARIANTS,
    EXTRA_VARIANTS,
    PROBE_COLUMN,
    TEACHER_VARIANTS,
    compare_table,
    demo_markdown,
    demo_table,
    verdict_line,
)
from emodistill.config import Config, load_config
from emodistill.config.variants import BASELINE, FULL
from emodistill.evaluation.model_card import write_model_card
from emodistill.models.folder import replace_with_copy
from emodistill.runs.deployable import deployable_fold
from emodistill.runs.layout import predictions_path, results_path, student_dir
from emodistill.util.files import read_json, write_json_atomic, write_text_atomic

#: Corpus size of the full demo (fits the time budget in docs/defaults.md).
DEMO_UTTERANCES = 720
DEMO_SPEAKERS = 12
#: ``--quick``: a smoke run of every stage (seconds to a few minutes on 2 cores).
QUICK_UTTERANCES = 32
QUICK_SPEAKERS = 4
QUICK_OVERRIDES: dict[str, Any] = {
    "seeds": [0],
    "folds": {"scheme": "groups", "groups": 2, "val_speakers": 1},
    "linguistic": {"optim": {"epochs": 1, "batch_size": 16}},
    "prosodic": {"optim": {"epochs": 1, "batch_size": 16}},
    "student": {"max_seconds": 1.0, "optim": {"epochs": 1, "batch_size": 8}},
}
#: ``--quick`` trains only the plain and the full student.
QUICK_VARIANTS = DEMO_VARIANTS


def demo_config(quick: bool = False) -> Config:
    """The ``demo`` preset (``--quick``: 2 folds, 1 epoch everywhere, 1 s crops)."""
    cfg = load_config("demo", {"trainer.accelerator": "cpu"} if _force_cpu() else None)
    return cfg.override(QUICK_OVERRIDES) if quick else cfg


def _force_cpu() -> bool:
    return os.environ.get("EMODISTILL_DEMO_CPU", "") not in ("", "0")


def run_demo(
    out: str | Path,
    quick: bool = False,
    console: Console | None = None,
    jobs: int | None = 1,
) -> dict:
    """Corpus -> features -> teachers -> plain and EmoDistill students -> report and model.

    Args:
        out: run folder (``runs/demo`` for ``make demo``).
        quick: tiny smoke run (32 utterances, 4 speakers, 2 folds, 1 epoch).
        console: where the table and progress messages go (default: stdout).
        jobs: folds trained at once, in worker processes (:mod:`emodistill.training.parallel`);
            None: one per CPU up to the number of folds (the CLI's default), 1: in this process.

    Returns:
        The summary written to ``OUT/demo.json``: per-fold and mean WA/UA of each column,
        ``model`` (path of OUT/model), ``model_fold``, ``seconds``.
    """
    from emodistill.corpora.manifest import load_manifest
    from emodistill.corpora.synthetic import synthesize_corpus
    from emodistill.features import default_cache_dir, extract_features
    from emodistill.training.cv import all_folds, cross_validate
    from emodistill.training.parallel import default_jobs
    from emodistill.training.teachers import train_teachers

    console = console or output_console()
    started = time.perf_counter()
    _quiet_lightning()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = demo_config(quick)
    n_utts, n_spk = (
        (QUICK_UTTERANCES, QUICK_SPEAKERS) if quick else (DEMO_UTTERANCES, DEMO_SPEAKERS)
    )

    manifest_path = out / "corpus" / "manifest.csv"
    _stage(console, "1/5", f"synthetic corpus ({n_utts} utterances, {n_spk} speakers)")
    if manifest_path.is_file():
        console.print(f"  reusing {manifest_path}")
    else:
        synthesize_corpus(out / "corpus", utterances=n_utts, speakers=n_spk, seed=cfg.seed)
    manifest = load_manifest(manifest_path)
    folds = all_folds(manifest, cfg)

    _stage(console, "2/5", "eGeMAPS low-level descriptors (cached)")
    store = extract_features(
        manifest, default_cache_dir(manifest_path), workers=os.cpu_count() or 1, progress=True
    )
    if store.errors:
        console.print(f"  [yellow]{len(store.errors)} utterance(s) without features[/]")

    variants = QUICK_VARIANTS if quick else DEMO_VARIANTS
    workers, threads = default_jobs(len(folds), cfg, jobs)
    parallel = workers > 1
    if parallel:  # then the passes below find every fold done and only collect them
        _stage(
            console,
            "3/5",
            f"teachers and students on {len(folds)} speaker-independent folds, "
            f"{workers} at a time ({threads} thread(s) each)",
        )
        _run_parallel(console, manifest, out, cfg, folds, variants, workers, threads)
    else:
        _stage(console, "3/5", f"teachers T_L and T_P on {len(folds)} speaker-independent folds")
    outputs: dict = {}  # the teachers' outputs in memory, handed to every student below
    train_teachers(manifest, out, config=cfg, folds=folds, outputs=outputs, progress=not parallel)
    ready = {"progress": False, "teachers_ready": True, "teacher_outputs": outputs}

    results: dict[str, dict] = {}
    for variant in TEACHER_VARIANTS:
        results[variant] = cross_validate(manifest, out, cfg, variant=variant, **ready)
    seeds = cfg.run_seeds()

    extra = [v for v in EXTRA_VARIANTS if not quick and results_path(out, v).is_file()]
    for n, variant in enumerate(variants, 1):
        title = dict(COLUMNS).get(variant, variant)
        _stage(
            console,
            f"4/5 ({n}/{len(variants)})",
            f"{title} student, {cfg.student.encoder}, {len(folds)} folds x {len(seeds)} seeds"
            + (" (trained above)" if parallel else ""),
        )
        with _old_students_named(out):
            results[variant] = cross_validate(
                manifest, out, cfg, variant=variant, probe=True, **ready
            )
    for variant in extra:  # already trained by `emodistill cv --variant`: aggregated, not rerun
        results[variant] = cross_validate(manifest, out, cfg, variant=variant, **ready)
    variants = (*variants, *extra)

    _stage(console, "5/5", "paired comparison, report and speech-only model")
    model_fold, why = deployable_fold(out, [f.id for f in folds])
    model_dir = out / "model"
    replace_with_copy(student_dir(out, model_fold), model_dir)
    summary = _summary(results, [f.id for f in folds], model_dir, model_fold, cfg)
    summary["model_choice"] = why
    summary["columns"][PROBE_COLUMN] = _probe_column(out)
    summary["compare"] = _compare_all(out, results, variants)
    # After the comparison, so the card has it; from the run's files (synthesis.json included).
    write_model_card(model_dir, out, manifest)
    summary["breakdown"] = _breakdown(out, manifest_path, folds, cfg, variants)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    write_json_atomic(out / "demo.json", summary)
    write_text_atomic(out / "demo.md", demo_markdown(summary, quick))
    console.print(demo_table(summary))
    console.print(compare_table(summary["compare"]))
    gain = summary["gain_ua"]
    console.print(
        f"EmoDistill vs plain fine-tuning, mean UA over folds: {gain:+.2f} points "
        f"({verdict_line(summary['compare'].get(FULL))}). "
        f"Speech-only model: [bold]{model_dir}[/] (fold {model_fold}, {why}). "
        f"Report: {out / 'demo.md'}. Time: {summary['seconds'] / 60:.1f} min."
    )
    console.print(f"Try it: emodistill predict {model_dir} {_example_wav(manifest)}")
    return summary


def _run_parallel(console, manifest, out: Path, cfg: Config, folds, variants, jobs, threads):
    """Every fold's teachers and students in ``jobs`` worker processes (and the probe beside
    them), after the frozen encoder's states of every clip are cached here once."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from emodistill.training.parallel import PROBE_TASK, encode_clips, run_folds_in_parallel

    encode_clips(manifest, out, cfg, progress=True)
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("folds (teachers, students)", total=len(folds))

        def done(name: str) -> None:
            if name != PROBE_TASK:
                bar.advance(task)
                bar.console.print(f"  fold {name} done")

        with _old_students_named(out):
            run_folds_in_parallel(
                manifest.path,
                out,
                cfg,
                [f.id for f in folds],
                variants,
                jobs,
                threads,
                probe=True,
                on_done=done,
            )


@contextmanager
def _old_students_named(out: Path):
    """An earlier version's students in ``out`` (another preset): the error names the whole
    run folder to delete, not one fold's."""
    from emodistill.training.predictions import ConfigMismatch

    try:
        yield
    except ConfigMismatch as err:
        raise ValueError(
            f"{err}.\n{out} holds students trained with another demo preset (an earlier "
            f"version?): delete {out} (or pass another --out) to rerun the demo"
        ) from err


def _compare_all(out: Path, results: dict[str, dict], variants) -> dict[str, Any]:
    """Paired statistics of every student variant against plain fine-tuning, each written to
    ``OUT/compare-<variant>-vs-no_teachers.json`` (``compare.compare_against_baseline``)."""
    from emodistill.evaluation.compare import compare_against_baseline

    compared = compare_against_baseline(out, results, variants)
    for cmp in compared.values():
        if isinstance(cmp, str):
            raise ValueError(cmp)
    return compared


def _breakdown(out: Path, manifest_path: Path, folds, cfg: Config, variants) -> dict[str, Any]:
    """Test accuracy of every student variant by synthetic sentence type (all folds x seeds)."""
    from emodistill.corpora.synthetic import SYNTHESIS_NAME
    from emodistill.evaluation.breakdown import group_accuracy, utterance_groups

    synthesis = manifest_path.parent / SYNTHESIS_NAME
    if not synthesis.is_file():
        return {}
    groups = utterance_groups(synthesis)
    table = {}
    for variant in (*TEACHER_VARIANTS, *variants):
        seeds = [cfg.seed] if variant in TEACHER_VARIANTS else cfg.run_seeds()
        preds = []
        for fold in folds:
            for seed in seeds:
                path = predictions_path(out, fold.id, variant, None if seed == cfg.seed else seed)
                if path.is_file():
                    preds.append(read_json(path))
        if preds:
            table[dict(COLUMNS).get(variant, variant)] = group_accuracy(preds, groups)
    return table


def _quiet_lightning() -> None:
    """Keep the demo's output to its own stages, progress bars and table: Lightning's per-fit
    banners (GPU/TPU availability, tips) and known-harmless warnings add nothing here."""
    import logging
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*treespec.*")
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")
    warnings.filterwarnings("ignore", message=".*non-writable tensors.*")


def _stage(console: Console, step: str, text: str) -> None:
    console.rule(f"[bold]{step}[/] {text}", align="left")


def _example_wav(manifest) -> str:
    return str(manifest.utterances[0].path) if manifest.utterances else "clip.wav"


def _summary(
    results: dict[str, dict], fold_ids: list[str], model_dir: Path, model_fold: str, cfg: Config
) -> dict[str, Any]:
    columns: dict[str, Any] = {}
    for variant, _ in COLUMNS:
        res = results.get(variant) or {}
        if not res and variant not in (FULL, BASELINE):
            continue
        per_fold = {f["fold"]: {"wa": f["wa"], "ua": f["ua"]} for f in res.get("folds", [])}
        columns[variant] = {
            "folds": per_fold,
            "mean": {k: res["mean"][k] for k in ("wa", "ua")} if res else None,
            "std": {k: res["std"][k] for k in ("wa", "ua")} if res else None,
            "pooled": res.get("pooled"),
        }
    full, plain = columns[FULL]["mean"], columns[BASELINE]["mean"]
    gain = 100.0 * (full["ua"] - plain["ua"]) if full and plain else float("nan")
    return {
        "folds": fold_ids,
        "columns": columns,
        "gain_ua": gain,
        "model": str(model_dir),
        "model_fold": model_fold,
        "config": cfg.name,
        "fold_scheme": f"{cfg.folds.scheme} (k={cfg.folds.groups})",
        "seeds": cfg.run_seeds(),
    }


def _probe_column(out: Path) -> dict[str, Any] | None:
    """The demo table's column of the linear probe's best layer (``OUT/probe/probe.json``)."""
    from emodistill.runs.layout import probe_path

    if not probe_path(out).is_file():
        return None
    probe = read_json(probe_path(out))
    best = next(r for r in probe["layers"] if r["layer"] == probe["best_layer"])
    return {
        "layer": best["layer"],
        "folds": {f: {"wa": best["wa"][f], "ua": best["ua"][f]} for f in best["ua"]},
        "mean": {"wa": best["wa_mean"], "ua": best["mean"]},
        "std": {"ua": best["std"]},
        "pooled": None,
    }
