"""On-disk cache of what a partially fine-tuned student's frozen bottom computes.

With ``student.trainable_layers: N`` the front end, stem and bottom layers of the encoder are
frozen and run in eval mode, so their output is a function of the audio and the frozen weights
alone. It is computed once per utterance and stored as ``(K, T, H)`` float32 ``.npy`` files
(memory-mapped when read), keyed on:

* the audio file's content (sha256), and the crop applied to it (``max_seconds``);
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
    for module in enc._frozen_modules():
        for name, t in sorted(module.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class PrefixCache:
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
        self.max_samples = int(max_seconds * SAMPLE_RATE) if max_seconds else None
        digest = frozen_digest(student)
        self.folder = Path(cache_dir) / digest[:24]
        self.paths: dict[str, Path] = {}
        crop = f"c{self.max_samples}" if self.max_samples else "whole"
        for u in utterances:
            try:
                content = file_sha256(u.path)
            except OSError as err:
                raise OSError(f"{u.path}: cannot read audio for the prefix cache ({err})") from err
            self.paths[u.id] = self.folder / f"{content[:40]}-{crop}.npy"
        missing = [u for u in utterances if not self.paths[u.id].is_file()]
        self.computed = len(missing)
        if missing:
            self._compute(student, missing, progress)
        self.frames = {i: int(np.load(p, mmap_mode="r").shape[1]) for i, p in self.paths.items()}

    def _compute(self, student: torch.nn.Module, utterances: Sequence[Any], progress: bool):
        from emodistill.util.progress import track

        was_training = student.training
        student.eval()
        device = next(student.parameters()).device
        try:
            for u in track(utterances, "frozen encoder prefix", enabled=progress):
                wav = centre_crop(load_audio(u.path), self.max_samples)
                x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None].to(device)
                lengths = torch.tensor([x.shape[1]], device=device)
                states, frame_lengths = student.prefix(x, lengths)
                t = int(frame_lengths[0])
                save_npy_atomic(self.paths[u.id], states[0, :, :t].float().cpu().numpy())
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
