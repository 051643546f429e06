"""Speaker-independent folds: pure functions of a manifest (no I/O, no global randomness).

Every fold names its test, validation and training speakers; the three sets are disjoint and
the validation speakers are taken from what would otherwise be training speakers, so model
selection never sees the test speaker (docs/data.md, "Folds").

Schemes:

* ``speaker``: leave one speaker out (IEMOCAP: 10 folds, as the paper). Validation = the other
  speaker(s) of the test speaker's session when sessions exist (IEMOCAP: test ``Ses01F`` ->
  validation ``Ses01M``), else a seeded choice.
* ``session``: leave one session out (IEMOCAP: 5 folds, as SUPERB). Validation = speaker(s) of
  another session, a seeded choice.
* ``groups``: ``k`` seeded groups of speakers (``g1``..``gk``); for corpora with many speakers.
* ``official``: one fold ``official`` from the manifest's ``split`` column (train / validation /
  test), for corpora that ship partitions (MSP-Podcast, MELD). Utterances are chosen by their
  split, not by speaker: the partition's own speaker policy applies (MSP-Podcast's test speakers
  are unseen in training; MELD's main characters occur in every split).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from emodistill.corpora.manifest import Manifest, Utterance

if TYPE_CHECKING:
    from emodistill.config import FoldConfig

SCHEMES = ("speaker", "session", "groups", "official")
#: ``split`` column values accepted by the ``official`` scheme, and what they mean.
SPLIT_NAMES = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "development": "validation",
    "test": "test",
}


@dataclass(frozen=True)
class Fold:
    """One cross-validation fold; speaker tuples are sorted and pairwise disjoint.

    ``by_split``: the fold is a corpus's official partition; its utterances are chosen by the
    manifest's ``split`` column and the speaker tuples only list who is in each part (they may
    overlap when the partition lets them).
    """

    id: str
    test_speakers: tuple[str, ...]
    val_speakers: tuple[str, ...]
    train_speakers: tuple[str, ...]
    by_split: bool = False


def _rng(seed: int, fold_id: str) -> random.Random:
    # Seeded by a string: deterministic across processes (unlike hash()) and per fold.
    return random.Random(f"{seed}:{fold_id}")


def _speaker_sessions(manifest: Manifest) -> dict[str, str]:
    """Speaker -> its (most frequent) session, for speakers that have one."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for u in manifest.utterances:
        if u.session is not None:
            counts[u.speaker][u.session] += 1
    return {spk: c.most_common(1)[0][0] for spk, c in counts.items()}


def _make_fold(
    fold_id: str,
    all_speakers: list[str],
    test: list[str],
    preferred_val: list[str],
    val_speakers: int,
    seed: int,
) -> Fold:
    """Fold with ``val_speakers`` validation speakers: ``preferred_val`` first, then seeded."""
    if val_speakers < 0:
        raise ValueError(f"val_speakers must be >= 0, got {val_speakers}")
    rest = [s for s in all_speakers if s not in set(test)]
    # Keep at least one training speaker: validation never takes the whole training side.
    if val_speakers > len(rest) - 1:
        raise ValueError(
            f"fold {fold_id}: {val_speakers} validation speaker(s) requested but only "
            f"{len(rest)} non-test speaker(s) ({', '.join(rest) or 'none'}); at least one must "
            "remain for training"
        )
    val = [s for s in preferred_val if s in rest][:val_speakers]
    others = sorted(s for s in rest if s not in val)
    val += _rng(seed, fold_id).sample(others, val_speakers - len(val))
    train = [s for s in rest if s not in set(val)]
    return Fold(
        id=fold_id,
        test_speakers=tuple(sorted(test)),
        val_speakers=tuple(sorted(val)),
        train_speakers=tuple(sorted(train)),
    )


def leave_one_speaker_out(manifest: Manifest, val_speakers: int = 1, seed: int = 0) -> list[Fold]:
    """One fold per speaker (fold id = speaker name), in sorted speaker order.

    Validation: the other speaker(s) of the test speaker's session when the manifest has
    sessions (IEMOCAP pairing), topped up / otherwise chosen deterministically from ``seed``.
    """
    speakers = manifest.speakers()
    session_of = _speaker_sessions(manifest)
    folds = []
    for spk in speakers:
        ses = session_of.get(spk)
        mates = sorted(s for s, x in session_of.items() if ses is not None and x == ses)
        mates = [s for s in mates if s != spk]
        folds.append(_make_fold(spk, speakers, [spk], mates, val_speakers, seed))
    return folds


def leave_one_session_out(manifest: Manifest, val_speakers: int = 1, seed: int = 0) -> list[Fold]:
    """One fold per session (fold id = session name): all its speakers are tested together.

    Validation: ``val_speakers`` speaker(s) of other sessions, chosen deterministically.

    Raises:
        ValueError: utterances without a session, fewer than 2 sessions, or a speaker that
            appears in several sessions (the test would then not be speaker-independent).
    """
    if any(u.session is None for u in manifest.utterances):
        n = sum(u.session is None for u in manifest.utterances)
        raise ValueError(
            f"{manifest.path}: {n} utterance(s) have no session; leave-one-session-out needs "
            "the session column filled (use --scheme speaker or groups instead)"
        )
    by_speaker: dict[str, set[str]] = defaultdict(set)
    for u in manifest.utterances:
        by_speaker[u.speaker].add(u.session)  # type: ignore[arg-type]
    multi = {s: sorted(x) for s, x in by_speaker.items() if len(x) > 1}
    if multi:
        raise ValueError(
            f"{manifest.path}: speaker(s) in several sessions, leave-one-session-out would not "
            f"be speaker-independent: {multi}"
        )
    sessions = manifest.sessions()
    if len(sessions) < 2:
        raise ValueError(f"{manifest.path}: leave-one-session-out needs >= 2 sessions")
    speakers = manifest.speakers()
    folds = []
    for ses in sessions:
        test = sorted(s for s, x in by_speaker.items() if ses in x)
        folds.append(_make_fold(ses, speakers, test, [], val_speakers, seed))
    return folds


def speaker_groups(manifest: Manifest, k: int, val_speakers: int = 1, seed: int = 0) -> list[Fold]:
    """``k`` folds ``g1``..``gk``: speakers shuffled by ``seed`` and dealt into ``k`` groups
    (sizes differ by at most one); each group is tested once, validation is seeded."""
    speakers = manifest.speakers()
    if not 2 <= k <= len(speakers):
        raise ValueError(f"groups must be between 2 and the number of speakers ({len(speakers)})")
    order = list(speakers)
    random.Random(f"groups:{seed}").shuffle(order)
    groups = [order[i::k] for i in range(k)]
    return [
        _make_fold(f"g{i + 1}", speakers, group, [], val_speakers, seed)
        for i, group in enumerate(groups)
    ]


def split_of(utterance: Utterance) -> str | None:
    """The official part (``train`` | ``validation`` | ``test``) of an utterance, or None."""
    if utterance.split is None:
        return None
    return SPLIT_NAMES.get(utterance.split.strip().lower())


def official_split(manifest: Manifest) -> list[Fold]:
    """The single fold ``official`` given by the manifest's ``split`` column.

    Utterances whose split is another value (e.g. MSP-Podcast's ``test2``) take part in no part
    of the fold.

    Raises:
        ValueError: no ``split`` column values at all, or an empty train, validation or test part.
    """
    parts: dict[str, set[str]] = {"train": set(), "validation": set(), "test": set()}
    for u in manifest.utterances:
        part = split_of(u)
        if part is not None:
            parts[part].add(u.speaker)
    if not any(parts.values()):
        raise ValueError(
            f"{manifest.path}: the official fold scheme needs a 'split' column "
            "(train / validation / test); this manifest has none (use scheme speaker or groups)"
        )
    empty = [name for name, spk in parts.items() if not spk]
    if empty:
        raise ValueError(
            f"{manifest.path}: the official split has no {' and no '.join(empty)} utterances "
            f"(accepted split values: {', '.join(sorted(SPLIT_NAMES))})"
        )
    return [
        Fold(
            id="official",
            test_speakers=tuple(sorted(parts["test"])),
            val_speakers=tuple(sorted(parts["validation"])),
            train_speakers=tuple(sorted(parts["train"])),
            by_split=True,
        )
    ]


def make_folds(
    manifest: Manifest,
    scheme: str = "speaker",
    groups: int = 5,
    val_speakers: int = 1,
    seed: int = 0,
) -> list[Fold]:
    """Folds of ``scheme`` (``speaker`` | ``session`` | ``groups`` | ``official``); see the
    module docstring (``official`` ignores ``groups``, ``val_speakers`` and ``seed``)."""
    if scheme == "speaker":
        return leave_one_speaker_out(manifest, val_speakers=val_speakers, seed=seed)
    if scheme == "session":
        return leave_one_session_out(manifest, val_speakers=val_speakers, seed=seed)
    if scheme == "groups":
        return speaker_groups(manifest, groups, val_speakers=val_speakers, seed=seed)
    if scheme == "official":
        return official_split(manifest)
    raise ValueError(f"unknown fold scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")


def config_folds(manifest: Manifest, settings: FoldConfig) -> list[Fold]:
    """Every fold of a config's ``folds:`` section (the one place a config becomes folds): what
    ``cv``, ``train-teachers``, ``probe`` and the bench run and ``emodistill folds`` lists (the
    fold definitions never depend on which folds a run selects)."""
    return make_folds(
        manifest,
        scheme=settings.scheme,
        groups=settings.groups,
        val_speakers=settings.val_speakers,
        seed=settings.seed,
    )


def fold_for_task(folds: Sequence[Fold], task: int) -> Fold:
    """The fold an array job's task runs: task ``i`` (0-based, Slurm's ``SLURM_ARRAY_TASK_ID``
    under ``--array=0-<n-1>``) runs ``folds[i]``, so tasks ``0..n-1`` run every fold once.

    >>> folds = [Fold(s, (s,), (), ()) for s in ("a", "b", "c")]
    >>> [fold_for_task(folds, i).id for i in range(3)]
    ['a', 'b', 'c']

    Raises:
        ValueError: ``task`` outside ``0..n-1`` (an ``--array`` range wider than the folds):
            the message gives the valid range.
    """
    if not 0 <= task < len(folds):
        raise ValueError(
            f"array task {task} has no fold: there are {len(folds)} folds, so the tasks are "
            f"0-{len(folds) - 1} (submit with --array=0-{len(folds) - 1})"
        )
    return folds[task]


def select_folds(folds: list[Fold], spec: str) -> list[Fold]:
    """Folds named by ``spec``: ``"all"`` (or empty) or comma-separated fold ids, in that order.

    Raises:
        ValueError: an unknown id; the message lists the valid ids.
    """
    spec = (spec or "all").strip()
    if spec.lower() == "all":
        return list(folds)
    by_id = {f.id: f for f in folds}
    wanted = list(dict.fromkeys(s.strip() for s in spec.split(",") if s.strip()))
    unknown = [w for w in wanted if w not in by_id]
    if unknown or not wanted:
        raise ValueError(
            f"unknown fold id(s) {', '.join(unknown) or repr(spec)}; valid: all, {', '.join(by_id)}"
        )
    return [by_id[w] for w in wanted]


def fold_utterances(
    manifest: Manifest, fold: Fold
) -> tuple[list[Utterance], list[Utterance], list[Utterance]]:
    """``(train, val, test)`` utterances of ``fold``, each in manifest order."""
    if fold.by_split:
        parts: dict[str, list[Utterance]] = {"train": [], "validation": [], "test": []}
        for u in manifest.utterances:
            part = split_of(u)
            if part is not None:
                parts[part].append(u)
        return parts["train"], parts["validation"], parts["test"]
    return (
        manifest.by_speakers(fold.train_speakers),
        manifest.by_speakers(fold.val_speakers),
        manifest.by_speakers(fold.test_speakers),
    )


def fold_fingerprint(
    manifest: Manifest, fold: Fold, parts: Sequence[Sequence[Utterance]] | None = None
) -> str:
    """Hex digest of everything a fold's models learn from: its speaker split and, for every
    utterance it uses, id, label, speaker, transcript and the audio file's content (``parts``:
    the fold's :func:`fold_utterances`, when the caller has them already).

    Saved beside trained teachers and students, so a reused model can never silently stem from
    an edited manifest (a changed label, an added speaker that moved a ``groups`` fold's
    membership, a replaced wav).
    """
    import hashlib

    from emodistill.util.files import file_sha256

    h = hashlib.sha256()
    for name, speakers in (
        ("train", fold.train_speakers),
        ("val", fold.val_speakers),
        ("test", fold.test_speakers),
    ):
        h.update(f"{name}:{','.join(speakers)}\n".encode())
    for part in fold_utterances(manifest, fold) if parts is None else parts:
        for u in part:
            try:
                content = file_sha256(u.path)
            except OSError:
                content = "unreadable"
            row = "\t".join([u.id, u.label, u.speaker, u.transcript or "", content])
            h.update(row.encode() + b"\n")
    return h.hexdigest()


@dataclass(frozen=True)
class FoldSplit:
    """A fold's utterances and data fingerprint, computed once per fold and handed on (the
    teachers and the students of a fold read the same split)."""

    fold: Fold
    train: list[Utterance]
    val: list[Utterance]
    test: list[Utterance]
    fingerprint: str

    @classmethod
    def of(cls, manifest: Manifest, fold: Fold) -> FoldSplit:
        """Split ``manifest`` by ``fold`` (:func:`fold_utterances`) and fingerprint it."""
        parts = fold_utterances(manifest, fold)
        return cls(fold, *parts, fingerprint=fold_fingerprint(manifest, fold, parts))

    @property
    def parts(self) -> tuple[list[Utterance], list[Utterance], list[Utterance]]:
        """``(train, val, test)``."""
        return self.train, self.val, self.test
