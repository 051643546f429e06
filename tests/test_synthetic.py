"""The synthetic demo corpus: valid files and manifest, balance, determinism, clear errors."""

from __future__ import annotations

import hashlib
import shutil
from collections import Counter
from pathlib import Path

import pytest
import soundfile as sf

from emodistill.corpora.espeak import ESPEAK_ENV
from emodistill.corpora.manifest import load_manifest
from emodistill.corpora.synthetic import (
    LABELS,
    SynthError,
    plan_corpus,
    synthesize_corpus,
)

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)"
)

N_UTT, N_SPK = 16, 4


def _digest(out_dir: Path) -> dict[str, str]:
    """sha256 of every file the synthesiser wrote, by relative path."""
    return {
        p.relative_to(out_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out_dir.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, Path]:
    """Three tiny corpora: seed 0 twice (in different folders, different worker counts), seed 1."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    root = tmp_path_factory.mktemp("synth")
    out = {}
    for name, seed, workers in (("a", 0, 2), ("b", 0, 1), ("c", 1, 2)):
        out[name] = synthesize_corpus(
            root / name,
            utterances=N_UTT,
            speakers=N_SPK,
            seed=seed,
            workers=workers,
            progress=False,
        )
    return out


@needs_espeak
def test_manifest_and_files_valid(corpora):
    manifest = load_manifest(corpora["a"])
    assert len(manifest) == N_UTT
    assert manifest.labels == list(LABELS)
    assert Counter(u.label for u in manifest) == {lab: N_UTT // 4 for lab in LABELS}
    assert manifest.speakers() == [f"spk{i:02d}" for i in range(1, N_SPK + 1)]
    assert manifest.sessions() == ["S1", "S2"]  # two speakers per session, like IEMOCAP
    for spk in manifest.speakers():  # every speaker says every emotion
        assert {u.label for u in manifest.by_speakers([spk])} == set(LABELS)
    for u in manifest:
        assert u.transcript and u.transcript.strip()
        assert u.path == corpora["a"].parent / "wav" / u.speaker / f"{u.id}.wav"
        info = sf.info(str(u.path))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert 1.0 <= info.duration <= 4.5, (u.id, info.duration)
    # paths in the CSV are relative, so the corpus folder can move
    assert ",wav/spk01/spk01_0000.wav," in corpora["a"].read_text()


@needs_espeak
def test_same_seed_same_bytes_different_seed_differs(corpora):
    a, b, c = (_digest(corpora[k].parent) for k in "abc")
    assert a == b  # same seed: identical manifest, recipe and wav bytes, whatever the workers
    assert set(a) == set(c)
    assert a["manifest.csv"] != c["manifest.csv"]
    wavs = [k for k in a if k.endswith(".wav")]
    assert len(wavs) == N_UTT
    assert sum(a[k] != c[k] for k in wavs) == N_UTT


def test_plan_default_balanced_and_mixed():
    plans = plan_corpus()  # the default corpus, without synthesising it
    assert len(plans) == 1200 and len({p.id for p in plans}) == 1200
    assert Counter(p.label for p in plans) == {lab: 300 for lab in LABELS}
    speakers = Counter(p.speaker for p in plans)
    assert len(speakers) == 12 and set(speakers.values()) == {100}
    assert len({p.session for p in plans}) == 6
    lexical = [p for p in plans if p.word_emotion is not None]
    assert 0.6 < len(lexical) / len(plans) < 0.8  # the rest are lexically neutral sentences
    misleading = [p for p in lexical if p.word_emotion != p.label]
    assert 0.05 < len(misleading) / len(lexical) < 0.2
    # lexically neutral sentences are shared by every label: their words carry no label
    neutral_texts = {
        lab: {p.transcript for p in plans if p.word_emotion is None and p.label == lab}
        for lab in LABELS
    }
    assert all(neutral_texts[lab] & neutral_texts["neutral"] for lab in LABELS[1:])

    # prosody follows the label on average: sad slower and lower, angry louder than neutral
    def mean(label, attr):
        vals = [getattr(p, attr) for p in plans if p.label == label]
        return sum(vals) / len(vals)

    assert mean("sad", "rate") < mean("neutral", "rate") < mean("angry", "rate")
    assert mean("sad", "pitch") < mean("neutral", "pitch") < mean("happy", "pitch")
    assert mean("angry", "gain_db") > mean("neutral", "gain_db") > mean("sad", "gain_db")
    assert plan_corpus(seed=0) == plans and plan_corpus(seed=1) != plans


def test_bad_arguments():
    with pytest.raises(SynthError, match="at least 2 speakers"):
        plan_corpus(utterances=16, speakers=1)
    with pytest.raises(SynthError, match="at least 8 utterances"):
        plan_corpus(utterances=6, speakers=8)


def test_missing_espeak_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv(ESPEAK_ENV, str(tmp_path / "no-such-espeak-ng"))
    with pytest.raises(SynthError, match=r"espeak-ng not found.*apt-get install espeak-ng"):
        synthesize_corpus(tmp_path / "out", utterances=8, speakers=2, progress=False)


def test_failing_espeak_names_utterance_and_stderr(tmp_path, monkeypatch):
    fake = tmp_path / "espeak-ng"
    fake.write_text("#!/bin/sh\necho 'voice not found: en-us+f2' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv(ESPEAK_ENV, str(fake))
    with pytest.raises(SynthError, match=r"utterance spk0\d_000\d.*voice not found: en-us\+f2"):
        synthesize_corpus(tmp_path / "out", utterances=8, speakers=2, workers=1, progress=False)
    assert not (tmp_path / "out" / "manifest.csv").exists()


@needs_espeak
def test_cli_synth(tmp_path):
    from typer.testing import CliRunner

    from emodistill.cli.app import app

    res = CliRunner().invoke(
        app, ["corpus", "synth", str(tmp_path / "c"), "-n", "8", "-k", "2", "--seed", "3"]
    )
    assert res.exit_code == 0, res.output
    assert len(load_manifest(tmp_path / "c" / "manifest.csv")) == 8
