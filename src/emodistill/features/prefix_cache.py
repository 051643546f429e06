"""On-disk cache of what a partially fine-tuned student's frozen bottom computes.

With ``student.trainable_layers: N`` the front end, stem and bottom layers of the encoder are
frozen and run in eval mode, so their output is a function of the audio and the frozen weights
alone. It is computed once per utterance and stored as ``(K, T, H)`` float32 ``.npy`` files
(memory-mapped when read), keyed on:

* the audio file's content (sha256), and the crop applied to it (``max_seconds``): a clip
  the crop does not cut is stored once with its length, for every crop at least that long;
* the frozen weights (every parameter and buffer of the frozen modules) and the encoder's
  architecture (``config_dict``);
* how many layers are frozen and which states are kept (layer weights keep all of them).

A changed file, encoder, crop or depth therefore misses the cache; entries are written
atomically (temporary file + rename), so a killed run never leaves a partial one, and two
processes computing the same entry write the same bytes.

Training from the cache sees the whole clip (centre-cropped to ``max_seconds``): a random crop
of the audio would need a new prefix every epoch.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emodistill.audio import SAMPLE_RATE, load_audio
from emodistill.util.files import file_sha256, save_npy_atomic

CACHE_VERSION = 1


def centre_crop(wav: np.ndarray, max_samples: int | None) -> np.ndarray:
    """The centre ``max_samples`` of ``wav`` (unchanged when shorter or ``max_samples`` None)."""
    if max_samples and len(wav) > max_samples:
        start = (len(wav) - max_samples) // 2
        return wav[start : start + max_samples]
    return wav


def frozen_digest(student: torch.nn.Module) -> str:
    """Hex digest of the frozen bottom: architecture, depth, kept states and weights."""
    enc = student.encoder
    h = hashlib.sha256()
    meta = {
        "version": CACHE_VERSION,
        "encoder": enc.config_dict(),
        "frozen_layers": student.frozen_layers,
        "states": student.prefix_states,
    }
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    _hash_modules(h, enc._frozen_modules())
    return h.hexdigest()


def _hash_modules(h, modules) -> None:
    for module in modules:
        for name, t in sorted(module.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())


def encoder_digest(encoder: torch.nn.Module) -> str:
    """Hex digest of a whole frozen encoder (architecture and every weight): the key of its
    :class:`LayerMeans`."""
    h = hashlib.sha256()
    meta = {"version": CACHE_VERSION, "encoder": encoder.config_dict(), "what": "layer means"}
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    _hash_modules(h, encoder.bottom_modules() + encoder.layer_modules() + encoder.finish_modules())
    return h.hexdigest()


def _content_keys(utterances) -> dict[str, str]:
    """utt id -> the first 40 hex digits of its audio's sha256 (the entries' name stem)."""
    keys = {}
    for u in utterances:
        try:
            keys[u.id] = file_sha256(u.path)[:40]
        except OSError as err:
            raise OSError(f"{u.path}: cannot read audio for the encoder cache ({err})") from err
    return keys


def _entries(folder: Path) -> tuple[set[str], dict[str, tuple[int, Path]]]:
    """From one listing of ``folder``: the names of its entries, and content key -> (samples,
    path) of its entries of uncut clips (``<key>-n<samples>.npy``)."""
    names: set[str] = set()
    uncut: dict[str, tuple[int, Path]] = {}
    if not folder.is_dir():
        return names, uncut
    for entry in os.scandir(folder):
        names.add(entry.name)
        stem, _, tail = entry.name.removesuffix(".npy").rpartition("-n")
        if entry.name.endswith(".npy") and tail.isdigit() and len(stem) == 40:
            uncut[stem] = (int(tail), Path(entry.path))
    return names, uncut


def _load_clip(path, max_samples: int | None, device) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(audio (1, N') centre-cropped to ``max_samples``, lengths (1,), N samples before)."""
    full = load_audio(path)
    wav = centre_crop(full, max_samples)
    x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None].to(device)
    return x, torch.tensor([x.shape[1]], device=device), len(full)


def _all_states(encoder, x: torch.Tensor, lengths: torch.Tensor):
    """Every state of a frozen encoder: embedding output, each layer's (the last after the
    final norm) -> (list of L + 1 (B, T, H), frame_lengths (B,))."""
    hidden, frame_lengths = encoder.embed(x, lengths)
    states = [hidden]
    for i in range(encoder.num_layers):
        hidden = encoder.run_layers(hidden, frame_lengths, i, i + 1)
        states.append(encoder.finish(hidden) if i == encoder.num_layers - 1 else hidden)
    return states, frame_lengths


def _means(states, frames: int) -> np.ndarray:
    """(L + 1, H) float32: each state's mean over the clip's valid frames."""
    return np.stack([s[0, :frames].float().mean(dim=0).cpu().numpy() for s in states])


class _ClipEntries:
    """One ``.npy`` entry per clip in ``self.folder``, named after its content and crop.

    A clip that the crop cut is stored as ``<content>-c<max_samples>.npy``; a clip that it did
    not cut (shorter than the crop, or no crop) as ``<content>-n<samples>.npy``, which serves
    every crop at least that long: the training crop (``student.max_seconds``) and the
    evaluation one (``EVAL_MAX_SECONDS``) share the entries of every clip shorter than both.
    """

    def _index(self, utterances, folder: Path, max_seconds: float | None) -> list:
        """Set ``max_samples``, ``folder``, ``paths`` (the found entries), ``keys`` and
        ``computed``; return the clips whose entry is missing (``_compute`` names theirs)."""
        self.max_samples = int(max_seconds * SAMPLE_RATE) if max_seconds else None
        self.folder = folder
        self.keys = _content_keys(utterances)
        names, whole = _entries(folder)
        self.paths: dict[str, Path] = {}
        missing = []
        for u in utterances:
            key = self.keys[u.id]
            cropped = f"{key}-c{self.max_samples}.npy"
            if self.max_samples and cropped in names:
                self.paths[u.id] = folder / cropped
            elif key in whole and (not self.max_samples or whole[key][0] <= self.max_samples):
                self.paths[u.id] = whole[key][1]
            else:
                missing.append(u)
        self.computed = len(missing)
        return missing

    def _entry(self, utt_id: str, samples: int) -> Path:
        """Where a clip of ``samples`` samples (before the crop) is stored: see the class."""
        key = self.keys[utt_id]
        if self.max_samples and samples > self.max_samples:
            return self.folder / f"{key}-c{self.max_samples}.npy"
        return self.folder / f"{key}-n{samples}.npy"


class LayerMeans(_ClipEntries):
    """Mean over valid frames of every state of a frozen encoder, per utterance: a ``(L + 1,
    H)`` float32 ``.npy`` each (the linear probe's features), keyed on the audio's content,
    the crop and :func:`encoder_digest`. Kilobytes per clip, where the frames of every layer
    would be megabytes. A frozen student's :class:`PrefixCache` writes them as a by-product of
    its own pass, so probing its encoder costs no second pass.

    ``cache.array(ids)`` -> (N, L + 1, H) float32.
    """

    def __init__(
        self,
        encoder: torch.nn.Module,
        utterances: Sequence[Any],
        cache_dir: str | Path,
        max_seconds: float | None = None,
        progress: bool = True,
    ) -> None:
        missing = self._index(utterances, layer_means_folder(cache_dir, encoder), max_seconds)
        if missing:
            self._compute(encoder, missing, progress)

    def _compute(self, encoder, utterances, progress: bool) -> None:
        from emodistill.util.progress import track

        was_training = encoder.training
        encoder.eval()
        device = next(encoder.parameters()).device
        try:
            with torch.inference_mode():
                for u in track(utterances, "frozen encoder, every layer", enabled=progress):
                    x, lengths, samples = _load_clip(u.path, self.max_samples, device)
                    states, frame_lengths = _all_states(encoder, x, lengths)
                    self.paths[u.id] = self._entry(u.id, samples)
                    save_npy_atomic(self.paths[u.id], _means(states, int(frame_lengths[0])))
        finally:
            encoder.train(was_training)

    def array(self, ids: Sequence[str]) -> np.ndarray:
        return np.stack([np.load(self.paths[i], allow_pickle=False) for i in ids])


def layer_means_folder(cache_dir: str | Path, encoder: torch.nn.Module) -> Path:
    """Where :class:`LayerMeans` of ``encoder`` live under a prefix cache's root."""
    return Path(cache_dir) / "layer-means" / encoder_digest(encoder)[:24]


class PrefixCache(_ClipEntries):
    """Frozen-bottom outputs of a student for a set of utterances.

    ``cache[utt_id]`` is a read-only ``(K, T, H)`` float32 memmap; ``cache.frames[utt_id]`` is
    its number of valid frames T.

    Args:
        student: an :class:`~emodistill.models.student.EmoDistillStudent` with a frozen bottom.
        utterances: items with ``id`` and ``path``.
        cache_dir: root folder of the cache (entries go in a sub-folder per frozen digest).
        max_seconds: centre crop of the audio (None: whole clips).
        progress: a progress bar while computing missing entries.
    """

    def __init__(
        self,
        student: torch.nn.Module,
        utterances: Sequence[Any],
        cache_dir: str | Path,
        max_seconds: float | None = None,
        progress: bool = True,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        folder = self.cache_dir / frozen_digest(student)[:24]
        missing = self._index(utterances, folder, max_seconds)
        if missing:
            self._compute(student, missing, progress)
        self.frames = {i: int(np.load(p, mmap_mode="r").shape[1]) for i, p in self.paths.items()}

    def _compute(self, student: torch.nn.Module, utterances: Sequence[Any], progress: bool):
        from emodistill.util.progress import track

        was_training = student.training
        student.eval()
        device = next(student.parameters()).device
        enc = student.encoder
        # A frozen student (every layer it runs is frozen): run the whole encoder once and keep
        # the mean of every layer too (LayerMeans: the linear probe's features, no second pass).
        means = None
        if student.frozen_layers == student.depth:
            means = layer_means_folder(self.cache_dir, enc)
        try:
            for u in track(utterances, "frozen encoder prefix", enabled=progress):
                x, lengths, samples = _load_clip(u.path, self.max_samples, device)
                self.paths[u.id] = self._entry(u.id, samples)
                if means is None:
                    states, frame_lengths = student.prefix(x, lengths)
                    t = int(frame_lengths[0])
                    save_npy_atomic(self.paths[u.id], states[0, :, :t].float().cpu().numpy())
                    continue
                with torch.no_grad():
                    every, frame_lengths = _all_states(enc, x, lengths)
                t = int(frame_lengths[0])
                d = student.depth  # layer weights keep every state up to it
                kept = every[: d + 1] if student.prefix_states > 1 else [every[d]]
                save_npy_atomic(
                    self.paths[u.id], torch.stack(kept, dim=1)[0, :, :t].float().cpu().numpy()
                )
                target = means / self.paths[u.id].name
                if not target.is_file():
                    save_npy_atomic(target, _means(every, t))
        finally:
            student.train(was_training)

    def __contains__(self, utt_id: object) -> bool:
        return utt_id in self.paths

    def __getitem__(self, utt_id: str) -> np.ndarray:
        return np.load(self.paths[utt_id], mmap_mode="r", allow_pickle=False)


def collate_prefix(arrays: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad (K, T_i, H) arrays to (B, K, T_max, H) float32; frame lengths (B,) long."""
    lengths = torch.tensor([a.shape[1] for a in arrays], dtype=torch.long)
    k, h = arrays[0].shape[0], arrays[0].shape[2]
    out = torch.zeros(len(arrays), k, int(lengths.max()), h, dtype=torch.float32)
    for row, a in enumerate(arrays):
        out[row, :, : a.shape[1]] = torch.from_numpy(np.asarray(a, dtype=np.float32))
    return out, lengths
