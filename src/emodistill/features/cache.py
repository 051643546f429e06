"""The on-disk eGeMAPS cache: entries keyed by content and settings, the hash index, the entry
locks, and :class:`FeatureStore`, the read-only view training uses.

Cache layout (``cache_dir``, by default ``<manifest folder>/.emodistill-cache/egemaps``)::

    index.json            (path, size, mtime_ns) -> sha256 of the file's bytes (skip re-hashing)
    ab/abcdef0123....npy  one (T, 25) float32 entry, named by its key

The key of an entry is ``sha256(audio file bytes) + FeatureSettings``: it does not depend on the
file's path or name, and changing any extractor setting (feature set, level, opensmile version,
sample rate, resampler, our feature-code version) gives a different key, so a stale entry is never
read. Entries and the index are written to a temporary file and moved in place with
``os.replace``, so a process killed at any moment leaves either a complete entry or none (left-over
``*.tmp`` files are never read, and swept once they are old). Entries are plain ``.npy`` files
opened with ``np.load(mmap_mode="r")``: training reads them memory-mapped.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from filelock import FileLock

from emodistill.util.files import (
    file_sha256,
    read_json,
    sweep_stale_tmp,
    write_json_atomic,
)

if TYPE_CHECKING:
    pass

from emodistill.features.egemaps import N_LLD, FeatureSettings

#: Index file name inside the cache folder.
INDEX_NAME = "index.json"
#: Folder of the entry locks inside the cache folder.
LOCK_DIR = ".locks"
#: Temporary files older than this (seconds) are left-overs of a killed run and are removed.
STALE_TMP_SECONDS = 600.0
#: Files modified less than this long (seconds) before hashing are not remembered in the index:
#: a file rewritten within the mtime granularity with the same size could otherwise keep a stale
#: hash ("racy" entries, as in git's index).
RACY_SECONDS = 2.0


def _entry_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.npy"


def _entry_frames(path: Path, columns: int = N_LLD) -> int | None:
    """Frames of a complete, well-formed entry, or ``None`` (missing, truncated or foreign).

    Reads only the ``.npy`` header and compares the file size with what the header promises, so
    checking thousands of entries costs a few milliseconds each run.
    """
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                return None
            offset = f.tell()
        size = path.stat().st_size
    except (OSError, ValueError):
        return None
    if fortran or dtype != np.dtype("<f4") or len(shape) != 2 or shape[1] != columns:
        return None
    if shape[0] < 1 or size != offset + shape[0] * columns * 4:
        return None
    return int(shape[0])


class _HashIndex:
    """(absolute path, size, mtime_ns) -> sha256 of content, persisted atomically as JSON."""

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, list] = {}
        self.changed = False
        self.hashed = 0
        try:
            data = read_json(path)
            if data.get("version") == 1 and isinstance(data.get("files"), dict):
                self.entries = data["files"]
        except (OSError, ValueError, AttributeError):
            pass  # missing or damaged index: only costs re-hashing

    def content_hash(self, path: Path) -> str:
        """sha256 of the file's bytes; raises ``OSError`` if it cannot be read."""
        st = path.stat()
        name = str(path)
        known = self.entries.get(name)
        if known is not None and known[0] == st.st_size and known[1] == st.st_mtime_ns:
            return str(known[2])
        digest = file_sha256(path)
        self.hashed += 1
        if time.time_ns() - st.st_mtime_ns > RACY_SECONDS * 1e9:
            self.entries[name] = [st.st_size, st.st_mtime_ns, digest]
            self.changed = True
        elif known is not None:
            del self.entries[name]
            self.changed = True
        return digest

    def save(self) -> None:
        """Write the index, merged with what other processes saved meanwhile (under a lock)."""
        if not self.changed:
            return
        with FileLock(self.path.with_name(f".{self.path.name}.lock")):
            theirs = _HashIndex(self.path).entries
            write_json_atomic(self.path, {"version": 1, "files": {**theirs, **self.entries}}, None)
        self.changed = False


def _sweep_stale_tmp(cache_dir: Path, older_than: float = STALE_TMP_SECONDS) -> int:
    """Remove ``*.tmp`` files a killed run left behind (only old ones: others may be writing)."""
    return sweep_stale_tmp(cache_dir, "**/.*.tmp", older_than)


def _entry_lock(cache_dir: Path, key: str) -> FileLock:
    """The lock guarding the entry ``key`` (256 lock files, by the key's first two hex digits:
    processes sharing a cache never extract one entry twice, and the lock files stay few)."""
    locks = cache_dir / LOCK_DIR
    locks.mkdir(exist_ok=True)
    return FileLock(locks / f"{key[:2]}.lock")


class FeatureStore:
    """Read-only view of cached features: ``store[utt_id]`` is a (T, 25) float32 memmap of LLDs
    (or a (1, 88) row of functionals, with :func:`functional_settings`).

    Attributes:
        ids: utterance ids with features, in manifest order.
        errors: ``utt_id -> reason`` for utterances whose audio could not be used (the reason
            names the file).
        lengths: ``utt_id -> T`` (frames).
        stats: counts of the run that built the store: ``extracted`` (computed now), ``cached``
            (found in the cache), ``failed``, ``hashed`` (files whose content was re-hashed),
            and ``seconds`` (wall time).
        cache_dir, settings: where the entries live and how they were computed.
    """

    def __init__(
        self,
        cache_dir: Path,
        paths: dict[str, Path],
        lengths: dict[str, int],
        errors: dict[str, str],
        settings: FeatureSettings,
        stats: dict[str, float] | None = None,
    ):
        self.cache_dir = Path(cache_dir)
        self._paths = paths
        self.lengths = lengths
        self.errors = errors
        self.settings = settings
        self.stats: dict[str, float] = dict(stats or {})
        self.ids: list[str] = list(paths)

    def __len__(self) -> int:
        return len(self._paths)

    def __contains__(self, utt_id: object) -> bool:
        return utt_id in self._paths

    def __iter__(self):
        return iter(self.ids)

    def path(self, utt_id: str) -> Path:
        """The ``.npy`` file holding ``utt_id``'s features."""
        try:
            return self._paths[utt_id]
        except KeyError:
            reason = self.errors.get(utt_id)
            if reason is not None:
                raise KeyError(f"no features for {utt_id!r}: {reason}") from None
            raise KeyError(f"no features for {utt_id!r} (not in the manifest)") from None

    def __getitem__(self, utt_id: str) -> np.ndarray:
        """(T, 25) float32 read-only memmap of ``utt_id``'s LLDs."""
        return np.load(self.path(utt_id), mmap_mode="r", allow_pickle=False)

    def normalization_stats(self, ids: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per-LLD mean and standard deviation over all frames of ``ids``.

        Used to normalise the prosodic teacher's input with training-speaker statistics only.
        Accumulates in float64. A constant LLD (std 0) gets std 1 so that ``(x - mean) / std``
        stays finite.

        Returns:
            (mean (25,), std (25,)) float32.

        Raises:
            KeyError: an id without features (names it and why).
            ValueError: ``ids`` is empty.
        """
        total = np.zeros(N_LLD, dtype=np.float64)
        total_sq = np.zeros(N_LLD, dtype=np.float64)
        count = 0
        for utt_id in ids:
            x = np.asarray(self[utt_id], dtype=np.float64)
            total += x.sum(axis=0)
            total_sq += np.square(x).sum(axis=0)
            count += x.shape[0]
        if count == 0:
            raise ValueError("normalization_stats: no utterances given")
        mean = total / count
        var = np.maximum(total_sq / count - np.square(mean), 0.0)
        std = np.sqrt(var)
        std[std <= 1e-8 * np.maximum(1.0, np.abs(mean))] = 1.0
        return mean.astype(np.float32), std.astype(np.float32)


def default_cache_dir(manifest_path: str | Path) -> Path:
    """``<manifest folder>/.emodistill-cache/egemaps``."""
    return Path(manifest_path).absolute().parent / ".emodistill-cache" / "egemaps"


def entry_key(content_hash: str, settings: FeatureSettings) -> str:
    """Cache key of an audio content hash under ``settings`` (sha256 hex)."""
    return hashlib.sha256(f"{content_hash}:{settings.digest()}".encode()).hexdigest()
