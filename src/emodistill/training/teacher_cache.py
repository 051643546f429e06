"""Teacher outputs computed once per fold and read back memory-mapped during distillation.

Teachers are frozen while the student trains, so their logits and embeddings for every utterance
are computed once, right after the teacher is trained, and stored per fold::

    RUN_DIR/<fold>/teachers/outputs/<kind>/     kind: linguistic | prosodic
        ids.json          utterance ids, row order of the arrays
        logits.npy        (N, C) float32
        embeddings.npy    (N, D) float32
        meta.json         {"key", "kind", "n", "num_classes", "embedding_dim", "labels", ...}

``meta.json`` is written last and every file goes through a temporary file + ``os.replace``, so
a reader either finds a complete set or no ``meta.json``. The key hashes the teacher's
``model.safetensors`` and ``config.json`` bytes and the inputs of every utterance (ids and
transcripts for the linguistic teacher; ids and feature-cache entries, which are themselves keyed
on audio content and extractor settings, for the prosodic one), so a retrained teacher or changed
data is recomputed instead of read stale.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emodistill.config import TEACHER_KINDS
from emodistill.models.folder import model_files, read_config
from emodistill.runs.layout import teacher_dir, teacher_outputs_dir
from emodistill.util.files import read_json, save_npy_atomic, write_json_atomic
from emodistill.util.progress import progress_bar

CACHE_VERSION = 1


@dataclass
class TeacherOutputs:
    """One teacher's cached outputs for one fold.

    Attributes:
        ids: utterance ids, in row order.
        logits: (N, C) float32, read-only memmap.
        embeddings: (N, D) float32, read-only memmap.
        meta: the contents of meta.json (key, labels, ...).
    """

    ids: list[str]
    logits: np.ndarray
    embeddings: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._index = {utt_id: i for i, utt_id in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, utt_id: object) -> bool:
        return utt_id in self._index

    def index(self, utt_id: str) -> int:
        """Row of ``utt_id``; KeyError naming the id and the teacher if it is not cached."""
        try:
            return self._index[utt_id]
        except KeyError:
            raise KeyError(
                f"{utt_id!r} has no cached {self.meta.get('kind', 'teacher')} outputs "
                f"({len(self.ids)} utterances cached)"
            ) from None

    def rows(self, ids: Sequence[str]) -> np.ndarray:
        """(len(ids),) int64 row indices, e.g. ``out.logits[out.rows(batch_ids)]``."""
        return np.fromiter((self.index(i) for i in ids), dtype=np.int64, count=len(ids))

    def logits_of(self, ids: Sequence[str]) -> np.ndarray:
        """(len(ids), C) float32 copy of the logits of ``ids``."""
        return np.asarray(self.logits[self.rows(ids)])

    def embeddings_of(self, ids: Sequence[str]) -> np.ndarray:
        """(len(ids), D) float32 copy of the embeddings of ``ids``."""
        return np.asarray(self.embeddings[self.rows(ids)])


# --------------------------------------------------------------------------- loading


def load_teacher(folder: str | Path, map_location: str = "cpu") -> torch.nn.Module:
    """A trained teacher from its model folder (kind read from its config), in eval mode."""
    from emodistill.models.linguistic import MODEL_TYPE as LING
    from emodistill.models.linguistic import LinguisticTeacher
    from emodistill.models.prosodic import MODEL_TYPE as PROS
    from emodistill.models.prosodic import ProsodicResNet

    folder = Path(folder)
    model_type = read_config(folder, "any", "teacher").get("model_type")
    if model_type == LING:
        return LinguisticTeacher.from_pretrained(folder, map_location=map_location)
    if model_type == PROS:
        return ProsodicResNet.from_pretrained(folder, map_location=map_location)
    raise ValueError(f"{model_files(folder)[0]}: unknown model_type {model_type!r}")


def load_fold_teachers(fold_dir: str | Path, kinds: Sequence[str]) -> dict[str, TeacherOutputs]:
    """The cached outputs of ``kinds`` for one fold; a missing cache names the fold and the fix."""
    out = {}
    for kind in kinds:
        try:
            out[kind] = load_teacher_outputs(fold_dir, kind)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"{fold_dir}: no cached {kind} teacher outputs ({err}); run train-teachers first"
            ) from err
    return out


def load_teacher_outputs(fold_dir: str | Path, kind: str) -> TeacherOutputs:
    """The cached outputs of ``kind`` for the fold in ``fold_dir`` (arrays memory-mapped).

    Raises:
        FileNotFoundError: nothing (complete) cached; the message says which command makes it.
    """
    folder = teacher_outputs_dir(fold_dir, kind)
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"{folder}: no cached {kind} teacher outputs (meta.json missing); "
            "run `emodistill train-teachers` for this fold first"
        )
    meta = read_json(meta_path)
    ids = read_json(folder / "ids.json")
    arrays = []
    for name in ("logits.npy", "embeddings.npy"):
        try:
            arrays.append(np.load(folder / name, mmap_mode="r", allow_pickle=False))
        except (ValueError, OSError) as err:  # truncated: np.load names no file
            raise ValueError(
                f"{folder / name}: unreadable ({err}); delete {folder} to rebuild it "
                "(train-teachers recomputes a cache it cannot read)"
            ) from err
    logits, embeddings = arrays
    if not (len(ids) == logits.shape[0] == embeddings.shape[0] == meta.get("n")):
        raise ValueError(
            f"{folder}: inconsistent cache (ids {len(ids)}, logits {logits.shape}, "
            f"embeddings {embeddings.shape}, meta n={meta.get('n')}); delete the folder to rebuild"
        )
    return TeacherOutputs(ids=ids, logits=logits, embeddings=embeddings, meta=meta)


def embedding_dims(
    fold_dir: str | Path,
    teachers: Mapping[str, TeacherOutputs],
    default: int,
    configured: Mapping[str, int | None] | None = None,
) -> tuple[int, int]:
    """(d_L, d_P), the widths of the student's two projection heads: from the teacher outputs
    at hand when present (needed for the cosine terms), else the width recorded in the fold's
    cache on disk, else what the config's teachers embed in (``configured``:
    :func:`configured_embedding_dims`), else ``default`` (the student's projection width).

    The configured widths make a plain student trained before its fold's teachers the same
    network as one trained after them (it was not: 256 / 256 before, 384 / 128 after, and the
    demo's workers train each fold's plain students first)."""
    configured = configured or {}
    dims = {}
    for kind in TEACHER_KINDS:
        outputs = teachers.get(kind)
        dim = (
            int(np.asarray(outputs.embeddings).shape[1])
            if outputs is not None
            else cached_embedding_dim(fold_dir, kind)
        )
        if dim is None:
            dim = configured.get(kind)
        dims[kind] = default if dim is None else int(dim)
    return dims["linguistic"], dims["prosodic"]


def configured_embedding_dims(cfg: Any) -> dict[str, int | None]:
    """The embedding widths the teachers of ``cfg`` (a :class:`~emodistill.config.Config`)
    will have, without training them: d_P is ``prosodic.embedding_dim``; d_L the hidden size in
    the text encoder's own config (read from its folder, or from the local hub cache: None
    when it is not on this machine, and the caller falls back)."""
    from emodistill.models.assets import resolve

    try:
        from transformers import AutoConfig

        source = resolve(cfg.linguistic.model)
        d_l = int(AutoConfig.from_pretrained(source, local_files_only=True).hidden_size)
    except Exception:  # noqa: BLE001 - any failure to read a config means "unknown here"
        d_l = None
    return {"linguistic": d_l, "prosodic": int(cfg.prosodic.embedding_dim)}


def cached_embedding_dim(fold_dir: str | Path, kind: str) -> int | None:
    """The embedding width of ``kind``'s cached outputs, from its ``meta.json`` alone (no array
    is opened), or None when nothing readable is cached."""
    try:
        return int(read_json(teacher_outputs_dir(fold_dir, kind) / "meta.json")["embedding_dim"])
    except (ValueError, OSError, KeyError, TypeError):
        return None


# --------------------------------------------------------------------------- computing


def cache_key(kind: str, model_folder: str | Path, utterances: Sequence[Any], features=None) -> str:
    """Hex digest of the teacher's files and every utterance's inputs (see module docstring)."""
    model_folder = Path(model_folder)
    h = hashlib.blake2b(digest_size=20)
    h.update(f"emodistill-teacher-cache-v{CACHE_VERSION}:{kind}\0".encode())
    for path in model_files(model_folder):
        with open(path, "rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 22), b""):
                h.update(chunk)
        h.update(b"\0")
    for u in utterances:
        h.update(u.id.encode())
        h.update(b"\0")
        if kind == "linguistic":
            h.update((u.transcript or "").encode())
        else:
            h.update(_feature_token(features, u.id))
        h.update(b"\1")
    return h.hexdigest()


def _feature_token(features, utt_id: str) -> bytes:
    """What identifies an utterance's LLDs: the feature-cache entry name (content-keyed)."""
    path = getattr(features, "path", None)
    if callable(path):
        return path(utt_id).name.encode()
    arr = np.ascontiguousarray(features[utt_id])
    return hashlib.blake2b(arr.tobytes(), digest_size=16).digest()


@torch.no_grad()
def teacher_forward(
    model: torch.nn.Module,
    utterances: Sequence[Any],
    features=None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = True,
    description: str = "teacher outputs",
) -> tuple[np.ndarray, np.ndarray]:
    """Run a teacher over ``utterances`` in eval mode (full length, no cropping).

    Items are batched by similar length (the networks mask padding, so order does not change
    results) and returned in the input order.

    Returns:
        logits (N, C) float32 and embeddings (N, D) float32.
    """
    from emodistill.models.linguistic import LinguisticTeacher, check_transcripts

    model = model.to(device).eval()
    linguistic = isinstance(model, LinguisticTeacher)
    n = len(utterances)
    if linguistic:
        check_transcripts(utterances, None)
        sizes = [len(u.transcript or "") for u in utterances]
    else:
        if features is None:
            raise ValueError("the prosodic teacher needs a FeatureStore (features=...)")
        sizes = [int(features[u.id].shape[0]) for u in utterances]
    order = np.argsort(np.asarray(sizes), kind="stable")
    logits_out: np.ndarray | None = None
    emb_out: np.ndarray | None = None
    with progress_bar(progress, n, description) as advance:
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            batch = [utterances[i] for i in idx]
            if linguistic:
                enc = model.encode([u.transcript for u in batch], device=device)
                logits, emb = model(enc["input_ids"], enc["attention_mask"])
            else:
                llds, lengths = pad_llds([features[u.id] for u in batch])
                logits, emb = model(llds.to(device), lengths.to(device))
            if logits_out is None:
                logits_out = np.zeros((n, logits.shape[1]), dtype=np.float32)
                emb_out = np.zeros((n, emb.shape[1]), dtype=np.float32)
            logits_out[idx] = logits.float().cpu().numpy()
            emb_out[idx] = emb.float().cpu().numpy()
            advance(len(idx))
    if logits_out is None or emb_out is None:
        raise ValueError("teacher_forward: no utterances given")
    return logits_out, emb_out


def pad_llds(arrays: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad (T_i, 25) arrays to (B, T_max, 25) float32; lengths (B,) long."""
    lengths = torch.tensor([a.shape[0] for a in arrays], dtype=torch.long)
    out = torch.zeros(len(arrays), int(lengths.max()), arrays[0].shape[1], dtype=torch.float32)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = torch.from_numpy(np.array(a, dtype=np.float32))  # copy of memmap
    return out, lengths


def _save_npy_atomic(path: Path, array: np.ndarray) -> None:
    save_npy_atomic(path, np.ascontiguousarray(array, dtype=np.float32))


def write_teacher_outputs(
    fold_dir: str | Path,
    kind: str,
    utterances: Sequence[Any],
    features=None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = True,
    force: bool = False,
) -> TeacherOutputs:
    """Compute (or reuse) the outputs of the teacher saved in ``<fold_dir>/teachers/<kind>``.

    Args:
        fold_dir: ``RUN_DIR/<fold>``.
        kind: ``linguistic`` or ``prosodic``.
        utterances: every utterance to cache (the fold's train + val + test speakers).
        features: the FeatureStore (prosodic teacher only).
        force: recompute even when the cached key matches.

    Returns:
        The cached :class:`TeacherOutputs` (memory-mapped), identical to a fresh forward pass.
    """
    model_folder = teacher_dir(fold_dir, kind)
    folder = teacher_outputs_dir(fold_dir, kind)
    key = cache_key(kind, model_folder, utterances, features)
    if not force and (folder / "meta.json").is_file():
        try:
            cached = load_teacher_outputs(fold_dir, kind)
            if cached.meta.get("key") == key:
                return cached
        except (ValueError, OSError):
            pass  # incomplete or corrupt: recompute below
    model = load_teacher(model_folder)
    logits, emb = teacher_forward(
        model,
        utterances,
        features=features,
        batch_size=batch_size,
        device=device,
        progress=progress,
        description=f"{kind} teacher outputs",
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").unlink(missing_ok=True)  # invalidate first: meta.json is written last
    write_json_atomic(folder / "ids.json", [u.id for u in utterances])
    _save_npy_atomic(folder / "logits.npy", logits)
    _save_npy_atomic(folder / "embeddings.npy", emb)
    labels = read_config(model_folder, "any").get("labels", [])
    meta = {
        "key": key,
        "kind": kind,
        "n": len(utterances),
        "num_classes": int(logits.shape[1]),
        "embedding_dim": int(emb.shape[1]),
        "labels": labels,
        "teacher": str(model_folder),
        "version": CACHE_VERSION,
    }
    write_json_atomic(folder / "meta.json", meta)
    return load_teacher_outputs(fold_dir, kind)
