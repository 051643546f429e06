"""What every public-corpus loader shares: label sets, ``--classes``/``--map``, skip reports.

A corpus module (``emodb.py``, ``ravdess.py``, ...) only knows its release layout: its
``read(root)`` returns a :class:`CorpusRead` whose utterances carry the corpus's *full* label set
under shared English names (``neutral``, ``happy``, ``angry``, ``sad``, ``fear``, ``disgust``,
``surprise``, ...: the same name means the same class in every corpus, so a model trained on one
corpus is evaluated on another by label name), plus every file it skipped and why. This module
turns that into a manifest:

1. ``--map`` renames or drops labels of the full set (``excited=happy,frustrated=-``);
2. ``--classes 4`` keeps neutral/happy/angry/sad through the corpus's own 4-class mapping (the
   one its literature uses, documented in docs/data.md); ``--classes all`` keeps every label.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from emodistill.corpora.manifest import Manifest, Utterance, canonical_labels, write_manifest

#: ``--classes`` values.
CLASS_CHOICES = ("4", "all")
#: Files listed per skip reason in the summary.
EXAMPLES_PER_REASON = 3


class CorpusError(ValueError):
    """A corpus tree that cannot be read; the message names the folder and what was expected."""


@dataclass
class CorpusRead:
    """What a corpus reader found: utterances with full-set labels, and every skip with why."""

    utterances: list[Utterance] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, what: str | Path) -> None:
        """Count one skipped file (or row) under ``reason``; keep the first few as examples."""
        self.skipped[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < EXAMPLES_PER_REASON:
            shown.append(str(what))


#: The four classes mapped onto themselves: the 4-class mapping of every corpus whose full set
#: contains them under these names.
IDENTITY_4 = {lab: lab for lab in ("neutral", "happy", "angry", "sad")}
#: Leave-one-speaker-out with one validation speaker: most corpora's default folds.
SPEAKER_FOLDS = {"scheme": "speaker", "val_speakers": 1}


@dataclass(frozen=True)
class CorpusSpec:
    """A corpus: its reader, its 4-class mapping and its default speaker-independent folds.

    ``four_class`` maps full-set label names to the four classes, identities included (labels
    absent from it are left out by ``--classes 4``; a label renamed by ``--map`` is looked up
    under its new name, so ``--map excited=happy`` keeps excited as happy).
    ``default_folds`` are :class:`~emodistill.config.FoldConfig` fields.
    """

    name: str
    title: str
    read: Callable[[Path], CorpusRead]
    four_class: Mapping[str, str] = field(default_factory=lambda: dict(IDENTITY_4))
    default_folds: Mapping[str, Any] = field(default_factory=lambda: dict(SPEAKER_FOLDS))
    language: str = "en"
    note: str = ""


def parse_label_map(spec: str | None) -> dict[str, str | None]:
    """``"excited=happy,frustrated=-"`` -> ``{"excited": "happy", "frustrated": None}``.

    ``-`` (or an empty right side) drops the label.

    Raises:
        CorpusError: an item without ``=`` or with an empty left side.
    """
    out: dict[str, str | None] = {}
    for item in (spec or "").split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise CorpusError(f"--map item {item!r} is not OLD=NEW (use OLD=- to drop a label)")
        old, new = (part.strip() for part in item.split("=", 1))
        if not old:
            raise CorpusError(f"--map item {item!r} has no label on the left of '='")
        out[old] = None if new in ("", "-") else new
    return out


def select_labels(
    read: CorpusRead,
    four_class: Mapping[str, str],
    classes: str = "4",
    label_map: Mapping[str, str | None] | None = None,
) -> tuple[list[Utterance], Counter[str]]:
    """Apply ``--map`` then ``--classes`` to the reader's utterances.

    Returns:
        ``(kept utterances, dropped label -> count)``; a label dropped by ``--map`` is counted as
        ``"<label> (--map)"``, one outside the 4 classes under its own name.
    """
    if classes not in CLASS_CHOICES:
        raise CorpusError(f"--classes {classes!r} is not supported (choose 4 or all)")
    label_map = dict(label_map or {})
    present = {u.label for u in read.utterances}
    unknown = sorted(set(label_map) - present)
    if unknown:
        raise CorpusError(
            f"--map names label(s) {', '.join(unknown)} that this corpus does not have "
            f"(its labels: {', '.join(canonical_labels(present))})"
        )
    kept: list[Utterance] = []
    dropped: Counter[str] = Counter()
    for u in read.utterances:
        label: str | None = u.label
        if label in label_map:
            label = label_map[label]
            if label is None:
                dropped[f"{u.label} (--map)"] += 1
                continue
        if classes == "4":
            four = four_class.get(label)
            if four is None:
                dropped[label] += 1
                continue
            label = four
        kept.append(u if label == u.label else replace(u, label=label))
    return kept, dropped


def summarize(
    spec: CorpusSpec,
    read: CorpusRead,
    utterances: Sequence[Utterance],
    dropped: Counter[str],
    classes: str,
) -> dict[str, Any]:
    """Counts for the printed report (and for tests): per class, speaker, split; skips; folds."""
    labels = canonical_labels(u.label for u in utterances)
    per_class = Counter(u.label for u in utterances)
    return {
        "corpus": spec.name,
        "classes": classes,
        "total": len(utterances),
        "labels": labels,
        "per_class": {lab: per_class[lab] for lab in labels},
        "per_speaker": dict(sorted(Counter(u.speaker for u in utterances).items())),
        "per_split": dict(sorted(Counter(u.split for u in utterances if u.split).items())),
        "skipped": dict(read.skipped.most_common()),
        "skipped_examples": dict(read.examples),
        "dropped_labels": dict(dropped.most_common()),
        "missing_transcripts": sum(not u.transcript for u in utterances),
        "default_folds": dict(spec.default_folds),
    }


def read_corpus(
    spec: CorpusSpec,
    root: str | Path,
    classes: str = "4",
    label_map: Mapping[str, str | None] | str | None = None,
) -> tuple[list[Utterance], dict[str, Any]]:
    """Read ``root`` with ``spec``'s reader and apply ``label_map`` and ``classes``.

    Returns:
        ``(utterances, summary)`` (see :func:`summarize` for the summary's keys).

    Raises:
        CorpusError: ``root`` missing, nothing usable found (the message says what file names
            were expected), or a bad ``--map``/``--classes``.
    """
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"{root}: {spec.title} folder not found")
    if isinstance(label_map, str) or label_map is None:
        label_map = parse_label_map(label_map)
    read = spec.read(root)
    if not read.utterances:
        reasons = "; ".join(f"{r}: {n}" for r, n in read.skipped.most_common(5)) or "no files"
        raise CorpusError(f"{root}: no {spec.title} utterances found ({reasons}). {spec.note}")
    utterances, dropped = select_labels(read, spec.four_class, classes, label_map)
    if not utterances:
        raise CorpusError(f"{root}: every utterance was dropped by --classes/--map ({dropped})")
    return utterances, summarize(spec, read, utterances, dropped, classes)


def print_corpus_summary(summary: Mapping[str, Any], console: Console, title: str) -> None:
    """Counts per class (and split), speakers, skipped files with examples, suggested folds."""
    table = Table(title=f"{title} ({summary['classes']} classes): {summary['total']} utterances")
    table.add_column("label")
    table.add_column("utterances", justify="right")
    for lab, n in summary["per_class"].items():
        table.add_row(lab, str(n))
    console.print(table)
    console.print(f"speakers: {len(summary['per_speaker'])} ({', '.join(summary['per_speaker'])})")
    if summary["per_split"]:
        console.print(
            "official split: " + ", ".join(f"{k} {n}" for k, n in summary["per_split"].items())
        )
    for reason, n in summary["skipped"].items():
        examples = ", ".join(summary["skipped_examples"].get(reason, []))
        console.print(f"skipped {n}: {reason} (e.g. {examples})", highlight=False)
    if summary["dropped_labels"]:
        dropped = ", ".join(f"{lab} {n}" for lab, n in summary["dropped_labels"].items())
        console.print(f"left out (other labels): {dropped}")
    if summary["missing_transcripts"]:
        console.print(
            f"[yellow]note:[/] {summary['missing_transcripts']} utterance(s) without a "
            "transcript (fill them with `emodistill corpus transcribe`)"
        )
    folds = ", ".join(f"{k}: {v}" for k, v in summary["default_folds"].items())
    console.print(f"default folds for this corpus (config `folds:`): {{{folds}}}")


def prepare_corpus(
    spec: CorpusSpec,
    root: str | Path,
    out: str | Path,
    classes: str = "4",
    label_map: Mapping[str, str | None] | str | None = None,
    console: Console | None = None,
) -> Manifest:
    """Read a corpus (see :func:`read_corpus`), write the manifest CSV ``out``, print a summary."""
    console = console or Console(stderr=True)
    utterances, summary = read_corpus(spec, root, classes=classes, label_map=label_map)
    out = Path(out)
    write_manifest(utterances, out)
    print_corpus_summary(summary, console, spec.title)
    console.print(
        f"wrote {out} ({summary['total']} utterances, {len(summary['per_speaker'])} speakers)"
    )
    return Manifest(path=out.absolute(), utterances=utterances, labels=summary["labels"])


def audio_files(root: Path, suffixes: Sequence[str] = (".wav",)) -> list[Path]:
    """Audio files below ``root`` (recursive, sorted), without hidden/AppleDouble companions.

    Symbolic links are followed, to folders as to files: datasets are often assembled from links
    (a folder of linked ``Actor_NN`` folders). A real folder reached twice (two links to it, or
    a link back up the tree) is read once.
    """
    wanted = {s.lower() for s in suffixes}
    found: list[Path] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        folder = Path(dirpath)
        for name in filenames:
            path = folder / name
            if not name.startswith(".") and path.suffix.lower() in wanted and path.is_file():
                found.append(path)
    return sorted(found)


def read_text_lenient(path: Path) -> str:
    """Text of a corpus metadata file: UTF-16 with a BOM, UTF-8 (BOM or not), else cp1252.

    Corpus releases were written by many tools; the text tables must not fail on one of them.
    """
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")
