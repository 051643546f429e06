"""IEMOCAP release layout -> manifest CSV.

Layout read (nothing else)::

    ROOT/SessionN/dialog/EmoEvaluation/<dialog>.txt      summary lines (top level only)
    ROOT/SessionN/dialog/transcriptions/<dialog>.txt     "UTT [start-end]: text"
    ROOT/SessionN/sentences/wav/<dialog>/<utt>.wav

Only the *summary* lines of the top-level EmoEvaluation files carry the consensus label::

    [6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]

The sub-folders ``Categorical/``, ``Attribute/`` and ``Self-evaluation/`` hold per-annotator
files in other formats and are never read.

The speaker is the session plus the gender letter of the utterance *suffix*
(``Ses01F_impro01_M001`` -> ``Ses01M``): the letter in the dialog name is the actor wearing the
motion-capture markers, not the one speaking.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from emodistill.corpora.manifest import Manifest, Utterance, canonical_labels, write_manifest

#: Utterances in the standard 4-class setup of the full release (docs/data.md, "IEMOCAP").
EXPECTED_4CLASS_TOTAL = 5531
EXPECTED_4CLASS_PER_SESSION = {
    "Ses01": 1085,
    "Ses02": 1023,
    "Ses03": 1151,
    "Ses04": 1031,
    "Ses05": 1241,
}
#: IEMOCAP label -> class name, per number of classes.
LABEL_MAPS: dict[int, dict[str, str]] = {
    4: {"neu": "neutral", "hap": "happy", "exc": "happy", "ang": "angry", "sad": "sad"},
}

# "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]"
_SUMMARY = re.compile(
    r"^\[\s*(?P<start>\d+(?:\.\d*)?)\s*-\s*(?P<end>\d+(?:\.\d*)?)\s*\]\s+"
    r"(?P<utt>Ses\d\d[FM]_\S+)\s+(?P<label>[A-Za-z]+)\s+\["
)
# "Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me."
_TRANSCRIPT = re.compile(r"^(?P<utt>Ses\d\d[FM]_\S+)\s+\[[^\]]*\]:\s?(?P<text>.*)$")
# Session and speaker gender from the utterance id: Ses01F_script01_1_M006 -> Ses01, M
_UTT = re.compile(r"^(?P<session>Ses\d\d)[FM]_.*_(?P<gender>[FM])\d+[a-z]?$")
_SESSION_DIR = re.compile(r"^Session\d+$")


class IemocapError(ValueError):
    """The IEMOCAP tree cannot be read; the message names the files/utterances at fault."""


def find_sessions(root: str | Path) -> list[Path]:
    """``SessionN`` folders under ``root`` or under its single sub-folder (IEMOCAP_full_release).

    Raises:
        IemocapError: when neither ``root`` nor a folder one level below holds ``SessionN``.
    """
    root = Path(root)
    if not root.is_dir():
        raise IemocapError(f"{root}: IEMOCAP folder not found")

    def sessions_in(folder: Path) -> list[Path]:
        found = [p for p in folder.iterdir() if p.is_dir() and _SESSION_DIR.match(p.name)]
        return sorted(found, key=lambda p: int(p.name[len("Session") :]))

    found = sessions_in(root)
    if found:
        return found
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        found = sessions_in(child)
        if found:
            return found
    raise IemocapError(
        f"{root}: no Session1..Session5 folders here or one level below "
        "(expected the IEMOCAP release folder, e.g. IEMOCAP_full_release/)"
    )


def _text_files(folder: Path) -> list[Path]:
    # Top level only; skip hidden files and macOS AppleDouble "._x.txt" companions.
    return sorted(
        p for p in folder.glob("*.txt") if p.is_file() and not p.name.startswith((".", "._"))
    )


def _read_lines(path: Path) -> list[str]:
    # The release is ASCII, but a few copies were re-saved with odd bytes: never fail on them.
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


def read_transcripts(session_dir: Path) -> dict[str, str]:
    """Utterance id -> transcript text for one ``SessionN`` folder (lines that are no
    ``UTT [start-end]: text`` line, e.g. noise markers, are skipped)."""
    out: dict[str, str] = {}
    folder = session_dir / "dialog" / "transcriptions"
    if not folder.is_dir():
        return out
    for path in _text_files(folder):
        for line in _read_lines(path):
            m = _TRANSCRIPT.match(line.strip())
            if m:
                out[m["utt"]] = m["text"].strip()
    return out


def read_iemocap(root: str | Path, classes: int = 4) -> tuple[list[Utterance], dict[str, Any]]:
    """Read the IEMOCAP release into utterances of the ``classes``-class setup.

    Args:
        root: the folder holding ``Session1..Session5`` (or one level above it).
        classes: 4 = neutral, happy (hap + exc), angry, sad.

    Returns:
        ``(utterances, summary)``; summary keys: ``total``, ``per_class``, ``per_session``,
        ``per_speaker``, ``skipped`` (IEMOCAP label -> count), ``missing_transcripts``,
        ``sessions`` (folders read).

    Raises:
        IemocapError: no sessions, a session without ``dialog/EmoEvaluation``, malformed
            utterance ids, or missing wavs (all listed together, by utterance and path).
    """
    if classes not in LABEL_MAPS:
        raise IemocapError(f"--classes {classes} is not supported (choose {sorted(LABEL_MAPS)})")
    label_map = LABEL_MAPS[classes]
    sessions = find_sessions(root)

    utterances: list[Utterance] = []
    skipped: Counter[str] = Counter()
    problems: list[str] = []
    seen: dict[str, Path] = {}
    missing_transcripts = 0
    for session_dir in sessions:
        eval_dir = session_dir / "dialog" / "EmoEvaluation"
        files = _text_files(eval_dir) if eval_dir.is_dir() else []
        if not files:
            raise IemocapError(f"{eval_dir}: no EmoEvaluation/*.txt files (incomplete release?)")
        transcripts = read_transcripts(session_dir)
        for eval_file in files:
            dialog = eval_file.stem
            for line in _read_lines(eval_file):
                m = _SUMMARY.match(line)
                if not m:
                    continue  # header, per-annotator "C-E2:" / "A-E3:" lines, blanks
                utt, raw = m["utt"], m["label"].lower()
                if utt in seen:
                    problems.append(f"{utt}: listed twice ({seen[utt]} and {eval_file})")
                    continue
                seen[utt] = eval_file
                if raw not in label_map:
                    skipped[raw] += 1
                    continue
                parts = _UTT.match(utt)
                if not parts:
                    problems.append(f"{utt}: cannot read session/speaker gender ({eval_file})")
                    continue
                wav = session_dir / "sentences" / "wav" / dialog / f"{utt}.wav"
                if not wav.is_file():
                    problems.append(f"{utt}: missing wav, expected {wav}")
                    continue
                text = transcripts.get(utt)
                if not text:
                    missing_transcripts += 1
                session = parts["session"]
                utterances.append(
                    Utterance(
                        id=utt,
                        path=wav.absolute(),
                        label=label_map[raw],
                        speaker=session + parts["gender"],
                        session=session,
                        transcript=text or None,
                    )
                )
    if problems:
        n = len(problems)
        shown = problems[:50]
        more = [f"... and {n - len(shown)} more"] if n > len(shown) else []
        raise IemocapError(
            "\n".join([f"IEMOCAP tree {root}: {n} problem(s):", *(f"  {p}" for p in shown), *more])
        )
    labels = canonical_labels(label_map.values())
    per_class = Counter(u.label for u in utterances)
    summary: dict[str, Any] = {
        "total": len(utterances),
        "labels": labels,
        "per_class": {lab: per_class.get(lab, 0) for lab in labels},
        "per_session": dict(sorted(Counter(u.session for u in utterances).items())),
        "per_session_class": {
            ses: dict(Counter(u.label for u in utterances if u.session == ses))
            for ses in sorted({u.session for u in utterances})  # type: ignore[type-var]
        },
        "per_speaker": dict(sorted(Counter(u.speaker for u in utterances).items())),
        "skipped": dict(sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0]))),
        "missing_transcripts": missing_transcripts,
        "sessions": [str(s) for s in sessions],
    }
    return utterances, summary


def print_summary(summary: dict[str, Any], console: Console, classes: int = 4) -> None:
    """Counts per class, per session and skipped per label, as rich tables; warn on odd totals."""
    labels = list(summary["per_class"])
    table = Table(title=f"IEMOCAP {classes}-class: {summary['total']} utterances")
    table.add_column("session")
    for lab in labels:
        table.add_column(lab, justify="right")
    table.add_column("total", justify="right")
    for ses, counts in summary["per_session_class"].items():
        row = [str(counts.get(lab, 0)) for lab in labels]
        table.add_row(ses, *row, str(summary["per_session"][ses]))
    totals = [str(summary["per_class"][lab]) for lab in labels]
    table.add_row("all", *totals, str(summary["total"]), style="bold")
    console.print(table)
    if summary["skipped"]:
        skipped = ", ".join(f"{lab} {n}" for lab, n in summary["skipped"].items())
        console.print(f"skipped (other labels): {skipped}")
    if summary["missing_transcripts"]:
        console.print(
            f"[yellow]warning:[/] {summary['missing_transcripts']} utterance(s) without a "
            "transcript (fill them with `emodistill corpus transcribe`)"
        )
    if classes == 4 and summary["total"] != EXPECTED_4CLASS_TOTAL:
        console.print(
            f"[yellow]warning:[/] {summary['total']} utterances, but the full release gives "
            f"{EXPECTED_4CLASS_TOTAL} in the 4-class setup: is a session or a file missing?"
        )
        off = {
            ses: (summary["per_session"].get(ses, 0), n)
            for ses, n in EXPECTED_4CLASS_PER_SESSION.items()
            if summary["per_session"].get(ses, 0) != n
        }
        console.print(
            "  sessions that differ from the release (found/expected): "
            + ", ".join(f"{ses} {got}/{n}" for ses, (got, n) in off.items())
        )


def prepare_iemocap(
    root: str | Path, out: str | Path, classes: int = 4, console: Console | None = None
) -> Manifest:
    """Read IEMOCAP (see :func:`read_iemocap`), write the manifest CSV ``out``, print a summary.

    Returns:
        The written :class:`Manifest` (absolute wav paths; the CSV stores them relative to its
        folder when the corpus lies below it).
    """
    console = console or Console(stderr=True)
    utterances, summary = read_iemocap(root, classes=classes)
    out = Path(out)
    write_manifest(utterances, out)
    print_summary(summary, console, classes=classes)
    console.print(
        f"wrote {out} ({summary['total']} utterances, {len(summary['per_speaker'])} speakers)"
    )
    return Manifest(path=out.absolute(), utterances=utterances, labels=summary["labels"])
