"""Every command answers a known error (bad manifest, missing file, bad folder) with one line
``error: ...`` on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from emodistill.cli.app import app


@pytest.fixture()
def bad_manifest(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("id,path\nu1,nowhere.wav\n")  # no label column
    return path


@pytest.mark.parametrize(
    "command",
    [
        ["cv", "{m}", "--out", "{o}"],
        ["ablate", "{m}", "--out", "{o}"],
        ["sweep-temperature", "{m}", "--teacher", "prosodic", "--out", "{o}"],
        ["train-teachers", "{m}", "--out", "{o}"],
        ["features", "{m}"],
        ["corpus", "transcribe", "{m}", "--out", "{o}/t.csv"],
        ["corpus", "check", "{m}", "--out", "{o}"],
    ],
)
def test_bad_manifest_is_one_line_and_exit_2(command, bad_manifest, tmp_path):
    args = [a.format(m=bad_manifest, o=tmp_path / "run") for a in command]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output and "error:" in result.output
    assert "bad.csv" in result.output


def test_missing_manifest_and_unwritable_demo_folder(tmp_path):
    missing = CliRunner().invoke(app, ["cv", str(tmp_path / "none.csv"), "--out", "r"])
    assert missing.exit_code == 2 and "none.csv" in missing.output
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    demo = CliRunner().invoke(app, ["demo", "--quick", "--out", str(blocker / "run")])
    assert demo.exit_code == 2 and "Traceback" not in demo.output, demo.output
    assert "file" in demo.output


def test_traceback_on_request(bad_manifest, tmp_path, monkeypatch):
    monkeypatch.setenv("EMODISTILL_TRACEBACK", "1")
    result = CliRunner().invoke(app, ["cv", str(bad_manifest), "--out", str(tmp_path / "r")])
    assert result.exit_code != 0 and isinstance(result.exception, ValueError)


def test_result_tables_in_a_log_file_keep_their_numbers(monkeypatch):
    """stdout to a file or pipe (CI logs, `make demo > log`): the demo's 11-column table is
    laid out at PIPE_WIDTH columns, not rich's 80, which cut every number to "72.…"."""
    from emodistill.cli.common import PIPE_WIDTH, output_console

    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    assert output_console().width == PIPE_WIDTH  # pytest captures stdout: not a terminal
    monkeypatch.setenv("COLUMNS", "100")
    assert output_console().width == 100  # the user's own choice wins
