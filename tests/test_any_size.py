"""Any split size trains: k * batch + 1 clips, a class or speaker with one clip, a validation
split of one clip (issue 26). BatchNorm in training refuses a batch of one clip; the training
loaders merge such a last batch into the one before it (training/sampling.py).

The property tests draw corpus size, batch size, classes and fold scheme (hypothesis) and run
the real stage functions on tiny models; the regression tests pin the two crashes users hit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_distill import fresh_run, prepared, tiny_config  # noqa: F401 - shared fixtures
from test_teachers import FOLD, lld_features, text_manifest
from test_teachers import tiny_config as teacher_config

from emodistill.config import Config
from emodistill.corpora.manifest import Manifest, Utterance
from emodistill.corpora.splits import fold_utterances, make_folds
from emodistill.training.data import UtteranceBatchSampler
from emodistill.training.sampling import MergingBatchSampler, cut_batches, num_batches
from emodistill.training.teachers import train_teacher

FAST = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --------------------------------------------------------------------------- the batching rule


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 60), bs=st.integers(1, 17))
def test_cut_batches_keeps_every_clip_once_and_never_makes_a_batch_of_one(n, bs):
    batches = cut_batches(range(n), bs)
    assert [i for b in batches for i in b] == list(range(n))
    assert len(batches) == num_batches(n, bs)
    assert all(1 <= len(b) <= bs + 1 for b in batches)
    if bs > 1 and n > 1:
        assert min(len(b) for b in batches) >= 2


@settings(max_examples=150, **FAST)
@given(
    lengths=st.lists(st.integers(1, 500), min_size=2, max_size=70),
    bs=st.integers(2, 9),
    bucket=st.integers(1, 4),
    world=st.integers(1, 3),
    epoch=st.integers(0, 3),
)
def test_length_grouped_batches_never_hold_one_clip_on_any_rank(
    lengths, bs, bucket, world, epoch, monkeypatch
):
    """The student's sampler: pools and batches both merge a last one of one; every rank of a
    DDP job gets the same number of batches, all of at least two clips; no clip is lost."""
    import emodistill.training.data as data

    seen: list[int] = []
    counts = []
    for rank in range(world):
        monkeypatch.setattr(data, "_world", lambda r=rank: (r, world))
        sampler = UtteranceBatchSampler(lengths, bs, shuffle=True, seed=3, bucket_batches=bucket)
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        counts.append(len(batches))
        assert all(len(b) >= 2 for b in batches)
        seen += [i for b in batches for i, _, valid in b if valid]
    assert len(set(counts)) == 1
    assert set(seen) == set(range(len(lengths)))


def test_merging_batch_sampler_takes_a_distributed_sampler():
    """Lightning re-instantiates it with its DistributedSampler (sampler, batch_size,
    drop_last): each rank's share is cut by the same rule."""
    from torch.utils.data import DistributedSampler

    data = list(range(13))
    for rank in range(2):
        dist = DistributedSampler(data, num_replicas=2, rank=rank, shuffle=True, seed=0)
        sampler = MergingBatchSampler(dist, batch_size=3, drop_last=False)
        batches = list(sampler)  # 7 clips per rank: 3 + 4
        assert [len(b) for b in batches] == [3, 4] and len(sampler) == 2


# --------------------------------------------------------------------------- regressions


def test_functionals_teacher_trains_on_k_batches_plus_one(tmp_path):
    """The issue's crash: 8 training clips, batch 7 -> a last batch of one clip."""
    manifest = text_manifest(tmp_path, per_label=1)
    assert len(fold_utterances(manifest, FOLD)[0]) == 8
    cfg = teacher_config(epochs=2).override(
        {"prosodic.arch": "functionals", "prosodic.optim.batch_size": 7}
    )
    result = train_teacher(
        "prosodic", manifest, FOLD, cfg, tmp_path / "run" / "spk0", features=lld_features(manifest)
    )
    assert result["global_step"] == 2  # one batch of 8 per epoch, none of 1
    assert 0.0 <= result["ua"] <= 1.0


def test_pooled_norm_student_trains_on_k_batches_plus_one(prepared, tmp_path):  # noqa: F811
    """The student's ``pooled_norm`` (BatchNorm1d) with a training split of 8 and batch 7."""
    from emodistill.corpora.manifest import load_manifest
    from emodistill.corpora.splits import config_folds
    from emodistill.training.distill import distill

    manifest = load_manifest(prepared["manifest"])
    cfg = prepared["config"].override(
        {"student.pooled_norm": True, "student.optim.batch_size": 7, "student.optim.epochs": 1}
    )
    fold = config_folds(manifest, cfg.folds)[0]
    assert len(fold_utterances(manifest, fold)[0]) == 8
    run = fresh_run(prepared, tmp_path / "run")
    result = distill(manifest, fold, cfg, run, "full", progress=False)
    assert result["epochs_run"] >= 0 and 0.0 <= result["metrics"]["ua"] <= 1.0


def test_a_training_split_of_one_clip_is_refused_by_name(tmp_path):
    manifest = text_manifest(tmp_path, per_label=1)
    keep = {u.id for u in manifest.utterances if u.speaker != "spk3"}
    keep.discard("spk2_happy_0")
    for label in ("angry", "sad"):
        keep.discard(f"spk2_{label}_0")
    small = Manifest(
        manifest.path, [u for u in manifest.utterances if u.id in keep], manifest.labels
    )
    cfg = teacher_config(epochs=1).override({"prosodic.arch": "functionals"})
    with pytest.raises(ValueError, match="fold spk0's prosodic teacher: the training split"):
        train_teacher(
            "prosodic", small, FOLD, cfg, tmp_path / "run" / "spk0", features=lld_features(small)
        )


# --------------------------------------------------------------------------- every stage


LABELS = ["neutral", "happy", "angry", "sad"]
WORDS = {
    "neutral": "the meeting is at noon today",
    "happy": "wonderful great news i love it",
    "angry": "this is outrageous stop it now",
    "sad": "i miss her so much lonely",
}


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    from factories import tiny_bert_folder, tiny_hubert_folder

    root = tmp_path_factory.mktemp("any-size-models")
    vocab = sorted({w for text in WORDS.values() for w in text.split()})
    return {
        "bert": tiny_bert_folder(root / "bert", vocab, layers=1, intermediate_size=37),
        "hubert": tiny_hubert_folder(root / "hubert"),
    }


def _corpus(root: Path, counts: list[list[int]], n_classes: int) -> Manifest:
    """``counts[s][c]`` clips of class c by speaker s (0.15-0.45 s of noisy tones); speakers
    2k and 2k+1 share session k, so leave-one-speaker-out validates on the session partner."""
    import soundfile as sf

    from emodistill.corpora.manifest import load_manifest, write_manifest

    rng = np.random.default_rng(len(counts))
    utts = []
    for s, row in enumerate(counts):
        for c, n in enumerate(row[:n_classes]):
            for k in range(n):
                uid = f"s{s}_{LABELS[c]}_{k}"
                x = 0.3 * np.sin(np.arange(int(16000 * rng.uniform(0.15, 0.45))) * 0.05 * (c + 1))
                x = (x + 0.01 * rng.standard_normal(x.size)).astype(np.float32)
                path = root / "wav" / f"{uid}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, x, 16000)
                utts.append(
                    Utterance(uid, path, LABELS[c], f"s{s}", f"ses{s // 2}", WORDS[LABELS[c]])
                )
    write_manifest(utts, root / "manifest.csv")
    return load_manifest(root / "manifest.csv", labels=LABELS[:n_classes])


def _stage_config(models: dict[str, Path], scheme: str, bs: int, arch: str, norm: bool) -> Config:
    return tiny_config(models["hubert"], models["bert"], epochs=1).override(
        {
            "folds": {"scheme": scheme, "groups": 3, "val_speakers": 1, "seed": 0},
            "linguistic.optim": {"epochs": 1, "batch_size": bs},
            "prosodic": {"arch": arch, "optim": {"epochs": 1, "batch_size": bs}},
            "student.pooled_norm": norm,
            "student.optim": {"epochs": 1, "batch_size": bs},
        }
    )


SCHEMES = st.sampled_from(["speaker", "session", "groups"])
COUNTS = st.lists(st.lists(st.integers(0, 3), min_size=4, max_size=4), min_size=3, max_size=5)


@settings(max_examples=8, **FAST)
@given(
    counts=COUNTS,
    n_classes=st.integers(2, 4),
    bs=st.integers(2, 5),
    scheme=SCHEMES,
    arch=st.sampled_from(["functionals", "resnet"]),
    norm=st.booleans(),
    pick=st.integers(0, 4),
)
@example(  # k*batch+1 training clips (3*3+1), a class with one clip (sad), a speaker and a
    # validation split of one clip (s1); the functionals T_P and pooled_norm both hold BatchNorm
    counts=[[1, 1, 1, 0], [0, 0, 1, 0], [2, 2, 2, 0], [1, 1, 1, 1]],
    n_classes=4,
    bs=3,
    scheme="speaker",
    arch="functionals",
    norm=True,
    pick=0,
)
@example(  # the same with the ResNet T_P and no pooled_norm; 2*4+1 training clips
    counts=[[1, 1, 1, 0], [1, 0, 0, 0], [2, 1, 1, 0], [1, 2, 1, 1]],
    n_classes=4,
    bs=4,
    scheme="speaker",
    arch="resnet",
    norm=False,
    pick=0,
)
def test_every_stage_trains_on_any_split(
    tiny_models, tmp_path_factory, counts, n_classes, bs, scheme, arch, norm, pick
):
    """T_L, T_P (either arch), the student (with or without pooled_norm), the probe and the
    functionals baseline's classifier on a drawn corpus, batch size and fold."""
    from hypothesis import assume

    from emodistill.evaluation.probe import probe_layers
    from emodistill.training.distill import distill

    assume(sum(sum(row[:n_classes]) > 0 for row in counts) >= 3)  # speakers with clips
    root = tmp_path_factory.mktemp("any-size")
    manifest = _corpus(root, counts, n_classes)
    cfg = _stage_config(tiny_models, scheme, bs, arch, norm)
    try:
        folds = make_folds(manifest, scheme, groups=3, val_speakers=1, seed=0)
    except ValueError:
        assume(False)  # too few speakers or sessions for the scheme: refused by name
    fold = folds[pick % len(folds)]
    train, val, test = fold_utterances(manifest, fold)
    assume(len(train) >= 2 and val and test)
    run = root / "run"
    features = lld_features(manifest)
    for kind in ("linguistic", "prosodic"):
        res = train_teacher(kind, manifest, fold, cfg, run / fold.id, features=features)
        assert res["global_step"] == num_batches(len(train), bs)
    result = distill(manifest, fold, cfg, run, "full", progress=False)
    assert len(result["y_pred"]) == len(test)
    ids = [u.id for u in manifest.utterances]
    pooled = np.random.default_rng(0).normal(size=(len(ids), 2, 4))
    probe = probe_layers(manifest, [fold], pooled, ids)
    assert 0.0 <= probe["layers"][0]["ua"][fold.id] <= 1.0
