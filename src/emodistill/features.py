"""eGeMAPS v02 low-level descriptors (LLDs) with a content-and-settings-keyed on-disk cache.

The prosodic teacher reads, per utterance, a (T, 25) float32 matrix: the 25 eGeMAPS v02 LLDs that
opensmile computes every 10 ms (``FRAME_RATE`` = 100 frames/s). Measured with opensmile 2.6.0 on
16 kHz audio: ``T = N // 160 - 4`` for ``N >= 960`` samples (the F0/jitter window is 60 ms, so the
first 4 hops have no complete frame); shorter signals give a single NaN row, so anything under
``MIN_SECONDS`` (60 ms) is refused as too short.

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
import json
import multiprocessing
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from filelock import FileLock

from emodistill._io import (
    EnvironmentFault,
    file_sha256,
    is_environment_error,
    save_npy_atomic,
    sweep_stale_tmp,
    write_json_atomic,
)
from emodistill.audio import SAMPLE_RATE, AudioError, load_audio, prepare_signal

if TYPE_CHECKING:
    from emodistill.corpora.manifest import Manifest, Utterance

#: Number of eGeMAPS v02 low-level descriptors per frame.
N_LLD = 25
#: LLD frames per second (10 ms hop).
FRAME_RATE = 100
#: Shortest audio that gives at least one complete eGeMAPS frame (60 ms F0 window).
MIN_SECONDS = 0.06
#: Bump when the extraction code changes its output: every cache entry then misses.
FEATURE_CODE_VERSION = 1
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


def _opensmile_version() -> str:
    # Package metadata, not ``opensmile.__version__``: a warm run need not import opensmile.
    from importlib.metadata import version

    return version("opensmile")


def _resampler_version() -> str:
    import soxr

    return f"soxr-{soxr.__version__}-HQ"


@dataclass(frozen=True)
class FeatureSettings:
    """Everything the content of a cache entry depends on besides the audio bytes.

    Any change gives new cache keys. ``feature_set`` and ``feature_level`` are member names of
    ``opensmile.FeatureSet`` / ``opensmile.FeatureLevel``.
    """

    feature_set: str = "eGeMAPSv02"
    feature_level: str = "LowLevelDescriptors"
    sample_rate: int = SAMPLE_RATE
    opensmile_version: str = field(default_factory=_opensmile_version)
    resampler: str = field(default_factory=_resampler_version)
    code_version: int = FEATURE_CODE_VERSION

    def digest(self) -> str:
        """sha256 hex digest of the settings (stable across processes and runs)."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


# One opensmile.Smile per process and settings: building it parses the config (a few ms) and
# opensmile is not documented as thread-safe, so each worker process keeps its own.
_SMILE: dict[tuple[str, str], Any] = {}


def _smile(settings: FeatureSettings) -> Any:
    import opensmile

    key = (settings.feature_set, settings.feature_level)
    smile = _SMILE.get(key)
    if smile is None:
        smile = opensmile.Smile(
            feature_set=getattr(opensmile.FeatureSet, settings.feature_set),
            feature_level=getattr(opensmile.FeatureLevel, settings.feature_level),
        )
        _SMILE[key] = smile
    return smile


def egemaps_llds(
    signal: np.ndarray,
    sampling_rate: int,
    settings: FeatureSettings | None = None,
    name: str = "<array>",
) -> np.ndarray:
    """eGeMAPS v02 LLDs of a signal: a pure function of ``signal`` and ``sampling_rate``.

    The signal is first converted to mono float32 at ``settings.sample_rate`` (16 kHz), so any
    input rate gives the features a cached file would get.

    Args:
        signal: (N,) or (N, channels) samples.
        sampling_rate: rate of ``signal`` in Hz.
        settings: extractor settings (default: eGeMAPSv02 LLDs at 16 kHz).
        name: what to call the signal in error messages (usually its file path).

    Returns:
        (T, 25) float32, ``T = N16 // 160 - 4`` where ``N16`` is the length at 16 kHz
        (about ``duration * FRAME_RATE``).

    Raises:
        AudioError: empty, non-finite or shorter than ``MIN_SECONDS`` audio, or non-finite
            features (names ``name``).
    """
    settings = settings or FeatureSettings()
    x = prepare_signal(
        signal, sampling_rate, settings.sample_rate, name=name, min_seconds=MIN_SECONDS
    )
    return _llds_of_prepared(x, settings, name)


def _llds_of_prepared(x: np.ndarray, settings: FeatureSettings, name: str) -> np.ndarray:
    frame = _smile(settings).process_signal(x, settings.sample_rate)
    feats = np.ascontiguousarray(frame.to_numpy(), dtype=np.float32)
    if feats.ndim != 2 or feats.shape[0] == 0:
        raise AudioError(f"{name}: opensmile returned no frames ({feats.shape})")
    if not np.all(np.isfinite(feats)):
        # opensmile fills too-short segments with NaN; anything else non-finite is a bug to see.
        raise AudioError(f"{name}: eGeMAPS features are not finite (audio too short or broken?)")
    return feats


# --------------------------------------------------------------------------- cache files


def _entry_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.npy"


#: Values per row of the opensmile outputs we cache besides the LLDs: (feature set, level) ->
#: columns. Entries of any other settings are checked against ``N_LLD`` columns.
FEATURE_COLUMNS = {("eGeMAPSv02", "Functionals"): 88}


def feature_columns(settings: FeatureSettings) -> int:
    """Columns of one cache entry under ``settings`` (25 LLDs per frame; 88 functionals)."""
    return FEATURE_COLUMNS.get((settings.feature_set, settings.feature_level), N_LLD)


def functional_settings() -> FeatureSettings:
    """eGeMAPS v02 *functionals*: one (1, 88) row of utterance statistics per file.

    Cached by :func:`extract_features` exactly like the LLDs (same folder, same content hash;
    the feature level is part of the key, so the two never collide).
    """
    return FeatureSettings(feature_level="Functionals")


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
            data = json.loads(path.read_text(encoding="utf-8"))
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


# --------------------------------------------------------------------------- extraction


def default_cache_dir(manifest_path: str | Path) -> Path:
    """``<manifest folder>/.emodistill-cache/egemaps``."""
    return Path(manifest_path).absolute().parent / ".emodistill-cache" / "egemaps"


def entry_key(content_hash: str, settings: FeatureSettings) -> str:
    """Cache key of an audio content hash under ``settings`` (sha256 hex)."""
    return hashlib.sha256(f"{content_hash}:{settings.digest()}".encode()).hexdigest()


def _extract_one(
    path: str, entry: str, settings: FeatureSettings
) -> tuple[int | None, float, str | None]:
    """Worker: load, extract and atomically store one file, holding the entry's lock.

    Returns ``(frames, audio_seconds, error)`` (an entry another process wrote meanwhile is
    taken as is). A bad file is an ``error``, never an exception: one bad file must not stop the
    rest. Top-level and with picklable arguments, so it runs under the ``spawn`` start method.

    Raises:
        EnvironmentFault: the disk is full, an I/O error, a read-only disk...: the machine
            failed, not the file, so the job must stop rather than go on with a subset.
    """
    entry_path = Path(entry)
    try:
        with _entry_lock(entry_path.parent.parent, entry_path.stem):
            frames = _entry_frames(entry_path)
            if frames is not None:  # another process extracted it while we waited
                return frames, 0.0, None
            x = load_audio(path, settings.sample_rate, min_seconds=MIN_SECONDS)
            seconds = x.size / settings.sample_rate
            feats = _llds_of_prepared(x, settings, path)
            save_npy_atomic(entry_path, feats)
            return feats.shape[0], seconds, None
    except AudioError as err:
        return None, 0.0, str(err)
    except Exception as err:  # noqa: BLE001 - report any failure per file, keep going
        if is_environment_error(err):
            raise EnvironmentFault(
                f"feature extraction stopped at {path}: {err} (the machine failed, not the "
                "file: free space or fix the disk, then re-run; finished entries are kept)"
            ) from err
        return None, 0.0, f"{path}: feature extraction failed ({type(err).__name__}: {err})"


def _utterances(manifest: Manifest | Sequence[Utterance] | str | Path) -> list[Utterance]:
    if isinstance(manifest, (str, Path)):
        from emodistill.corpora.manifest import load_manifest

        manifest = load_manifest(manifest)
    return list(getattr(manifest, "utterances", manifest))


def _progress(enabled: bool, total_audio: float):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]eGeMAPS[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[audio]:.1f} / " + f"{total_audio:.1f} s audio"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


def _audio_seconds(path: Path) -> float:
    import soundfile as sf

    try:
        info = sf.info(str(path))
        return info.frames / info.samplerate if info.samplerate else 0.0
    except Exception:  # noqa: BLE001 - a bad header is reported by the extraction itself
        return 0.0


def extract_features(
    manifest: Manifest | Sequence[Utterance] | str | Path,
    cache_dir: str | Path,
    workers: int = 1,
    progress: bool = True,
    settings: FeatureSettings | None = None,
) -> FeatureStore:
    """eGeMAPS LLDs of every utterance, computed once and cached on disk.

    Each file's bytes are hashed (unchanged files reuse the hash in ``index.json``), combined
    with ``settings`` into a key, and only keys without a complete entry are extracted. Bad
    files (unreadable, empty, shorter than 60 ms, non-finite) are listed in ``store.errors``
    and printed as warnings; the others are still extracted.

    Args:
        manifest: a :class:`~emodistill.corpora.manifest.Manifest`, a list of utterances, or a
            manifest CSV path.
        cache_dir: cache folder (see :func:`default_cache_dir`); created if missing.
        workers: extraction processes; 1 runs in this process, more use a ``spawn`` process pool.
        progress: show a rich progress bar (count and audio seconds).
        settings: extractor settings (default: eGeMAPSv02 LLDs at 16 kHz;
            :func:`functional_settings` for the 88 functionals).

    Returns:
        A :class:`FeatureStore`; ``store.stats`` says how many entries were extracted now,
        found cached, failed and re-hashed.
    """
    start = time.perf_counter()
    settings = settings or FeatureSettings()
    cache_dir = Path(cache_dir).absolute()
    cache_dir.mkdir(parents=True, exist_ok=True)
    _sweep_stale_tmp(cache_dir)
    utts = _utterances(manifest)
    columns = feature_columns(settings)

    index = _HashIndex(cache_dir / INDEX_NAME)
    errors: dict[str, str] = {}
    keys: dict[str, str] = {}  # utt_id -> key
    lengths_by_key: dict[str, int] = {}
    todo: dict[str, Path] = {}  # key -> audio file (one extraction per distinct content)
    for u in utts:
        path = Path(u.path)
        try:
            key = entry_key(index.content_hash(path), settings)
        except OSError as err:
            if is_environment_error(err):
                raise EnvironmentFault(f"{path}: cannot read file ({err}); stopping") from err
            errors[u.id] = f"{path}: cannot read file ({err.strerror or err})"
            continue
        keys[u.id] = key
        if key in lengths_by_key or key in todo:
            continue
        frames = _entry_frames(_entry_path(cache_dir, key), columns)
        if frames is None:
            todo[key] = path  # missing, or truncated/foreign in place: (re-)extract
        else:
            lengths_by_key[key] = frames
    index.save()
    cached = len(lengths_by_key)

    key_errors: dict[str, str] = {}
    if todo:
        total_audio = sum(_audio_seconds(p) for p in todo.values())
        with _progress(progress, total_audio) as bar:
            task = bar.add_task("extract", total=len(todo), audio=0.0)
            done_audio = 0.0

            def record(key: str, result: tuple[int | None, float, str | None]) -> None:
                nonlocal done_audio
                frames, seconds, error = result
                if error is not None:
                    key_errors[key] = error
                else:
                    lengths_by_key[key] = int(frames)  # type: ignore[arg-type]
                done_audio += seconds
                bar.update(task, advance=1, audio=done_audio)

            jobs = [(key, str(p), str(_entry_path(cache_dir, key))) for key, p in todo.items()]
            if workers <= 1 or len(jobs) == 1:
                for key, p, entry in jobs:
                    record(key, _extract_one(p, entry, settings))
            else:
                _run_pool(jobs, settings, min(workers, len(jobs)), record)

    paths: dict[str, Path] = {}
    lengths: dict[str, int] = {}
    for u in utts:
        key = keys.get(u.id)
        if key is None:
            continue
        if key in key_errors:
            errors[u.id] = key_errors[key]
            continue
        paths[u.id] = _entry_path(cache_dir, key)
        lengths[u.id] = lengths_by_key[key]

    if errors:
        _warn_errors(errors, len(utts))
    stats = {
        "extracted": len(todo) - len(key_errors),
        "cached": cached,
        "failed": len(errors),
        "hashed": index.hashed,
        "seconds": time.perf_counter() - start,
    }
    return FeatureStore(cache_dir, paths, lengths, errors, settings, stats)


def _run_pool(jobs, settings, workers, record) -> None:
    """Run ``_extract_one`` over ``jobs`` in a spawn pool, recording results as they finish."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending: dict[Future, str] = {
            pool.submit(_extract_one, p, entry, settings): key for key, p, entry in jobs
        }
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    key = pending.pop(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool as err:  # a worker died (killed, out of memory)
                        path = next(p for k, p, _ in jobs if k == key)
                        raise EnvironmentFault(
                            f"an extraction worker died while extracting {path} ({err}): out of "
                            "memory or killed; re-run (finished entries are kept), or use fewer "
                            "--workers"
                        ) from err
                    record(key, result)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # do not start the remaining files
            raise


def _warn_errors(errors: dict[str, str], total: int) -> None:
    from rich.console import Console

    console = Console(stderr=True, highlight=False)
    console.print(
        f"[yellow]warning:[/] {len(errors)} of {total} utterance(s) have no features "
        "(the rest were extracted):"
    )
    for utt_id, reason in errors.items():
        console.print(f"  {utt_id}: {reason}", markup=False, soft_wrap=True)
