"""The ``emodistill`` command line: thin wrappers over plain functions, heavy imports deferred.

Each command imports its implementation inside the function so ``emodistill --help`` stays fast.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from emodistill.training.variants import BASELINE, FULL  # names only: light (no torch)

app = typer.Typer(
    name="emodistill",
    help="Speech emotion recognition distilled from linguistic and prosodic teachers (EmoDistill).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
corpus_app = typer.Typer(help="Prepare corpora as manifest CSVs.", no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")

console = Console(stderr=True)

ConfigOpt = typer.Option(
    None, "--config", "-c", help="Preset name (demo, paper-hubert-base, ...) or a YAML file."
)
FoldsOpt = typer.Option("all", "--folds", help="'all' or comma-separated fold IDs (test speakers).")


#: Exit code of a known error (bad input, bad environment): one line on stderr, no traceback.
KNOWN_ERROR_EXIT = 2


def _fail(message: str, code: int = KNOWN_ERROR_EXIT) -> None:
    # markup=False: messages quote file names, which may hold [brackets]
    console.print("[bold red]error:[/] ", end="")
    console.print(message, markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _known_error(err: BaseException) -> bool:
    """Errors that are the user's input or environment, not a bug: shown as one line."""
    from filelock import Timeout

    from emodistill._io import EnvironmentFault
    from emodistill.assets import AssetError
    from emodistill.model_folder import ModelLoadError

    known: tuple[type[BaseException], ...] = (
        ValueError,  # ManifestError, AudioError, IemocapError, config errors, ...
        OSError,  # missing files, permissions, disk full
        EnvironmentFault,
        ModelLoadError,
        AssetError,
        Timeout,
    )
    return isinstance(err, known)


F = TypeVar("F", bound=Callable[..., Any])


def known_errors(fn: F) -> F:
    """Command decorator: a known error becomes ``error: <message>`` and exit code 2.

    Set ``EMODISTILL_TRACEBACK=1`` to get the traceback instead (for bug reports).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            if os.environ.get("EMODISTILL_TRACEBACK") or not _known_error(err):
                raise
            _fail(f"{err}" if str(err) else type(err).__name__)

    return wrapper  # type: ignore[return-value]


# --------------------------------------------------------------------------- corpora


@corpus_app.command("iemocap")
@known_errors
def corpus_iemocap(
    root: Path = typer.Argument(..., help="IEMOCAP release folder (holds Session1..Session5)."),
    out: Path = typer.Option(..., "--out", "-o", help="Manifest CSV to write."),
    classes: int = typer.Option(4, "--classes", help="Number of classes (4: neu/hap+exc/ang/sad)."),
) -> None:
    """Read the IEMOCAP release layout into a manifest CSV."""
    from emodistill.corpora.iemocap import IemocapError, prepare_iemocap

    try:
        prepare_iemocap(root, out, classes=classes, console=console)
    except (IemocapError, FileNotFoundError, ValueError) as err:
        _fail(str(err))


def _corpus_command(name: str, title: str) -> None:
    """Register ``corpus NAME ROOT --out M.csv [--classes 4|all] [--map a=b,...]``."""

    def command(
        root: Path = typer.Argument(..., help=f"{title} release folder."),
        out: Path = typer.Option(..., "--out", "-o", help="Manifest CSV to write."),
        classes: str = typer.Option(
            "4", "--classes", help="4 (neutral/happy/angry/sad, as the literature) or all."
        ),
        label_map: str = typer.Option(
            "", "--map", help="Rename or drop labels first: excited=happy,frustrated=-"
        ),
    ) -> None:
        from emodistill.corpora.base import CorpusError, prepare_corpus
        from emodistill.corpora.registry import get_corpus

        try:
            prepare_corpus(get_corpus(name), root, out, classes, label_map, console=console)
        except (CorpusError, OSError) as err:
            _fail(str(err))

    command.__doc__ = f"Read the {title} release layout into a manifest CSV (docs/data.md)."
    corpus_app.command(name)(command)


# Titles only: the loaders themselves are imported when a command runs.
for _name, _title in (
    ("emodb", "EmoDB"),
    ("ravdess", "RAVDESS (speech)"),
    ("crema-d", "CREMA-D"),
    ("tess", "TESS"),
    ("savee", "SAVEE"),
    ("jl-corpus", "JL-Corpus"),
    ("esd", "ESD (English)"),
    ("msp-podcast", "MSP-Podcast"),
    ("meld", "MELD"),
):
    _corpus_command(_name, _title)


@corpus_app.command("synth")
@known_errors
def corpus_synth(
    out_dir: Path = typer.Argument(..., help="Folder for wavs and manifest.csv."),
    utterances: int = typer.Option(1200, "--utterances", "-n", help="Number of utterances."),
    speakers: int = typer.Option(12, "--speakers", "-k", help="Number of synthetic speakers."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same bytes)."),
    lexical_share: float = typer.Option(
        None,
        "--lexical-share",
        help="Share of sentences carrying emotion words (default 0.7); 0 = words carry nothing.",
    ),
) -> None:
    """Synthesise the demo corpus with espeak-ng (emotion in words and in prosody)."""
    from emodistill.corpora.synthetic import LEXICAL_SHARE, SynthError, synthesize_corpus

    try:
        synthesize_corpus(
            out_dir,
            utterances=utterances,
            speakers=speakers,
            seed=seed,
            lexical_share=LEXICAL_SHARE if lexical_share is None else lexical_share,
        )
    except SynthError as err:
        _fail(str(err))


@corpus_app.command("transcribe")
@known_errors
def corpus_transcribe(
    manifest: Path = typer.Argument(..., help="Manifest CSV without (some) transcripts."),
    out: Path = typer.Option(..., "--out", "-o", help="Manifest CSV to write, with transcripts."),
    model: str = typer.Option(
        "embedded:whisper-tiny.en",
        "--model",
        help="faster-whisper model: embedded id, CTranslate2 folder or hub name (multilingual "
        "for non-English corpora).",
    ),
    compute_type: str = typer.Option("auto", "--compute-type", help="float32, int8, or auto."),
    language: str = typer.Option(
        None, "--language", help="ISO 639-1 code (de, zh, ...); needs a multilingual --model."
    ),
) -> None:
    """Fill in transcripts with faster-whisper (training only; inference never needs them)."""
    from emodistill.assets import AssetError
    from emodistill.corpora.manifest import ManifestError
    from emodistill.transcribe import TranscribeError, transcribe_manifest

    try:
        transcribe_manifest(
            manifest, out, model=model, compute_type=compute_type, language=language
        )
    except (ManifestError, TranscribeError, AssetError, ValueError) as err:
        _fail(str(err))


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
        _fail(str(err))
    cache_dir = cache or default_cache_dir(manifest)
    store = extract_features(m, cache_dir, workers=workers)
    st = store.stats
    console.print(
        f"{len(store)} of {len(m.utterances)} utterances have features in {cache_dir} "
        f"({st['extracted']} extracted, {st['cached']} cached, {st['seconds']:.1f} s)"
    )
    if store.errors:  # each bad file was already printed with its reason by extract_features
        _fail(f"{len(store.errors)} file(s) could not be used: {', '.join(store.errors)}", code=1)


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
    from emodistill.baseline import BaselineConfig, run_baseline
    from emodistill.config import load_config
    from emodistill.corpora.manifest import ManifestError, load_manifest
    from emodistill.corpora.splits import make_folds, select_folds

    try:
        fc = load_config(config).folds if config else None
        m = load_manifest(manifest)
        chosen = dict(
            scheme=scheme or (fc.scheme if fc else "speaker"),
            groups=groups if groups is not None else (fc.groups if fc else 5),
            val_speakers=val_speakers
            if val_speakers is not None
            else (fc.val_speakers if fc else 1),
            seed=seed if seed is not None else (fc.seed if fc else 0),
        )
        selected = select_folds(make_folds(m, **chosen), folds)
        cfg = BaselineConfig(classifier=classifier, normalization=normalization)
        res = run_baseline(m, selected, out, cfg, cache_dir=cache, workers=workers, progress=True)
    except (ManifestError, FileNotFoundError, ValueError) as err:
        _fail(str(err))
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
    from emodistill.corpora.splits import make_folds, select_folds
    from emodistill.probe import run_probe
    from emodistill.training.distill import prefix_cache_dir

    cfg = load_config(config)
    m = load_manifest(manifest)
    fc = cfg.folds
    selected = select_folds(
        make_folds(
            m, scheme=fc.scheme, groups=fc.groups, val_speakers=fc.val_speakers, seed=fc.seed
        ),
        folds,
    )
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
        f"wrote {out / 'probe.json'} and {out / 'probe.png'}"
    )


# --------------------------------------------------------------------------- training


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
        _fail(str(err))


def _variant_enum() -> type[Enum]:
    """The ``--variant`` choices, from the one list of variants (training/variants.py)."""
    from emodistill.training.variants import VARIANTS

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
    cross_validate(
        manifest,
        out,
        config=config,
        folds=folds,
        variant=variant.value,
        overrides=overrides,
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
    import json

    from rich.table import Table

    from emodistill.compare import compare_results, verdict
    from emodistill.training.layout import compare_path, results_path

    if second is None:
        a_path, b_path = results_path(first, variant), results_path(first, baseline)
        dest = out or compare_path(first, variant, baseline)
    else:
        a_path, b_path = first, second
        dest = out or compare_path(first.parent, variant, baseline)
    try:
        a = json.loads(Path(a_path).read_text())
        b = json.loads(Path(b_path).read_text())
        cmp = compare_results(a, b, variant, baseline)
    except FileNotFoundError as err:
        _fail(f"{err.filename}: no such results file (run cv for that variant first)")
    except (json.JSONDecodeError, KeyError, ValueError) as err:
        _fail(f"{a_path} / {b_path}: {err}")
    from emodistill._io import write_json_atomic

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
) -> None:
    """The whole method on the embedded default: synthetic corpus to a speech-only model."""
    from emodistill.demo import run_demo

    run_demo(out, quick=quick)


# --------------------------------------------------------------------------- inference


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


@app.command("predict")
@known_errors
def predict_cmd(
    model: Path = typer.Argument(..., help="Model folder (config.json + model.safetensors)."),
    audio: list[str] = typer.Argument(
        ..., help="Audio files, folders or globs (with --stream: - for stdin)."
    ),
    format: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f"),
    batch_size: int = typer.Option(8, "--batch-size", "-b"),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    segment: bool = typer.Option(False, "--segment", help="Timeline over windows of long audio."),
    window: float = typer.Option(3.0, "--window", help="Segment window, seconds."),
    hop: float = typer.Option(1.5, "--hop", help="Segment hop, seconds."),
    vad: bool = typer.Option(False, "--vad", help="Segment on voice activity, not fixed windows."),
    backend: str = typer.Option(
        "torch",
        "--backend",
        help="torch, onnx (needs MODEL/model.onnx) or onnx-int8 (needs MODEL/model.int8.onnx).",
    ),
    stream: bool = typer.Option(
        False, "--stream", help="AUDIO '-': WAV or raw 16 kHz s16le PCM on stdin, JSON lines out."
    ),
) -> None:
    """Predict emotion from audio alone: no transcript, no prosodic features."""
    from emodistill.predict_cli import run_predict

    code = run_predict(
        model,
        audio,
        format=format.value,
        batch_size=batch_size,
        device=device,
        segment=segment,
        window=window,
        hop=hop,
        vad=vad,
        backend=backend,
        stream=stream,
    )
    raise typer.Exit(code)


@app.command("evaluate")
def evaluate_cmd(
    model: Path = typer.Argument(..., help="Trained model folder (config.json + weights)."),
    manifest: Path = typer.Argument(..., help="Manifest CSV of the corpus to evaluate on."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for results.json and report.md."),
    batch_size: int = typer.Option(8, "--batch-size", "-b"),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
) -> None:
    """Cross-corpus: score a model on another corpus (labels matched by name, rest reported)."""
    from emodistill.audio import AudioError
    from emodistill.corpora.manifest import ManifestError, load_manifest
    from emodistill.cross_corpus import evaluate_model
    from emodistill.inference import EmoDistill
    from emodistill.model_folder import ModelLoadError

    try:
        m = load_manifest(manifest)
        res = evaluate_model(EmoDistill.from_pretrained(model, device=device), m, out, batch_size)
    except (ManifestError, ModelLoadError, AudioError, ValueError) as err:
        _fail(str(err))
    console.print(
        f"{len(res['labels'])} shared labels ({', '.join(res['labels'])}): WA "
        f"{100 * res['pooled']['wa']:.2f}, UA {100 * res['pooled']['ua']:.2f}; wrote {out}"
    )


@app.command("export-onnx")
@known_errors
def export_onnx_cmd(
    model: Path = typer.Argument(..., help="Model folder."),
    out: Path = typer.Argument(..., help="ONNX file to write."),
    quantize: str = typer.Option(
        None, "--quantize", help="int8: dynamic int8 weights (write MODEL/model.int8.onnx)."
    ),
) -> None:
    """Export the speech-only model to ONNX (dynamic batch and length)."""
    from emodistill.export import ExportError, export_onnx
    from emodistill.model_folder import ModelLoadError

    try:
        report = export_onnx(model, out, quantize=quantize)
    except (ExportError, ModelLoadError) as err:
        _fail(str(err))
    if quantize:
        console.print(
            f"wrote {report['path']} ({quantize}, opset {report['opset']}; vs the float model on "
            f"{report['clips']} clips: label agreement {report['label_agreement']:.0%}, max |dp| "
            f"{report['max_abs_diff']:.1e})"
        )
        return
    console.print(
        f"wrote {report['path']} (opset {report['opset']}; onnxruntime vs torch max |dp| "
        f"{report['max_abs_diff']:.1e})"
    )


@app.command("serve")
@known_errors
def serve_cmd(
    model: Path = typer.Argument(..., help="Model folder."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    max_upload_mb: float = typer.Option(20.0, "--max-upload-mb"),
    max_seconds: float = typer.Option(600.0, "--max-seconds"),
    max_concurrent: int = typer.Option(
        16, "--max-concurrent", help="Requests admitted at once (waiting included); 503 beyond."
    ),
    request_timeout: float = typer.Option(
        60.0, "--request-timeout", help="Seconds per request, waiting included; 503 beyond."
    ),
    max_windows: int = typer.Option(1000, "--max-windows", help="Timeline windows per request."),
    allowed_hosts: str = typer.Option(
        None,
        "--allowed-hosts",
        help="Comma-separated Host headers served ('*': any). Default: loopback names on a "
        "loopback bind, any otherwise.",
    ),
    info_paths: bool = typer.Option(
        False, "--info-paths", help="Show the model's server path in /info and /health."
    ),
    backend: str = typer.Option("torch", "--backend", help="torch, onnx or onnx-int8."),
) -> None:
    """HTTP service: POST /predict, WebSocket /stream, GET /health, and a web page at /."""
    from emodistill.model_folder import ModelLoadError
    from emodistill.serve import ServiceLimits, serve

    limits = ServiceLimits(
        max_concurrent=max_concurrent, request_timeout=request_timeout, max_windows=max_windows
    )
    hosts = [h.strip() for h in allowed_hosts.split(",") if h.strip()] if allowed_hosts else None
    try:
        serve(
            model,
            host=host,
            port=port,
            max_upload_mb=max_upload_mb,
            max_seconds=max_seconds,
            limits=limits,
            allowed_hosts=hosts,
            show_paths=info_paths,
            backend=backend,
        )
    except (ModelLoadError, ValueError) as err:
        _fail(str(err))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
