"""IEMOCAP loader on a tiny tree written in the exact release format (two sessions)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from rich.console import Console
from typer.testing import CliRunner

from emodistill.cli.app import app
from emodistill.corpora.iemocap import IemocapError, prepare_iemocap, read_iemocap
from emodistill.corpora.manifest import load_manifest

# (utterance, IEMOCAP label, transcript); the dialog is the utterance id minus its last part.
SESSION1 = {
    "Ses01F_impro01": [
        ("Ses01F_impro01_F000", "neu", "Excuse me."),
        ("Ses01F_impro01_M000", "fru", "Do you have your forms?"),
        ("Ses01F_impro01_F001", "exc", 'Yeah, I "think" so.'),
        ("Ses01F_impro01_M001", "ang", "Well, let's have them."),
        ("Ses01F_impro01_F002", "xxx", "Is there a problem?"),
    ],
    # Script dialog recorded with the female actor in mocap: M-suffixed lines are the male
    # speaker (Ses01M) although the dialog name says F.
    "Ses01F_script01_1": [
        ("Ses01F_script01_1_M000", "sad", "I'm sorry."),
        ("Ses01F_script01_1_F000", "hap", "That's wonderful!"),
        ("Ses01F_script01_1_M001", "neu", "What time is it?"),
    ],
}
SESSION2 = {
    "Ses02M_impro02": [
        ("Ses02M_impro02_F000", "neu", "Hi."),
        ("Ses02M_impro02_M000", "sad", "I lost it."),
        ("Ses02M_impro02_M001", "hap", "Great news."),
        ("Ses02M_impro02_F001", "sur", "Really?"),
    ],
}
VAD = {
    "neu": "[2.5000, 2.5000, 2.5000]",
    "hap": "[4.0000, 3.5000, 3.0000]",
    "exc": "[4.0000, 4.0000, 3.0000]",
    "ang": "[1.5000, 4.0000, 4.0000]",
    "sad": "[1.5000, 2.0000, 2.0000]",
    "fru": "[2.0000, 3.5000, 3.5000]",
    "xxx": "[2.5000, 3.0000, 3.0000]",
    "sur": "[3.0000, 4.0000, 2.5000]",
}


def _write_session(root: Path, n: int, dialogs: dict[str, list[tuple[str, str, str]]]) -> None:
    ses = root / f"Session{n}"
    emo = ses / "dialog" / "EmoEvaluation"
    trans = ses / "dialog" / "transcriptions"
    for d in (emo / "Categorical", emo / "Attribute", emo / "Self-evaluation", trans):
        d.mkdir(parents=True, exist_ok=True)
    for dialog, utts in dialogs.items():
        lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        tlines = []
        t = 6.2901
        for utt, lab, text in utts:
            start, end = t, t + 1.9456
            lines += [
                f"[{start:.4f} - {end:.4f}]\t{utt}\t{lab}\t{VAD[lab]}",
                "C-E2:\tNeutral;\t()",
                "C-E3:\tFrustration;\t(sounds annoyed)",
                "A-E3:\tval 3; act 2; dom  2;\t()",
                "",
            ]
            tlines.append(f"{utt} [{start:08.4f}-{end:08.4f}]: {text}")
            t = end + 0.5
            wav_dir = ses / "sentences" / "wav" / dialog
            wav_dir.mkdir(parents=True, exist_ok=True)
            sf.write(wav_dir / f"{utt}.wav", np.full(1600, 0.01, np.float32), 16000)
        # Noise / non-utterance lines of the release transcriptions.
        tlines.insert(1, "M_xxx [010.0000-011.0000]: [LAUGHTER]")
        tlines.insert(2, f"{dialog}_MX01 [012.0000-012.5000]: [BREATHING]")
        tlines.append("F: [GARBAGE]")
        (emo / f"{dialog}.txt").write_text("\n".join(lines) + "\n")
        (trans / f"{dialog}.txt").write_text("\n".join(tlines) + "\n")
        # Per-annotator files in other formats: a naive (recursive) parser would trip on them.
        first = utts[0][0]
        (emo / "Categorical" / f"{dialog}_e2_cat.txt").write_text(f"{first} :Neutral state; ()\n")
        (emo / "Attribute" / f"{dialog}_e4_atr.txt").write_text(
            f"{first} :act 2; val 3; dom  2; ()\n"
        )
        (emo / "Self-evaluation" / f"{dialog}.txt").write_text(
            f"[6.2901 - 8.2357]\t{first}\tang\t[1.0000, 5.0000, 5.0000]\n"
            f"[9.0000 - 9.5000]\t{dialog}_F099\tsad\t[1.0000, 5.0000, 5.0000]\n"
        )
        # Stray non-audio files as found in copies of the release.
        wav_dir = ses / "sentences" / "wav" / dialog
        (wav_dir / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        (wav_dir / f"._{first}.wav").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")
        (wav_dir / f"{dialog}.pk").write_bytes(b"\x80\x03}q\x00.")
    # AppleDouble companion of a summary file: binary, must be skipped.
    (emo / f"._{next(iter(dialogs))}.txt").write_bytes(b"\x00\x05\x16\x07\xff\xfe Mac OS X")


@pytest.fixture
def iemocap_root(tmp_path: Path) -> Path:
    root = tmp_path / "IEMOCAP_full_release"
    _write_session(root, 1, SESSION1)
    _write_session(root, 2, SESSION2)
    (root / "README.txt").write_text("IEMOCAP release\n")
    return root


def test_counts_merge_speakers_transcripts(iemocap_root: Path) -> None:
    utts, summary = read_iemocap(iemocap_root)
    by_id = {u.id: u for u in utts}
    assert summary["total"] == len(utts) == 9
    assert summary["per_class"] == {"neutral": 3, "happy": 3, "angry": 1, "sad": 2}
    assert summary["per_session"] == {"Ses01": 6, "Ses02": 3}
    assert summary["skipped"] == {"fru": 1, "sur": 1, "xxx": 1}
    assert summary["per_speaker"] == {"Ses01F": 3, "Ses01M": 3, "Ses02F": 1, "Ses02M": 2}
    assert summary["missing_transcripts"] == 0
    # excited merged into happy
    assert by_id["Ses01F_impro01_F001"].label == "happy"
    assert by_id["Ses01F_script01_1_F000"].label == "happy"
    # speaker from the utterance suffix, not the dialog name
    assert by_id["Ses01F_script01_1_M000"].speaker == "Ses01M"
    assert by_id["Ses01F_script01_1_M001"].speaker == "Ses01M"
    assert by_id["Ses02M_impro02_F000"].speaker == "Ses02F"
    assert all(u.session == u.speaker[:5] for u in utts)
    # top-level summary label wins over the Self-evaluation file (which says ang)
    assert by_id["Ses01F_impro01_F000"].label == "neutral"
    assert not any(u.id.endswith("_F099") for u in utts)
    # transcripts attached, punctuation kept
    assert by_id["Ses01F_impro01_F000"].transcript == "Excuse me."
    assert by_id["Ses01F_impro01_F001"].transcript == 'Yeah, I "think" so.'
    for u in utts:
        assert u.path.is_absolute() and u.path.is_file() and u.path.name == f"{u.id}.wav"


def test_root_is_sessions_folder_or_one_above(iemocap_root: Path, tmp_path: Path) -> None:
    a, _ = read_iemocap(iemocap_root)  # holds Session1, Session2
    b, _ = read_iemocap(tmp_path)  # one level above
    assert a == b


def test_missing_wavs_reported_together(iemocap_root: Path) -> None:
    gone = [
        iemocap_root / "Session1/sentences/wav/Ses01F_script01_1/Ses01F_script01_1_M001.wav",
        iemocap_root / "Session2/sentences/wav/Ses02M_impro02/Ses02M_impro02_M000.wav",
    ]
    for p in gone:
        p.unlink()
    with pytest.raises(IemocapError) as err:
        read_iemocap(iemocap_root)
    msg = str(err.value)
    assert "2 problem(s)" in msg
    for p in gone:
        assert p.stem in msg and str(p) in msg


def test_bad_root_and_classes(tmp_path: Path, iemocap_root: Path) -> None:
    with pytest.raises(IemocapError, match="no Session1"):
        read_iemocap(tmp_path / "IEMOCAP_full_release" / "Session1" / "dialog")
    with pytest.raises(IemocapError, match="not found"):
        read_iemocap(tmp_path / "nope")
    with pytest.raises(IemocapError, match="classes 6"):
        read_iemocap(iemocap_root, classes=6)


def test_prepare_writes_manifest_and_summary(iemocap_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "manifests" / "iemocap.csv"
    buf = io.StringIO()
    m = prepare_iemocap(iemocap_root, out, console=Console(file=buf, width=120))
    text = buf.getvalue()
    assert "9 utterances" in text and "fru 1" in text and "5531" in text  # total warning
    loaded = load_manifest(out)
    assert loaded.utterances == m.utterances
    assert loaded.labels == ["neutral", "happy", "angry", "sad"]
    assert loaded.speakers() == ["Ses01F", "Ses01M", "Ses02F", "Ses02M"]
    assert loaded.sessions() == ["Ses01", "Ses02"]


def test_cli_corpus_iemocap(iemocap_root: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "m.csv"
    res = runner.invoke(app, ["corpus", "iemocap", str(iemocap_root), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert len(load_manifest(out)) == 9
    (iemocap_root / "Session2/sentences/wav/Ses02M_impro02/Ses02M_impro02_M001.wav").unlink()
    res = runner.invoke(app, ["corpus", "iemocap", str(iemocap_root), "--out", str(out)])
    assert res.exit_code == 2
    assert "Ses02M_impro02_M001" in res.output
