"""Worker processes of `demo --jobs` / `cv --jobs` (training/parallel.py): what a failed or a
killed worker makes the parent say. The real per-fold task is covered by the quick-demo test
and `test_cv_jobs_trains_folds_in_worker_processes`."""

from __future__ import annotations

import os

import pytest

from emodistill.training.parallel import run_tasks
from emodistill.util.files import EnvironmentFault


def _task_or_die(name, manifest, run_dir, cfg):
    """Module level, so a spawned worker can import it by name."""
    if name == "g2":
        os._exit(9)  # what the OOM killer leaves: no exception, a dead process
    if name == "bad":
        raise ValueError(f"{name}: broken fold")
    return name


def test_a_killed_worker_is_named_and_the_message_says_what_to_do(tmp_path):
    done = []
    with pytest.raises(EnvironmentFault, match=r"worker process died while training g\d.*--jobs"):
        run_tasks(_task_or_die, ["g1", "g2"], ("m", "r", None), 1, 1, done.append, tmp_path)


def test_a_task_error_reaches_the_caller_unchanged(tmp_path):
    done = []
    with pytest.raises(ValueError, match="bad: broken fold"):
        run_tasks(_task_or_die, ["g1", "bad"], ("m", "r", None), 1, 1, done.append, tmp_path)
    assert done in ([], ["g1"])
