"""The one atomic writer (files, JSON, npy, whole folders), file hashes and environment faults.

A writer fills a temporary file (or folder) beside the target and renames it into place, so a
process killed at any moment leaves either the complete old file, the complete new file, or
(before the first write) nothing; never a half-written one. Temporary names start with ``.`` and
end in ``.tmp``, so no reader mistakes them for real entries.

JSON is written by :func:`write_json_atomic` only (a model folder's config by
:mod:`emodistill.models.folder`, with the same :func:`json_text`): a float NaN (a metric undefined
on a fold, say) is written as ``null``, never as the ``NaN`` token that strict JSON readers
(browsers, jq) refuse; :func:`read_json` reads it back (``None``).
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


#: errno values that mean the machine failed, not the item being processed: a job meeting one
#: stops with a clear message instead of counting the item as bad and going on with a subset.
ENVIRONMENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ENOMEM, errno.EMFILE, errno.ENFILE}
)


class EnvironmentFault(RuntimeError):
    """The environment failed (disk full, I/O error, read-only disk, a killed worker): stop."""


def is_environment_error(err: BaseException) -> bool:
    """Whether ``err`` (or what it was raised from) is an OSError of :data:`ENVIRONMENT_ERRNOS`."""
    while err is not None:
        if isinstance(err, OSError) and err.errno in ENVIRONMENT_ERRNOS:
            return True
        err = err.__cause__ or err.__context__
    return False


def sweep_stale_tmp(
    folder: str | Path, pattern: str = "**/.*.tmp", older_than: float = 600.0
) -> int:
    """Remove temporary files a killed process left in ``folder`` (``pattern``, older than
    ``older_than`` seconds: younger ones may belong to a writer still running). Returns the count.
    """
    removed = 0
    now = time.time()
    for tmp in Path(folder).glob(pattern):
        try:
            if tmp.is_file() and now - tmp.stat().st_mtime > older_than:
                tmp.unlink()
                removed += 1
        except OSError:
            pass  # gone already, or not ours to remove
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


_COUNTER = itertools.count()


def tmp_path_for(target: Path) -> Path:
    """A unique temporary path beside ``target`` (per process, thread and call)."""
    return target.with_name(f".{target.name}.{os.getpid()}.{next(_COUNTER)}.{time.time_ns()}.tmp")


@contextmanager
def atomic_path(target: str | Path, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``target`` atomically.

    The file gets ordinary permissions (0666 minus the umask), not the private 0600 of
    :func:`tempfile.mkstemp`. On any exception the temporary file is removed and ``target`` is
    left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(target)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def nan_to_null(value: Any) -> Any:
    """``value`` with every float NaN (also inside dicts, lists, tuples) as None.

    >>> nan_to_null({"ua": float("nan"), "folds": [0.5, (0.25, float("nan"))]})
    {'ua': None, 'folds': [0.5, [0.25, None]]}
    """
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: nan_to_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [nan_to_null(v) for v in value]
    return value


def json_text(
    data: Any,
    indent: int | None = 2,
    sort_keys: bool = False,
    default: Callable[[Any], Any] | None = None,
    ensure_ascii: bool = False,
) -> str:
    """``data`` as the JSON text every JSON file gets: NaN as ``null``, a newline at the end.

    Indented unless ``indent`` is None (then compact); keys sorted with ``sort_keys``;
    ``default`` converts what JSON cannot hold (as in :func:`json.dumps`).

    >>> json_text({"ua": float("nan"), "labels": ["sad"]}, indent=None)
    '{"ua":null,"labels":["sad"]}\\n'
    """
    separators = (",", ":") if indent is None else None
    text = json.dumps(
        nan_to_null(data),
        indent=indent,
        separators=separators,
        ensure_ascii=ensure_ascii,
        sort_keys=sort_keys,
        default=default,
    )
    return text + "\n"


def write_json_atomic(
    path: str | Path, data: Any, indent: int | None = 2, sort_keys: bool = False
) -> None:
    """Write ``data`` as JSON to ``path`` atomically (indented unless ``indent`` is None; keys
    sorted with ``sort_keys``). NaN is written as ``null`` (:func:`nan_to_null`).
    """
    write_text_atomic(path, json_text(data, indent, sort_keys))


def read_json(path: str | Path) -> Any:
    """Read a JSON file (UTF-8): every JSON file we read goes through here.

    Raises:
        ValueError: not valid JSON, or not UTF-8 (the message names the file).
        OSError: the file cannot be read (``FileNotFoundError`` names it in ``filename``).
    """
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def save_npy_atomic(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as ``.npy`` (no pickle) to ``path`` atomically."""
    import numpy as np  # here: the CLI imports this module and stays light

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)


def fsync_path(path: str | Path) -> None:
    """fsync a file or a folder (a folder: its entries survive a crash)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_folder(
    target: str | Path, keep: Callable[[Path], bool] | None = None, fsync: bool = False
) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``target``; on success it becomes ``target``.

    An existing ``target`` is moved aside, replaced and then removed (on a failed rename it is
    put back). With ``keep``, a ``target`` for which ``keep(target)`` is true when the new folder
    is ready (another process finished the same work meanwhile) is kept and the new folder
    discarded. ``fsync``: the parent folder is synced after the rename (the caller syncs the
    files it writes). On any exception the temporary folder is removed and ``target`` is left
    as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; these are ordinary folders
    try:
        yield tmp
        if keep is not None and keep(target):
            return
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}-{next(_COUNTER)}.tmp")
            os.replace(target, old)
            try:
                os.replace(tmp, target)
            except OSError:
                os.replace(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.rename(tmp, target)
            except OSError:
                if keep is not None and keep(target):  # lost a race to a complete folder
                    return
                raise
        if fsync:
            fsync_path(target.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # no-op once renamed into place


#: (path, inode, size, mtime_ns) -> sha256: one run hashes each audio file once, although the
#: fold fingerprint and the prefix cache ask for it per fold, seed and variant.
_SHA_MEMO: dict[tuple[str, int, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes, read in 1 MiB blocks (content keys of caches).

    Memoised per process on the file's inode, size and modification time, so a rewritten file
    is hashed again.
    """
    st = os.stat(path)
    key = (str(Path(path).absolute()), st.st_ino, st.st_size, st.st_mtime_ns)
    known = _SHA_MEMO.get(key)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    _SHA_MEMO[key] = digest.hexdigest()
    return _SHA_MEMO[key]


#: Environment variables that place a process in a distributed job (Lightning's launcher,
#: torchrun, SLURM, LSF); any of them non-zero means "not the job's rank 0".
RANK_VARIABLES = (
    "RANK",
    "LOCAL_RANK",
    "NODE_RANK",
    "GROUP_RANK",
    "SLURM_PROCID",
    "JSM_NAMESPACE_RANK",
)


def is_rank_zero() -> bool:
    """Whether this process is rank 0 of its distributed job (True when not distributed)."""
    return all(int(os.environ.get(name) or 0) == 0 for name in RANK_VARIABLES)


def lock_path_for(folder: str | Path) -> Path:
    """``PARENT/.<name>.lock``: beside the folder, so removing the folder keeps the lock."""
    folder = Path(folder)
    return folder.with_name(f".{folder.name}.lock")


@contextmanager
def folder_lock(folder: str | Path, what: str) -> Iterator[None]:
    """Hold an exclusive inter-process lock on ``folder`` (a file lock beside it).

    A second process that wants the same folder (two ``cv`` runs on one run folder, an array job
    retried while the first attempt still runs) waits, saying so once, and then finds the work
    done. Ranks other than 0 of one distributed job do not lock: rank 0 holds the lock for the
    whole job, and a rank waiting on it would deadlock the job's collectives.

    Args:
        folder: the folder the work writes (it need not exist yet).
        what: words for the waiting message (``"fold g1's student"``).
    """
    from filelock import FileLock, Timeout

    if not is_rank_zero():
        yield
        return
    path = lock_path_for(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        from emodistill.util.log import PLAIN, get_logger

        get_logger(__name__).info(
            f"waiting: another process is working on {what} ({path} is locked)",
            extra={**PLAIN, "soft_wrap": True},
        )
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
