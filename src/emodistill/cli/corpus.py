"""``emodistill corpus ...``: prepare corpora as manifest CSVs (one command per public corpus,
the synthetic demo corpus, speech-recognition transcripts) and check them."""

from __future__ import annotations

from pathlib import Path

import typer

from emodistill.cli.common import console, fail, known_errors

corpus_app = typer.Typer(help="Prepare corpora as manifest CSVs.", no_args_is_help=True)


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
        fail(str(err))


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
            fail(str(err))

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
        fail(str(err))


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
    from emodistill.corpora.manifest import ManifestError
    from emodistill.corpora.transcribe import TranscribeError, transcribe_manifest
    from emodistill.models.assets import AssetError

    try:
        transcribe_manifest(
            manifest, out, model=model, compute_type=compute_type, language=language
        )
    except (ManifestError, TranscribeError, AssetError, ValueError) as err:
        fail(str(err))


@corpus_app.command("check")
@known_errors
def corpus_check(
    manifest: Path = typer.Argument(..., help="Manifest CSV."),
    out: Path = typer.Option(
        None,
        "--out",
        "-o",
        help="Folder for check.json and the plots (default: <manifest stem>_check/ beside it).",
    ),
    workers: int = typer.Option(4, "--workers", "-j", help="Parallel decoding threads."),
) -> None:
    """Read every audio file once: summary table, bad files named, check.json and plots.

    Exits 2 when a file is unreadable; clipped, silent or too short files are reported and
    the exit status is 0 (docs/data.md, "Checking a corpus").
    """
    from rich.console import Console

    from emodistill.corpora.manifest import load_manifest
    from emodistill.evaluation.corpus_check import check_corpus
    from emodistill.evaluation.corpus_check_report import (
        default_out_dir,
        problems_table,
        speakers_table,
        summary_table,
        unreadable_message,
        write_check,
    )

    # Missing files are the check's to report, with the others, not the loader's to refuse.
    m = load_manifest(manifest, check_files=False)
    result = check_corpus(m, workers=workers, progress=True)
    paths = write_check(result, out if out is not None else default_out_dir(manifest))
    stdout = Console()
    for table in (summary_table(result), speakers_table(result), problems_table(result)):
        if table is not None:
            stdout.print(table)
    console.print(f"wrote {', '.join(str(p) for p in paths.values())}", markup=False)
    if result.unreadable:
        fail(unreadable_message(result, paths["json"]))
