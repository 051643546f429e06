"""Transcripts for corpora without them, with faster-whisper (training time only).

The linguistic teacher needs text; the student and inference never do. ``emodistill corpus
transcribe MANIFEST --out NEW.csv`` fills every empty transcript with Whisper's and keeps the
ones the manifest already has.

Results are cached in ``<out folder>/.emodistill-cache/transcripts.json``, keyed on the audio
file's bytes (sha256), the model and the decoding settings, so re-running after an interruption,
or on a manifest that shares audio with an earlier one, decodes only what is new.

``compute_type="auto"`` is ``int8``: on the embedded Whisper tiny.en (CTranslate2, CPU) int8
took 3.7 s of CPU time for 21.5 s of synthetic speech against 5.2 s for float32, with the
same transcripts (docs/teachers.md).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from emodistill.util.files import file_sha256, is_environment_error, read_json, write_json_atomic
from emodistill.util.log import get_logger
from emodistill.util.progress import make_progress

DEFAULT_MODEL = "embedded:whisper-tiny.en"
#: What ``compute_type="auto"`` means on CPU (measured, see the module docstring).
AUTO_COMPUTE_TYPE = "int8"
COMPUTE_TYPES = ("auto", "int8", "float32", "int8_float32", "float16", "int8_float16")
CACHE_VERSION = 1

log = get_logger(__name__)


class TranscribeError(RuntimeError):
    """The model cannot be loaded or an audio file cannot be transcribed (message names it)."""


def _model_identity(model: str, folder: str) -> str:
    """The model id plus, for a local folder, the size and mtime of its weights."""
    weights = Path(folder) / "model.bin"
    if weights.is_file():
        st = weights.stat()
        return f"{model}|{st.st_size}|{st.st_mtime_ns}"
    return model


def _load_cache(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return {}  # a broken cache is only a lost speed-up
    return data.get("entries", {}) if data.get("version") == CACHE_VERSION else {}


def _save_cache(path: Path, entries: dict[str, str]) -> None:
    write_json_atomic(path, {"version": CACHE_VERSION, "entries": entries}, indent=1)


def load_whisper(model: str = DEFAULT_MODEL, compute_type: str = "auto", cpu_threads: int = 0):
    """A faster-whisper ``WhisperModel`` on CPU (``embedded:*`` ids resolved to folders)."""
    from faster_whisper import WhisperModel

    from emodistill.models.assets import resolve

    if compute_type not in COMPUTE_TYPES:
        raise ValueError(f"compute_type must be one of {COMPUTE_TYPES}, got {compute_type!r}")
    ct = AUTO_COMPUTE_TYPE if compute_type == "auto" else compute_type
    source = resolve(model)
    threads = cpu_threads or min(4, os.cpu_count() or 1)
    try:
        return WhisperModel(source, device="cpu", compute_type=ct, cpu_threads=threads)
    except Exception as err:  # noqa: BLE001 - ctranslate2/hub raise many types
        raise TranscribeError(f"cannot load Whisper model {model!r} ({source}): {err}") from err


def check_language(whisper: Any, model: str, language: str | None) -> None:
    """Refuse a non-English ``language`` with an English-only model (``*.en``), by name.

    Raises:
        TranscribeError: the model is English-only and ``language`` is another language.
    """
    # faster-whisper's WhisperModel exposes the CTranslate2 model's flag as .model.
    if language in (None, "en") or getattr(
        getattr(whisper, "model", None), "is_multilingual", True
    ):
        return
    raise TranscribeError(
        f"Whisper model {model!r} is English-only; --language {language} needs a multilingual "
        "model (e.g. a faster-whisper 'base' or 'small' folder or id: --model PATH)"
    )


def transcribe_array(whisper: Any, audio, beam_size: int = 1, language: str | None = None) -> str:
    """Transcript of a 16 kHz mono float32 signal (N,): Whisper's segments joined by spaces.

    ``language``: ISO 639-1 code (``de``, ``zh``, ...); ``None`` lets Whisper detect it.
    """
    segments, _info = whisper.transcribe(
        audio,
        language=language,
        beam_size=beam_size,
        condition_on_previous_text=False,  # utterances are independent, short clips
        vad_filter=False,
    )
    return " ".join(s.text.strip() for s in segments).strip()


def transcribe_manifest(
    manifest: str | Path | Any,
    out: str | Path,
    model: str = DEFAULT_MODEL,
    compute_type: str = "auto",
    beam_size: int = 1,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    language: str | None = None,
) -> Path:
    """Write ``out``: ``manifest`` with every empty transcript filled in by Whisper.

    Args:
        manifest: manifest CSV path (or a loaded :class:`~emodistill.corpora.manifest.Manifest`).
        out: manifest CSV to write (atomically). May equal the input.
        model: ``embedded:whisper-tiny.en`` (default), a CTranslate2 Whisper folder, or a
            faster-whisper model name (needs the hub).
        compute_type: ``auto`` (= int8 on CPU), ``int8``, ``float32``, ...
        beam_size: 1 = greedy (fast; enough for short clips).
        cache_dir: where ``transcripts.json`` lives (default ``<out folder>/.emodistill-cache``).
        progress: show a progress bar.
        language: the corpus's language as an ISO 639-1 code (``de`` for EmoDB); ``None``
            detects it per file. Anything but English needs a multilingual model.

    Returns:
        ``out`` as a Path.

    Raises:
        TranscribeError: after ``out`` and the cache are written, when some files could not be
            read (each is named; their transcripts stay empty, every other one is filled in).
            An interruption (Ctrl-C, a crash) keeps every transcript decoded so far in the cache.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, TimeRemainingColumn

    from emodistill.audio import AudioError, load_audio
    from emodistill.corpora.manifest import as_manifest, write_manifest

    m = as_manifest(manifest)
    out = Path(out)
    cache_path = Path(cache_dir or out.absolute().parent / ".emodistill-cache") / "transcripts.json"
    cache = _load_cache(cache_path)
    todo = [i for i, u in enumerate(m.utterances) if not (u.transcript or "").strip()]
    ct = AUTO_COMPUTE_TYPE if compute_type == "auto" else compute_type
    utterances = list(m.utterances)
    whisper = None
    counts = {"kept": len(utterances) - len(todo), "cached": 0, "decoded": 0}
    empty: list[str] = []
    bar = make_progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        enabled=progress,
        stderr=True,
    )
    identity = None
    failed: dict[str, str] = {}
    saved = 0  # decoded count at the last cache save
    try:
        with bar:
            task = bar.add_task("transcribing", total=len(todo))
            for n, i in enumerate(todo, 1):
                u = utterances[i]
                bar.update(task, completed=n)
                try:
                    audio_hash = file_sha256(u.path)
                except OSError as err:
                    if is_environment_error(err):
                        raise
                    failed[u.id] = f"{u.path}: cannot read file ({err.strerror or err})"
                    continue
                if identity is None:
                    from emodistill.models.assets import resolve

                    identity = _model_identity(model, resolve(model))
                # Without --language the key is what it always was (existing caches stay valid).
                lang = f"|lang{language}" if language else ""
                key = hashlib.sha256(
                    f"{audio_hash}|{identity}|{ct}|beam{beam_size}{lang}".encode()
                ).hexdigest()
                text = cache.get(key)
                if text is None:
                    try:
                        audio = load_audio(u.path)
                    except AudioError as err:  # report it and go on with the others
                        failed[u.id] = str(err)
                        continue
                    if whisper is None:
                        whisper = load_whisper(model, compute_type)
                        check_language(whisper, model, language)
                    text = transcribe_array(whisper, audio, beam_size=beam_size, language=language)
                    cache[key] = text
                    counts["decoded"] += 1
                    if counts["decoded"] - saved >= 50:  # keep progress across kills
                        _save_cache(cache_path, cache)
                        saved = counts["decoded"]
                else:
                    counts["cached"] += 1
                if not text:
                    empty.append(u.id)
                utterances[i] = replace(u, transcript=text or None)
    finally:
        # Interrupted or not, what was decoded is kept: the next run takes it from the cache.
        if counts["decoded"] > saved:
            _save_cache(cache_path, cache)
    write_manifest(utterances, out)
    log.info(
        f"{out}: {counts['decoded']} transcribed, {counts['cached']} from cache "
        f"({cache_path}), {counts['kept']} already had a transcript"
    )
    if empty:
        shown = ", ".join(empty[:5]) + (", ..." if len(empty) > 5 else "")
        log.warning(
            f"[yellow]warning:[/] Whisper heard no words in {len(empty)} utterance(s): {shown}"
        )
    if failed:
        reasons = "; ".join(f"{uid}: {why}" for uid, why in failed.items())
        raise TranscribeError(
            f"{len(failed)} of {len(todo)} file(s) could not be transcribed (their transcripts "
            f"stay empty; the others were written to {out}): {reasons}"
        )
    return out
