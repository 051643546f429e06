"""Corpora whose file names code everything (speaker, emotion, sentence): one table-driven reader.

The fixed-sentence corpora (EmoDB, RAVDESS, CREMA-D, TESS, SAVEE, JL-Corpus, ESD) each declare a
:class:`NameRule`: the file-name pattern and the tables that turn its coded fields into a label
and a transcript, plus (where a corpus has one) a last step of its own. :func:`read_by_name`
walks the tree, skipping (with the reason) every file whose name does not follow the rule, whose
codes are unknown, or whose id was already seen.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from pathlib import Path

from emodistill.corpora.base import CorpusRead, audio_files
from emodistill.corpora.manifest import Utterance

#: What a rule makes of one file: an utterance, or the reason it is skipped.
Made = Utterance | str


def name_utterance(
    path: Path, label: str, speaker: str, transcript: str | None = None, id: str | None = None
) -> Utterance:
    """The utterance of the audio file ``path`` (its id is the file's stem unless given)."""
    return Utterance(
        id=path.stem if id is None else id,
        path=path.absolute(),
        label=label,
        speaker=speaker,
        transcript=transcript,
    )


@dataclass(frozen=True)
class Code:
    """One coded field of a file name: its pattern group and the table it is looked up in.

    A value missing from ``table`` skips the file as ``unknown <what> '<value>'``; ``fold``
    (e.g. ``str.lower``) is applied to the value before the look-up, not in the message.

    >>> letter = Code({"W": "angry"}, "emotion letter")
    >>> m = re.match("(?P<emotion>.)", "T")
    >>> letter.look_up(m), letter.missing(m)
    (None, "unknown emotion letter 'T'")
    """

    table: Mapping[str, str]
    what: str
    group: str = "emotion"
    fold: Callable[[str], str] | None = None

    def look_up(self, m: re.Match[str]) -> str | None:
        """The table's value for this field of ``m`` (None: not in the table)."""
        value = m[self.group]
        return self.table.get(self.fold(value) if self.fold else value)

    def missing(self, m: re.Match[str]) -> str:
        """The skip reason of a value that is not in the table."""
        return f"unknown {self.what} {m[self.group]!r}"


@dataclass(frozen=True)
class NameRule:
    """How one corpus names its files, as data.

    Checked in this order: each ``require`` entry ``(group, value, reason)`` (the file is skipped
    with ``reason`` unless the group equals ``value``), the ``emotion`` code (-> the label), the
    ``sentence`` code (-> the transcript, when the corpus has a sentence table); then ``adjust``,
    the corpus's own last step (another speaker, id or transcript, or a skip reason).
    ``scheme`` names the rule in the skip reason of a file that does not match ``pattern``.
    """

    pattern: re.Pattern[str]
    scheme: str
    emotion: Code
    sentence: Code | None = None
    _: KW_ONLY
    speaker: str = "speaker"
    require: tuple[tuple[str, str, str], ...] = ()
    adjust: Callable[[Utterance, re.Match[str], Path], Made] | None = None

    def make(self, m: re.Match[str], path: Path) -> Made:
        """The utterance of ``path`` (whose stem matched ``pattern`` as ``m``), or why not."""
        for group, value, reason in self.require:
            if m[group] != value:
                return reason
        label = self.emotion.look_up(m)
        if label is None:
            return self.emotion.missing(m)
        transcript = None
        if self.sentence is not None:
            transcript = self.sentence.look_up(m)
            if transcript is None:
                return self.sentence.missing(m)
        made = name_utterance(path, label, m[self.speaker], transcript)
        return made if self.adjust is None else self.adjust(made, m, path)

    def read(self, root: Path) -> CorpusRead:
        """Every audio file below ``root`` read by this rule."""
        return read_by_name(root, self.pattern, self.make, self.scheme)


def read_by_name(
    root: Path,
    pattern: re.Pattern[str],
    make: Callable[[re.Match[str], Path], Made],
    scheme: str,
    suffixes: Sequence[str] = (".wav",),
) -> CorpusRead:
    """Read a corpus whose file names code everything (speaker, emotion, sentence).

    Every audio file below ``root`` whose stem matches ``pattern`` is passed to ``make``, which
    returns an :class:`Utterance` or a skip reason; other files are skipped as not following
    ``scheme`` (a short description of the naming rule, shown in the summary). A second file
    with an id already seen (the same name in two folders, e.g. a copy nested in the release) is
    skipped as a duplicate.
    """
    read = CorpusRead()
    seen: set[str] = set()
    for path in audio_files(root, suffixes):
        rel = path.relative_to(root)
        m = pattern.match(path.stem)
        if m is None:
            read.skip(f"name does not follow {scheme}", rel)
            continue
        made = make(m, path)
        if isinstance(made, str):
            read.skip(made, rel)
        elif made.id in seen:
            read.skip("duplicate file name (an earlier copy was kept)", rel)
        else:
            seen.add(made.id)
            read.utterances.append(made)
    return read
