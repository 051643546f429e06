"""What ``emodistill corpus check`` shows and writes from a
:class:`~emodistill.evaluation.corpus_check.CorpusCheck`: the terminal tables, ``check.json``
and two plots (durations per class, classes per speaker). docs/data.md, "Checking a corpus".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from emodistill.evaluation.corpus_check import (
    CLIP_SHARE,
    SILENCE_DBFS,
    TOO_SHORT_SECONDS,
    CorpusCheck,
    FileCheck,
)
from emodistill.util.files import write_json_atomic
from emodistill.util.plotting import pyplot, save_figure

CHECK_NAME = "check.json"
DURATIONS_PLOT = "durations.png"
SPEAKERS_PLOT = "classes_per_speaker.png"
#: The classes-per-speaker bars show at most this many speakers (those with the most
#: utterances); check.json always lists every speaker.
MAX_SPEAKERS_PLOTTED = 60
#: Bad files listed per problem in the terminal; check.json always lists all of them.
MAX_LISTED = 20
#: The per-speaker table is printed up to this many speakers (a plot and check.json beyond).
MAX_SPEAKERS_LISTED = 30


def default_out_dir(manifest: str | Path) -> Path:
    """Where the check writes when no ``--out`` is given: ``<stem>_check/`` beside the manifest
    (``data/iemocap.csv`` -> ``data/iemocap_check/``).

    >>> default_out_dir("data/iemocap.csv").as_posix()
    'data/iemocap_check'
    """
    manifest = Path(manifest)
    return manifest.with_name(f"{manifest.stem}_check")


def write_check(check: CorpusCheck, out_dir: str | Path) -> dict[str, Path]:
    """Write ``check.json`` and the two plots into ``out_dir`` (created); returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / CHECK_NAME,
        "durations": out_dir / DURATIONS_PLOT,
        "speakers": out_dir / SPEAKERS_PLOT,
    }
    write_json_atomic(paths["json"], check.to_dict())
    plot_durations(check, paths["durations"])
    plot_classes_per_speaker(check, paths["speakers"])
    return paths


# --------------------------------------------------------------------------- terminal


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _total(seconds: float) -> str:
    """Hours for a real corpus, seconds for a toy one (0.00 h says nothing)."""
    return f"{seconds / 3600:.2f} h" if seconds >= 360 else f"{seconds:.1f} s"


def summary_table(check: CorpusCheck) -> Any:
    """The corpus at a glance, as a rich ``Table`` (two columns: what, value)."""
    from rich.table import Table

    data = check.to_dict()
    d = data["duration_seconds"]
    n = data["utterances"]
    per_speaker = data["classes_per_speaker"]
    table = Table(title=f"corpus check: {check.manifest or '<manifest>'}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("utterances", f"{n} ({data['readable']} readable)")
    table.add_row("speakers", str(data["speakers"]))
    table.add_row(
        "classes", ", ".join(f"{lab} {k}" for lab, k in data["class_counts"].items()) or "-"
    )
    if per_speaker:
        present = [sum(1 for k in c.values() if k) for c in per_speaker.values()]
        table.add_row(
            "classes per speaker",
            f"{min(present)}-{max(present)} of {len(check.labels)}; "
            f"{len(data['speakers_missing_classes'])} speaker(s) miss a class",
        )
    table.add_row(
        "duration",
        f"total {_total(d['total'])}; min {_seconds(d['min'])}, median "
        f"{_seconds(d['median'])}, p95 {_seconds(d['p95'])}, max {_seconds(d['max'])}",
    )
    table.add_row(
        "sample rates", ", ".join(f"{r} Hz x {k}" for r, k in data["sample_rates"].items()) or "-"
    )
    table.add_row("channels", ", ".join(f"{c} x {k}" for c, k in data["channels"].items()) or "-")
    share = data["transcripts"]["share"]
    table.add_row("transcripts", f"{data['transcripts']['with']} of {n} ({100 * share:.0f} %)")
    table.add_row(
        "clipped", f"{len(data['clipped'])} (> {100 * CLIP_SHARE:g} % of samples at full scale)"
    )
    table.add_row("silent", f"{len(data['silent'])} (RMS < {SILENCE_DBFS:g} dBFS)")
    table.add_row("too short", f"{len(data['too_short'])} (< {1000 * TOO_SHORT_SECONDS:.0f} ms)")
    table.add_row("unreadable", str(len(data["unreadable"])))
    return table


def speakers_table(check: CorpusCheck, limit: int = MAX_SPEAKERS_LISTED) -> Any | None:
    """Utterances per speaker and class (a rich ``Table``), or None above ``limit`` speakers."""
    from rich.table import Table

    per_speaker = check.classes_per_speaker()
    if not per_speaker or len(per_speaker) > limit:
        return None
    table = Table(title="classes per speaker")
    table.add_column("speaker", style="bold")
    for lab in check.labels:
        table.add_column(lab, justify="right")
    table.add_column("total", justify="right")
    for speaker, counts in per_speaker.items():
        # A 0 in red: the speaker's fold cannot test (or train on) that class from them.
        cells = [str(k) if k else "[red]0[/]" for k in counts.values()]
        table.add_row(speaker, *cells, str(sum(counts.values())))
    return table


def _reason(f: FileCheck) -> str:
    if not f.readable:
        return str(f.error)
    parts = []
    if f.clipped:
        parts.append(f"clipped: {100 * (f.clipped_share or 0):.2f} % of samples at full scale")
    if f.silent:
        parts.append(f"silent: RMS {f.rms_dbfs:.1f} dBFS")
    if f.too_short:
        parts.append(f"too short: {1000 * (f.seconds or 0):.0f} ms")
    return "; ".join(parts)


def problems_table(check: CorpusCheck, limit: int = MAX_LISTED) -> Any | None:
    """The bad files, named (at most ``limit`` per problem), or None when there are none."""
    from rich.table import Table

    groups = (
        ("unreadable", check.unreadable),
        ("clipped", check.clipped),
        ("silent", check.silent),
        ("too short", check.too_short),
    )
    if not any(files for _, files in groups):
        return None
    table = Table(title="files with problems (all of them in check.json)")
    table.add_column("problem", style="bold")
    table.add_column("id")
    table.add_column("file / reason", overflow="fold")
    for problem, files in groups:
        for f in files[:limit]:
            # An unreadable file's reason already names it (audio.py's messages do).
            table.add_row(
                problem, f.id, _reason(f) if not f.readable else f"{f.path}: {_reason(f)}"
            )
        if len(files) > limit:
            table.add_row(problem, "...", f"and {len(files) - limit} more")
    return table


def unreadable_message(check: CorpusCheck, json_path: Path, limit: int = MAX_LISTED) -> str:
    """The error line of a check with unreadable files: how many, then each one's reason."""
    bad = check.unreadable
    lines = [f"{len(bad)} of {len(check.files)} audio files are unreadable (all in {json_path}):"]
    lines += [f"  {f.error}" for f in bad[:limit]]
    if len(bad) > limit:
        lines.append(f"  ... and {len(bad) - limit} more")
    return "\n".join(lines)


# --------------------------------------------------------------------------- plots


def plot_durations(check: CorpusCheck, path: str | Path) -> Path:
    """Box plot of the readable files' durations per class (log seconds), with the 60 ms floor
    drawn."""
    plt = pyplot()
    labels = list(check.labels)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 * len(labels) + 2), 4.0))
    # Classes without a readable file get no box (boxplot refuses an empty series).
    shown = [(lab, d) for lab in labels if (d := check.durations(lab))]
    if shown:
        ax.boxplot([d for _, d in shown], showfliers=True, flierprops={"markersize": 3})
        ax.set_xticks(range(1, len(shown) + 1), [f"{lab}\n(n={len(d)})" for lab, d in shown])
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no readable audio", ha="center", va="center", transform=ax.transAxes)
    ax.axhline(TOO_SHORT_SECONDS, color="red", ls=":", lw=1, label="too short (eGeMAPS)")
    ax.set_ylabel("duration, s")
    ax.legend(fontsize=8, loc="best")
    ax.set_title("Durations per class")
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path)
    plt.close(fig)
    return Path(path)


def plot_classes_per_speaker(check: CorpusCheck, path: str | Path) -> Path:
    """Stacked bars: utterances of each class per speaker (the :data:`MAX_SPEAKERS_PLOTTED`
    speakers with the most utterances when there are more, in name order)."""
    plt = pyplot()
    per_speaker = check.classes_per_speaker()
    speakers = list(per_speaker)
    if len(speakers) > MAX_SPEAKERS_PLOTTED:
        top = sorted(speakers, key=lambda s: -sum(per_speaker[s].values()))
        speakers = sorted(top[:MAX_SPEAKERS_PLOTTED])
    x = np.arange(len(speakers))
    fig, ax = plt.subplots(figsize=(min(24.0, max(6.0, 0.3 * len(speakers) + 3)), 4.5))
    bottom = np.zeros(len(speakers))
    for lab in check.labels:
        heights = np.array([per_speaker[s][lab] for s in speakers], dtype=float)
        ax.bar(x, heights, 0.8, bottom=bottom, label=lab)
        bottom += heights
    ax.set_xticks(x, speakers, rotation=90, fontsize=7)
    ax.set_ylabel("utterances")
    ax.legend(fontsize=8, ncols=min(len(check.labels), 6) or 1, loc="best")
    shown = f"{len(speakers)} of {len(per_speaker)} speakers (most utterances)"
    ax.set_title("Classes per speaker" + (f": {shown}" if len(speakers) < len(per_speaker) else ""))
    save_figure(fig, path)
    plt.close(fig)
    return Path(path)
