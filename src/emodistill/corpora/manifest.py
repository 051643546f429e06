"""The manifest contract: one CSV row per utterance, validated once, used everywhere.

Format (UTF-8 CSV, header required, extra columns allowed and ignored)::

    id,path,label,speaker,session,transcript
    Ses01F_impro01_F000,wav/Ses01F_impro01_F000.wav,neutral,Ses01F,Ses01,Excuse me.

``path`` is absolute or relative to the manifest's folder; ``session`` and ``transcript`` may be
empty. An optional ``split`` column (``train`` / ``validation`` / ``test``) carries a corpus's
official partition (MSP-Podcast, MELD) for the ``official`` fold scheme.
:func:`load_manifest` checks every row and reports *all* problems in one
:class:`ManifestError`, each naming the file, the line and the reason, so a user fixes a broken
manifest in one pass instead of one error per run.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from emodistill.config import LABELS_4
from emodistill.util.files import atomic_path

#: Required header columns, in the order :func:`write_manifest` writes them.
MANIFEST_COLUMNS = ("id", "path", "label", "speaker", "session", "transcript")
#: Optional column: a corpus's official partition (train / validation / test).
SPLIT_COLUMN = "split"
#: Columns that may not be empty.
REQUIRED_COLUMNS = ("id", "path", "label", "speaker")


class ManifestError(ValueError):
    """A manifest that cannot be used.

    ``problems`` holds one entry per bad row (``FILE:LINE (id ID): reason; reason``) plus
    file-level problems (header, fewer than 2 speakers).
    """

    def __init__(self, problems: Sequence[str]):
        self.problems: list[str] = list(problems)
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in manifest:"
        super().__init__("\n".join([head, *(f"  {p}" for p in self.problems)]))


@dataclass(frozen=True)
class Utterance:
    """One utterance of a corpus. ``path`` is absolute."""

    id: str
    path: Path
    label: str
    speaker: str
    session: str | None = None
    transcript: str | None = None
    split: str | None = None  # official partition, when the corpus has one


def canonical_labels(labels: Iterable[str]) -> list[str]:
    """Labels in canonical order: those of ``LABELS_4`` in its order, then the rest sorted."""
    present = set(labels)
    known = [lab for lab in LABELS_4 if lab in present]
    return known + sorted(present - set(LABELS_4))


@dataclass
class Manifest:
    """A validated list of utterances and the label set (canonical order = class indices)."""

    path: Path | None
    utterances: list[Utterance]
    labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.labels:
            self.labels = canonical_labels(u.label for u in self.utterances)
        self._label_index = {lab: i for i, lab in enumerate(self.labels)}

    def __len__(self) -> int:
        return len(self.utterances)

    def __iter__(self) -> Iterator[Utterance]:
        return iter(self.utterances)

    def speakers(self) -> list[str]:
        """Sorted distinct speaker names."""
        return sorted({u.speaker for u in self.utterances})

    def sessions(self) -> list[str]:
        """Sorted distinct session names (utterances without a session are left out)."""
        return sorted({u.session for u in self.utterances if u.session is not None})

    def by_speakers(self, speakers: Iterable[str]) -> list[Utterance]:
        """Utterances of the given speakers, in manifest order."""
        wanted = set(speakers)
        return [u for u in self.utterances if u.speaker in wanted]

    def label_index(self, label: str) -> int:
        """Class index of ``label`` (position in :attr:`labels`)."""
        try:
            return self._label_index[label]
        except KeyError:
            raise KeyError(f"unknown label {label!r}; labels are {self.labels}") from None


def _resolve(raw: str, base: Path) -> Path:
    p = Path(raw).expanduser()
    if not p.is_absolute():
        p = base / p
    # normpath, not resolve(): keep symlinked corpus folders as the user wrote them.
    return Path(os.path.normpath(p))


def load_manifest(
    path: str | Path, labels: Sequence[str] | None = None, check_files: bool = True
) -> Manifest:
    """Read and validate a manifest CSV.

    Args:
        path: the CSV file.
        labels: allowed labels in class-index order; ``None`` infers them from the rows
            (canonical order: neutral, happy, angry, sad first, then the rest sorted).
        check_files: check that every audio file exists.

    Returns:
        The :class:`Manifest` with absolute audio paths.

    Raises:
        ManifestError: listing every problem at once: missing header columns, duplicate ids,
            missing files, empty required fields, unknown labels, fewer than 2 speakers.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError([f"{path}: manifest file not found"])
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: tolerate a BOM from spreadsheets
    except UnicodeDecodeError as err:
        raise ManifestError([f"{path}: not UTF-8 text ({err})"]) from err
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        expected = ",".join(MANIFEST_COLUMNS)
        raise ManifestError([f"{path}: empty file (expected header {expected})"]) from None
    except csv.Error as err:
        raise ManifestError([f"{path}:1: unreadable CSV header ({err})"]) from err
    header = [h.strip() for h in header]
    missing = [c for c in MANIFEST_COLUMNS if c not in header]
    if missing:
        raise ManifestError(
            [
                f"{path}:1: header lacks column(s) {', '.join(missing)} "
                f"(expected {','.join(MANIFEST_COLUMNS)}; got {','.join(header)})"
            ]
        )
    col = {c: header.index(c) for c in MANIFEST_COLUMNS}
    split_col = header.index(SPLIT_COLUMN) if SPLIT_COLUMN in header else None
    base = path.parent.absolute()
    allowed = set(labels) if labels is not None else None

    problems: list[str] = []
    utterances: list[Utterance] = []
    first_line: dict[str, int] = {}
    seen_speakers: set[str] = set()
    line_end = reader.line_num
    while True:
        line = line_end + 1  # a quoted transcript may span lines: report where the row starts
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            problems.append(f"{path}:{line}: unreadable CSV ({err})")
            break
        line_end = reader.line_num
        if not any(cell.strip() for cell in row):
            continue  # blank line
        if len(row) < len(header):
            row = row + [""] * (len(header) - len(row))
        values = {c: row[i].strip() for c, i in col.items()}
        transcript = row[col["transcript"]]  # keep inner whitespace/newlines of the text
        if values["speaker"]:
            seen_speakers.add(values["speaker"])
        row_problems = []
        empty = [c for c in REQUIRED_COLUMNS if not values[c]]
        if empty:
            row_problems.append(f"empty required field(s) {', '.join(empty)}")
        uid = values["id"]
        if uid:
            if uid in first_line:
                row_problems.append(f"duplicate id {uid!r} (first on line {first_line[uid]})")
            else:
                first_line[uid] = line
        if values["label"] and allowed is not None and values["label"] not in allowed:
            row_problems.append(
                f"unknown label {values['label']!r} (allowed: {', '.join(labels or [])})"
            )
        audio = _resolve(values["path"], base) if values["path"] else None
        if audio is not None and check_files and not audio.is_file():
            row_problems.append(f"audio file not found: {audio}")
        if row_problems:  # one entry per bad row, all its reasons together
            where = f"{path}:{line}" + (f" (id {uid})" if uid else "")
            problems.append(f"{where}: {'; '.join(row_problems)}")
            continue
        utterances.append(
            Utterance(
                id=uid,
                path=audio,  # type: ignore[arg-type]  # checked non-empty above
                label=values["label"],
                speaker=values["speaker"],
                session=values["session"] or None,
                transcript=transcript if transcript.strip() else None,
                split=(row[split_col].strip() or None) if split_col is not None else None,
            )
        )
    if len(seen_speakers) < 2:
        problems.append(
            f"{path}: needs at least 2 speakers for speaker-independent folds, "
            f"found {len(seen_speakers)} ({', '.join(sorted(seen_speakers)) or 'none'})"
        )
    if problems:
        raise ManifestError(problems)
    if labels is not None:
        label_list = list(labels)
    else:
        label_list = canonical_labels(u.label for u in utterances)
    return Manifest(path=path.absolute(), utterances=utterances, labels=label_list)


def _relative(audio: Path, base: Path) -> str:
    try:
        return Path(os.path.abspath(audio)).relative_to(base).as_posix()
    except ValueError:
        return str(Path(os.path.abspath(audio)))


def write_manifest(utterances: Iterable[Utterance], path: str | Path) -> None:
    """Write utterances as a manifest CSV, atomically (tmp file + ``os.replace``).

    Audio paths under the CSV's folder are written relative to it (so the folder can move);
    others stay absolute. Transcripts with commas, quotes or newlines are quoted by ``csv``.
    A ``split`` column is added only when some utterance has an official split.
    """
    utterances = list(utterances)
    with_split = any(u.split for u in utterances)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = Path(os.path.abspath(path.parent))
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow([*MANIFEST_COLUMNS, SPLIT_COLUMN] if with_split else MANIFEST_COLUMNS)
        for u in utterances:
            row = [
                u.id,
                _relative(Path(u.path), base),
                u.label,
                u.speaker,
                u.session or "",
                u.transcript or "",
            ]
            w.writerow([*row, u.split or ""] if with_split else row)


def as_manifest(manifest: Manifest | str | Path) -> Manifest:
    """``manifest`` itself, or the manifest CSV at that path loaded (:func:`load_manifest`)."""
    return manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
