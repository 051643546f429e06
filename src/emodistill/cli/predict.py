"""``emodistill predict``: emotion of audio files, folders and globs, from audio alone.

Output formats (stdout):

* ``table`` (default): a rich table, one row per file (``--segment``: one table per file with its
  timeline, and a summary line);
* ``json``: one JSON list, ``{"file", "label", "probabilities": {label: p}}`` per good file
  (``--segment`` adds ``"segments": [{"start", "end", "label", "probabilities"}]`` and
  ``"summary"``) and ``{"file", "error"}`` per bad one;
* ``csv``: ``file,label,<one column per label>`` (``--segment``: ``file,start,end,label,...``).

A bad file never stops the others: its reason goes to stderr (table/csv) or into the JSON list,
and the exit code is 1 if any input failed (2 if the model itself cannot be loaded).
File names that are not valid UTF-8 are shown with ``\\xNN`` escapes.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from emodistill.audio import AudioError
from emodistill.inference.model import EmoDistill
from emodistill.inference.prediction import FailedPrediction, display_name, safe_text
from emodistill.inference.speaker import speaker_normaliser
from emodistill.models.folder import ModelLoadError

#: Extensions picked up when a folder is given (a file named explicitly is always tried): the
#: usual names of the formats ``audio.SUPPORTED_FORMATS`` accepts (which are sniffed from the
#: bytes, never taken from the name).
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".rf64", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc"}
)


def expand_inputs(args: Sequence[str | os.PathLike]) -> list[tuple[str, Path | None, str | None]]:
    """Files, folders (recursive, audio extensions) and globs -> ``(name, path, error)`` rows.

    An argument that matches nothing gives one row with ``path=None`` and the reason. Order:
    arguments in the order given, each folder's and glob's files sorted; duplicates dropped.
    """
    rows: list[tuple[str, Path | None, str | None]] = []
    seen: set[str] = set()

    def add(p: Path) -> None:
        key = os.fsdecode(os.path.abspath(p))
        if key not in seen:
            seen.add(key)
            rows.append((display_name(p), p, None))

    for arg in args:
        text = os.fsdecode(arg)
        path = Path(text)
        if path.is_dir():
            found = sorted(
                (
                    p
                    for p in path.rglob("*")
                    if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
                ),
                key=lambda p: os.fsencode(p),
            )
            if not found:
                rows.append((display_name(text), None, f"{safe_text(text)}: no audio files"))
            for p in found:
                add(p)
        elif path.exists() or not glob.has_magic(text):
            if not path.exists():
                rows.append((display_name(text), None, f"{safe_text(text)}: file not found"))
            else:
                add(path)
        else:
            matches = sorted(glob.glob(text, recursive=True), key=os.fsencode)
            files = [Path(m) for m in matches if Path(m).is_file()]
            for m in matches:
                if Path(m).is_dir():
                    files.extend(
                        p
                        for p in sorted(Path(m).rglob("*"), key=os.fsencode)
                        if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
                    )
            if not files:
                rows.append((display_name(text), None, f"{safe_text(text)}: no files match"))
            for p in files:
                add(p)
    return rows


def predict_entries(
    model: EmoDistill,
    inputs: Sequence[str | os.PathLike],
    batch_size: int = 8,
    segment: bool = False,
    window: float = 3.0,
    hop: float = 1.5,
    vad: bool = False,
    progress: bool = False,
    profile: str | os.PathLike | None = None,
    speaker_norm: bool = False,
) -> list[dict[str, Any]]:
    """The JSON list of ``predict``: one dict per input file, good or bad, in input order.

    ``profile``: every input normalised with that speaker profile; ``speaker_norm``: all inputs
    are one voice, normalised with their own clip means (``segment``: their windows')."""
    rows = expand_inputs(inputs)
    entries: list[dict[str, Any] | None] = [None] * len(rows)
    todo = []
    for i, (name, path, error) in enumerate(rows):
        if path is None:
            entries[i] = FailedPrediction(name, error or "not found").to_dict()
        else:
            todo.append(i)
    if segment:
        from emodistill.inference.segment import predict_timeline

        speaker = speaker_normaliser(model, [], profile=profile)  # None without a profile
        if speaker_norm:  # the windows of every input are one voice's clips
            speaker = timeline_normaliser(model, [rows[i][1] for i in todo], window, hop, vad)
        for i in todo:
            name, path, _ = rows[i]
            try:
                timeline = predict_timeline(
                    model, path, window, hop, vad, batch_size, speaker=speaker
                )
            except AudioError as err:
                entries[i] = FailedPrediction(name, safe_text(str(err))).to_dict()
                continue
            summary = timeline["summary"]
            entries[i] = {
                "file": name,
                "label": summary["label"],
                "probabilities": summary["probabilities"],
                "segments": timeline["segments"],
                "summary": summary,
            }
    else:
        paths = [rows[i][1] for i in todo]
        results = model.predict_files(
            paths, batch_size, progress=progress, profile=profile, speaker_norm=speaker_norm
        )
        for i, res in zip(todo, results, strict=True):
            entries[i] = res.to_dict()
    return entries  # type: ignore[return-value]


def timeline_normaliser(
    model: EmoDistill, paths: Sequence[Path], window: float, hop: float, vad: bool
) -> Any:
    """``--segment --speaker-norm``: the (2, H) normaliser of every input's timeline windows
    (one voice); a file that fails here fails again, reported, when it is predicted."""
    from emodistill.inference.segment import timeline_clip_means
    from emodistill.inference.speaker import ClipMeans, require_speaker_norm, shared_normaliser

    require_speaker_norm(model, "--speaker-norm")
    clips = ClipMeans()
    for path in paths:
        try:
            clips.add(*timeline_clip_means(model, path, window, hop, vad))
        except AudioError:
            continue
    return shared_normaliser(clips, model.runner.global_stats())


def _write_stdout(text: str) -> None:
    # Always UTF-8, whatever the locale: names were made valid UTF-8 by display_name.
    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.buffer.flush()


def _table(entries: list[dict[str, Any]], labels: list[str], segment: bool) -> None:
    out = Console(file=sys.stdout, soft_wrap=False)
    good = [e for e in entries if "error" not in e]
    if segment:
        for e in good:
            # escape: a file name like "a[/b].wav" is text, not rich markup
            t = Table(title=escape(e["file"]), title_justify="left")
            for col in ("start", "end", "label", *labels):
                t.add_column(col, justify="left" if col == "label" else "right")
            for s in e["segments"]:
                t.add_row(
                    f"{s['start']:.2f}",
                    f"{s['end']:.2f}",
                    s["label"],
                    *(f"{s['probabilities'][lab]:.3f}" for lab in labels),
                )
            out.print(t)
            summ = e["summary"]
            parts = ", ".join(f"{lab} {summ['label_fractions'][lab]:.0%}" for lab in labels)
            out.print(
                f"summary: {summ['analysed_seconds']:.1f} s analysed of {summ['duration']:.1f} s; "
                f"dominant {summ['dominant_label']}; {parts}",
                soft_wrap=True,
            )
        return
    if not good:
        return
    t = Table()
    t.add_column("file", overflow="fold")
    t.add_column("label")
    for lab in labels:
        t.add_column(lab, justify="right")
    for e in good:
        t.add_row(
            escape(e["file"]),
            f"[bold]{escape(e['label'])}[/]",
            *(f"{e['probabilities'][lab]:.3f}" for lab in labels),
        )
    out.print(t)


def _csv(entries: list[dict[str, Any]], labels: list[str], segment: bool) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if segment:
        w.writerow(["file", "start", "end", "label", *labels])
        for e in entries:
            for s in e.get("segments", []):
                w.writerow(
                    [
                        e["file"],
                        f"{s['start']:.3f}",
                        f"{s['end']:.3f}",
                        s["label"],
                        *(f"{s['probabilities'][lab]:.6f}" for lab in labels),
                    ]
                )
    else:
        w.writerow(["file", "label", *labels])
        for e in entries:
            if "error" not in e:
                w.writerow(
                    [e["file"], e["label"], *(f"{e['probabilities'][lab]:.6f}" for lab in labels)]
                )
    return buf.getvalue()


def run_predict(
    model: str | os.PathLike,
    audio: Sequence[str],
    format: str = "table",
    batch_size: int = 8,
    device: str = "cpu",
    segment: bool = False,
    window: float = 3.0,
    hop: float = 1.5,
    vad: bool = False,
    backend: str = "torch",
    num_threads: int | None = None,
    stream: bool = False,
    profile: str | os.PathLike | None = None,
    speaker_norm: bool = False,
) -> int:
    """Run ``emodistill predict``; returns the exit code (0 ok, 1 some input failed, 2 no model,
    or an unusable ``profile`` / ``speaker_norm`` request).

    With ``stream`` the only input must be ``-``: stdin is streamed (:func:`run_stream`).
    """
    err = Console(stderr=True, highlight=False)
    segment = segment or vad  # --vad only makes sense for a timeline
    if format not in ("table", "json", "csv"):
        err.print(f"[bold red]error:[/] unknown format {format!r} (table, json or csv)")
        return 2
    if stream and (list(audio) != ["-"] or vad):
        err.print("[bold red]error:[/] --stream reads stdin: give '-' as the only AUDIO, no --vad")
        return 2
    try:
        m = EmoDistill.from_pretrained(
            model, device=device, backend=backend, num_threads=num_threads
        )
    except (ModelLoadError, ValueError, OSError) as e:
        err.print(f"[bold red]error:[/] cannot load model: {safe_text(str(e))}", markup=True)
        return 2
    if profile is not None or speaker_norm:
        # Checked before any audio is read: a wrong profile is an error, never ignored.
        from emodistill.inference.speaker import SpeakerNormError, check_request
        from emodistill.models.speaker_stats import BadProfile

        try:
            if stream and profile is not None:
                raise SpeakerNormError(
                    "--profile is not available with --stream; --stream --speaker-norm keeps "
                    "running statistics of the stream's own windows"
                )
            check_request(m, profile, speaker_norm)
        except (BadProfile, SpeakerNormError) as e:
            err.print("error: " + safe_text(str(e)), markup=False, soft_wrap=True)
            return 2
    if stream:
        return run_stream(m, sys.stdin.buffer, window, hop, format, speaker_norm)
    summary = m.info().get("summary")
    if format == "table" and summary:  # stderr: stdout is only the table (or JSON/CSV)
        err.print(f"model: {safe_text(summary)}", markup=False, soft_wrap=True)
    try:
        entries = predict_entries(
            m,
            audio,
            batch_size,
            segment,
            window,
            hop,
            vad,
            progress=format == "table",
            profile=profile,
            speaker_norm=speaker_norm,
        )
    except ValueError as e:  # e.g. a window longer than the model accepts
        err.print(f"[bold red]error:[/] {safe_text(str(e))}")
        return 2
    failed = [e for e in entries if "error" in e]
    if format == "json":
        _write_stdout(json.dumps(entries, ensure_ascii=False, indent=2) + "\n")
    elif format == "csv":
        _write_stdout(_csv(entries, m.labels, segment))
    else:
        _table(entries, m.labels, segment)
    if format != "json":
        for e in failed:
            # markup=False: file names may contain [brackets].
            err.print(f"error: {e['error']}", markup=False, soft_wrap=True)
    if failed:
        err.print(f"{len(failed)} of {len(entries)} input(s) failed", markup=False, soft_wrap=True)
    return 1 if failed else 0


def run_stream(
    model: EmoDistill,
    source: Any,
    window: float = 3.0,
    hop: float = 1.5,
    format: str = "json",
    speaker_norm: bool = False,
) -> int:
    """``predict - --stream``: one line per window on stdout, as each window completes
    (``speaker_norm``: running speaker statistics of the stream's windows, ``StreamSession``).

    ``json`` (and ``csv``/``table``, which have no streaming form) print one JSON object per
    line, ``{"start", "end", "label", "probabilities"}``. Returns 0, or 1 for unusable input
    (reason on stderr), 2 for a bad window.
    """
    from emodistill.inference.stream import stream_file

    err = Console(stderr=True, highlight=False)

    def emit(event: dict[str, Any]) -> None:
        _write_stdout(json.dumps(event, ensure_ascii=False) + "\n")

    try:
        stream_file(model, source, emit, window, hop, speaker_norm=speaker_norm)
    except AudioError as e:
        err.print(f"error: {safe_text(str(e))}", markup=False, soft_wrap=True)
        return 1
    except ValueError as e:
        err.print(f"[bold red]error:[/] {safe_text(str(e))}")
        return 2
    return 0


__all__ = ["AUDIO_EXTENSIONS", "expand_inputs", "predict_entries", "run_predict", "run_stream"]
