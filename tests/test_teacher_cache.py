"""Teacher-output cache: equals fresh forward passes, keyed on the teacher and the data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from factories import tiny_bert_folder

from emodistill.corpora.manifest import Utterance
from emodistill.models.linguistic import LinguisticTeacher, MissingTranscriptsError
from emodistill.models.prosodic import ProsodicNetConfig, ProsodicResNet
from emodistill.runs.layout import teacher_dir
from emodistill.runs.layout import teacher_outputs_dir as outputs_dir
from emodistill.training.teacher_cache import load_teacher_outputs, write_teacher_outputs

LABELS = ["neutral", "happy", "angry", "sad"]
WORDS = ["i", "am", "so", "glad", "mad", "sad", "calm", "today", "very"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def utterances(tmp_path: Path, n: int = 10) -> list[Utterance]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        words = rng.choice(WORDS, size=int(rng.integers(1, 8)))
        out.append(
            Utterance(
                id=f"u{i:02d}",
                path=tmp_path / f"u{i:02d}.wav",
                label=LABELS[i % 4],
                speaker=f"s{i % 3}",
                transcript=" ".join(words),
            )
        )
    return out


class ArrayFeatures:
    def __init__(self, arrays):
        self.arrays = arrays

    def __contains__(self, k):
        return k in self.arrays

    def __getitem__(self, k):
        return self.arrays[k]


def lld_features(utts, seed=0) -> ArrayFeatures:
    rng = np.random.default_rng(seed)
    return ArrayFeatures(
        {u.id: rng.normal(size=(int(rng.integers(5, 50)), 25)).astype(np.float32) for u in utts}
    )


def save_tiny_bert_teacher(fold_dir: Path) -> LinguisticTeacher:
    src = tiny_bert_folder(fold_dir.parent / "tiny-bert", WORDS)
    model = LinguisticTeacher.from_encoder(str(src), LABELS, max_length=16)
    model.save_pretrained(teacher_dir(fold_dir, "linguistic"))
    return model.eval()


def save_tiny_resnet_teacher(fold_dir: Path, seed: int = 0) -> ProsodicResNet:
    torch.manual_seed(seed)
    net = ProsodicResNet(
        ProsodicNetConfig(labels=LABELS, channels=[4, 8], blocks=[1, 1], embedding_dim=8)
    )
    net.set_normalization(torch.randn(25), torch.rand(25) + 0.5)
    net.train()
    net(torch.randn(4, 30, 25), torch.tensor([30, 20, 10, 5]))  # move BN running stats
    net.save_pretrained(teacher_dir(fold_dir, "prosodic"))
    return net.eval()


def test_linguistic_cache_equals_fresh_forward_passes(tmp_path):
    fold_dir = tmp_path / "run" / "f1"
    model = save_tiny_bert_teacher(fold_dir)
    utts = utterances(tmp_path)
    cached = write_teacher_outputs(fold_dir, "linguistic", utts, batch_size=3, progress=False)
    assert isinstance(cached.logits, np.memmap) and isinstance(cached.embeddings, np.memmap)
    assert cached.logits.shape == (10, 4) and cached.embeddings.shape == (10, 32)
    with torch.no_grad():
        for u in utts:  # one at a time: no padding at all
            logits, emb = model(**model.encode([u.transcript]))
            row = cached.index(u.id)
            assert np.abs(cached.logits[row] - logits[0].numpy()).max() < 1e-5
            assert np.abs(cached.embeddings[row] - emb[0].numpy()).max() < 1e-5
    again = load_teacher_outputs(fold_dir, "linguistic")
    assert again.ids == [u.id for u in utts]
    assert np.array_equal(again.rows(["u03", "u01"]), [3, 1])
    assert np.array_equal(again.logits_of(["u03"]), cached.logits[3:4])


def test_prosodic_cache_equals_fresh_forward_passes(tmp_path):
    fold_dir = tmp_path / "run" / "f1"
    net = save_tiny_resnet_teacher(fold_dir)
    utts = utterances(tmp_path)
    feats = lld_features(utts)
    cached = write_teacher_outputs(
        fold_dir, "prosodic", utts, features=feats, batch_size=4, progress=False
    )
    worst = 0.0
    with torch.no_grad():
        for u in utts:
            x = torch.from_numpy(feats[u.id])[None]
            logits, emb = net(x, torch.tensor([x.shape[1]]))
            row = cached.index(u.id)
            worst = max(
                worst,
                float(np.abs(cached.logits[row] - logits[0].numpy()).max()),
                float(np.abs(cached.embeddings[row] - emb[0].numpy()).max()),
            )
    print(f"max abs diff cache vs fresh: {worst:.2e}")
    assert worst < 1e-5
    meta = json.loads((outputs_dir(fold_dir, "prosodic") / "meta.json").read_text())
    assert meta["n"] == 10 and meta["labels"] == LABELS and meta["embedding_dim"] == 8


def test_cache_is_reused_and_recomputed_when_stale(tmp_path):
    fold_dir = tmp_path / "run" / "f1"
    save_tiny_resnet_teacher(fold_dir, seed=0)
    utts = utterances(tmp_path)
    feats = lld_features(utts)
    first = write_teacher_outputs(fold_dir, "prosodic", utts, features=feats, progress=False)
    logits_file = outputs_dir(fold_dir, "prosodic") / "logits.npy"
    stamp = os.stat(logits_file).st_mtime_ns
    # Same teacher, same data: read back, not recomputed.
    write_teacher_outputs(fold_dir, "prosodic", utts, features=feats, progress=False)
    assert os.stat(logits_file).st_mtime_ns == stamp
    # Retrained teacher (new weights): new key, recomputed.
    save_tiny_resnet_teacher(fold_dir, seed=1)
    second = write_teacher_outputs(fold_dir, "prosodic", utts, features=feats, progress=False)
    assert second.meta["key"] != first.meta["key"]
    assert not np.allclose(np.asarray(second.logits), np.asarray(first.logits))
    # Changed data (one utterance's features): recomputed too.
    feats.arrays["u00"] = feats.arrays["u00"] + 1.0
    third = write_teacher_outputs(fold_dir, "prosodic", utts, features=feats, progress=False)
    assert third.meta["key"] != second.meta["key"]


def test_linguistic_key_covers_transcripts(tmp_path):
    fold_dir = tmp_path / "run" / "f1"
    save_tiny_bert_teacher(fold_dir)
    utts = utterances(tmp_path, n=4)
    a = write_teacher_outputs(fold_dir, "linguistic", utts, progress=False)
    changed = [utts[0].__class__(**{**utts[0].__dict__, "transcript": "so very mad"}), *utts[1:]]
    b = write_teacher_outputs(fold_dir, "linguistic", changed, progress=False)
    assert a.meta["key"] != b.meta["key"]
    with pytest.raises(MissingTranscriptsError, match="corpus transcribe"):
        blank = [utts[0].__class__(**{**utts[0].__dict__, "transcript": ""})]
        write_teacher_outputs(fold_dir, "linguistic", blank, progress=False)


def test_missing_or_incomplete_cache_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-teachers"):
        load_teacher_outputs(tmp_path, "prosodic")
    with pytest.raises(ValueError, match="kind"):
        load_teacher_outputs(tmp_path, "acoustic")
    fold_dir = tmp_path / "run" / "f1"
    save_tiny_resnet_teacher(fold_dir)
    utts = utterances(tmp_path, n=3)
    out = write_teacher_outputs(
        fold_dir, "prosodic", utts, features=lld_features(utts), progress=False
    )
    with pytest.raises(KeyError, match="nope"):
        out.index("nope")
    # A cache whose arrays disagree with its ids is refused, not silently misread.
    (outputs_dir(fold_dir, "prosodic") / "ids.json").write_text(json.dumps(["u00"]))
    with pytest.raises(ValueError, match="inconsistent"):
        load_teacher_outputs(fold_dir, "prosodic")
