"""The eGeMAPS-functionals baseline on a tiny corpus whose classes differ in pitch and loudness."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from emodistill.cli.app import app
from emodistill.corpora.manifest import Utterance, load_manifest, write_manifest
from emodistill.corpora.splits import make_folds
from emodistill.evaluation.baseline import BaselineConfig, fold_ua, run_baseline
from emodistill.evaluation.report import RESULT_KEYS
from emodistill.features import feature_columns, functional_settings

SR = 16000
# Class -> (pitch Hz, amplitude): separable by eGeMAPS F0 and loudness functionals.
CLASSES = {"neutral": (140.0, 0.1), "angry": (260.0, 0.5)}


def _voice(f0: float, amp: float, seed: int) -> np.ndarray:
    """0.6 s of a harmonic tone with jitter in pitch (a crude voiced sound)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.6 * SR)) / SR
    f = f0 * (1 + 0.03 * rng.standard_normal()) * (1 + 0.02 * np.sin(2 * np.pi * 3 * t))
    phase = 2 * np.pi * np.cumsum(f) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 6))
    return (amp * x / 2 + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("base")
    utts = []
    for s, spk in enumerate(["s1", "s2", "s3", "s4"]):
        for label, (f0, amp) in CLASSES.items():
            for i in range(3):
                path = root / "wav" / f"{spk}_{label}_{i}.wav"
                path.parent.mkdir(exist_ok=True)
                sf.write(path, _voice(f0 * (1 + 0.05 * s), amp, seed=100 * s + i), SR)
                utts.append(Utterance(f"{spk}_{label}_{i}", path, label, spk))
    write_manifest(utts, root / "manifest.csv")
    return load_manifest(root / "manifest.csv")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One feature cache for the module: opensmile runs once per file, later tests reuse it."""
    return tmp_path_factory.mktemp("cache")


def test_baseline_results_in_cv_format(corpus, cache, tmp_path):
    folds = make_folds(corpus, scheme="speaker", val_speakers=1)
    res = run_baseline(corpus, folds, tmp_path / "run", cache_dir=cache)
    on_disk = json.loads((tmp_path / "run" / "results.json").read_text())
    assert tuple(on_disk) == RESULT_KEYS and on_disk["labels"] == ["neutral", "angry"]
    assert [f["fold"] for f in res["folds"]] == ["s1", "s2", "s3", "s4"]
    assert all(f["n"] == 6 for f in res["folds"])
    assert res["mean"]["ua"] > 0.8  # pitch and loudness separate the classes
    assert sum(map(sum, res["confusion"])) == len(corpus)
    ua = fold_ua(res)
    assert set(ua) == {"s1", "s2", "s3", "s4"} and ua["s1"] == res["folds"][0]["ua"]
    info = json.loads((tmp_path / "run" / "baseline.json").read_text())
    assert set(info["folds"]) == set(ua)
    assert all(v["c"] in BaselineConfig().c_values and v["val_ua"] for v in info["folds"].values())
    pred = json.loads((tmp_path / "run" / "folds" / "s2" / "predictions.json").read_text())
    assert all(i.startswith("s2_") for i in pred["ids"])  # only the test speaker is scored
    assert (tmp_path / "run" / "report.md").is_file() and (
        tmp_path / "run" / "confusion.png"
    ).is_file()
    # The functionals sit in the feature cache as (1, 88) entries, beside any LLDs.
    entries = [p for p in cache.glob("*/*.npy")]
    assert len(entries) == len(corpus) and feature_columns(functional_settings()) == 88
    assert np.load(entries[0]).shape == (1, 88)


def test_baseline_without_validation_speakers_and_per_speaker_norm(corpus, cache, tmp_path):
    folds = make_folds(corpus, scheme="groups", groups=2, val_speakers=0)
    cfg = BaselineConfig(classifier="svm", normalization="speaker", default_c=0.5)
    res = run_baseline(corpus, folds, tmp_path / "run", cfg, cache_dir=cache)
    info = json.loads((tmp_path / "run" / "baseline.json").read_text())
    assert {v["c"] for v in info["folds"].values()} == {0.5}  # nothing to choose C on
    assert res["mean"]["ua"] > 0.8
    with pytest.raises(ValueError, match="normalization"):
        BaselineConfig(normalization="corpus")


def test_baseline_cli(corpus, cache, tmp_path):
    args = ["baseline", str(corpus.path), "--out", str(tmp_path / "run"), "--scheme", "groups"]
    args += ["--groups", "2", "--folds", "g1", "--cache", str(cache)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [f["fold"] for f in res["folds"]] == ["g1"]
    bad = CliRunner().invoke(app, [*args[:4], "--scheme", "official"])
    assert bad.exit_code == 2 and "split" in bad.output


def test_linear_fits_run_on_one_blas_thread(monkeypatch):
    """The probe's and the baseline's fits are small: with a BLAS thread per CPU they took 10x
    longer on 2 cores (bench/probe_threads.py). run_fold holds BLAS to one thread while it
    fits, and gives the caller's setting back afterwards."""
    from threadpoolctl import threadpool_info

    from emodistill.evaluation import baseline

    def blas_threads() -> set[int]:
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    seen: list[set[int]] = []
    real = baseline._fit_predict

    def spy(*args, **kw):
        seen.append(blas_threads())
        return real(*args, **kw)

    monkeypatch.setattr(baseline, "_fit_predict", spy)
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    x = rng.normal(size=(40, 5)) + y[:, None]
    spk = np.arange(40) % 4
    speakers = np.array([f"s{s}" for s in spk])
    before = blas_threads()
    out = baseline.run_fold(x, y, speakers, (spk < 2, spk == 2, spk == 3), 2, BaselineConfig())
    assert len(out["y_pred"]) == 10
    assert seen and all(s == {1} for s in seen)
    assert blas_threads() == before
