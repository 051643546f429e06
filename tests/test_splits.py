"""Speaker-independent folds: disjoint sets, every speaker tested once, IEMOCAP pairing."""

from __future__ import annotations

from pathlib import Path

import pytest

from emodistill.corpora.manifest import Manifest, Utterance
from emodistill.corpora.splits import (
    Fold,
    fold_utterances,
    leave_one_session_out,
    leave_one_speaker_out,
    make_folds,
    select_folds,
    speaker_groups,
)

LABELS = ("neutral", "happy", "angry", "sad")


def _manifest(speakers: dict[str, str | None], per_speaker: int = 4) -> Manifest:
    utts = [
        Utterance(
            id=f"{spk}_{i:03d}",
            path=Path(f"/data/{spk}_{i:03d}.wav"),
            label=LABELS[i % 4],
            speaker=spk,
            session=ses,
            transcript=None,
        )
        for spk, ses in speakers.items()
        for i in range(per_speaker)
    ]
    return Manifest(path=None, utterances=utts, labels=list(LABELS))


@pytest.fixture
def iemocap_like() -> Manifest:
    return _manifest({f"Ses0{s}{g}": f"Ses0{s}" for s in range(1, 6) for g in "FM"})


@pytest.fixture
def no_sessions() -> Manifest:
    return _manifest({f"spk{i:02d}": None for i in range(12)})


def _check_partition(m: Manifest, folds: list[Fold]) -> None:
    everyone = set(m.speakers())
    tested = []
    for f in folds:
        test, val, train = set(f.test_speakers), set(f.val_speakers), set(f.train_speakers)
        assert not (test & val) and not (test & train) and not (val & train), f
        assert test | val | train == everyone, f
        assert train, f
        tested += f.test_speakers
        tr, va, te = fold_utterances(m, f)
        assert len(tr) + len(va) + len(te) == len(m)
        assert {u.speaker for u in te} == test and {u.speaker for u in va} == val
        assert {u.speaker for u in tr} == train
    assert sorted(tested) == sorted(everyone)  # every speaker tested exactly once


def test_speaker_folds_iemocap_pairing(iemocap_like: Manifest) -> None:
    folds = leave_one_speaker_out(iemocap_like)
    assert len(folds) == 10
    _check_partition(iemocap_like, folds)
    by_id = {f.id: f for f in folds}
    assert by_id["Ses01F"].test_speakers == ("Ses01F",)
    assert by_id["Ses01F"].val_speakers == ("Ses01M",)
    assert by_id["Ses03M"].val_speakers == ("Ses03F",)
    for f in folds:  # the other speaker of the test session, always
        (t,), (v,) = f.test_speakers, f.val_speakers
        assert t[:5] == v[:5] and t != v
        assert len(f.train_speakers) == 8


def test_speaker_folds_top_up_beyond_session(iemocap_like: Manifest) -> None:
    folds = leave_one_speaker_out(iemocap_like, val_speakers=2, seed=3)
    _check_partition(iemocap_like, folds)
    for f in folds:
        mate = f.test_speakers[0][:5] + ("M" if f.test_speakers[0][-1] == "F" else "F")
        assert mate in f.val_speakers and len(f.val_speakers) == 2
    assert folds == leave_one_speaker_out(iemocap_like, val_speakers=2, seed=3)


def test_session_folds(iemocap_like: Manifest) -> None:
    folds = leave_one_session_out(iemocap_like)
    assert [f.id for f in folds] == ["Ses01", "Ses02", "Ses03", "Ses04", "Ses05"]
    _check_partition(iemocap_like, folds)
    for f in folds:
        assert f.test_speakers == (f.id + "F", f.id + "M")
        assert len(f.val_speakers) == 1 and f.val_speakers[0][:5] != f.id
    assert folds == make_folds(iemocap_like, scheme="session")


def test_session_folds_need_sessions(no_sessions: Manifest) -> None:
    with pytest.raises(ValueError, match="no session"):
        leave_one_session_out(no_sessions)
    spread = _manifest({"a": "S1", "b": "S2", "c": "S2"})
    spread.utterances.append(
        Utterance("a_x", Path("/data/a_x.wav"), "sad", "a", "S2", None)
    )  # speaker a in two sessions
    with pytest.raises(ValueError, match="several sessions"):
        leave_one_session_out(spread)


def test_no_sessions_seeded_validation(no_sessions: Manifest) -> None:
    a = leave_one_speaker_out(no_sessions, seed=0)
    _check_partition(no_sessions, a)
    assert a == leave_one_speaker_out(no_sessions, seed=0)  # deterministic
    b = leave_one_speaker_out(no_sessions, seed=1)
    assert [f.val_speakers for f in a] != [f.val_speakers for f in b]


def test_groups(no_sessions: Manifest) -> None:
    folds = speaker_groups(no_sessions, k=5, val_speakers=2, seed=0)
    assert [f.id for f in folds] == ["g1", "g2", "g3", "g4", "g5"]
    _check_partition(no_sessions, folds)
    assert sorted(len(f.test_speakers) for f in folds) == [2, 2, 2, 3, 3]
    assert all(len(f.val_speakers) == 2 for f in folds)
    assert folds == make_folds(no_sessions, scheme="groups", groups=5, val_speakers=2)
    assert folds != speaker_groups(no_sessions, k=5, val_speakers=2, seed=1)
    with pytest.raises(ValueError, match="between 2"):
        speaker_groups(no_sessions, k=13)


def test_too_few_speakers_and_bad_scheme() -> None:
    two = _manifest({"a": None, "b": None})
    with pytest.raises(ValueError, match="at least one must remain"):
        leave_one_speaker_out(two)
    folds = leave_one_speaker_out(two, val_speakers=0)
    assert [f.train_speakers for f in folds] == [("b",), ("a",)]
    with pytest.raises(ValueError, match="unknown fold scheme"):
        make_folds(two, scheme="random")


def test_select_folds(iemocap_like: Manifest) -> None:
    folds = make_folds(iemocap_like)
    assert select_folds(folds, "all") == folds
    assert [f.id for f in select_folds(folds, "Ses02M, Ses01F")] == ["Ses02M", "Ses01F"]
    with pytest.raises(ValueError) as err:
        select_folds(folds, "Ses01F,Ses09X")
    assert "Ses09X" in str(err.value) and "Ses05M" in str(err.value)
