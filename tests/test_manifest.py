"""Manifest contract: round trip, relative/absolute paths, every bad row reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from emodistill.corpora.manifest import (
    MANIFEST_COLUMNS,
    Manifest,
    ManifestError,
    Utterance,
    load_manifest,
    write_manifest,
)

HEADER = ",".join(MANIFEST_COLUMNS)


@pytest.fixture
def wavs(tmp_path: Path) -> dict[str, Path]:
    # The loader only checks existence; content is audio.py's concern.
    inside = tmp_path / "corpus" / "wav"
    outside = tmp_path / "elsewhere"
    inside.mkdir(parents=True)
    outside.mkdir()
    files = {
        "a": inside / "a.wav",
        "b": inside / "b.wav",
        "c": outside / "c.wav",
    }
    for p in files.values():
        p.write_bytes(b"RIFF")
    return files


def test_round_trip_relative_and_absolute(wavs: dict[str, Path], tmp_path: Path) -> None:
    utts = [
        Utterance("a", wavs["a"], "sad", "s1", "S1", 'He said, "no"\nthen left.'),
        Utterance("b", wavs["b"], "neutral", "s2", None, None),
        Utterance("c", wavs["c"], "surprise", "s2", "S2", "  spaces, kept  "),
    ]
    out = tmp_path / "corpus" / "manifest.csv"
    write_manifest(utts, out)
    lines = out.read_text().splitlines()
    assert lines[0] == HEADER
    assert lines[1].startswith("a,wav/a.wav,")  # under the CSV's folder: relative
    assert str(wavs["c"]) in out.read_text()  # elsewhere: absolute
    m = load_manifest(out)
    assert m.utterances == utts
    assert m.labels == ["neutral", "sad", "surprise"]  # LABELS_4 order, then the rest sorted
    assert m.label_index("sad") == 1
    assert m.speakers() == ["s1", "s2"] and m.sessions() == ["S1", "S2"]
    assert [u.id for u in m.by_speakers(["s2"])] == ["b", "c"]
    assert len(m) == 3 and [u.id for u in m] == ["a", "b", "c"]
    assert not list(out.parent.glob(".*tmp"))  # atomic write left no temporary file
    with pytest.raises(KeyError, match="angry"):
        m.label_index("angry")


def test_paths_relative_to_manifest_folder_extra_columns(
    wavs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv = tmp_path / "corpus" / "m.csv"
    csv.write_text(
        f"duration,{HEADER}\n1.0,a,wav/a.wav,angry,s1,,\n2.0,c,{wavs['c']},happy,s2,S2,hello\n"
    )
    monkeypatch.chdir(tmp_path / "elsewhere")  # relative to the manifest, not the cwd
    m = load_manifest(csv, labels=["neutral", "happy", "angry", "sad"])
    assert [u.path for u in m] == [wavs["a"], wavs["c"]]
    assert m.utterances[0].session is None and m.utterances[0].transcript is None
    assert m.labels == ["neutral", "happy", "angry", "sad"]
    assert m.label_index("angry") == 2


def test_every_bad_row_reported(wavs: dict[str, Path], tmp_path: Path) -> None:
    csv = tmp_path / "corpus" / "bad.csv"
    csv.write_text(
        f"{HEADER}\n"
        "a,wav/a.wav,sad,s1,,ok\n"  # line 2: fine
        'b,wav/b.wav,neutral,s2,,"two\nlines"\n'  # lines 3-4: fine
        "a,wav/b.wav,sad,s1,,\n"  # line 5: duplicate id
        "d,wav/missing.wav,sad,s2,,\n"  # line 6: missing file
        "e,wav/b.wav,,s2,,\n"  # line 7: empty label
        "f,wav/b.wav,bored,s2,,\n"  # line 8: unknown label
    )
    with pytest.raises(ManifestError) as err:
        load_manifest(csv, labels=["neutral", "happy", "angry", "sad"])
    problems = err.value.problems
    assert len(problems) == 4
    assert problems[0].startswith(f"{csv}:5") and "duplicate id 'a'" in problems[0]
    assert problems[1].startswith(f"{csv}:6") and "missing.wav" in problems[1]
    assert problems[2].startswith(f"{csv}:7") and "label" in problems[2]
    assert problems[3].startswith(f"{csv}:8") and "unknown label 'bored'" in problems[3]
    assert isinstance(err.value, ValueError) and "4 problems" in str(err.value)
    # without a label list, labels are inferred: "bored" is fine, the other 3 rows are not
    with pytest.raises(ManifestError) as err:
        load_manifest(csv)
    assert len(err.value.problems) == 3
    # check_files=False skips the existence check only
    with pytest.raises(ManifestError) as err:
        load_manifest(csv, check_files=False)
    assert len(err.value.problems) == 2


def test_header_speakers_and_missing_file(tmp_path: Path, wavs: dict[str, Path]) -> None:
    csv = tmp_path / "corpus" / "m.csv"
    csv.write_text("id,path,label,speaker\na,wav/a.wav,sad,s1\n")
    with pytest.raises(ManifestError, match="session, transcript"):
        load_manifest(csv)
    csv.write_text(f"{HEADER}\na,wav/a.wav,sad,s1,,\nb,wav/b.wav,sad,s1,,\n")
    with pytest.raises(ManifestError, match="at least 2 speakers"):
        load_manifest(csv)
    with pytest.raises(ManifestError, match="not found"):
        load_manifest(tmp_path / "nope.csv")
    csv.write_text("")
    with pytest.raises(ManifestError, match="empty"):
        load_manifest(csv)


def test_manifest_labels_default() -> None:
    u = [Utterance("x", Path("/x.wav"), "sad", "s", None, None)]
    assert Manifest(
        None, u + [Utterance("y", Path("/y.wav"), "happy", "t", None, None)]
    ).labels == [
        "happy",
        "sad",
    ]
