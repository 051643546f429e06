"""``emodistill predict``: files, folders, globs, every output format, and bad inputs.

Each bad input must be answered with a clear reason while the good ones are still predicted,
and the exit code must say that something failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_inference import LABELS, SR, build_tiny_model, tone
from typer.testing import CliRunner

from emodistill.cli.app import app
from emodistill.inference.model import EmoDistill

#: A name that is not valid UTF-8 (Latin-1 e-acute), as files copied from old systems have.
BAD_NAME = os.fsdecode(b"caf\xe9.wav")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("cli") / "model", "whisper")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Good and bad inputs in one folder; returns (folder, {kind: path})."""
    d = tmp_path_factory.mktemp("audio")
    p = {}

    def wav(name, x, sr=SR, subtype="PCM_16"):
        p[name] = d / f"{name}.wav"
        sf.write(p[name], x, sr, subtype=subtype)

    wav("good", tone(1.0))
    wav("khz8", tone(1.1, 8000), 8000)
    wav("khz96", tone(0.9, 96000), 96000)
    wav("ch8", tone(0.7, channels=8))
    wav("silence", np.zeros(SR, np.float32))
    wav("clip10ms", tone(0.01))
    wav("zerolen", np.zeros(0, np.float32))
    wav("nan", np.array([0.1, np.nan, np.inf] * 4000, np.float32), subtype="FLOAT")
    p["notaudio"] = d / "notaudio.wav"
    p["notaudio"].write_text("this is not audio\n")
    p["empty"] = d / "empty.wav"
    p["empty"].write_bytes(b"")
    full = (d / "good.wav").read_bytes()
    p["truncated"] = d / "truncated.wav"
    p["truncated"].write_bytes(full[: len(full) // 2])
    p["nonutf8"] = d / BAD_NAME
    sf.write(os.fsencode(p["nonutf8"]), tone(0.8, freq=330), SR)  # soundfile needs bytes here
    return d, p


GOOD = ("good", "khz8", "khz96", "ch8", "silence", "nonutf8")
BAD = {
    "clip10ms": "too short",
    "zerolen": "0 frames|empty",
    "nan": "non-finite",
    "notaudio": "not a readable audio file",
    "empty": "empty",
    "truncated": "truncated",
}


def _run(args):
    result = CliRunner().invoke(app, ["predict", *map(str, args)])
    return result


def _by_stem(entries):
    out = {}
    for e in entries:
        name = e["file"].rsplit("/", 1)[-1]
        out["nonutf8" if name == "caf\\xe9.wav" else name.rsplit(".", 1)[0]] = e
    return out


def test_json_contract_good_and_bad_files(model_dir, inputs):
    folder, paths = inputs
    result = _run([model_dir, folder, "--format", "json"])
    assert result.exit_code == 1, result.output  # some inputs failed
    entries = json.loads(result.stdout)
    assert isinstance(entries, list) and len(entries) == len(paths)
    got = _by_stem(entries)
    for kind in GOOD:
        e = got[kind]
        assert list(e) == ["file", "label", "probabilities"], e
        assert e["label"] in LABELS and list(e["probabilities"]) == LABELS
        assert sum(e["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    import re

    for kind, reason in BAD.items():
        e = got[kind]
        assert list(e) == ["file", "error"], e
        assert re.search(reason, e["error"]), e
        assert paths[kind].name in e["error"] or kind == "nonutf8"
    assert got["nonutf8"]["file"].endswith("caf\\xe9.wav")  # undecodable byte shown, not lost


def test_cli_matches_python_api(model_dir, inputs):
    _, paths = inputs
    files = [paths[k] for k in ("good", "khz8", "ch8")]
    result = _run([model_dir, *files, "--format", "json", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    api = EmoDistill.from_pretrained(model_dir).predict(files)
    for e, p in zip(json.loads(result.stdout), api, strict=True):
        assert e["file"] == str(p.file)
        assert max(abs(e["probabilities"][k] - p.probabilities[k]) for k in LABELS) < 1e-6


def test_table_and_csv_put_errors_on_stderr(model_dir, inputs):
    _, paths = inputs
    args = [model_dir, paths["good"], paths["notaudio"]]
    table = _run([*args, "--format", "table"])
    assert table.exit_code == 1
    assert "good.wav" in table.stdout and "neutral" in table.stdout
    assert "notaudio.wav" not in table.stdout
    assert "notaudio.wav" in table.stderr and "not a readable audio file" in table.stderr
    csv_out = _run([*args, "--format", "csv"])
    assert csv_out.exit_code == 1
    rows = csv_out.stdout.strip().splitlines()
    assert rows[0] == "file,label," + ",".join(LABELS) and len(rows) == 2
    assert "notaudio.wav" in csv_out.stderr


def test_segment_adds_timeline(model_dir, tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, np.concatenate([tone(2.5, freq=200), tone(2.5, freq=600)]), SR)
    result = _run([model_dir, path, "--format", "json", "--segment", "--window", "2", "--hop", "1"])
    assert result.exit_code == 0, result.output
    (e,) = json.loads(result.stdout)
    assert list(e)[:4] == ["file", "label", "probabilities", "segments"]
    assert [s["start"] for s in e["segments"]] == [0.0, 1.0, 2.0, 3.0]
    assert all(list(s) == ["start", "end", "label", "probabilities"] for s in e["segments"])
    assert e["summary"]["duration"] == pytest.approx(5.0)
    table = _run([model_dir, path, "--segment"])
    assert table.exit_code == 0 and "summary:" in table.stdout


def test_globs_folders_and_missing_inputs(model_dir, inputs):
    folder, _ = inputs
    result = _run(
        [
            model_dir,
            f"{folder}/kh*.wav",
            folder / "nothing-*.wav",
            "missing.wav",
            "--format",
            "json",
        ]
    )
    assert result.exit_code == 1
    entries = json.loads(result.stdout)
    assert [Path(e["file"]).name for e in entries[:2]] == ["khz8.wav", "khz96.wav"]
    assert "no files match" in entries[2]["error"] and "file not found" in entries[3]["error"]


def test_bad_model_folder_exit_code_2(tmp_path, inputs):
    result = _run([tmp_path, inputs[1]["good"]])
    assert result.exit_code == 2 and "no config.json" in result.stderr


@pytest.mark.slow  # a real process: ~8 s of imports
def test_real_process_with_non_utf8_argv(model_dir, inputs):
    """The installed command, given the raw bytes of a non-UTF-8 file name."""
    _, paths = inputs
    exe = Path(sys.executable).with_name("emodistill")
    cmd = [os.fsencode(exe), b"predict", os.fsencode(model_dir), os.fsencode(paths["nonutf8"])]
    proc = subprocess.run([*cmd, b"--format", b"json"], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    (e,) = json.loads(proc.stdout.decode("utf-8"))
    assert e["file"].endswith("caf\\xe9.wav") and e["label"] in LABELS


def test_table_shows_markup_like_names_as_text(model_dir, tmp_path, monkeypatch):
    # "a[/b].wav" is rich closing-tag syntax; the table must print it, not crash on it.
    odd = tmp_path / "a[/b].wav"  # folder "a[", file "b].wav"
    odd.parent.mkdir()
    sf.write(odd, tone(0.6), SR)
    bold = tmp_path / "[bold]x.wav"
    sf.write(bold, tone(0.6, freq=300), SR)
    monkeypatch.chdir(tmp_path)  # short relative names: the table does not fold them
    for extra in ([], ["--segment", "--window", "0.5", "--hop", "0.5"]):
        result = _run([model_dir, "a[/b].wav", "[bold]x.wav", *extra])
        assert result.exit_code == 0, result.output
        assert "a[/b].wav" in result.stdout and "[bold]x.wav" in result.stdout


def test_unsupported_format_is_a_clear_error(model_dir, tmp_path):
    junk = tmp_path / "x.vox"
    junk.write_bytes(bytes(range(256)) * 20)
    result = _run([model_dir, junk, "--format", "json"])
    assert result.exit_code == 1
    (e,) = json.loads(result.stdout)
    assert "none of the supported formats (WAV/RF64, FLAC" in e["error"] and "x.vox" in e["error"]
