"""Speaker-normalised student (`student.speaker_norm`): statistics, shrinkage, profiles."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_distill import _fold, _one_thread, fresh_run, prepared  # noqa: F401 - fixtures

from emodistill.models.speaker_stats import (
    BadProfile,
    GlobalStats,
    SpeakerProfile,
    SpeakerStats,
    global_stats,
    normaliser,
    profile_from_bytes,
    read_profile,
    speaker_normalisers,
    write_profile,
)

# --------------------------------------------------------------------------- statistics


def test_stats_accumulate_like_numpy_and_merge_clip_by_clip():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(7, 5))
    s = SpeakerStats()
    for m in means:
        s.add(m, seconds=1.5)
    assert s.n == 7 and s.seconds == pytest.approx(10.5)
    assert np.allclose(s.mean(), means.mean(0)) and np.allclose(s.var(), means.var(0))
    back = SpeakerStats.from_dict(json.loads(json.dumps(s.to_dict())))
    assert np.array_equal(back.total, s.total) and np.array_equal(back.total_sq, s.total_sq)


def test_shrinkage_moves_from_global_to_the_speaker_with_more_clips():
    rng = np.random.default_rng(1)
    glob = GlobalStats(np.zeros(3, np.float32), np.full(3, 4.0, np.float32), shrink=2.0)
    # no statistics -> the global ones
    mu, sigma = normaliser(None, glob)
    assert np.allclose(mu, 0) and np.allclose(sigma, 2.0, atol=1e-5)
    # one clip: w = 1/3 of the way to it, variance shrunk to 2/3 of the global one
    one = SpeakerStats.of(np.array([[3.0, 3.0, 3.0]]))
    mu, sigma = normaliser(one, glob)
    assert np.allclose(mu, 1.0) and np.allclose(sigma**2, 4.0 * 2 / 3, atol=1e-4)
    # many clips: close to the speaker's own statistics
    many = SpeakerStats.of(rng.normal(5.0, 0.5, size=(400, 3)))
    mu, sigma = normaliser(many, glob)
    assert np.allclose(mu, many.mean(), atol=0.05) and np.allclose(sigma, 0.5, atol=0.05)
    # shrink 0: exactly the speaker's
    mu, _ = normaliser(many, GlobalStats(glob.mean, glob.var, 0.0))
    assert np.allclose(mu, many.mean())


def test_each_utterance_gets_its_own_speakers_normaliser():
    means = {"a1": np.ones(2), "a2": 3 * np.ones(2), "b1": -np.ones(2)}
    speakers = {"a1": "A", "a2": "A", "b1": "B"}
    glob = global_stats(np.stack(list(means.values())), shrink=0.0)
    norms = speaker_normalisers(means, speakers, glob)
    assert np.allclose(norms["a1"], norms["a2"]) and np.allclose(norms["a1"][0], 2.0)
    assert np.allclose(norms["b1"][0], -1.0)


# --------------------------------------------------------------------------- profiles


def _profile(n=3, size=4, model="f" * 64, layer=2):
    stats = SpeakerStats.of(np.arange(n * size, dtype=float).reshape(n, size), seconds=9.0)
    return SpeakerProfile(stats, model, layer, ["a.wav"])


def test_profile_round_trips_exactly(tmp_path):
    p = write_profile(_profile(), tmp_path / "p.json")
    back = read_profile(p)
    assert back.to_dict() == _profile().to_dict()
    back.check("f" * 64, 2, 4, "p.json")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.update(format="other"), "not a speaker profile"),
        (lambda d: d.update(format_version=99), "format_version"),
        (lambda d: d.update(sum=d["sum"][:2]), "malformed"),
        (lambda d: d.update(sum_sq=[-1.0] * 4), "malformed"),
        (lambda d: d.update(clips=0, sum=[], sum_sq=[]), "no clips"),
        (lambda d: d.pop("model"), "malformed"),
    ],
)
def test_bad_profiles_are_refused_with_a_reason(edit, match):
    data = _profile().to_dict()
    edit(data)
    with pytest.raises(BadProfile, match=match):
        profile_from_bytes(json.dumps(data).encode())


def test_profile_of_another_model_or_layer_is_refused(tmp_path):
    prof = _profile()
    with pytest.raises(BadProfile, match="another model"):
        prof.check("e" * 64, 2, 4, "p.json")
    with pytest.raises(BadProfile, match="layer 2"):
        prof.check("f" * 64, 3, 4, "p.json")
    with pytest.raises(BadProfile, match="too large"):
        profile_from_bytes(b" " * (2 << 20))
    with pytest.raises(BadProfile, match="not JSON"):
        profile_from_bytes(b"\xff\xfe")
    with pytest.raises(BadProfile, match="no such profile"):
        read_profile(tmp_path / "missing.json")


# --------------------------------------------------------------------------- the student


def test_speaker_norm_needs_a_frozen_pooled_layer(prepared):  # noqa: F811
    from emodistill.config import Config

    with pytest.raises(ValueError, match="trainable_layers"):
        Config().override({"student": {"speaker_norm": True, "trainable_layers": 1}})
    with pytest.raises(ValueError, match="layer_weights"):
        Config().override(
            {"student": {"speaker_norm": True, "trainable_layers": 0, "layer_weights": True}}
        )


def _speaker_cfg(prepared, **student):  # noqa: F811
    return prepared["config"].override(
        {
            "seeds": [0],
            "student": {
                "trainable_layers": 0,
                "speaker_norm": True,
                "pooling": "conv_mean",
                "pooled_norm": True,
                "optim": {"epochs": 1},
                **student,
            },
        }
    )


def test_distill_with_speaker_norm_uses_each_test_speakers_statistics(prepared, tmp_path):  # noqa: F811
    """The saved model holds the training clips' global statistics; its test predictions are
    the model run with each test speaker's normaliser (from that speaker's test clips), and
    differ from what the global statistics alone give."""
    from emodistill.models.student_folder import load_student
    from emodistill.runs.layout import student_dir
    from emodistill.training.data import EVAL_MAX_SECONDS, DistillDataset
    from emodistill.training.distill import distill
    from emodistill.training.predictions import predict
    from emodistill.training.speaker_data import prefix_clip_means, whole_clip_means

    m, fold = _fold(prepared)
    cfg = _speaker_cfg(prepared)
    run = fresh_run(prepared, tmp_path / "run")
    result = distill(m, fold, cfg, run, "no_teachers", progress=False)
    assert result["speaker_norm"] is True
    model, config = load_student(student_dir(run, fold.id, "no_teachers"))
    assert config["heads"]["speaker_norm"] is True

    from emodistill.corpora.splits import FoldSplit

    train, val, test = FoldSplit.of(m, fold).parts
    from emodistill.features.prefix_cache import PrefixCache
    from emodistill.training.distill import prefix_cache_dir

    cache_dir = prefix_cache_dir(m, run)
    prefix = PrefixCache(model, train + val, cache_dir, max_seconds=0.4, progress=False)
    train_means = np.stack(list(prefix_clip_means(prefix, train).values()))
    glob = model.global_stats()
    assert np.allclose(glob.mean, train_means.mean(0), atol=1e-5)
    assert np.allclose(glob.var, train_means.var(0), atol=1e-5)

    test_means = whole_clip_means(model, test, cache_dir, progress=False)
    norms = speaker_normalisers(test_means, {u.id: u.speaker for u in test}, glob)
    index = {lab: i for i, lab in enumerate(m.labels)}
    ds = DistillDataset(test, index, EVAL_MAX_SECONDS, False, speaker_norms=norms)
    _, probs = predict(model, ds, 4)
    assert np.abs(probs - np.asarray(result["probabilities"])).max() < 1e-5
    _, global_probs = predict(model, DistillDataset(test, index, EVAL_MAX_SECONDS, False), 4)
    assert np.abs(global_probs - probs).max() > 1e-4


def test_a_speaker_normalised_report_says_so_at_the_top():
    from emodistill.evaluation.report import SPEAKER_NORM_NOTE, aggregate_runs, results_markdown

    pred = {"y_true": [0, 1, 1, 0], "y_pred": [0, 1, 0, 0]}
    results = aggregate_runs({("g1", 0): pred}, ["a", "b"])
    assert "Speaker-normalised" not in results_markdown(results, variant="no_teachers")
    results["speaker_norm"] = True
    text = results_markdown(results, variant="no_teachers")
    assert text.splitlines()[2] == SPEAKER_NORM_NOTE


def test_statistics_from_given_labels_only(prepared, tmp_path):  # noqa: F811
    """`speaker_stats_labels`: each speaker's statistics come from their clips of those labels
    (training speakers from training clips, test speakers from test clips) and are applied to
    all of their clips."""
    from emodistill.corpora.splits import FoldSplit
    from emodistill.models.speaker_stats import SpeakerStats, normaliser
    from emodistill.models.student_folder import load_student
    from emodistill.runs.layout import student_dir
    from emodistill.training.data import EVAL_MAX_SECONDS, DistillDataset
    from emodistill.training.distill import distill, prefix_cache_dir
    from emodistill.training.predictions import predict
    from emodistill.training.speaker_data import whole_clip_means

    m, fold = _fold(prepared)
    cfg = _speaker_cfg(prepared, speaker_stats_labels=["neutral", "sad"])
    run = fresh_run(prepared, tmp_path / "run")
    result = distill(m, fold, cfg, run, "no_teachers", progress=False)
    model, _ = load_student(student_dir(run, fold.id, "no_teachers"))
    _, _, test = FoldSplit.of(m, fold).parts
    calm = [u for u in test if u.label in ("neutral", "sad")]
    assert 0 < len(calm) < len(test)
    means = whole_clip_means(model, calm, prefix_cache_dir(m, run), progress=False)
    stats: dict[str, SpeakerStats] = {}
    for u in calm:
        stats.setdefault(u.speaker, SpeakerStats()).add(means[u.id])
    glob = model.global_stats()
    norms = {u.id: normaliser(stats[u.speaker], glob) for u in test}
    index = {lab: i for i, lab in enumerate(m.labels)}
    ds = DistillDataset(test, index, EVAL_MAX_SECONDS, False, speaker_norms=norms)
    _, probs = predict(model, ds, 4)
    assert np.abs(probs - np.asarray(result["probabilities"])).max() < 1e-5
    with pytest.raises(ValueError, match="no training clip"):
        bad = _speaker_cfg(prepared, speaker_stats_labels=["bored"])
        distill(m, fold, bad, fresh_run(prepared, tmp_path / "r2"), "no_teachers", progress=False)
