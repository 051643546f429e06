"""Data for student training: the dataset, DDP-aware batches and collation.

* :class:`DistillDataset` — waveform (random crop of at most ``student.max_seconds`` in training,
  centre crop at ``EVAL_MAX_SECONDS`` in evaluation) or, for a partially frozen student, the
  cached output of its frozen bottom; label; and the cached teacher rows.
* :class:`UtteranceBatchSampler` — training batches drawn afresh each epoch from
  ``(seed, epoch)``, random (``student.group_by_length: false``, the default) or of similar
  length (less padding), sharded over DDP ranks with equal batch counts.
* :func:`collate_batch` — zero-pads to the longest item and returns the valid lengths.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from emodistill.audio import SAMPLE_RATE, audio_info, load_audio
from emodistill.corpora.manifest import Utterance
from emodistill.training.sampling import cut_batches

#: Evaluation clips longer than this are centre-cropped (Whisper's encoder takes at most 30 s).
EVAL_MAX_SECONDS = 30.0
#: Decoded waveforms (or a frozen student's cached frames) are kept in memory up to this many
#: bytes per dataset (re-reading every epoch costs more than the step itself on small corpora).
AUDIO_CACHE_BYTES = 1 << 30


def _n_samples(path: Path) -> int:
    """Length in samples at SAMPLE_RATE, from the file header (no decoding)."""
    try:
        info = audio_info(path)
    except Exception as err:  # noqa: BLE001 - re-raised with the file named
        raise ValueError(f"{path}: cannot read audio header ({err})") from err
    return max(1, int(round(info.frames * SAMPLE_RATE / info.samplerate)))


def too_short_for_training(utterances: Sequence[Utterance]) -> list[Utterance]:
    """The utterances shorter than ``features.MIN_SECONDS`` (60 ms).

    They have no eGeMAPS features, hence no prosodic-teacher output; every student variant
    leaves them out of training, validation and test alike, so variants stay paired on the same
    utterances (and a plain student does not train on clips EmoDistill never sees).
    """
    from emodistill.features import MIN_SECONDS

    floor = MIN_SECONDS * SAMPLE_RATE
    return [u for u in utterances if _n_samples(u.path) < floor]


class DistillDataset(Dataset):
    """Utterances as ``{"wav", "label", "valid", "index", "teacher_logits", "teacher_emb"}``.

    Items are addressed by ``(index, epoch, valid)`` keys from :class:`UtteranceBatchSampler`
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
        prefix: a :class:`~emodistill.features.prefix_cache.PrefixCache` holding these
            utterances: items then carry ``prefix`` (K, T, H) instead of ``wav`` (no crop: the
            cache holds centre-cropped clips).
        speaker_norms: utterance id -> (2, H) ``[mu, sigma]`` of its speaker (a
            ``speaker_norm`` student): prefix items come normalised with it, audio items carry
            it as ``speaker``.
    """

    def __init__(
        self,
        utterances: Sequence[Utterance],
        label_index: Mapping[str, int],
        max_seconds: float | None,
        train: bool,
        teachers: Mapping[str, Any] | None = None,
        seed: int = 0,
        prefix: Any = None,
        speaker_norms: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.utterances = list(utterances)
        self.speaker_norms = None
        if speaker_norms is not None:
            self.speaker_norms = [np.asarray(speaker_norms[u.id], np.float32) for u in utterances]
        self.prefix = prefix
        self.labels = np.array([label_index[u.label] for u in self.utterances], dtype=np.int64)
        self.train = train
        self.seed = int(seed)
        self.max_samples = int(max_seconds * SAMPLE_RATE) if max_seconds else None
        if prefix is not None:
            self.lengths = np.array([prefix.frames[u.id] for u in self.utterances], np.int64)
        else:
            self.lengths = np.array([_n_samples(u.path) for u in self.utterances], np.int64)
        if self.max_samples and prefix is None:
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

    def _frames(self, i: int) -> np.ndarray:
        """Clip ``i``'s cached frozen-bottom frames (K, T, H) float32, speaker-normalised when
        the dataset has norms. Kept in memory within ``AUDIO_CACHE_BYTES``: opening and
        mapping the clip's ``.npy`` again in every epoch made a frozen student's training epoch
        6 % longer (``bench/frozen_epoch_data.py``; docs/results.md)."""
        frames = self._cache.get(i)
        if frames is not None:
            return frames
        frames = np.array(self.prefix[self.utterances[i].id], dtype=np.float32)  # a copy
        if self.speaker_norms is not None:  # (K, T, H) - mu / sigma (K = 1: frozen pool)
            mu, sigma = self.speaker_norms[i]
            frames -= mu
            frames /= sigma
        if self._cache_bytes + frames.nbytes <= AUDIO_CACHE_BYTES:
            self._cache[i] = frames
            self._cache_bytes += frames.nbytes
        return frames

    def __getitem__(self, key: int | tuple[int, int, bool]) -> dict[str, Any]:
        i, epoch, valid = (key, 0, True) if isinstance(key, int | np.integer) else key
        i = int(i)
        if self.prefix is not None:
            item = self._item(i, valid)
            item["prefix"] = self._frames(i)
            return item
        wav = self._load(i)
        if self.max_samples and len(wav) > self.max_samples:
            extra = len(wav) - self.max_samples
            if self.train:
                start = int(np.random.default_rng([self.seed, int(epoch), i]).integers(extra + 1))
            else:
                start = extra // 2
            wav = wav[start : start + self.max_samples]
        item = self._item(i, valid)
        item["wav"] = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))
        if self.speaker_norms is not None:
            item["speaker"] = torch.from_numpy(self.speaker_norms[i])
        return item

    def _item(self, i: int, valid: bool) -> dict[str, Any]:
        item: dict[str, Any] = {
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
        ``wav`` (B, N) float32 zero-padded to the longest clip, ``lengths`` (B,) valid samples
        (or, for prefix items, ``prefix`` (B, K, T, H) and ``frame_lengths`` (B,)),
        ``labels`` (B,) long, ``valid`` (B,) bool, ``index`` (B,) long,
        ``teacher_logits`` {kind: (B, C)}, ``teacher_emb`` {kind: (B, D)}; ``speaker``
        (B, 2, H) when the items carry their speaker's normaliser.
    """
    from emodistill.features.prefix_cache import collate_prefix

    out: dict[str, Any] = {}
    if "prefix" in items[0]:
        out["prefix"], out["frame_lengths"] = collate_prefix([it["prefix"] for it in items])
    else:
        lengths = torch.tensor([len(it["wav"]) for it in items], dtype=torch.long)
        wav = torch.zeros(len(items), int(lengths.max()), dtype=torch.float32)
        for row, it in enumerate(items):
            wav[row, : len(it["wav"])] = it["wav"]
        out["wav"], out["lengths"] = wav, lengths
    if "speaker" in items[0]:
        out["speaker"] = torch.stack([it["speaker"] for it in items])
    kinds = list(items[0]["teacher_logits"])
    return {
        **out,
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


class UtteranceBatchSampler(Sampler[list[tuple[int, int, bool]]]):
    """Training batches (random, or of similar length), DDP-sharded by the sampler itself.

    Training (``shuffle=True``) with ``group_by_length=False``: each epoch a permutation from
    ``(seed, epoch)`` is cut into batches (:func:`~emodistill.training.sampling.cut_batches`).
    With ``group_by_length=True``: each epoch a permutation from ``(seed, epoch)`` is cut into
    pools of ``bucket_batches`` batches, each pool is sorted by length and cut into batches
    (:func:`~emodistill.training.sampling.cut_batches`: never a batch of one clip), and
    the batches are shuffled — similar lengths per batch, random order of batches (less padding
    for audio batches; but when one pool holds the whole split the batches hold the same clips
    every epoch, and lengths often go with the label, so BatchNorm and mixup see skewed
    batches: RAVDESS-4, docs/defaults.md). Evaluation:
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
        group_by_length: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.bucket_batches = int(bucket_batches)
        self.group_by_length = bool(group_by_length)
        self.sampler = _EpochHolder()  # Lightning calls batch_sampler.sampler.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def _batches(self) -> list[list[int]]:
        n, bs = len(self.lengths), self.batch_size
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.sampler.epoch])
            order = rng.permutation(n)
            if not self.group_by_length:
                return cut_batches(order.tolist(), bs)
            batches = []
            # cut_batches (pools and batches alike): a last one of one clip joins the previous
            # one, so BatchNorm layers never see a training batch of one.
            for chunk in cut_batches(order.tolist(), bs * self.bucket_batches):
                chunk = np.asarray(chunk)[np.argsort(-self.lengths[chunk], kind="stable")]
                batches += cut_batches(chunk.tolist(), bs)
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
            if self.shuffle:  # cycling: fewer batches than ranks still fills every rank
                batches += [batches[j % len(batches)] for j in range(short)]
            else:
                filler = [(i, epoch, False) for i, _, _ in batches[0]]
                batches += [filler] * short
        yield from batches[rank::world]


def make_loader(
    dataset: DistillDataset,
    batch_size: int,
    shuffle: bool,
    seed: int,
    num_workers: int = 0,
    group_by_length: bool = True,
) -> DataLoader:
    """A DataLoader over ``dataset`` with :class:`UtteranceBatchSampler` batches."""
    sampler = UtteranceBatchSampler(
        dataset.lengths, batch_size, shuffle, seed=seed, group_by_length=group_by_length
    )
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_batch,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )
