"""`corpus transcribe`: Whisper tiny.en (embedded) on a few espeak-ng utterances."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

SENTENCES = [
    "The weather is lovely today.",
    "Please close the door behind you.",
    "I will call my sister tomorrow morning.",
]

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (apt-get install espeak-ng) to synthesise test speech",
)


def words(text: str) -> list[str]:
    return ["".join(c for c in w.lower() if c.isalnum()) for w in text.split() if w.strip(".,!?")]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level Levenshtein distance / number of reference words."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)] / max(1, len(ref))


def test_word_error_rate_helper():
    assert word_error_rate("a b c", "a b c") == 0
    assert word_error_rate("a b c d", "a x c") == 0.5  # one substitution, one deletion


def synth(text: str, path: Path) -> None:
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), text], check=True)
    audio, sr = sf.read(raw, dtype="float32")
    sf.write(path, soxr.resample(audio, sr, 16000), 16000, subtype="PCM_16")
    raw.unlink()


def write_manifest_csv(path: Path, rows: list[list[str]]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "path", "label", "speaker", "session", "transcript"])
        w.writerows(rows)


def test_corpus_transcribe_fills_empty_transcripts(tmp_path):
    from typer.testing import CliRunner

    from emodistill.cli.app import app
    from emodistill.corpora.manifest import load_manifest

    rows = []
    for i, text in enumerate(SENTENCES):
        synth(text, tmp_path / f"u{i}.wav")
        rows.append([f"u{i}", f"u{i}.wav", "neutral", f"s{i % 2}", "", ""])
    # A transcript the manifest already has is kept, not re-decoded.
    synth("Something else entirely.", tmp_path / "u3.wav")
    rows.append(["u3", "u3.wav", "sad", "s1", "", "kept as written"])
    write_manifest_csv(tmp_path / "in.csv", rows)

    out = tmp_path / "out" / "with_text.csv"
    runner = CliRunner()
    result = runner.invoke(
        app, ["corpus", "transcribe", str(tmp_path / "in.csv"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    got = {u.id: u.transcript for u in load_manifest(out).utterances}
    assert got["u3"] == "kept as written"
    errors = 0.0
    for i, text in enumerate(SENTENCES):
        rate = word_error_rate(text, got[f"u{i}"])
        errors += rate * len(words(text))
        print(f"WER {rate:.2f}  ref: {text!r}  hyp: {got[f'u{i}']!r}")
    overall = errors / sum(len(words(t)) for t in SENTENCES)
    print(f"word error rate over {len(SENTENCES)} utterances: {overall:.3f}")
    assert overall < 0.3

    # Second run: everything comes from the cache (keyed on audio bytes, model, compute type).
    cache = out.parent / ".emodistill-cache" / "transcripts.json"
    assert cache.is_file()
    again = runner.invoke(
        app, ["corpus", "transcribe", str(tmp_path / "in.csv"), "--out", str(out)]
    )
    assert again.exit_code == 0, again.output
    assert "0 transcribed, 3 from cache" in " ".join(again.output.split())


def test_corpus_transcribe_reports_a_bad_model(tmp_path):
    from typer.testing import CliRunner

    from emodistill.cli.app import app

    synth("Hello there.", tmp_path / "u0.wav")
    synth("Good bye.", tmp_path / "u1.wav")
    write_manifest_csv(
        tmp_path / "in.csv",
        [["u0", "u0.wav", "neutral", "a", "", ""], ["u1", "u1.wav", "sad", "b", "", ""]],
    )
    result = CliRunner().invoke(
        app,
        [
            "corpus",
            "transcribe",
            str(tmp_path / "in.csv"),
            "--out",
            str(tmp_path / "o.csv"),
            "--model",
            str(tmp_path / "no-such-model"),
        ],
    )
    assert result.exit_code == 2
    assert "no-such-model" in " ".join(result.output.split())


def _fake_whisper(monkeypatch, fail_after: int | None = None):
    """Replace Whisper by a stub that 'hears' the clip's length; optionally interrupt."""
    from emodistill.corpora import transcribe as T

    calls = []

    def fake_transcribe(whisper, audio, beam_size=1, language=None):
        calls.append(audio.size)
        if fail_after is not None and len(calls) > fail_after:
            raise KeyboardInterrupt
        return f"{audio.size} samples"

    monkeypatch.setattr(T, "load_whisper", lambda model, compute_type: object())
    monkeypatch.setattr(T, "transcribe_array", fake_transcribe)
    return calls


def _clips(tmp_path, n=5):
    rows = []
    for i in range(n):
        sf.write(tmp_path / f"c{i}.wav", np.full(1600 * (i + 1), 0.1, np.float32), 16000)
        rows.append([f"c{i}", f"c{i}.wav", "neutral", f"s{i % 2}", "", ""])
    return rows


def test_bad_file_is_reported_and_the_rest_transcribed(tmp_path, monkeypatch):
    from emodistill.corpora.manifest import load_manifest
    from emodistill.corpora.transcribe import TranscribeError, transcribe_manifest

    _fake_whisper(monkeypatch)
    rows = _clips(tmp_path)
    (tmp_path / "c2.wav").write_bytes(b"not audio at all")
    write_manifest_csv(tmp_path / "in.csv", rows)
    out = tmp_path / "out.csv"
    with pytest.raises(TranscribeError, match=r"1 of 5 file\(s\).*c2: .*c2.wav"):
        transcribe_manifest(tmp_path / "in.csv", out, progress=False)
    got = {u.id: u.transcript for u in load_manifest(out).utterances}
    assert got == {"c0": "1600 samples", "c1": "3200 samples", "c2": None,
                   "c3": "6400 samples", "c4": "8000 samples"}  # fmt: skip


def test_interrupted_transcribe_keeps_what_it_decoded(tmp_path, monkeypatch):
    from emodistill.corpora.transcribe import transcribe_manifest

    write_manifest_csv(tmp_path / "in.csv", _clips(tmp_path))
    out = tmp_path / "out.csv"
    _fake_whisper(monkeypatch, fail_after=3)
    with pytest.raises(KeyboardInterrupt):
        transcribe_manifest(tmp_path / "in.csv", out, progress=False)
    calls = _fake_whisper(monkeypatch)
    transcribe_manifest(tmp_path / "in.csv", out, progress=False)
    assert len(calls) == 2  # the 3 decoded before the interruption came from the cache


def test_corpus_transcribe_language_needs_a_multilingual_model(tmp_path):
    from typer.testing import CliRunner

    from emodistill.cli.app import app

    synth("Hallo.", tmp_path / "u0.wav")
    synth("Tschüss.", tmp_path / "u1.wav")
    write_manifest_csv(
        tmp_path / "in.csv",
        [["u0", "u0.wav", "neutral", "a", "", ""], ["u1", "u1.wav", "sad", "b", "", ""]],
    )
    args = ["corpus", "transcribe", str(tmp_path / "in.csv"), "--out", str(tmp_path / "o.csv")]
    result = CliRunner().invoke(app, [*args, "--language", "de"])
    assert result.exit_code == 2  # a known error: one line, exit code 2
    assert "English-only" in " ".join(result.output.split())
