"""Teachers: a tiny random BERT and a tiny ResNet trained per fold through the real code paths."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from factories import tiny_bert_folder

from emodistill.config import Config
from emodistill.corpora.manifest import Manifest, Utterance
from emodistill.corpora.splits import Fold
from emodistill.models.linguistic import LinguisticTeacher, MissingTranscriptsError
from emodistill.runs.layout import teacher_dir
from emodistill.training.teacher_cache import load_teacher_outputs
from emodistill.training.teachers import train_teacher, train_teachers

LABELS = ["neutral", "happy", "angry", "sad"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: one intra-op thread is faster and does not fight other processes for cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


WORDS = {
    "neutral": ["calm", "fine", "okay"],
    "happy": ["glad", "great", "joy"],
    "angry": ["mad", "furious", "hate"],
    "sad": ["cry", "loss", "gloomy"],
}
FILLERS = ["i", "am", "so", "very", "today", "it", "is", "feel", "really"]


def make_tiny_bert(folder: Path) -> Path:
    """A random 2-layer BERT (hidden 32) + WordPiece tokenizer saved like a hub model."""
    # A handful of examples: no dropout needed.
    words = [*FILLERS, *(w for ws in WORDS.values() for w in ws)]
    return tiny_bert_folder(folder, words, dropout=0.0)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def sentence(label: str, i: int) -> str:
    filler = FILLERS[i % len(FILLERS)]
    return f"{filler} am so {WORDS[label][i % 3]} today"


def text_manifest(tmp_path: Path, per_label: int = 3, transcripts: bool = True) -> Manifest:
    """Four speakers; labels in the words. Audio paths are never opened by the linguistic path."""
    utts = []
    for s in range(4):
        for label in LABELS:
            for i in range(per_label):
                uid = f"spk{s}_{label}_{i}"
                utts.append(
                    Utterance(
                        id=uid,
                        path=tmp_path / f"{uid}.wav",
                        label=label,
                        speaker=f"spk{s}",
                        session=None,
                        transcript=sentence(label, i + s) if transcripts else None,
                    )
                )
    return Manifest(path=tmp_path / "manifest.csv", utterances=utts, labels=list(LABELS))


FOLD = Fold(
    id="spk0", test_speakers=("spk0",), val_speakers=("spk1",), train_speakers=("spk2", "spk3")
)


def tiny_config(bert: Path | None = None, epochs: int = 12) -> Config:
    overrides = {
        "seed": 0,
        "linguistic.model": str(bert) if bert else "embedded:all-minilm-l6-v2",
        "linguistic.dropout": 0.0,
        "linguistic.optim": {"lr": 5e-3, "epochs": epochs, "batch_size": 8, "patience": 0},
        "prosodic.channels": [4, 8],
        "prosodic.blocks": [1, 1],
        "prosodic.embedding_dim": 16,
        "prosodic.dropout": 0.0,
        "prosodic.optim": {"lr": 1e-2, "epochs": epochs, "batch_size": 4, "patience": 0},
        "trainer.accelerator": "cpu",
        "trainer.log_every_n_steps": 1,
    }
    return Config().override(overrides)


class ArrayFeatures:
    """A FeatureStore stand-in holding (T, 25) arrays in memory."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays

    def __contains__(self, utt_id) -> bool:
        return utt_id in self.arrays

    def __getitem__(self, utt_id: str) -> np.ndarray:
        return self.arrays[utt_id]

    def normalization_stats(self, ids):
        x = np.concatenate([self.arrays[i] for i in ids])
        return x.mean(0).astype(np.float32), (x.std(0) + 1e-3).astype(np.float32)


def lld_features(manifest: Manifest, seed: int = 0) -> ArrayFeatures:
    """Random LLD sequences of varying length whose level encodes the label."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for u in manifest.utterances:
        t = int(rng.integers(12, 40))
        x = rng.normal(0, 0.3, size=(t, 25)).astype(np.float32)
        x += 2.0 * LABELS.index(u.label)
        arrays[u.id] = x
    return ArrayFeatures(arrays)


def train_losses(work_dir: Path) -> list[float]:
    with open(work_dir / "logs" / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    return [float(r["train_loss_epoch"]) for r in rows if r.get("train_loss_epoch")]


def test_tiny_bert_fits_a_handful_of_examples(tmp_path, tiny_bert):
    manifest = text_manifest(tmp_path)
    cfg = tiny_config(tiny_bert)
    result = train_teacher(
        "linguistic", manifest, FOLD, cfg, tmp_path / "run" / "spk0", progress=False
    )
    losses = train_losses(tmp_path / "run" / "spk0" / "teachers" / "train" / "linguistic")
    print(f"linguistic loss {losses[0]:.3f} -> {losses[-1]:.3f}; test UA {result['ua']:.2f}")
    assert losses[-1] < 0.5 * losses[0]
    # Predictions on the training utterances match their labels (read from the cache).
    outputs = load_teacher_outputs(tmp_path / "run" / "spk0", "linguistic")
    train = manifest.by_speakers(FOLD.train_speakers)
    preds = outputs.logits_of([u.id for u in train]).argmax(1)
    assert [LABELS[p] for p in preds] == [u.label for u in train]
    assert result["ua"] >= 0.75  # the test speaker says the same words
    assert outputs.embeddings.shape == (len(manifest), 32)
    # The model folder loads without the hub and holds the training config.
    folder = teacher_dir(tmp_path / "run" / "spk0", "linguistic")
    config = json.loads((folder / "config.json").read_text())
    assert config["training_config"]["linguistic"]["model"] == str(tiny_bert)
    assert config["encoder_config"]["hidden_size"] == 32
    loaded = LinguisticTeacher.from_pretrained(folder)
    enc = loaded.encode([train[0].transcript])
    assert loaded(**enc)[0].argmax(1).item() == LABELS.index(train[0].label)
    # Checkpoints are removed once the teacher is saved; logs stay.
    assert not (folder.parent / "train" / "linguistic" / "checkpoints").exists()


def test_tiny_resnet_fits_a_handful_of_examples(tmp_path):
    manifest = text_manifest(tmp_path)
    features = lld_features(manifest)
    cfg = tiny_config()
    fold_dir = tmp_path / "run" / "spk0"
    result = train_teacher(
        "prosodic", manifest, FOLD, cfg, fold_dir, features=features, progress=False
    )
    losses = train_losses(fold_dir / "teachers" / "train" / "prosodic")
    print(f"prosodic loss {losses[0]:.3f} -> {losses[-1]:.3f}; test UA {result['ua']:.2f}")
    assert losses[-1] < 0.5 * losses[0]
    outputs = load_teacher_outputs(fold_dir, "prosodic")
    train = manifest.by_speakers(FOLD.train_speakers)
    preds = outputs.logits_of([u.id for u in train]).argmax(1)
    assert [LABELS[p] for p in preds] == [u.label for u in train]
    assert result["ua"] >= 0.75


class Interrupt(L.Callback):
    """Fails at the start of epoch ``at`` like a killed process would stop training."""

    def __init__(self, at: int):
        self.at = at

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.at:
            raise KeyError("simulated interruption")


class CountSteps(L.Callback):
    def __init__(self):
        self.steps = 0
        self.first_epoch = None

    def on_train_batch_end(self, trainer, *args):
        if self.first_epoch is None:
            self.first_epoch = trainer.current_epoch
        self.steps += 1


def test_interrupted_training_resumes_from_its_checkpoint(tmp_path):
    manifest = text_manifest(tmp_path)
    features = lld_features(manifest)
    cfg = tiny_config(epochs=3)
    fold_dir = tmp_path / "run" / "spk0"
    with pytest.raises(KeyError, match="simulated"):
        train_teacher(
            "prosodic",
            manifest,
            FOLD,
            cfg,
            fold_dir,
            features=features,
            progress=False,
            callbacks=[Interrupt(at=2)],
        )
    last = fold_dir / "teachers" / "train" / "prosodic" / "checkpoints" / "last.ckpt"
    assert last.is_file()
    steps_per_epoch = 6  # 24 training utterances, batch 4
    assert torch.load(last, weights_only=False)["global_step"] == 2 * steps_per_epoch
    counter = CountSteps()
    result = train_teacher(
        "prosodic",
        manifest,
        FOLD,
        cfg,
        fold_dir,
        features=features,
        progress=False,
        callbacks=[counter],
    )
    assert result["resumed"] is True
    assert counter.first_epoch == 2  # epochs 0 and 1 were not trained again
    assert counter.steps == steps_per_epoch
    assert result["global_step"] == 3 * steps_per_epoch


def _write_csv(path: Path, manifest: Manifest) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "path", "label", "speaker", "session", "transcript"])
        for u in manifest.utterances:
            w.writerow([u.id, u.path.name, u.label, u.speaker, "", u.transcript or ""])


def test_missing_transcripts_point_at_corpus_transcribe(tmp_path):
    manifest = text_manifest(tmp_path, per_label=1, transcripts=False)
    for u in manifest.utterances:
        u.path.write_bytes(b"")  # load_manifest checks that files exist; never read here
    csv_path = tmp_path / "manifest.csv"
    _write_csv(csv_path, manifest)
    with pytest.raises(MissingTranscriptsError) as err:
        train_teachers(csv_path, tmp_path / "run", config=tiny_config(), kinds=("linguistic",))
    message = str(err.value)
    assert str(csv_path) in message
    assert "emodistill corpus transcribe" in message
    assert not (tmp_path / "run").exists()  # failed before any training


def test_cli_train_teachers_reports_missing_transcripts(tmp_path):
    from typer.testing import CliRunner

    from emodistill.cli.app import app

    manifest = text_manifest(tmp_path, per_label=1, transcripts=False)
    for u in manifest.utterances:
        u.path.write_bytes(b"")
    csv_path = tmp_path / "manifest.csv"
    _write_csv(csv_path, manifest)
    result = CliRunner().invoke(
        app, ["train-teachers", str(csv_path), "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 2
    assert "corpus transcribe" in result.output


def test_train_teachers_layout_metrics_and_skip(tmp_path, tiny_bert, monkeypatch):
    """Both teachers on every fold of a 4-speaker corpus made of real (tiny) audio files."""
    import soundfile as sf

    manifest = text_manifest(tmp_path, per_label=2)
    rng = np.random.default_rng(0)
    for u in manifest.utterances:
        # 0.3 s of noisy tone, pitch by label: real audio for the real feature extractor.
        f0 = 120 + 60 * LABELS.index(u.label)
        t = np.arange(4800) / 16000
        wave = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.standard_normal(t.size)
        sf.write(u.path, wave.astype(np.float32), 16000)
    csv_path = tmp_path / "manifest.csv"
    _write_csv(csv_path, manifest)
    cfg = tiny_config(tiny_bert, epochs=2)
    run = tmp_path / "run"
    results = train_teachers(csv_path, run, config=cfg, folds="spk0,spk2", progress=False)
    assert sorted(results) == ["spk0", "spk2"]
    for fold_id in results:
        metrics = json.loads((run / fold_id / "teachers" / "metrics.json").read_text())
        assert sorted(metrics) == ["linguistic", "prosodic"]
        for kind in ("linguistic", "prosodic"):
            assert sorted(metrics[kind]) == ["f1", "ua", "wa"]
            assert (run / fold_id / "teachers" / kind / "model.safetensors").is_file()
            out = load_teacher_outputs(run / fold_id, kind)
            assert len(out) == len(manifest)  # train + val + test speakers
    summary = json.loads((run / "teachers.json").read_text())
    assert sorted(summary["folds"]) == ["spk0", "spk2"]

    # A re-run skips finished folds: no training happens.
    import emodistill.training.teachers as teachers

    def fail(*args, **kwargs):
        raise AssertionError("a finished fold was trained again")

    monkeypatch.setattr(teachers, "train_teacher", fail)
    again = train_teachers(csv_path, run, config=cfg, folds="spk0,spk2", progress=False)
    assert again == results
