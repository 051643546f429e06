"""The speech-only commands of ``emodistill``: ``pick-model``, ``predict``, ``evaluate``,
``export-onnx`` and ``serve`` (merged into the main app by ``cli.py``)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from emodistill.cli.common import console, fail, known_errors
from emodistill.models.folder import CONFIG_NAME, ONNX_INT8_NAME, ONNX_NAME, WEIGHTS_NAME

inference_app = typer.Typer()


# --------------------------------------------------------------------------- inference


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


@inference_app.command("predict")
@known_errors
def predict_cmd(
    model: Path = typer.Argument(..., help=f"Model folder ({CONFIG_NAME} + {WEIGHTS_NAME})."),
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
        help=f"torch, onnx (needs MODEL/{ONNX_NAME}) or onnx-int8 (needs MODEL/{ONNX_INT8_NAME}).",
    ),
    stream: bool = typer.Option(
        False, "--stream", help="AUDIO '-': WAV or raw 16 kHz s16le PCM on stdin, JSON lines out."
    ),
    profile: Path = typer.Option(
        None,
        "--profile",
        help="Speaker profile (emodistill enroll): normalise every input with that voice's "
        "statistics (a student.speaker_norm model).",
    ),
    speaker_norm: bool = typer.Option(
        False,
        "--speaker-norm",
        help="All inputs are one voice: normalise with their own statistics (two passes; "
        "with --segment the windows are the clips; with --stream running statistics).",
    ),
) -> None:
    """Predict emotion from audio alone: no transcript, no prosodic features."""
    from emodistill.cli.predict import run_predict

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
        profile=profile,
        speaker_norm=speaker_norm,
    )
    raise typer.Exit(code)


@inference_app.command("evaluate")
def evaluate_cmd(
    model: Path = typer.Argument(..., help=f"Trained model folder ({CONFIG_NAME} + weights)."),
    manifest: Path = typer.Argument(..., help="Manifest CSV of the corpus to evaluate on."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for results.json and report.md."),
    batch_size: int = typer.Option(8, "--batch-size", "-b"),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
) -> None:
    """Cross-corpus: score a model on another corpus (labels matched by name, rest reported)."""
    from emodistill.audio import AudioError
    from emodistill.corpora.manifest import ManifestError, load_manifest
    from emodistill.evaluation.cross_corpus import evaluate_model
    from emodistill.inference.model import EmoDistill
    from emodistill.models.folder import ModelLoadError

    try:
        m = load_manifest(manifest)
        res = evaluate_model(EmoDistill.from_pretrained(model, device=device), m, out, batch_size)
    except (ManifestError, ModelLoadError, AudioError, ValueError) as err:
        fail(str(err))
    norm = "speaker-normalised (each speaker's own clips; docs/speaker.md): " * bool(
        res.get("speaker_norm")
    )
    console.print(
        f"{norm}{len(res['labels'])} shared labels ({', '.join(res['labels'])}): WA "
        f"{100 * res['pooled']['wa']:.2f}, UA {100 * res['pooled']['ua']:.2f}; wrote {out}"
    )


@inference_app.command("export-onnx")
@known_errors
def export_onnx_cmd(
    model: Path = typer.Argument(..., help="Model folder."),
    out: Path = typer.Argument(..., help="ONNX file to write."),
    quantize: str = typer.Option(
        None, "--quantize", help=f"int8: dynamic int8 weights (write MODEL/{ONNX_INT8_NAME})."
    ),
) -> None:
    """Export the speech-only model to ONNX (dynamic batch and length)."""
    from emodistill.inference.onnx import ExportError, export_onnx
    from emodistill.models.folder import ModelLoadError

    try:
        report = export_onnx(model, out, quantize=quantize)
    except (ExportError, ModelLoadError) as err:
        fail(str(err))
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


@inference_app.command("pick-model")
@known_errors
def pick_model_cmd(
    run: Path = typer.Argument(..., help="Run folder (emodistill cv or demo)."),
    out: Path = typer.Option(
        None, "--out", "-o", help="Copy the chosen student here (a model folder with its card)."
    ),
) -> None:
    """The run's speech-only model: the EmoDistill student of the fold with the best
    validation UA (the first fold's when the students trained on their validation speakers).
    Prints its folder (or --out's) on stdout, the choice on stderr: test speakers never choose.
    """
    from emodistill.evaluation.model_card import write_model_card
    from emodistill.models.folder import card_path, replace_with_copy
    from emodistill.runs.deployable import deployable_student

    try:
        folder, fold, why = deployable_student(run)
    except FileNotFoundError as err:
        fail(str(err))
    if out is not None:
        folder = replace_with_copy(folder, out)
        # cv wrote the fold's card with its corpus manifest, which the run does not record
        if not card_path(folder).is_file():
            write_model_card(folder, run)
    typer.echo(f"fold {fold} ({why})", err=True)
    typer.echo(str(folder))


@inference_app.command("serve")
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
    from emodistill.models.folder import ModelLoadError
    from emodistill.service.app import serve
    from emodistill.service.limits import ServiceLimits

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
        fail(str(err))
