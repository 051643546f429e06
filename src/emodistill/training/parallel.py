"""Folds in parallel worker processes on one machine (``emodistill demo --jobs``).

The demo's models are small: a frozen encoder's cached states feed a few linear layers, and the
teachers are a 6-layer MiniLM and an MLP. torch's intra-op threads share such work badly: on two
cores, two folds in two processes of one thread each finished in 0.68 (students) and 0.63
(teachers) of the time that one process of two threads took for the same two folds
(docs/results.md). So the folds run in ``jobs`` spawned processes with ``threads`` torch
threads each, every fold doing what ``train-teachers --folds ID`` and ``cv --folds ID`` do.
They share the run folder the way array jobs on a cluster do: each fold writes only its own
folder, aggregate files are written under locks, and a later sequential pass over all folds
reuses every finished teacher and student (it only aggregates, probes and reports).

The frozen encoder's states of every clip are computed once in the parent first (the folds
would otherwise each encode the clips they share).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from emodistill.config import Config
from emodistill.util.files import EnvironmentFault
from emodistill.util.log import get_logger

log = get_logger(__name__)

#: The pool's task that runs the linear probe (beside the folds' tasks).
PROBE_TASK = "probe"


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def default_jobs(n_folds: int, cfg: Config, jobs: int | None = None) -> tuple[int, int]:
    """(worker processes, torch threads each) for ``n_folds`` folds on this machine.

    ``jobs`` None: one process per CPU up to the number of folds, or one when training would
    run on a GPU (its folds then queue on the one device); else ``jobs``, at most one per fold.
    The CPUs left over are shared out as threads."""
    from emodistill.training.teacher_stage import cuda_device

    if jobs is None:
        jobs = 1 if cuda_device(cfg) == "cuda" else available_cpus()
    jobs = max(1, min(n_folds, jobs))
    return jobs, threads_per_job(jobs)


def threads_per_job(jobs: int) -> int:
    """torch threads for each of ``jobs`` worker processes: the CPUs shared out, at least 1."""
    return max(1, available_cpus() // max(1, jobs))


def encode_clips(manifest: Any, run_dir: Path, cfg: Config, progress: bool = True) -> None:
    """Fill the prefix cache with the frozen bottom's states of every clip of ``manifest``: the
    training crop (``student.max_seconds``) and the whole test clip (``EVAL_MAX_SECONDS``), what
    ``distill`` and ``predict_test_clips`` read. Nothing to do for an unfrozen student."""
    from emodistill.features.prefix_cache import PrefixCache
    from emodistill.models.student import build_student
    from emodistill.training.data import EVAL_MAX_SECONDS
    from emodistill.training.distill import prefix_cache_dir

    # The head sizes do not touch the frozen bottom, whose digest keys the cache.
    student = build_student(cfg.student, len(manifest.labels), 1, 1)
    if student.trainable_layers is None:
        return
    cache = prefix_cache_dir(manifest, run_dir)
    for seconds in (cfg.student.max_seconds, EVAL_MAX_SECONDS):
        PrefixCache(student, manifest.utterances, cache, max_seconds=seconds, progress=progress)


def run_folds_in_parallel(
    manifest_path: str | Path,
    run_dir: str | Path,
    cfg: Config,
    fold_ids: Sequence[str],
    variants: Sequence[str],
    jobs: int,
    threads: int = 1,
    probe: bool = False,
    on_done: Any = None,
    seeds: Sequence[int] | None = None,
) -> None:
    """Teachers (when a variant needs them: ``cross_validate`` trains or reuses them) and the
    students of ``variants`` for every fold of
    ``fold_ids``, ``jobs`` folds at a time in spawned processes of ``threads`` torch threads.

    Args:
        manifest_path: the manifest CSV (each worker loads it).
        run_dir: RUN_DIR, as for ``cross_validate``.
        cfg: the run's config (pickled to the workers).
        fold_ids: folds to train; variants: student variants, in order, per fold.
        probe: also run the linear probe (``RUN/probe/``) as one more task.
        on_done: called with each finished task's name (a fold id or :data:`PROBE_TASK`).
        seeds: student seeds (``cross_validate``'s; None: the config's).

    Raises:
        The first exception a task raised (the tasks not yet started are cancelled);
        :class:`~emodistill.util.files.EnvironmentFault` when a worker process died (killed
        for memory, say), naming the task and saying to rerun with fewer jobs.
    """
    tasks = ([PROBE_TASK] if probe else []) + list(fold_ids)
    args = (str(manifest_path), str(run_dir), cfg, tuple(variants), seeds)
    run_tasks(_task, tasks, args, jobs, threads, on_done, run_dir)


def run_tasks(fn, names, args: tuple, jobs: int, threads: int, on_done, run_dir) -> None:
    """``fn(name, *args)`` for each of ``names`` in ``jobs`` spawned processes (``fn``
    importable by name); see :func:`run_folds_in_parallel` for what it raises."""
    ctx = get_context("spawn")  # fork after torch started its threads can deadlock
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(threads,)
    ) as pool:
        futures = {pool.submit(fn, name, *args): name for name in names}
        try:
            for future in as_completed(futures):
                try:
                    future.result()
                except BrokenProcessPool as err:
                    raise EnvironmentFault(
                        f"a worker process died while training {futures[future]} (out of "
                        f"memory?): rerun with fewer --jobs (finished folds in {run_dir} are "
                        "reused)"
                    ) from err
                if on_done is not None:
                    on_done(futures[future])
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # the running tasks finish, no more
            raise


def _init_worker(threads: int) -> None:
    import warnings

    import lightning  # noqa: F401 - its import sets its loggers' levels: quieten them after
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    # numpy's BLAS (scikit-learn's probe, in one of these workers) would otherwise start a
    # thread per CPU beside the other workers' torch threads.
    threadpool_limits(limits=threads)
    # The parent reports progress per fold; the workers' own stage logs would interleave.
    for name in ("emodistill", "lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    # transformers' "Loading weights" bar of every teacher it loads would print between the
    # parent's lines too.
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _task(
    name: str,
    manifest_path: str,
    run_dir: str,
    cfg: Config,
    variants: tuple,
    seeds: Sequence[int] | None,
) -> str:
    from emodistill.corpora.manifest import load_manifest
    from emodistill.training.cv import cross_validate, ensure_run_probe

    manifest = load_manifest(manifest_path)
    if name == PROBE_TASK:
        ensure_run_probe(manifest, Path(run_dir), cfg, progress=False)
        return name
    for variant in variants:  # cross_validate trains the fold's teachers when one needs them
        cross_validate(
            manifest,
            run_dir,
            cfg,
            folds=name,
            variant=variant,
            progress=False,
            probe=False,
            seeds=seeds,
            # Each fold's reports, curves and model cards would be redrawn over every fold
            # found so far, 1-2 s a call, and again by the aggregating pass after the pool.
            aggregate=False,
        )
    return name
