"""Prediction with a speaker-normalised student (#28): ``enroll``, ``predict --profile``,
``predict --speaker-norm``, ``evaluate`` and the Python API, checked against what
cross-validation computes for a test speaker."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_distill import _fold, _one_thread, fresh_run, one_thread, prepared  # noqa: F401
from test_inference import SR, build_tiny_model, tone
from test_speaker_norm import _speaker_cfg
from typer.testing import CliRunner

from emodistill.cli.app import app
from emodistill.inference.model import EmoDistill
from emodistill.inference.speaker import EnrolmentError, SpeakerNormError
from emodistill.models.speaker_stats import BadProfile, read_profile


@pytest.fixture(scope="module")
def trained(prepared, tmp_path_factory):  # noqa: F811
    """A tiny speaker_norm student of fold g1 (distill), its test predictions and speakers."""
    from emodistill.corpora.splits import FoldSplit
    from emodistill.runs.layout import student_dir
    from emodistill.training.distill import distill

    m, fold = _fold(prepared)
    run = fresh_run(prepared, tmp_path_factory.mktemp("speaker") / "run")
    with one_thread():
        result = distill(m, fold, _speaker_cfg(prepared), run, "no_teachers", progress=False)
    test = FoldSplit.of(m, fold).parts[2]
    probs = dict(zip(result["ids"], np.asarray(result["probabilities"]), strict=True))
    by_speaker: dict[str, list] = {}
    for u in test:
        by_speaker.setdefault(u.speaker, []).append(u)
    return {
        "model": student_dir(run, fold.id, "no_teachers"),
        "probs": probs,
        "speakers": by_speaker,
        "labels": m.labels,
        "test": test,
    }


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory):
    """A model trained without speaker_norm."""
    return build_tiny_model(tmp_path_factory.mktemp("plain") / "model", "whisper")


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _enroll(model, clips, out, *extra):
    return _cli("enroll", model, *[u.path if hasattr(u, "path") else u for u in clips], "--out",
                out, *extra)  # fmt: skip


def _predicted(result, labels):
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    return {
        Path(e["file"]).name: np.array([e["probabilities"][lab] for lab in labels]) for e in entries
    }


# --------------------------------------------------------------------------- the acceptance check


def test_predict_with_profile_equals_the_cv_test_computation(trained, tmp_path):
    """For each test speaker: enrol their test clips, predict them with --profile: the
    probabilities are the ones cross-validation wrote to predictions.json."""
    labels, worst = trained["labels"], 0.0
    for speaker, utts in trained["speakers"].items():
        profile = tmp_path / f"{speaker}.json"
        res = _enroll(trained["model"], utts, profile)
        assert res.exit_code == 0, res.output
        prof = read_profile(profile)
        assert prof.stats.n == len(utts) and prof.stats.seconds > 3.0
        assert sorted(prof.sources) == sorted(u.path.name for u in utts)
        args = ["predict", trained["model"], *[u.path for u in utts], "--profile", profile]
        got = _predicted(_cli(*args, "-f", "json"), labels)
        for u in utts:
            worst = max(worst, float(np.abs(got[u.path.name] - trained["probs"][u.id]).max()))
    print(f"max |predict --profile - cv test| = {worst:.2e}")
    assert worst < 1e-5


def test_speaker_norm_on_a_folder_is_one_voice(trained, tmp_path):
    """--speaker-norm on a folder of one speaker's clips = --profile of those clips (and the
    cv result); without normalisation the probabilities differ."""
    speaker, utts = next(iter(trained["speakers"].items()))
    folder = tmp_path / speaker
    folder.mkdir()
    for u in utts:
        shutil.copy(u.path, folder / u.path.name)
    labels = trained["labels"]
    args = ["predict", trained["model"], folder, "-f", "json"]
    got = _predicted(_cli(*args, "--speaker-norm"), labels)
    plain = _predicted(_cli(*args), labels)
    diff = max(float(np.abs(got[u.path.name] - trained["probs"][u.id]).max()) for u in utts)
    assert diff < 1e-5
    assert max(float(np.abs(got[k] - plain[k]).max()) for k in got) > 1e-4


def test_evaluate_normalises_each_speaker_with_their_clips(trained, tmp_path):
    """evaluate on a manifest of the fold's test clips: each speaker normalised with their own
    clips, the cv probabilities again, reported as speaker-normalised."""
    from emodistill.corpora.manifest import write_manifest

    manifest = tmp_path / "test.csv"
    write_manifest(trained["test"], manifest)
    res = _cli("evaluate", trained["model"], manifest, "--out", tmp_path / "eval")
    assert res.exit_code == 0, res.output
    assert "speaker-normalised" in res.output
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["speaker_norm"] is True
    assert "speaker-normalised" in (tmp_path / "eval" / "report.md").read_text()
    preds = json.loads((tmp_path / "eval" / "predictions.json").read_text())
    diff = max(
        float(np.abs(np.asarray(p) - trained["probs"][i]).max())
        for i, p in zip(preds["ids"], preds["probabilities"], strict=True)
    )
    assert diff < 1e-5


# --------------------------------------------------------------------------- the Python API


def test_python_api_enroll_and_predict(trained, tmp_path):
    model = EmoDistill.from_pretrained(trained["model"])
    assert model.speaker_norm is True
    speaker, utts = next(iter(trained["speakers"].items()))
    paths = [u.path for u in utts]
    profile = model.enroll(paths)
    assert profile.stats.n == len(paths)
    by_profile = model.predict(paths, profile=profile)
    by_file = model.predict_files(paths, profile=profile)
    assert [r.probabilities for r in by_file] == [r.probabilities for r in by_profile]
    own = model.predict_files(paths, speaker_norm=True)
    for u, a, b in zip(utts, by_profile, own, strict=True):
        p = np.array([a.probabilities[lab] for lab in model.labels])
        assert np.abs(p - trained["probs"][u.id]).max() < 1e-5
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)
    # arrays enrol the same as files
    arrays = [sf.read(p, dtype="float32")[0] for p in paths]
    from_arrays = model.enroll(arrays, sampling_rate=SR)
    assert np.allclose(from_arrays.stats.total, profile.stats.total, atol=1e-6)
    # a profile file works like the object; a single input gives a single Prediction
    from emodistill.models.speaker_stats import write_profile

    write_profile(profile, tmp_path / "p.json")
    one = model.predict(paths[0], profile=tmp_path / "p.json")
    assert one.probabilities == pytest.approx(by_profile[0].probabilities, abs=1e-7)
    with pytest.raises(SpeakerNormError, match="both given"):
        model.predict(paths, profile=profile, speaker_norm=True)
    with pytest.raises(EnrolmentError, match="less than the 3 s"):
        model.enroll(paths[:1])
    assert model.enroll(paths[:1], min_seconds=0.1).stats.n == 1


def test_python_api_refuses_speaker_norm_on_a_plain_model(plain_model, tmp_path):
    model = EmoDistill.from_pretrained(plain_model)
    assert model.speaker_norm is False
    sf.write(tmp_path / "a.wav", tone(1.0), SR)
    with pytest.raises(SpeakerNormError, match="trained without student.speaker_norm"):
        model.enroll([tmp_path / "a.wav"])
    with pytest.raises(SpeakerNormError, match="trained without student.speaker_norm"):
        model.predict_files([tmp_path / "a.wav"], speaker_norm=True)
    # the old signatures are unchanged
    assert model.predict(tmp_path / "a.wav").label in model.labels


def test_long_clips_give_one_clip_mean_per_window(tmp_path):
    """A clip over 30 s contributes one clip mean per window; long files are predicted with the
    profile too."""
    folder = build_tiny_model(tmp_path / "m", "whisper", speaker_norm=True, trainable_layers=0)
    model = EmoDistill.from_pretrained(folder)
    sf.write(tmp_path / "long.wav", tone(61.0, freq=180.0), SR)
    sf.write(tmp_path / "short.wav", tone(2.0, freq=300.0), SR)
    profile = model.enroll([tmp_path / "long.wav", tmp_path / "short.wav"])
    assert profile.stats.n == 3 + 1 and profile.stats.seconds == pytest.approx(63.0)
    pred = model.predict_long_file(tmp_path / "long.wav", profile=profile)
    assert pred.label in model.labels


# --------------------------------------------------------------------------- the CLI's errors


def test_enroll_errors(trained, plain_model, tmp_path):
    utts = next(iter(trained["speakers"].values()))
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    res = _enroll(plain_model, utts, tmp_path / "p.json")
    assert res.exit_code == 2 and "trained without student.speaker_norm" in res.output
    res = _enroll(trained["model"], [bad], tmp_path / "p.json")
    assert res.exit_code == 2 and "no usable enrolment audio" in res.output
    assert "bad.wav" in res.output
    res = _enroll(trained["model"], utts[:1], tmp_path / "p.json")
    assert res.exit_code == 2 and "--min-seconds" in res.output
    assert not (tmp_path / "p.json").exists()
    # bad clips are reported and skipped; the rest make the profile
    res = _enroll(trained["model"], [*utts, bad, tmp_path / "missing.wav"], tmp_path / "p.json")
    assert res.exit_code == 0, res.output
    assert "bad.wav: not a readable audio file" in res.output
    assert "missing.wav: file not found" in res.output and "2 skipped" in res.output
    assert read_profile(tmp_path / "p.json").stats.n == len(utts)
    res = _enroll(trained["model"], utts[:1], tmp_path / "q.json", "--min-seconds", "0.1")
    assert res.exit_code == 0, res.output


def test_predict_errors(trained, plain_model, tmp_path):
    utts = next(iter(trained["speakers"].values()))
    clip = utts[0].path
    profile = tmp_path / "p.json"
    assert _enroll(trained["model"], utts, profile).exit_code == 0
    data = json.loads(profile.read_text())
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**data, "model": "0" * 64}))
    (tmp_path / "broken.json").write_text("{")
    cases = [
        ([trained["model"], clip, "--profile", other], "enrolled with another model"),
        ([plain_model, clip, "--profile", profile], "trained without student.speaker_norm"),
        ([plain_model, clip, "--speaker-norm"], "trained without student.speaker_norm"),
        ([trained["model"], clip, "--profile", tmp_path / "broken.json"], "not readable JSON"),
        ([trained["model"], clip, "--profile", tmp_path / "nope.json"], "no such profile file"),
        ([trained["model"], clip, "--profile", profile, "--speaker-norm"], "both given"),
    ]
    for args, message in cases:
        res = _cli("predict", *args)
        assert res.exit_code == 2, (args, res.output)
        assert message in res.output, (args, res.output)
        assert "Traceback" not in res.output
    # a profile of another model's weights (a real second model) is refused too
    model = EmoDistill.from_pretrained(trained["model"])
    with __import__("torch").no_grad():
        model.module.classifier[0].bias.add_(0.1)
    model.save_pretrained(tmp_path / "changed")
    res = _cli("predict", tmp_path / "changed", clip, "--profile", profile)
    assert res.exit_code == 2 and "enrolled with another model" in res.output
    with pytest.raises(BadProfile, match="another model"):
        EmoDistill.from_pretrained(tmp_path / "changed").predict(clip, profile=profile)


def test_segment_with_speaker_norm_uses_the_recordings_windows(trained, tmp_path):
    utts = next(iter(trained["speakers"].values()))
    signal = np.concatenate([sf.read(u.path, dtype="float32")[0] for u in utts])
    sf.write(tmp_path / "long.wav", signal, SR)
    base = ["predict", trained["model"], tmp_path / "long.wav", "--segment", "-f", "json"]
    base += ["--window", "1.0", "--hop", "1.0"]
    normed = _cli(*base, "--speaker-norm")
    assert normed.exit_code == 0, normed.output
    plain = _cli(*base)
    a, b = json.loads(normed.stdout)[0], json.loads(plain.stdout)[0]
    assert len(a["segments"]) == len(b["segments"]) > 3
    assert a["probabilities"] != b["probabilities"]
    # the windows' statistics, by hand
    from emodistill.inference.segment import predict_timeline, timeline_clip_means
    from emodistill.inference.speaker import ClipMeans, shared_normaliser

    model = EmoDistill.from_pretrained(trained["model"])
    clips = ClipMeans()
    clips.add(*timeline_clip_means(model, tmp_path / "long.wav", 1.0, 1.0))
    assert len(clips.means) == len(a["segments"])
    norm = shared_normaliser(clips, model.runner.global_stats())
    expect = predict_timeline(model, tmp_path / "long.wav", 1.0, 1.0, speaker=norm)
    for got, want in zip(a["segments"], expect["segments"], strict=True):
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-6)
