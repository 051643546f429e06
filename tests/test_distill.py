"""Distillation of one fold on a tiny corpus with tiny random models (no hub, no network).

The helpers here (corpus, tiny encoders, tiny config, prepared run folder) are imported by
``test_cv.py`` and ``test_ddp.py`` too.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from factories import tiny_bert_folder, tiny_hubert_folder

from emodistill.config import Config
from emodistill.corpora.manifest import Utterance, load_manifest, write_manifest

LABELS = ["neutral", "happy", "angry", "sad"]


@contextlib.contextmanager
def one_thread():
    """Tiny models on a busy shared CPU: one intra-op thread is 10-100x faster than two (the
    threads spin-wait for each other when other processes hold the cores)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


# Label -> (pitch Hz, amplitude, words): emotion is in the prosody and in the words.
_STYLE = {
    "neutral": (140.0, 0.25, "the meeting is at noon today"),
    "happy": (260.0, 0.35, "wonderful great news i love it"),
    "angry": (200.0, 0.7, "this is outrageous stop it now"),
    "sad": (100.0, 0.12, "i miss her so much lonely"),
}
_VOCAB = sorted({w for *_, text in _STYLE.values() for w in text.split()})


def make_corpus(root: Path, speakers: int = 4, per_label: int = 2, seed: int = 0) -> Path:
    """Numpy-synthesised clips (0.4-0.9 s) with transcripts; returns the manifest path."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    utts = []
    for s in range(speakers):
        spk = f"spk{s}"
        base = 0.85 + 0.1 * s
        for label in LABELS:
            f0, amp, text = _STYLE[label]
            for k in range(per_label):
                n = int(16000 * rng.uniform(0.4, 0.9))
                t = np.arange(n) / 16000
                f = f0 * base * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))
                x = amp * np.sin(2 * np.pi * np.cumsum(f) / 16000)
                x = x + 0.3 * amp * np.sin(4 * np.pi * np.cumsum(f) / 16000)
                x = (x + 0.01 * rng.normal(size=n)).astype(np.float32)
                uid = f"{spk}_{label}_{k}"
                path = root / "wav" / f"{uid}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, x, 16000, subtype="PCM_16")
                utts.append(Utterance(uid, path.absolute(), label, spk, f"ses{s // 2}", text))
    manifest = root / "manifest.csv"
    write_manifest(utts, manifest)
    return manifest


def tiny_hubert(path: Path) -> Path:
    """A tiny random HuBERT saved as a transformers folder (stride 80: 200 frames/s)."""
    return tiny_hubert_folder(path)


def tiny_bert(path: Path) -> Path:
    """A tiny random BERT + word-level tokenizer over the corpus vocabulary."""
    return tiny_bert_folder(path, _VOCAB, layers=1, intermediate_size=37, max_positions=32)


def tiny_config(encoder: Path, bert: Path, epochs: int = 2, **updates) -> Config:
    """The whole pipeline at toy size: 2 speaker-group folds, 2 epochs everywhere, CPU."""
    cfg = Config(name="tiny").override(
        {
            "folds": {"scheme": "groups", "groups": 2, "val_speakers": 1, "seed": 0},
            "linguistic": {
                "model": str(bert),
                "max_length": 16,
                "optim": {"lr": 1e-3, "epochs": 2, "batch_size": 8, "patience": 0},
            },
            "prosodic": {
                "channels": [4, 8],
                "blocks": [1, 1],
                "embedding_dim": 16,
                "max_frames": 200,
                "optim": {"lr": 1e-3, "epochs": 2, "batch_size": 8, "patience": 0},
            },
            "student": {
                "encoder": str(encoder),
                "projection_hidden": 16,
                "classifier_hidden": 16,
                "max_seconds": 0.4,
                "optim": {"lr": 2e-3, "epochs": epochs, "batch_size": 4, "patience": 0},
            },
            "trainer": {"accelerator": "cpu", "devices": "1", "log_every_n_steps": 1},
        }
    )
    return cfg.override(updates) if updates else cfg


def prepare(base: Path) -> dict:
    """Corpus, tiny models, config, and a run folder whose teachers are trained (both folds).

    Made once per test session under ``base`` (test modules that import the ``prepared``
    fixture share it through the ``done`` marker instead of training the teachers again).
    """
    from emodistill.training.teachers import train_teachers

    root = base / "emodistill-distill-prepared"
    manifest = root / "corpus" / "manifest.csv"
    run = root / "teachers_run"
    if (root / "done").is_file():
        cfg = Config.from_dict(json.loads((root / "config.json").read_text()))
    else:
        shutil.rmtree(root, ignore_errors=True)
        with one_thread():
            make_corpus(root / "corpus")
            cfg = tiny_config(tiny_hubert(root / "hubert"), tiny_bert(root / "bert"))
            train_teachers(manifest, run, config=cfg, progress=False)
        cfg.save(root / "config.json")
        (root / "done").write_text("ok\n")
    return {"root": root, "manifest": manifest, "config": cfg, "teachers_run": run}


@pytest.fixture(scope="session")
def prepared(tmp_path_factory):
    return prepare(tmp_path_factory.getbasetemp())


def reference_run(prepared: dict) -> Path:
    """An uninterrupted cross-validation of ``prepared`` made through the CLI the way array jobs
    run it (``cv --folds g1``, then ``cv --folds g2``); made once per session."""
    from typer.testing import CliRunner

    from emodistill.cli.app import app

    run = prepared["root"] / "reference_run"
    if (run / "done").is_file():
        return run
    shutil.rmtree(run, ignore_errors=True)
    fresh_run(prepared, run)
    cfg_file = prepared["root"] / "tiny.yaml"
    cfg_file.write_text(yaml.safe_dump(prepared["config"].to_dict()))
    base = ["cv", str(prepared["manifest"]), "--out", str(run), "--config", str(cfg_file)]
    for fold in ("g1", "g2"):
        with one_thread():
            result = CliRunner().invoke(app, [*base, "--folds", fold])
        assert result.exit_code == 0, result.output
        shutil.copy(run / "results.json", run / f"results_after_{fold}.json")
        shutil.copy(run / "report.md", run / f"report_after_{fold}.md")
    (run / "done").write_text("ok\n")
    return run


@pytest.fixture(scope="session")
def reference(prepared):
    return reference_run(prepared)


def fresh_run(prepared, dest: Path) -> Path:
    """A new run folder holding copies of the prepared teachers (nothing else)."""
    for fold_dir in sorted(p for p in prepared["teachers_run"].iterdir() if p.is_dir()):
        if (fold_dir / "teachers").is_dir():
            shutil.copytree(fold_dir / "teachers", dest / fold_dir.name / "teachers")
    return dest


def _fold(prepared, fold_id="g1"):
    from emodistill.corpora.splits import make_folds, select_folds

    m = load_manifest(prepared["manifest"])
    f = prepared["config"].folds
    folds = make_folds(m, f.scheme, f.groups, f.val_speakers, f.seed)
    return m, select_folds(folds, fold_id)[0]


# --------------------------------------------------------------------------- unit pieces


def test_batch_sampler_groups_lengths_and_is_epoch_seeded():
    from emodistill.training.data import UtteranceBatchSampler

    lengths = np.arange(1, 41) * 100
    s = UtteranceBatchSampler(lengths, batch_size=4, shuffle=True, seed=3, bucket_batches=10)
    s.sampler.set_epoch(0)
    first = [[i for i, _, _ in b] for b in s]
    again = [[i for i, _, _ in b] for b in s]
    s.sampler.set_epoch(1)
    other = [[i for i, _, _ in b] for b in s]
    assert first == again and first != other
    assert sorted(i for b in first for i in b) == list(range(40))
    # One pool of 40: batches are runs of neighbouring lengths.
    assert all(max(lengths[b]) - min(lengths[b]) == 300 for b in first)
    evals = list(UtteranceBatchSampler(lengths, 4, shuffle=False))
    assert [i for b in evals for i, _, valid in b if valid] == list(range(39, -1, -1))


def test_random_batches_change_their_clips_every_epoch():
    """The student's default (``group_by_length: false``): one pool holding the whole split
    made the same length-sorted batches every epoch (only their order changed)."""
    from emodistill.training.data import UtteranceBatchSampler

    lengths = np.arange(1, 41) * 100

    def batch_sets(group: bool, epoch: int) -> set[frozenset[int]]:
        s = UtteranceBatchSampler(lengths, 4, shuffle=True, seed=3, group_by_length=group)
        s.sampler.set_epoch(epoch)
        return {frozenset(i for i, _, _ in b) for b in s}

    assert batch_sets(True, 0) == batch_sets(True, 1)  # the defect: same clips together
    first, other = batch_sets(False, 0), batch_sets(False, 1)
    assert first != other
    assert sorted(i for b in first for i in b) == list(range(40))
    # not sorted by length: some batch spans far more than its neighbours' 300
    assert any(max(lengths[list(b)]) - min(lengths[list(b)]) > 300 for b in first)


def test_collate_pads_and_returns_lengths():
    from emodistill.training.data import collate_batch

    items = [
        {
            "wav": torch.ones(n),
            "label": n % 4,
            "valid": True,
            "index": k,
            "teacher_logits": {"prosodic": torch.zeros(4)},
            "teacher_emb": {"prosodic": torch.ones(3)},
        }
        for k, n in enumerate((5, 9, 2))
    ]
    b = collate_batch(items)
    assert b["wav"].shape == (3, 9) and b["lengths"].tolist() == [5, 9, 2]
    assert b["wav"][0, 5:].abs().sum() == 0 and b["wav"][2, :2].sum() == 2
    assert b["teacher_logits"]["prosodic"].shape == (3, 4)
    assert b["teacher_emb"]["prosodic"].shape == (3, 3)


def test_dataset_crops_randomly_in_training_and_centre_in_eval(prepared):
    from emodistill.training.data import DistillDataset

    m, fold = _fold(prepared)
    utts = m.utterances[:6]
    idx = {lab: i for i, lab in enumerate(m.labels)}
    train = DistillDataset(utts, idx, 0.3, train=True, seed=1)
    ev = DistillDataset(utts, idx, 0.3, train=False)
    a = train[(0, 0, True)]["wav"]
    assert a.shape == (4800,)
    assert torch.equal(a, train[(0, 0, True)]["wav"])  # same (seed, epoch, index): same crop
    assert not torch.equal(a, train[(0, 1, True)]["wav"])  # next epoch: another crop
    full = torch.from_numpy(np.asarray(__import__("soundfile").read(utts[0].path)[0], np.float32))
    start = (len(full) - 4800) // 2
    assert torch.allclose(ev[0]["wav"], full[start : start + 4800], atol=1e-4)


def test_variants_are_the_papers_eight():
    from emodistill.config import DistillConfig
    from emodistill.config.variants import VARIANTS, variant_distill_config

    assert list(VARIANTS) == [
        "full",
        "no_logit_kd",
        "no_embedding_kd",
        "no_prosodic_teacher",
        "no_linguistic_teacher",
        "no_teachers",
        "prosodic_teacher_only",
        "linguistic_teacher_only",
    ]
    plain = variant_distill_config(DistillConfig(), "no_teachers")
    assert not plain.use_linguistic and not plain.use_prosodic and plain.alpha == 1.0
    assert VARIANTS["linguistic_teacher_only"].teacher == "linguistic"


# --------------------------------------------------------------------------- training


def test_distillation_steps_reduce_the_loss(prepared):
    """A few optimiser steps on one fixed batch with every loss term on: the loss falls."""
    from emodistill.models.student import build_student
    from emodistill.training.data import DistillDataset, collate_batch
    from emodistill.training.module import StudentModule
    from emodistill.training.teacher_cache import load_fold_teachers as _load_teachers

    m, fold = _fold(prepared)
    cfg = prepared["config"]
    teachers = _load_teachers(prepared["teachers_run"] / fold.id, ["linguistic", "prosodic"])
    idx = {lab: i for i, lab in enumerate(m.labels)}
    ds = DistillDataset(m.by_speakers(fold.train_speakers), idx, 0.6, True, teachers)
    batch = collate_batch([ds[i] for i in range(8)])
    torch.manual_seed(0)
    student = build_student(cfg.student, 4, 32, 16)
    module = StudentModule(student, cfg.distill, cfg.student.optim, 4)
    opt = torch.optim.AdamW(student.parameters(), lr=3e-3)
    losses, terms = [], None
    student.train()
    for _ in range(10):
        out = module.loss(batch)
        opt.zero_grad()
        out.total.backward()
        opt.step()
        losses.append(float(out.total.detach()))
        terms = terms or {k: float(v) for k, v in out.terms.items()}
    assert all(terms[k] > 0 for k in ("ce", "kd_linguistic", "kd_prosodic", "embedding"))
    assert losses[-1] < 0.7 * losses[0], losses


def test_distill_writes_model_folder_and_predictions(prepared, reference, tmp_path):
    from emodistill.models.student_folder import load_student
    from emodistill.runs.layout import predictions_path, student_dir
    from emodistill.training.data import EVAL_MAX_SECONDS, DistillDataset
    from emodistill.training.distill import distill
    from emodistill.training.predictions import predict

    run = reference  # made by distill() through `emodistill cv`
    m, fold = _fold(prepared)
    sdir = student_dir(run, fold.id)
    assert sdir == run / fold.id / "student"
    model, config = load_student(sdir)
    assert config["labels"] == LABELS and config["fold"] == fold.id
    assert config["training_config"]["student"]["encoder"] == prepared["config"].student.encoder
    pred = json.loads(predictions_path(run, fold.id).read_text())
    test_ids = [u.id for u in m.by_speakers(fold.test_speakers)]
    assert pred["ids"] == test_ids and len(pred["y_pred"]) == len(test_ids)
    assert np.allclose(np.sum(pred["probabilities"], axis=1), 1.0, atol=1e-4)
    assert pred["val_speakers"] == list(fold.val_speakers)
    assert not (run / fold.id / "student_train" / "checkpoints").exists()  # cleaned up
    assert (run / fold.id / "student_train" / "logs" / "metrics.csv").is_file()
    # The saved model reproduces the saved test probabilities.
    ds = DistillDataset(m.by_speakers(fold.test_speakers), {lab: i for i, lab in enumerate(LABELS)},
                        EVAL_MAX_SECONDS, False)  # fmt: skip
    _, probs = predict(model, ds, 4)
    assert np.allclose(probs, pred["probabilities"], atol=1e-4)
    # Re-running finds the predictions and does not train again.
    again = distill(m, fold, prepared["config"], run, progress=False)
    assert again["y_pred"] == pred["y_pred"]
    # ... but a different config for the same folder is refused, naming what differs.
    with pytest.raises(ValueError, match="distill.alpha"):
        distill(m, fold, prepared["config"].override({"distill.alpha": 0.5}), run)


def test_teacher_only_variant_uses_cached_teacher_predictions(prepared, tmp_path):
    from emodistill.training.distill import distill
    from emodistill.training.teacher_cache import load_teacher_outputs

    run = fresh_run(prepared, tmp_path / "run")
    m, fold = _fold(prepared)
    res = distill(m, fold, prepared["config"], run, variant="prosodic_teacher_only")
    cache = load_teacher_outputs(run / fold.id, "prosodic")
    ids = [u.id for u in m.by_speakers(fold.test_speakers)]
    assert res["y_pred"] == np.asarray(cache.logits_of(ids)).argmax(1).tolist()
    assert (run / fold.id / "variants" / "prosodic_teacher_only" / "predictions.json").is_file()
    # The teacher's predictions do not depend on the student's settings: reused, not refused.
    other = prepared["config"].override({"student.optim.epochs": 5})
    assert distill(m, fold, other, run, variant="prosodic_teacher_only") == res


def test_teacher_outputs_handed_in_memory_are_not_read_back(prepared, tmp_path):
    """distill(teachers=...) uses the outputs it is given (train_teachers(outputs=...)): the
    fold's cache on disk is not read; the embedding widths come from them too, and without
    them from the cache's meta.json alone."""
    from emodistill.runs.layout import teacher_outputs_dir
    from emodistill.training.distill import distill
    from emodistill.training.teacher_cache import (
        TeacherOutputs,
        configured_embedding_dims,
        embedding_dims,
        load_teacher_outputs,
    )

    run = fresh_run(prepared, tmp_path / "run")
    m, fold = _fold(prepared)
    cfg = prepared["config"]
    outputs = {}
    for kind in ("linguistic", "prosodic"):
        c = load_teacher_outputs(run / fold.id, kind)
        outputs[kind] = TeacherOutputs(c.ids, np.array(c.logits), np.array(c.embeddings), c.meta)
    widths = tuple(outputs[k].embeddings.shape[1] for k in ("linguistic", "prosodic"))
    hidden = cfg.student.projection_hidden
    assert embedding_dims(run / fold.id, {}, hidden) == widths  # from meta.json
    for kind in ("linguistic", "prosodic"):
        shutil.rmtree(teacher_outputs_dir(run / fold.id, kind))
    assert embedding_dims(run / fold.id, outputs, hidden) == widths
    assert embedding_dims(run / fold.id, {}, hidden) == (hidden, hidden)  # nothing cached
    # ... unless the config says what its teachers will embed in: the same widths, so a plain
    # student trained before its fold's teachers is the network trained after them
    configured = configured_embedding_dims(cfg)
    assert embedding_dims(run / fold.id, {}, hidden, configured) == widths
    assert configured_embedding_dims(cfg.override({"linguistic.model": "no/such-model"})) == {
        "linguistic": None,  # not on this machine: the caller falls back to the default
        "prosodic": widths[1],
    }
    res = distill(m, fold, cfg, run, variant="prosodic_teacher_only", teachers=outputs)
    ids = [u.id for u in m.by_speakers(fold.test_speakers)]
    assert res["y_pred"] == outputs["prosodic"].logits_of(ids).argmax(1).tolist()
    with pytest.raises(FileNotFoundError, match="run train-teachers"):  # not handed: from disk
        distill(m, fold, cfg, tmp_path / "other", variant="prosodic_teacher_only")


def test_clips_too_short_for_features_are_left_out_of_every_variant(prepared, tmp_path, caplog):
    """A 40 ms clip has no eGeMAPS features (no prosodic-teacher output): EmoDistill and plain
    fine-tuning both leave it out, say so, and stay paired on the same utterances."""
    import soundfile as sf

    from emodistill.corpora.splits import fold_utterances, make_folds, select_folds
    from emodistill.training.distill import distill
    from emodistill.training.teachers import train_teachers

    m0 = load_manifest(prepared["manifest"])
    cfg = prepared["config"]
    folds = make_folds(m0, cfg.folds.scheme, cfg.folds.groups, cfg.folds.val_speakers, 0)
    fold = select_folds(folds, "g1")[0]
    speaker = fold.train_speakers[0]
    short = tmp_path / "short.wav"
    sf.write(short, 0.3 * np.sin(np.arange(640) / 5.0), 16000, subtype="PCM_16")  # 40 ms
    extra = Utterance("short_one", short.absolute(), "angry", speaker, None, "stop it now")
    manifest = tmp_path / "manifest.csv"
    write_manifest([*m0.utterances, extra], manifest)
    m = load_manifest(manifest)
    run = tmp_path / "run"
    with one_thread():
        train_teachers(manifest, run, config=cfg, folds="g1", progress=False)
        full = distill(m, fold, cfg, run, "full", progress=False)
        plain = distill(m, fold, cfg, run, "no_teachers", progress=False)
    # said through the library's logger (the CLI shows it on stderr)
    assert "left out 1 utterance(s) shorter than 60 ms (training 1, validation 0, test 0)" in (
        caplog.text
    )
    test_ids = [u.id for u in fold_utterances(m, fold)[2]]
    assert full["ids"] == plain["ids"] == test_ids
    assert "short_one" not in full["ids"]


def test_distill_epochs_train_a_taught_student_longer_than_a_plain_one(prepared, tmp_path):
    """`distill.epochs`: a student with teachers trains that many epochs (its model folder
    says so); the plain student keeps `student.optim.epochs`."""
    from emodistill.models.student_folder import load_student
    from emodistill.runs.layout import predictions_path, student_dir
    from emodistill.training.distill import distill

    run = fresh_run(prepared, tmp_path / "run")
    m, fold = _fold(prepared)
    cfg = prepared["config"].override({"distill.epochs": 3})
    assert cfg.student.optim.epochs == 2
    with one_thread():
        for variant, epochs in (("full", 3), ("no_teachers", 2)):
            distill(m, fold, cfg, run, variant=variant, progress=False)
            pred = json.loads(predictions_path(run, fold.id, variant).read_text())
            assert pred["epochs_run"] == epochs
            _, config = load_student(student_dir(run, fold.id, variant))
            assert config["training_config"]["student"]["optim"]["epochs"] == epochs
            assert config["training_config"]["distill"]["epochs"] == 3
    with pytest.raises(ValueError, match="distill.epochs"):
        cfg.override({"distill.epochs": 0})
