"""Distil the speech-only student from the cached teachers of one fold (DESIGN.md section 1).

The teachers never run here: their logits and embeddings were written once per fold by
``train_teachers`` and are read row by row from the cache (``training/teacher_cache.py``), so a
distillation step costs what a plain fine-tuning step costs.

Pieces:

* :class:`DistillDataset` — waveform (random crop of at most ``student.max_seconds`` in training,
  centre crop at ``EVAL_MAX_SECONDS`` in evaluation), label, and the cached teacher rows.
* :class:`LengthGroupedBatchSampler` — batches of similar length (less padding), reshuffled per
  epoch from ``(seed, epoch)`` and sharded over DDP ranks with equal batch counts.
* :func:`collate_batch` — zero-pads to the longest clip and returns the valid lengths.
* :class:`StudentModule` — the ``LightningModule`` around an injected student ``nn.Module``.
* :func:`distill` — train one fold's student (resumable from ``last.ckpt``), select the epoch
  with the best validation UA, save the model folder and the test-speaker predictions.

Variants of the paper's Table 2 are data (:data:`VARIANTS`): overrides of the
:class:`~emodistill.config.DistillConfig`, or "evaluate a teacher on its own".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from emodistill.audio import SAMPLE_RATE, audio_info, load_audio
from emodistill.config import Config, DistillConfig, OptimConfig
from emodistill.corpora.manifest import Manifest, Utterance
from emodistill.evaluate import compute_metrics, metric_collection
from emodistill.report import read_json, write_json_atomic
from emodistill.training.common import (
    configure_adamw,
    last_checkpoint,
    make_optim_trainer,
    resolve_precision,
    seed_everything,
)

TEACHERS = ("linguistic", "prosodic")
#: Evaluation clips longer than this are centre-cropped (Whisper's encoder takes at most 30 s).
EVAL_MAX_SECONDS = 30.0
#: Decoded waveforms are kept in memory up to this many bytes per dataset (re-reading every
#: epoch costs more than the step itself on small corpora).
AUDIO_CACHE_BYTES = 1 << 30


# --------------------------------------------------------------------------- variants


@dataclass(frozen=True)
class Variant:
    """One row of the paper's Table 2 (or a sweep point), as data.

    Attributes:
        name: folder name and the key in ``ablation.json``.
        distill: overrides of :class:`DistillConfig` fields.
        logit_teachers: teachers whose logits are distilled (the others keep only their
            embedding term); ``None`` = both, as the config says.
        teacher: when set, no student is trained: the fold's test predictions are that
            teacher's own (from its cached outputs).
    """

    name: str
    distill: Mapping[str, Any] = field(default_factory=dict)
    logit_teachers: tuple[str, ...] | None = None
    teacher: str | None = None


#: The paper's eight Table 2 variants (names are a contract: ``ablation.json`` keys).
VARIANTS: dict[str, Variant] = {
    "full": Variant("full"),
    "no_logit_kd": Variant("no_logit_kd", {"logit_kd": False}),
    "no_embedding_kd": Variant("no_embedding_kd", {"embedding_kd": False}),
    "no_prosodic_teacher": Variant("no_prosodic_teacher", {"use_prosodic": False}),
    "no_linguistic_teacher": Variant("no_linguistic_teacher", {"use_linguistic": False}),
    # Plain fine-tuning: alpha * CE only.
    "no_teachers": Variant(
        "no_teachers", {"use_linguistic": False, "use_prosodic": False, "beta": 0.0, "gamma": 0.0}
    ),
    "prosodic_teacher_only": Variant("prosodic_teacher_only", teacher="prosodic"),
    "linguistic_teacher_only": Variant("linguistic_teacher_only", teacher="linguistic"),
}


def get_variant(variant: str | Variant) -> Variant:
    """A :class:`Variant` by name (or passed through); the error lists the known names."""
    if isinstance(variant, Variant):
        return variant
    try:
        return VARIANTS[variant]
    except KeyError:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}") from None


def variant_distill_config(base: DistillConfig, variant: str | Variant) -> DistillConfig:
    """``base`` with the variant's overrides applied."""
    return dataclasses.replace(base, **dict(get_variant(variant).distill))


# --------------------------------------------------------------------------- run-dir layout


def variant_dir(run_dir: str | Path, fold_id: str, variant: str | Variant = "full") -> Path:
    """``RUN_DIR/<fold>`` for ``full``, else ``RUN_DIR/<fold>/variants/<variant>``."""
    name = get_variant(variant).name
    base = Path(run_dir) / fold_id
    return base if name == "full" else base / "variants" / name


def student_dir(run_dir: str | Path, fold_id: str, variant: str | Variant = "full") -> Path:
    """The fold's speech-only model folder: ``RUN_DIR/<fold>/student`` for ``full``."""
    return variant_dir(run_dir, fold_id, variant) / "student"


def predictions_path(run_dir: str | Path, fold_id: str, variant: str | Variant = "full") -> Path:
    """Where the fold's test-speaker predictions of ``variant`` live."""
    v = get_variant(variant)
    if v.teacher is not None:
        return variant_dir(run_dir, fold_id, v) / "predictions.json"
    return student_dir(run_dir, fold_id, v) / "predictions.json"


def work_dir(run_dir: str | Path, fold_id: str, variant: str | Variant = "full") -> Path:
    """Training state (checkpoints, CSV logs) of a student: beside, not inside, the model."""
    return variant_dir(run_dir, fold_id, variant) / "student_train"


# --------------------------------------------------------------------------- data


def _n_samples(path: Path) -> int:
    """Length in samples at SAMPLE_RATE, from the file header (no decoding)."""
    try:
        info = audio_info(path)
    except Exception as err:  # noqa: BLE001 - re-raised with the file named
        raise ValueError(f"{path}: cannot read audio header ({err})") from err
    return max(1, int(round(info.frames * SAMPLE_RATE / info.samplerate)))


class DistillDataset(Dataset):
    """Utterances as ``{"wav", "label", "valid", "index", "teacher_logits", "teacher_emb"}``.

    Items are addressed by ``(index, epoch, valid)`` keys from :class:`LengthGroupedBatchSampler`
    (a plain int also works): the training crop is drawn from ``(seed, epoch, index)``, so an
    epoch's data is the same whether or not training was interrupted and resumed. ``valid`` is
    False for the padding items that even out DDP shards; they are left out of the metrics.

    Args:
        utterances: the split's utterances.
        label_index: label name -> class index.
        max_seconds: crop length; ``train`` picks a random window, evaluation the centre.
        train: random (True) or centre (False) crops.
        teachers: kind -> :class:`TeacherOutputs` of this fold (rows looked up by utterance id).
        seed: base of the crop randomness.
    """

    def __init__(
        self,
        utterances: Sequence[Utterance],
        label_index: Mapping[str, int],
        max_seconds: float | None,
        train: bool,
        teachers: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        self.utterances = list(utterances)
        self.labels = np.array([label_index[u.label] for u in self.utterances], dtype=np.int64)
        self.train = train
        self.seed = int(seed)
        self.max_samples = int(max_seconds * SAMPLE_RATE) if max_seconds else None
        self.lengths = np.array([_n_samples(u.path) for u in self.utterances], dtype=np.int64)
        if self.max_samples:
            self.lengths = np.minimum(self.lengths, self.max_samples)
        self.teachers = dict(teachers or {})
        self.rows: dict[str, np.ndarray] = {}
        ids = [u.id for u in self.utterances]
        for kind, outputs in self.teachers.items():
            try:
                self.rows[kind] = np.asarray(outputs.rows(ids), dtype=np.int64)
            except KeyError as err:
                raise ValueError(
                    f"cached {kind} teacher outputs lack utterance {err}; re-run train-teachers "
                    "for this fold"
                ) from err
        self._cache: dict[int, np.ndarray] = {}
        self._cache_bytes = 0

    def __len__(self) -> int:
        return len(self.utterances)

    def _load(self, i: int) -> np.ndarray:
        wav = self._cache.get(i)
        if wav is None:
            wav = load_audio(self.utterances[i].path)
            if self._cache_bytes + wav.nbytes <= AUDIO_CACHE_BYTES:
                self._cache[i] = wav
                self._cache_bytes += wav.nbytes
        return wav

    def __getitem__(self, key: int | tuple[int, int, bool]) -> dict[str, Any]:
        i, epoch, valid = (key, 0, True) if isinstance(key, int | np.integer) else key
        i = int(i)
        wav = self._load(i)
        if self.max_samples and len(wav) > self.max_samples:
            extra = len(wav) - self.max_samples
            if self.train:
                start = int(np.random.default_rng([self.seed, int(epoch), i]).integers(extra + 1))
            else:
                start = extra // 2
            wav = wav[start : start + self.max_samples]
        item: dict[str, Any] = {
            "wav": torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)),
            "label": int(self.labels[i]),
            "valid": bool(valid),
            "index": i,
            "teacher_logits": {},
            "teacher_emb": {},
        }
        for kind, outputs in self.teachers.items():
            row = int(self.rows[kind][i])
            item["teacher_logits"][kind] = torch.as_tensor(np.array(outputs.logits[row]))
            item["teacher_emb"][kind] = torch.as_tensor(np.array(outputs.embeddings[row]))
        return item


def collate_batch(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Pad a list of dataset items into a batch.

    Returns:
        ``wav`` (B, N) float32 zero-padded to the longest clip, ``lengths`` (B,) valid samples,
        ``labels`` (B,) long, ``valid`` (B,) bool, ``index`` (B,) long,
        ``teacher_logits`` {kind: (B, C)}, ``teacher_emb`` {kind: (B, D)}.
    """
    lengths = torch.tensor([len(it["wav"]) for it in items], dtype=torch.long)
    wav = torch.zeros(len(items), int(lengths.max()), dtype=torch.float32)
    for row, it in enumerate(items):
        wav[row, : len(it["wav"])] = it["wav"]
    kinds = list(items[0]["teacher_logits"])
    return {
        "wav": wav,
        "lengths": lengths,
        "labels": torch.tensor([it["label"] for it in items], dtype=torch.long),
        "valid": torch.tensor([it["valid"] for it in items], dtype=torch.bool),
        "index": torch.tensor([it["index"] for it in items], dtype=torch.long),
        "teacher_logits": {
            k: torch.stack([it["teacher_logits"][k] for it in items]) for k in kinds
        },
        "teacher_emb": {k: torch.stack([it["teacher_emb"][k] for it in items]) for k in kinds},
    }


class _EpochHolder:
    """Receives ``set_epoch`` from Lightning (it calls it on ``batch_sampler.sampler``)."""

    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)


def _world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class LengthGroupedBatchSampler(Sampler[list[tuple[int, int, bool]]]):
    """Batches of utterances of similar length, DDP-sharded by the sampler itself.

    Training (``shuffle=True``): each epoch a permutation from ``(seed, epoch)`` is cut into
    pools of ``bucket_batches`` batches, each pool is sorted by length and cut into batches, and
    the batches are shuffled — similar lengths per batch, random order of batches. Evaluation:
    batches of the length-sorted utterances. With ``W`` DDP ranks the batch list is padded to a
    multiple of ``W`` (training: by repeating batches; evaluation: by items marked invalid) and
    rank ``r`` takes batches ``r, r+W, ...``: every rank runs the same number of steps.

    Yields lists of ``(index, epoch, valid)`` keys for :class:`DistillDataset`.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        bucket_batches: int = 50,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.bucket_batches = int(bucket_batches)
        self.sampler = _EpochHolder()  # Lightning calls batch_sampler.sampler.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def _batches(self) -> list[list[int]]:
        n, bs = len(self.lengths), self.batch_size
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.sampler.epoch])
            order = rng.permutation(n)
            pool = bs * self.bucket_batches
            batches = []
            for start in range(0, n, pool):
                chunk = order[start : start + pool]
                chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
                batches += [chunk[i : i + bs].tolist() for i in range(0, len(chunk), bs)]
            return [batches[j] for j in rng.permutation(len(batches))]
        order = np.argsort(-self.lengths, kind="stable")
        return [order[i : i + bs].tolist() for i in range(0, n, bs)]

    def __len__(self) -> int:
        _, world = _world()
        n_batches = len(self._batches())
        return math.ceil(n_batches / world)

    def __iter__(self) -> Iterator[list[tuple[int, int, bool]]]:
        rank, world = _world()
        epoch = self.sampler.epoch
        batches = [[(i, epoch, True) for i in b] for b in self._batches()]
        short = (-len(batches)) % world
        if short:
            if self.shuffle:
                batches += batches[:short]
            else:
                filler = [(i, epoch, False) for i, _, _ in batches[0]]
                batches += [filler] * short
        yield from batches[rank::world]


def make_loader(
    dataset: DistillDataset, batch_size: int, shuffle: bool, seed: int, num_workers: int = 0
) -> DataLoader:
    """A DataLoader over ``dataset`` with :class:`LengthGroupedBatchSampler` batches."""
    return DataLoader(
        dataset,
        batch_sampler=LengthGroupedBatchSampler(dataset.lengths, batch_size, shuffle, seed=seed),
        collate_fn=collate_batch,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )


# --------------------------------------------------------------------------- Lightning module


class StudentModule(L.LightningModule):
    """Trains an injected student with :func:`~emodistill.models.losses.emodistill_loss`.

    Args:
        student: ``forward(wav (B, N), lengths (B,)) -> StudentOutput(logits (B, C),
            emb_linguistic (B, d_L), emb_prosodic (B, d_P))``.
        distill_cfg: loss coefficients, temperatures and switches.
        optim: AdamW settings (lr, weight decay, warm-up ratio).
        num_classes: C.
        logit_teachers: teachers whose logits enter L_KD (others keep their embedding term).
        class_weights: optional (C,) cross-entropy weights.
        seed: dropout randomness is re-seeded from ``(seed, epoch, rank)`` at each epoch start,
            so a resumed run continues exactly as an uninterrupted one.
    """

    def __init__(
        self,
        student: torch.nn.Module,
        distill_cfg: DistillConfig,
        optim: OptimConfig,
        num_classes: int,
        logit_teachers: Sequence[str] = TEACHERS,
        class_weights: Tensor | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.student = student
        self.distill_cfg = distill_cfg
        self.optim = optim
        self.num_classes = int(num_classes)
        self.logit_teachers = tuple(logit_teachers)
        self.seed = int(seed)
        self.register_buffer(
            "class_weights", None if class_weights is None else class_weights.float()
        )
        self.val_metrics = metric_collection(num_classes)

    def forward(self, wav: Tensor, lengths: Tensor):
        return self.student(wav, lengths)

    def loss(self, batch: Mapping[str, Any]):
        """The EmoDistill loss of a batch (``LossOutput``: total + terms)."""
        from emodistill.models.losses import emodistill_loss

        out = self.student(batch["wav"], batch["lengths"])
        teacher_logits = {
            k: v for k, v in batch["teacher_logits"].items() if k in self.logit_teachers
        }
        student_emb = {"linguistic": out.emb_linguistic, "prosodic": out.emb_prosodic}
        return emodistill_loss(
            out.logits,
            batch["labels"],
            self.distill_cfg,
            teacher_logits=teacher_logits,
            teacher_emb=dict(batch["teacher_emb"]),
            student_emb=student_emb,
            class_weights=self.class_weights,
        )

    def on_train_epoch_start(self) -> None:
        # Dropout draws from torch's global generator: tie it to the epoch, not to history.
        torch.manual_seed(_mix(self.seed, self.current_epoch, self.global_rank))

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        out = self.loss(batch)
        bs = int(batch["labels"].shape[0])
        self.log("train_loss", out.total, prog_bar=True, batch_size=bs)
        for name in ("ce", "kd", "embedding"):
            self.log(f"train_{name}", out.terms[name], batch_size=bs)
        return out.total

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        out = self.student(batch["wav"], batch["lengths"])
        valid = batch["valid"]
        preds = out.logits.argmax(dim=-1)
        if bool(valid.any()):  # a DDP padding batch has no valid item (torchmetrics refuses empty)
            self.val_metrics.update(preds[valid], batch["labels"][valid])

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute()  # synchronised over DDP ranks by torchmetrics
        self.val_metrics.reset()
        for key, value in values.items():
            self.log(f"val_{key}", value, prog_bar=key == "ua", sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.student.parameters() if p.requires_grad]
        return configure_adamw(params, self.optim, int(self.trainer.estimated_stepping_batches))


def _mix(*parts: int) -> int:
    """A 63-bit seed from integers (stable across processes, unlike ``hash``)."""
    digest = hashlib.sha256(",".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


# --------------------------------------------------------------------------- prediction


@torch.inference_mode()
def predict(
    student: torch.nn.Module,
    dataset: DistillDataset,
    batch_size: int,
    device: torch.device | str = "cpu",
    precision: str = "32-true",
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities for every item of ``dataset``, in dataset order.

    Returns:
        ``(indices (N,), probabilities (N, C))`` with ``indices`` = ``arange(N)``.
    """
    student.eval()
    device = torch.device(device)
    student.to(device)
    probs = np.zeros((len(dataset), 0), dtype=np.float32)
    use_bf16 = device.type == "cuda" and precision.startswith("bf16")
    order = np.argsort(-dataset.lengths, kind="stable")
    bs = max(1, batch_size)
    for start in range(0, len(order), bs):
        batch = collate_batch([dataset[int(i)] for i in order[start : start + bs]])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            out = student(batch["wav"].to(device), batch["lengths"].to(device))
        p = torch.softmax(out.logits.float(), dim=-1).cpu().numpy()
        if probs.shape[1] == 0:
            probs = np.zeros((len(dataset), p.shape[1]), dtype=np.float32)
        probs[batch["index"].numpy()] = p
    return np.arange(len(dataset)), probs


def _config_key(cfg: Config, teacher_only: bool = False) -> dict[str, Any]:
    """The parts of a config that determine a result: everything but the trainer settings for a
    student; only labels, seed, folds and the teachers' sections for a teacher-only variant."""
    data = cfg.to_dict()
    data.pop("trainer", None)
    data.pop("name", None)
    if teacher_only:
        data = {k: data[k] for k in ("labels", "seed", "folds", "linguistic", "prosodic")}
    return data


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += _diff(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def check_reusable(path: Path, cfg: Config, teacher_only: bool = False) -> bool:
    """True when ``path`` (a predictions.json) exists and was made with ``cfg``.

    Raises:
        ValueError: it exists but was made with another config (names the differing keys):
            results of two configs must never be mixed in one run folder.
    """
    if not path.is_file():
        return False
    saved = read_json(path).get("config")
    if saved is None:
        return True
    diff = _diff(saved, _config_key(cfg, teacher_only))
    if diff:
        raise ValueError(
            f"{path} was made with a different config (differs in: {', '.join(diff)}); use a new "
            "--out folder or delete that fold's folder"
        )
    return True


def _write_predictions(
    path: Path,
    utterances: Sequence[Utterance],
    y_true: Sequence[int],
    probs: np.ndarray,
    labels: Sequence[str],
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    y_pred = probs.argmax(axis=1).astype(int).tolist()
    metrics = compute_metrics(list(y_true), y_pred, len(labels))
    data = {
        "ids": [u.id for u in utterances],
        "y_true": [int(v) for v in y_true],
        "y_pred": y_pred,
        "probabilities": np.round(probs.astype(np.float64), 6).tolist(),
        "labels": list(labels),
        "metrics": metrics,
        **extra,
    }
    write_json_atomic(path, data)
    return data


# --------------------------------------------------------------------------- entry point


def _load_teachers(fold_dir: Path, kinds: Sequence[str]) -> dict[str, Any]:
    from emodistill.training.teacher_cache import load_teacher_outputs

    out = {}
    for kind in kinds:
        try:
            out[kind] = load_teacher_outputs(fold_dir, kind)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"{fold_dir}: no cached {kind} teacher outputs ({err}); run train-teachers first"
            ) from err
    return out


def teacher_predictions(
    manifest: Manifest, fold: Any, cfg: Config, run_dir: str | Path, variant: str | Variant
) -> dict[str, Any]:
    """A teacher-only variant: the teacher's own test-speaker predictions, from its cache."""
    from emodistill.corpora.splits import fold_utterances

    v = get_variant(variant)
    path = predictions_path(run_dir, fold.id, v)
    if check_reusable(path, cfg, teacher_only=True):
        return read_json(path)
    _, _, test = fold_utterances(manifest, fold)
    outputs = _load_teachers(Path(run_dir) / fold.id, [v.teacher])[v.teacher]
    try:
        rows = np.asarray(outputs.rows([u.id for u in test]), dtype=np.int64)
    except KeyError as err:
        raise ValueError(
            f"{Path(run_dir) / fold.id}: cached {v.teacher} teacher outputs lack test utterance "
            f"{err}; re-run train-teachers for fold {fold.id}"
        ) from err
    logits = torch.as_tensor(np.asarray(outputs.logits)[rows])
    probs = torch.softmax(logits.float(), dim=-1).numpy()
    y_true = [manifest.label_index(u.label) for u in test]
    return _write_predictions(
        path,
        test,
        y_true,
        probs,
        manifest.labels,
        {"fold": fold.id, "variant": v.name, "config": _config_key(cfg, teacher_only=True)},
    )


def distill(
    manifest: Manifest,
    fold: Any,
    cfg: Config,
    run_dir: str | Path,
    variant: str | Variant = "full",
    *,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    trainer_overrides: Mapping[str, Any] | None = None,
    keep_checkpoints: bool = False,
) -> dict[str, Any]:
    """Train one fold's student (or evaluate a teacher-only variant) and predict its test speakers.

    Reads the fold's cached teacher outputs (``RUN_DIR/<fold>/teachers/outputs``), trains with
    AdamW + warm-up/cosine, early stopping and checkpoint selection on validation UA, resuming
    from ``last.ckpt`` when an earlier run was interrupted. Writes the model folder
    (:func:`student_dir`, via ``save_student`` with this ``cfg`` as ``training_config``) and
    ``predictions.json`` in it (ids, y_true, y_pred, probabilities, metrics). A fold whose
    predictions exist (made with the same config) is not retrained.

    Args:
        manifest: the corpus.
        fold: a :class:`~emodistill.corpora.splits.Fold`.
        cfg: the run's config (the variant's overrides are applied on top).
        run_dir: RUN_DIR.
        variant: a name in :data:`VARIANTS` or a :class:`Variant`.
        progress: show Lightning's progress bar.
        callbacks: extra Lightning callbacks (tests use them to interrupt training).
        trainer_overrides: extra ``lightning.Trainer`` arguments.
        keep_checkpoints: keep ``best.ckpt``/``last.ckpt`` after success (default: deleted, the
            model folder holds the selected weights).

    Returns:
        The predictions dict (``metrics`` holds test WA/UA/F1/confusion); ``{}`` on DDP ranks
        other than 0.
    """
    from emodistill.corpora.splits import fold_utterances
    from emodistill.models.student import build_student, save_student

    v = get_variant(variant)
    run_dir = Path(run_dir)
    dcfg = variant_distill_config(cfg.distill, v)
    eff_cfg = dataclasses.replace(cfg, distill=dcfg)
    if v.teacher is not None:
        return teacher_predictions(manifest, fold, eff_cfg, run_dir, v)
    out_path = predictions_path(run_dir, fold.id, v)
    if check_reusable(out_path, eff_cfg):
        return read_json(out_path)

    fold_dir = run_dir / fold.id
    used = [
        k
        for k in TEACHERS
        if (dcfg.use_linguistic if k == "linguistic" else dcfg.use_prosodic)
        and ((dcfg.logit_kd and k in (v.logit_teachers or TEACHERS)) or dcfg.embedding_kd)
    ]
    teachers = _load_teachers(fold_dir, used)
    d_l, d_p = _embedding_dims(fold_dir, teachers, cfg)

    seed_everything(cfg.seed)
    train_utts, val_utts, test_utts = fold_utterances(manifest, fold)
    if not train_utts or not val_utts or not test_utts:
        raise ValueError(
            f"fold {fold.id}: needs training, validation and test utterances (got "
            f"{len(train_utts)}, {len(val_utts)}, {len(test_utts)})"
        )
    label_index = {lab: i for i, lab in enumerate(manifest.labels)}
    scfg = cfg.student
    optim = scfg.optim
    train_ds = DistillDataset(train_utts, label_index, scfg.max_seconds, True, teachers, cfg.seed)
    val_ds = DistillDataset(val_utts, label_index, EVAL_MAX_SECONDS, False, teachers, cfg.seed)
    workers = cfg.trainer.num_workers
    train_loader = make_loader(train_ds, optim.batch_size, True, cfg.seed, workers)
    val_loader = make_loader(val_ds, optim.batch_size, False, cfg.seed, workers)

    student = build_student(scfg, len(manifest.labels), d_l, d_p)
    class_weights = None
    if optim.class_weights:
        counts = np.bincount(train_ds.labels, minlength=len(manifest.labels)).astype(np.float64)
        class_weights = torch.tensor(
            counts.sum() / np.maximum(counts, 1.0) / len(counts), dtype=torch.float32
        )
    module = StudentModule(
        student,
        dcfg,
        optim,
        len(manifest.labels),
        logit_teachers=v.logit_teachers or TEACHERS,
        class_weights=class_weights,
        seed=cfg.seed,
    )
    wdir = work_dir(run_dir, fold.id, v)
    overrides = {"use_distributed_sampler": False, **dict(trainer_overrides or {})}
    strategy = _strategy_for(cfg.trainer.strategy, student)
    if strategy != cfg.trainer.strategy and "strategy" not in overrides:
        overrides["strategy"] = strategy
    trainer = make_optim_trainer(cfg.trainer, wdir, optim, progress=progress, **overrides)
    trainer.callbacks.extend(callbacks)
    resume = last_checkpoint(wdir)
    trainer.fit(module, train_loader, val_loader, ckpt_path=str(resume) if resume else None)
    if trainer.global_rank != 0:
        return {}

    best_path = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    best_score = (
        trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
    )
    if best_path and Path(best_path).is_file():
        state = torch.load(best_path, map_location="cpu", weights_only=False)["state_dict"]
        module.load_state_dict(state)
    test_ds = DistillDataset(test_utts, label_index, EVAL_MAX_SECONDS, False, None, cfg.seed)
    device = module.device if module.device.type != "meta" else torch.device("cpu")
    precision = resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    _, probs = predict(student, test_ds, optim.batch_size, device, precision)
    student.cpu()
    sdir = student_dir(run_dir, fold.id, v)
    val_ua = None if best_score is None else float(best_score)
    extra = {
        "fold": fold.id,
        "variant": v.name,
        "val_ua": val_ua,
        "test_speakers": list(fold.test_speakers),
        "val_speakers": list(fold.val_speakers),
    }
    save_student(student, sdir, list(manifest.labels), eff_cfg.to_dict(), extra)
    result = _write_predictions(
        out_path,
        test_utts,
        test_ds.labels.tolist(),
        probs,
        manifest.labels,
        {**extra, "config": _config_key(eff_cfg), "epochs_run": int(trainer.current_epoch)},
    )
    if not keep_checkpoints:
        shutil.rmtree(wdir / "checkpoints", ignore_errors=True)
    return result


def _strategy_for(strategy: str, student: torch.nn.Module) -> str:
    """``ddp`` -> ``ddp_find_unused_parameters_true`` for encoders whose steps may leave
    parameters unused, which plain DDP rejects mid-training: wav2vec2-family
    ``masked_spec_embed`` (used only when SpecAugment masks something) and LayerDrop
    (``config.layerdrop > 0`` skips whole layers at random; HuBERT's default is 0.1)."""
    if strategy != "ddp":
        return strategy
    conditional = any(
        n.endswith("masked_spec_embed") and p.requires_grad for n, p in student.named_parameters()
    ) or any(
        float(getattr(getattr(m, "config", None), "layerdrop", 0.0) or 0.0) > 0.0
        for m in student.modules()
    )
    return "ddp_find_unused_parameters_true" if conditional else strategy


def _embedding_dims(fold_dir: Path, teachers: Mapping[str, Any], cfg: Config) -> tuple[int, int]:
    """(d_L, d_P): from the cached teacher embeddings when present (needed for the cosine terms),
    else from a cache of the fold on disk, else the student's projection width."""
    dims = {}
    for kind in TEACHERS:
        outputs = teachers.get(kind)
        if outputs is None:
            try:
                outputs = _load_teachers(fold_dir, [kind])[kind]
            except (FileNotFoundError, ValueError, ImportError):
                outputs = None
        dims[kind] = (
            int(np.asarray(outputs.embeddings).shape[1])
            if outputs is not None
            else cfg.student.projection_hidden
        )
    return dims["linguistic"], dims["prosodic"]


def load_predictions(path: str | Path) -> dict[str, Any]:
    """A predictions.json (ids, y_true, y_pred, probabilities, labels, metrics, ...)."""
    return read_json(path)


def describe_variants() -> str:
    """One line per variant: name and its DistillConfig overrides (for docs and --help)."""
    lines = []
    for name, v in VARIANTS.items():
        what = f"teacher {v.teacher} alone" if v.teacher else json.dumps(dict(v.distill)) or "{}"
        lines.append(f"{name}: {what}")
    return "\n".join(lines)
