"""eGeMAPS v02 low-level descriptors (LLDs) with a content-and-settings-keyed on-disk cache.

:func:`extract_features` fills the cache (``feature_cache``) with the output of the extractor
(``egemaps``), in a process pool, and returns a :class:`FeatureStore`; the public names of
both modules are importable from here.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np  # noqa: F401 - entries are numpy .npy files; features.np is patched in tests

from emodistill.audio import load_audio
from emodistill.audio.failures import file_error
from emodistill.util.files import (
    EnvironmentFault,
    is_environment_error,
    save_npy_atomic,
)
from emodistill.util.log import PLAIN, get_logger
from emodistill.util.progress import make_progress

if TYPE_CHECKING:
    from emodistill.corpora.manifest import Manifest, Utterance

from emodistill.features.cache import (
    INDEX_NAME,
    LOCK_DIR,
    STALE_TMP_SECONDS,
    FeatureStore,
    _entry_frames,
    _entry_lock,
    _entry_path,
    _HashIndex,
    _sweep_stale_tmp,
    default_cache_dir,
    entry_key,
)
from emodistill.features.egemaps import (
    FEATURE_CODE_VERSION,
    FRAME_RATE,
    MIN_SECONDS,
    N_LLD,
    FeatureSettings,
    egemaps_llds,
    extract_prepared,
    feature_columns,
    functional_settings,
)

log = get_logger(__name__)

__all__ = [
    "FEATURE_CODE_VERSION",
    "FRAME_RATE",
    "INDEX_NAME",
    "LOCK_DIR",
    "MIN_SECONDS",
    "N_LLD",
    "STALE_TMP_SECONDS",
    "FeatureSettings",
    "FeatureStore",
    "default_cache_dir",
    "egemaps_llds",
    "entry_key",
    "extract_features",
    "feature_columns",
    "functional_settings",
]


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
            feats = extract_prepared(x, settings, path)
            save_npy_atomic(entry_path, feats)
            return feats.shape[0], seconds, None
    except Exception as err:  # noqa: BLE001 - report any failure per file, keep going
        advice = ": free space or fix the disk, then re-run; finished entries are kept"
        failed = "feature extraction failed"
        return None, 0.0, file_error(err, path, "feature extraction", failed, advice)


def _utterances(manifest: Manifest | Sequence[Utterance] | str | Path) -> list[Utterance]:
    if isinstance(manifest, (str, Path)):
        from emodistill.corpora.manifest import load_manifest

        manifest = load_manifest(manifest)
    return list(getattr(manifest, "utterances", manifest))


def _progress(enabled: bool, total_audio: float):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return make_progress(
        TextColumn("[bold]eGeMAPS[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[audio]:.1f} / " + f"{total_audio:.1f} s audio"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        enabled=enabled,
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
    log.warning(
        f"[yellow]warning:[/] {len(errors)} of {total} utterance(s) have no features "
        "(the rest were extracted):",
        extra={"highlight": False},
    )
    for utt_id, reason in errors.items():
        log.warning(f"  {utt_id}: {reason}", extra={**PLAIN, "soft_wrap": True})
