"""The ``emodistill`` command line: thin wrappers over plain functions, heavy imports deferred.

Each command imports its implementation inside the function so ``emodistill --help`` stays fast.
This module holds the app and the training commands; ``cli_corpus`` the ``corpus`` group and
``cli_inference`` the speech-only commands; ``cli_common`` what they share.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from emodistill.cli.common import ConfigOpt, FoldsOpt, console, fail, known_errors
from emodistill.cli.corpus import corpus_app
from emodistill.cli.enroll import enroll_app
from emodistill.cli.inference import inference_app
from emodistill.config.variants import BASELINE, FULL  # names only: light (no torch)

app = typer.Typer(
    name="emodistill",
    help="Speech emotion recognition distilled from linguistic and prosodic teachers (EmoDistill).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _messages(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug messages too."),
) -> None:
    """Speech emotion recognition distilled from linguistic and prosodic teachers (EmoDistill)."""
    import logging

    from emodistill.util.log import log_to_console

    if quiet and verbose:
        fail("--quiet and --verbose contradict each other")
    log_to_console(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)


# --------------------------------------------------------------------------- features


@app.command("features")
@known_errors
def features(
    manifest: Path = typer.Argument(..., help="Manifest CSV."),
    cache: Path = typer.Option(None, "--cache", help="Cache folder (default: beside manifest)."),
    workers: int = typer.Option(1, "--workers", "-j", help="Parallel extraction processes."),
) -> None:
    """Extract eGeMAPS v02 LLDs (25 per 10 ms) for every utterance, cached on disk."""
    from emodistill.corpora.manifest import ManifestError, load_manifest
    from emodistill.features import default_cache_dir, extract_features

    try:
        m = load_manifest(manifest)
    except ManifestError as err:
        fail(str(err))
    cache_dir = cache or default_cache_dir(manifest)
    store = extract_features(m, cache_dir, workers=workers)
    st = store.stats
    console.print(
        f"{len(store)} of {len(m.utterances)} utterances have features in {cache_dir} "
        f"({st['extracted']} extracted, {st['cached']} cached, {st['seconds']:.1f} s)"
    )
    if store.errors:  # each bad file was already printed with its reason by extract_features
        fail(f"{len(store.errors)} file(s) could not be used: {', '.join(store.errors)}", code=1)


@app.command("baseline")
def baseline_cmd(
    manifest: Path = typer.Argument(..., help="Manifest CSV."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder."),
    config: str = ConfigOpt,
    folds: str = FoldsOpt,
    scheme: str = typer.Option(
        None, "--scheme", help="Fold scheme (speaker, session, groups, official); default: config."
    ),
    groups: int = typer.Option(None, "--groups", help="Speaker groups for --scheme groups."),
    val_speakers: int = typer.Option(None, "--val-speakers", help="Validation speakers per fold."),
    seed: int = typer.Option(None, "--seed", help="Fold seed."),
    classifier: str = typer.Option("logreg", "--classifier", help="logreg or svm (linear)."),
    normalization: str = typer.Option(
        "global", "--normalization", help="global (training speakers) or speaker (per speaker)."
    ),
    cache: Path = typer.Option(None, "--cache", help="Feature cache (default: beside manifest)."),
    workers: int = typer.Option(1, "--workers", "-j", help="Parallel extraction processes."),
) -> None:
    """eGeMAPS functionals + linear model on the same folds as cv; results.json in cv format."""
    from dataclasses import replace

    from emodistill.config import FoldConfig, load_config
    from emodistill.corpora.manifest import ManifestError, load_manifest
    from emodistill.corpora.splits import config_folds, select_folds
    from emodistill.evaluation.baseline import BaselineConfig, run_baseline

    try:
        fc = load_config(config).folds if config else FoldConfig()
        options = dict(scheme=scheme or None, groups=groups, val_speakers=val_speakers, seed=seed)
        fc = replace(fc, **{k: v for k, v in options.items() if v is not None})
        m = load_manifest(manifest)
        selected = select_folds(config_folds(m, fc), folds)
        cfg = BaselineConfig(classifier=classifier, normalization=normalization)
        res = run_baseline(m, selected, out, cfg, cache_dir=cache, workers=workers, progress=True)
    except (ManifestError, FileNotFoundError, ValueError) as err:
        fail(str(err))
    console.print(
        f"baseline UA {100 * res['mean']['ua']:.2f} ± {100 * res['std']['ua']:.2f} over "
        f"{len(res['folds'])} fold(s) (pooled {100 * res['pooled']['ua']:.2f}); wrote {out}"
    )


@app.command("probe")
@known_errors
def probe_cmd(
    manifest: Path = typer.Argument(..., help="Manifest CSV."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for probe.json and probe.png."),
    encoder: str = typer.Option(
        None, "--encoder", help="Speech encoder (hub id, folder, embedded:*); default: config."
    ),
    config: str = ConfigOpt,
    folds: str = FoldsOpt,
) -> None:
    """Linear probe per encoder layer (mean-pooled frozen states), same folds as cv: probe.png."""
    from emodistill.config import load_config
    from emodistill.corpora.manifest import load_manifest
    from emodistill.corpora.splits import config_folds, select_folds
    from emodistill.evaluation.probe import run_probe
    from emodistill.runs.layout import probe_file
    from emodistill.training.distill import prefix_cache_dir

    cfg = load_config(config)
    m = load_manifest(manifest)
    selected = select_folds(config_folds(m, cfg.folds), folds)
    enc = encoder or cfg.student.encoder
    res = run_probe(
        m, selected, out, enc, prefix_cache_dir(m, out), max_seconds=cfg.student.max_seconds
    )
    for row in res["layers"]:
        mark = "  <- best" if row["layer"] == res["best_layer"] else ""
        console.print(
            f"layer {row['layer']:>2}: UA {100 * row['mean']:.2f} ± {100 * row['std']:.2f}{mark}"
        )
    console.print(
        f"{enc}: {res['n']} utterances, {len(selected)} fold(s), {res['seconds']:.0f} s; "
        f"wrote {probe_file(out)} and {probe_file(out, '.png')}"
    )


# --------------------------------------------------------------------------- training


@app.command("folds")
@known_errors
def folds_cmd(
    manifest: Path = typer.Argument(..., help="Manifest CSV."),
    config: str = ConfigOpt,
    task: int = typer.Option(
        None,
        "--task",
        help="Print only the fold of this 0-based array task (e.g. $SLURM_ARRAY_TASK_ID).",
    ),
) -> None:
    """List the config's fold ids, one per line, in the order array tasks 0..n-1 run them."""
    from emodistill.config import resolve_config
    from emodistill.corpora.manifest import load_manifest
    from emodistill.corpora.splits import config_folds, fold_for_task

    # Folds depend on the rows only: no need to stat every audio file in every array task.
    folds = config_folds(load_manifest(manifest, check_files=False), resolve_config(config).folds)
    for fold in folds if task is None else [fold_for_task(folds, task)]:
        typer.echo(fold.id)


@app.command("train-teachers")
@known_errors
def train_teachers_cmd(
    manifest: Path = typer.Argument(..., help="Manifest CSV (with transcripts)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder."),
    config: str = ConfigOpt,
    folds: str = FoldsOpt,
) -> None:
    """Train the linguistic and prosodic teachers per fold and cache their outputs."""
    from emodistill.corpora.manifest import ManifestError
    from emodistill.models.linguistic import MissingTranscriptsError
    from emodistill.training.teachers import train_teachers

    try:
        train_teachers(manifest, out, config=config, folds=folds)
    except (ManifestError, MissingTranscriptsError, FileNotFoundError, ValueError) as err:
        fail(str(err))


def _variant_enum() -> type[Enum]:
    """The ``--variant`` choices, from the one list of variants (training/variants.py)."""
    from emodistill.config.variants import VARIANTS

    return Enum("Variant", {name: name for name in VARIANTS}, type=str)


Variant = _variant_enum()

SeedsOpt = typer.Option(
    None,
    "--seeds",
    help="Comma-separated student seeds (e.g. 0,1,2): every fold is trained once per seed.",
)


def _seeds(spec: str | None) -> list[int] | None:
    if spec is None or not spec.strip():
        return None
    try:
        return [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise typer.BadParameter(f"--seeds: expected integers like 0,1,2, got {spec!r}") from None


@app.command("cv")
@known_errors
def cv_cmd(
    manifest: Path = typer.Argument(..., help="Manifest CSV."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder."),
    config: str = ConfigOpt,
    folds: str = FoldsOpt,
    variant: Variant = typer.Option(Variant.full, "--variant", help="Ablation variant."),
    devices: str = typer.Option(None, "--devices", help="Lightning devices (e.g. 4, auto)."),
    num_nodes: int = typer.Option(None, "--num-nodes", help="Nodes for multi-node DDP."),
    strategy: str = typer.Option(None, "--strategy", help="Lightning strategy (ddp, auto...)."),
    accelerator: str = typer.Option(None, "--accelerator", help="cpu, gpu, auto."),
    seeds: str = SeedsOpt,
    probe: bool = typer.Option(
        None,
        "--probe/--no-probe",
        help="Linear probe on the student's frozen features (RUN/probe/probe.json, a row in "
        "report.md); default: on when the student's encoder is frozen.",
        show_default=False,
    ),
    jobs: int = typer.Option(
        1,
        "--jobs",
        "-j",
        min=1,
        help="Folds trained at once on this machine, in worker processes sharing its CPUs "
        "(for one GPU or DDP leave 1).",
    ),
) -> None:
    """Cross-validate: teachers (reused if present) and the student per fold; results.json."""
    from emodistill.training.cv import cross_validate

    overrides = {
        k: v
        for k, v in {
            "trainer.devices": devices,
            "trainer.num_nodes": num_nodes,
            "trainer.strategy": strategy,
            "trainer.accelerator": accelerator,
        }.items()
        if v is not None
    }
    if jobs > 1:  # then the call below finds every fold done and only collects them
        _cv_in_parallel(manifest, out, config, folds, variant.value, overrides, seeds, probe, jobs)
    cross_validate(
        manifest,
        out,
        config=config,
        folds=folds,
        variant=variant.value,
        overrides=overrides,
        seeds=_seeds(seeds),
        probe=probe,
    )


def _cv_in_parallel(manifest, out, config, folds, variant, overrides, seeds, probe, jobs):
    """``cv --jobs``: the selected folds in worker processes (training/parallel.py)."""
    from emodistill.config import resolve_config
    from emodistill.corpora.manifest import load_manifest
    from emodistill.corpora.splits import config_folds, select_folds
    from emodistill.training.cv import probe_enabled
    from emodistill.training.parallel import default_jobs, encode_clips, run_folds_in_parallel

    cfg = resolve_config(config, overrides)
    loaded = load_manifest(manifest)
    chosen = [f.id for f in select_folds(config_folds(loaded, cfg.folds), folds)]
    jobs, threads = default_jobs(len(chosen), cfg, jobs)
    encode_clips(loaded, out, cfg)
    typer.echo(f"{len(chosen)} fold(s), {jobs} at a time")
    run_folds_in_parallel(
        manifest,
        out,
        cfg,
        chosen,
        [variant],
        jobs,
        threads,
        probe=probe_enabled(cfg, probe),
        on_done=lambda name: typer.echo(f"  {name} done"),
        seeds=_seeds(seeds),
    )


@app.command("ablate")
@known_errors
def ablate_cmd(
    manifest: Path = typer.Argument(..., help="Manifest CSV."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder."),
    config: str = ConfigOpt,
    folds: str = FoldsOpt,
    seeds: str = SeedsOpt,
) -> None:
    """Run the paper's eight Table 2 variants on the same folds; ablation.json and .md."""
    from emodistill.training.cv import ablate

    ablate(manifest, out, config=config, folds=folds, seeds=_seeds(seeds))


class TeacherKind(str, Enum):
    prosodic = "prosodic"
    linguistic = "linguistic"


@app.command("sweep-temperature")
@known_errors
def sweep_temperature_cmd(
    manifest: Path = typer.Argument(..., help="Manifest CSV."),
    teacher: TeacherKind = typer.Option(..., "--teacher", help="Which teacher's tau to sweep."),
    values: str = typer.Option("0.5,1,2,4,8", "--values", help="Comma-separated temperatures."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder."),
    config: str = ConfigOpt,
    folds: str = FoldsOpt,
) -> None:
    """Sweep one teacher's temperature with the other's logit KD removed (paper Fig. 2)."""
    from emodistill.training.cv import sweep_temperature

    taus = [float(v) for v in values.split(",") if v.strip()]
    sweep_temperature(manifest, out, teacher=teacher.value, values=taus, config=config, folds=folds)


@app.command("compare")
def compare_cmd(
    first: Path = typer.Argument(..., help="RUN_DIR, or the variant's results.json."),
    second: Path = typer.Argument(None, help="The baseline's results.json (two-file form)."),
    baseline: str = typer.Option(BASELINE, "--baseline", help="Baseline variant name."),
    variant: str = typer.Option(FULL, "--variant", help="Variant compared to the baseline."),
    out: Path = typer.Option(None, "--out", "-o", help="Where to write the JSON."),
) -> None:
    """Paired per-(fold, seed) differences, bootstrap CI and Wilcoxon p of a variant against
    a baseline.

    Run-folder form: ``compare RUN_DIR --baseline no_teachers --variant full`` reads both
    variants' results.json and writes RUN_DIR/compare-<variant>-vs-<baseline>.json.
    Two-file form: ``compare VARIANT/results.json BASELINE/results.json`` writes the JSON
    beside the first file (or to --out).
    """

    from rich.table import Table

    from emodistill.evaluation.compare import compare_results, verdict
    from emodistill.runs.layout import compare_path, results_path

    if second is None:
        a_path, b_path = results_path(first, variant), results_path(first, baseline)
        dest = out or compare_path(first, variant, baseline)
    else:
        a_path, b_path = first, second
        dest = out or compare_path(first.parent, variant, baseline)
    from emodistill.util.files import read_json

    try:
        a = read_json(a_path)
        b = read_json(b_path)
        cmp = compare_results(a, b, variant, baseline)
    except FileNotFoundError as err:
        fail(f"{err.filename}: no such results file (run cv for that variant first)")
    except (KeyError, ValueError) as err:
        fail(f"{a_path} / {b_path}: {err}")
    from emodistill.util.files import write_json_atomic

    write_json_atomic(dest, cmp)
    table = Table(title=f"{variant} − {baseline}, {cmp['n_pairs']} (fold, seed) pairs, points")
    for col in ("metric", "mean gain", "95 % CI", "wins/ties/losses", "Wilcoxon p"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for metric in ("ua", "wa"):
        m = cmp[metric]
        low, high = m["ci95"]
        table.add_row(
            metric.upper(),
            f"{100 * m['mean_gain']:+.2f}",
            f"[{100 * low:+.2f}, {100 * high:+.2f}]",
            f"{m['wins']}/{m['ties']}/{m['losses']}",
            f"{m['wilcoxon_p']:.4f}",
        )
    console.print(table)
    unpaired = cmp["unpaired"]["variant"] + cmp["unpaired"]["baseline"]
    if unpaired:
        console.print(f"left out (in one file only): {', '.join(unpaired)}", markup=False)
    console.print(f"UA: {verdict(cmp)}. Written: {dest}", markup=False)


@app.command("demo")
@known_errors
def demo_cmd(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Run folder."),
    quick: bool = typer.Option(False, "--quick", help="Tiny smoke run (seconds, not minutes)."),
    jobs: int | None = typer.Option(
        None,
        "--jobs",
        "-j",
        min=1,
        help="Folds trained at once, in worker processes (default: one per CPU, up to the "
        "number of folds; 1 with a GPU).",
    ),
) -> None:
    """The whole method on the embedded default: synthetic corpus to a speech-only model."""
    from emodistill.cli.demo import run_demo

    run_demo(out, quick=quick, jobs=jobs)


# The speech-only commands, then the corpus group: the order ``emodistill --help`` lists them.
app.add_typer(inference_app)
app.add_typer(enroll_app)
app.add_typer(corpus_app, name="corpus")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
