"""``emodistill corpus check``: every file read once, bad files named, check.json and plots
written, exit 2 only for unreadable files (docs/data.md, "Checking a corpus")."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from emodistill.cli.app import app
from emodistill.cli.common import KNOWN_ERROR_EXIT
from emodistill.corpora.manifest import load_manifest
from emodistill.evaluation.corpus_check import (
    CLIP_SHARE,
    SILENCE_DBFS,
    TOO_SHORT_SECONDS,
    check_corpus,
    dbfs,
)
from emodistill.evaluation.corpus_check_report import default_out_dir
from emodistill.features.egemaps import MIN_SECONDS

SR = 16000


def _tone(seconds: float, amplitude: float = 0.3, sr: int = SR, freq: float = 220.0):
    t = np.arange(int(round(seconds * sr))) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _corpus(folder, bad: bool = True):
    """Two speakers' good tones plus one clipped, one silent and one 30 ms file; with ``bad``,
    also one file of text named .wav and one missing file. Returns the manifest path."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []

    def add(uid, label, speaker, signal=None, sr=SR, transcript="", raw=None):
        path = folder / f"{uid}.wav"
        if raw is not None:
            path.write_bytes(raw)
        elif signal is not None:
            sf.write(path, signal, sr, subtype="PCM_16")
        rows.append(f"{uid},{path.name},{label},{speaker},,{transcript}")

    for i, (label, speaker) in enumerate(
        [("neutral", "s1"), ("happy", "s1"), ("neutral", "s2"), ("happy", "s2")]
    ):
        add(f"good{i}", label, speaker, _tone(0.5 + 0.25 * i), transcript="hello there")
    stereo = np.stack([_tone(0.4, sr=8000), _tone(0.4, sr=8000)], axis=1)
    add("stereo8k", "neutral", "s2", stereo, sr=8000)
    add("clipped", "happy", "s1", np.clip(_tone(0.5, amplitude=3.0), -1.0, 1.0))
    add("silent", "neutral", "s1", np.zeros(SR // 2, np.float32))
    add("short", "happy", "s2", _tone(0.03))
    if bad:
        add("garbage", "neutral", "s2", raw=b"this is not audio at all, only text\n" * 4)
        add("missing", "happy", "s2")  # no file written
    manifest = folder / "corpus.csv"
    manifest.write_text("id,path,label,speaker,session,transcript\n" + "\n".join(rows) + "\n")
    return manifest


def _png_size(path):
    """(width, height) from a PNG's IHDR chunk; fails on anything that is not a PNG."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", path
    return struct.unpack(">II", head[16:24])


def test_too_short_is_the_egemaps_floor():
    assert TOO_SHORT_SECONDS == MIN_SECONDS == 0.06


@pytest.mark.parametrize("workers", [1, 3])
def test_check_corpus_names_each_problem(tmp_path, workers):
    m = load_manifest(_corpus(tmp_path / "c"), check_files=False)
    check = check_corpus(m, workers=workers, progress=False)
    assert [f.id for f in check.files] == [u.id for u in m.utterances]  # manifest order
    assert [f.id for f in check.unreadable] == ["garbage", "missing"]
    assert "not a readable audio file" in check.unreadable[0].error
    assert "garbage.wav" in check.unreadable[0].error
    assert "file not found" in check.unreadable[1].error
    assert [f.id for f in check.clipped] == ["clipped"]
    assert [f.id for f in check.silent] == ["silent"]
    assert [f.id for f in check.too_short] == ["short"]
    good = next(f for f in check.files if f.id == "good0")
    assert good.seconds == pytest.approx(0.5)
    assert good.clipped_share == 0.0 and -13.5 < good.rms_dbfs < -12.5  # 0.3 sine: -13.0 dBFS
    assert check.files[[f.id for f in check.files].index("clipped")].clipped_share > CLIP_SHARE
    assert check.files[[f.id for f in check.files].index("silent")].rms_dbfs < SILENCE_DBFS


def test_check_json_content(tmp_path):
    m = load_manifest(_corpus(tmp_path / "c"), check_files=False)
    data = check_corpus(m, workers=2, progress=False).to_dict()
    assert data["ok"] is False
    assert data["utterances"] == 10 and data["readable"] == 8 and data["speakers"] == 2
    assert data["labels"] == ["neutral", "happy"]
    assert data["class_counts"] == {"neutral": 5, "happy": 5}
    assert data["classes_per_speaker"] == {
        "s1": {"neutral": 2, "happy": 2},
        "s2": {"neutral": 3, "happy": 3},
    }
    assert data["speakers_missing_classes"] == {}
    assert data["sample_rates"] == {"8000": 1, "16000": 7}
    assert data["channels"] == {"1": 7, "2": 1}
    assert data["transcripts"] == {"with": 4, "share": 0.4}
    d = data["duration_seconds"]
    assert d["min"] == pytest.approx(0.03) and d["max"] == pytest.approx(1.25)
    assert d["min"] <= d["p05"] <= d["p25"] <= d["median"] <= d["p75"] <= d["p95"] <= d["max"]
    assert d["total"] == pytest.approx(0.5 + 0.75 + 1.0 + 1.25 + 0.4 + 0.5 + 0.5 + 0.03)
    assert [r["id"] for r in data["unreadable"]] == ["garbage", "missing"]
    assert [r["id"] for r in data["clipped"]] == ["clipped"]
    assert [r["id"] for r in data["silent"]] == ["silent"]
    assert data["silent"][0]["rms_dbfs"] == dbfs(0.0)
    assert [r["id"] for r in data["too_short"]] == ["short"]
    assert data["thresholds"]["too_short_seconds"] == MIN_SECONDS
    assert len(data["files"]) == 10 and data["files"][1]["label"] == "happy"


def test_cli_unreadable_files_exit_2_and_are_named(tmp_path):
    manifest = _corpus(tmp_path / "c")
    before = {p.name: p.read_bytes() for p in manifest.parent.iterdir()}
    out = tmp_path / "report"
    result = CliRunner().invoke(
        app, ["corpus", "check", str(manifest), "--out", str(out), "--workers", "2"],
        env={"COLUMNS": "400"},
    )  # fmt: skip
    assert result.exit_code == KNOWN_ERROR_EXIT, result.output
    assert "Traceback" not in result.output
    assert "2 of 10 audio files are unreadable" in result.output
    assert f"{manifest.parent / 'garbage.wav'}: not a readable audio file" in result.output
    assert f"{manifest.parent / 'missing.wav'}: file not found" in result.output
    for problem, uid in (("clipped", "clipped"), ("silent", "silent"), ("too short", "short")):
        assert any(problem in line and uid in line for line in result.output.splitlines()), uid
    data = json.loads((out / "check.json").read_text())
    assert data["ok"] is False and len(data["unreadable"]) == 2
    for name in ("durations.png", "classes_per_speaker.png"):
        width, height = _png_size(out / name)
        assert width > 100 and height > 100
    # Nothing beside the manifest was modified, added or removed.
    assert {p.name: p.read_bytes() for p in manifest.parent.iterdir()} == before


def test_cli_clipped_and_silent_only_exit_0_default_out(tmp_path):
    manifest = _corpus(tmp_path / "c", bad=False)
    result = CliRunner().invoke(app, ["corpus", "check", str(manifest)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "clipped" in result.output and "silent" in result.output
    # The per-speaker table: speaker | neutral | happy | total.
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in result.output.splitlines()]
    rows = {c[0]: c[1:] for c in cells if c and c[0] in ("s1", "s2")}
    assert rows == {"s1": ["2", "2", "4"], "s2": ["2", "2", "4"]}, result.output
    out = default_out_dir(manifest)
    assert out == manifest.parent / "corpus_check"
    data = json.loads((out / "check.json").read_text())
    assert data["ok"] is True and data["unreadable"] == []
    assert [r["id"] for r in data["clipped"]] == ["clipped"]
    assert [r["id"] for r in data["silent"]] == ["silent"]
    assert _png_size(out / "durations.png") and _png_size(out / "classes_per_speaker.png")


def test_speaker_missing_a_class_is_reported(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    rows = []
    for uid, label, speaker in (
        ("a", "neutral", "s1"),
        ("b", "happy", "s1"),
        ("c", "neutral", "s2"),
    ):
        sf.write(folder / f"{uid}.wav", _tone(0.2), SR)
        rows.append(f"{uid},{uid}.wav,{label},{speaker},,")
    manifest = folder / "m.csv"
    manifest.write_text("id,path,label,speaker,session,transcript\n" + "\n".join(rows) + "\n")
    data = check_corpus(load_manifest(manifest), workers=1, progress=False).to_dict()
    assert data["speakers_missing_classes"] == {"s2": ["happy"]}
    assert data["transcripts"] == {"with": 0, "share": 0.0}
