"""Resume inside a stage (issue 26): a process killed with SIGKILL mid-epoch, rerun with the same
command, prints ``resumed <stage> from epoch N`` and ends with the uninterrupted run's model and
numbers; a stale or corrupted checkpoint is never resumed, and says so naming the file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from stage_worker import teacher_config
from test_distill import fresh_run, prepared, reference  # noqa: F401 - shared fixtures
from test_teachers import FOLD, lld_features, text_manifest

from emodistill.training.teachers import train_teacher

WORKER = Path(__file__).parent / "stage_worker.py"


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _worker(*args: str) -> list[str]:
    return [sys.executable, str(WORKER), *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}


def kill_when_stalled(cmd: list[str], marker: Path, timeout: float = 240.0) -> None:
    """Run ``cmd`` until it writes ``marker`` (training reached the stall point), then SIGKILL."""
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    start = time.monotonic()
    while not marker.exists():
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            pytest.fail(f"worker ended (rc {proc.returncode}) before the stall:\n{out[-3000:]}")
        if time.monotonic() - start > timeout:
            proc.kill()
            pytest.fail("worker never reached the stall point")
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def rerun(cmd: list[str]) -> str:
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_teacher_killed_mid_epoch_resumes_to_the_uninterrupted_result(tmp_path):
    """Dropout and random crops: equal only if weights, optimiser, scheduler, early stopping,
    best-so-far and the random generators all come back."""
    ref_root, root = tmp_path / "ref", tmp_path / "killed"
    manifest = text_manifest(ref_root)
    ref = train_teacher(
        "prosodic",
        manifest,
        FOLD,
        teacher_config(),
        ref_root / "run" / FOLD.id,
        features=lld_features(manifest),
        progress=False,
    )
    marker = tmp_path / "stalled"
    kill_when_stalled(_worker("teacher", str(root), "--stall", "2", "3", str(marker)), marker)
    work = root / "run" / FOLD.id / "teachers" / "train" / "prosodic"
    ckpt = torch.load(work / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 1  # epochs 0 and 1 done; killed in the middle of epoch 2
    assert not (root / "run" / FOLD.id / "teachers" / "prosodic").exists()

    out = rerun(_worker("teacher", str(root)))
    assert "resumed prosodic teacher (fold spk0) from epoch 2" in out
    got = json.loads((work / "result.json").read_text())
    for key in ("wa", "ua", "f1", "val_ua", "global_step", "epochs", "confusion"):
        assert got[key] == ref[key], key
    assert got["resumed"] is True
    teachers, ref_teachers = (r / "run" / FOLD.id / "teachers" for r in (root, ref_root))
    assert _same_weights(teachers / "prosodic", ref_teachers / "prosodic")
    ref_log = ref_root / "run" / FOLD.id / "teachers" / "train" / "prosodic" / "logs"
    assert (work / "logs" / "metrics.csv").read_text() == (ref_log / "metrics.csv").read_text()
    assert not (work / "checkpoints").exists()  # a finished stage keeps no resume state


def test_cv_killed_mid_epoch_resumes_to_the_uninterrupted_numbers(
    prepared,  # noqa: F811
    reference,  # noqa: F811
    tmp_path,
):
    """`emodistill cv` killed (SIGKILL) in the middle of the student's second epoch; the same
    command again continues from epoch 1 and writes the reference run's results."""
    run = fresh_run(prepared, tmp_path / "run")
    cmd = [
        "cv",
        str(prepared["manifest"]),
        "--out",
        str(run),
        "--config",
        str(prepared["root"] / "tiny.yaml"),
        "--folds",
        "g1",
    ]
    marker = tmp_path / "stalled"
    kill_when_stalled(_worker("cli", "--stall", "1", "1", str(marker), "--", *cmd), marker)
    assert (run / "g1" / "student_train" / "checkpoints" / "last.ckpt").is_file()
    assert not (run / "results.json").exists()

    out = rerun(_worker("cli", "--", *cmd))
    assert "resumed full student (fold g1, seed 0) from epoch 1" in out
    ref = reference / "results_after_g1.json"
    assert (run / "results.json").read_text() == ref.read_text()
    a = json.loads((run / "g1" / "student" / "predictions.json").read_text())
    b = json.loads((reference / "g1" / "student" / "predictions.json").read_text())
    assert a["probabilities"] == b["probabilities"]
    assert not (run / "g1" / "student_train" / "checkpoints").exists()


# --------------------------------------------------------------------------- never stale


def _interrupted_teacher(root: Path, cfg=None) -> tuple[object, object, Path]:
    from test_teachers import Interrupt

    manifest = text_manifest(root)
    features = lld_features(manifest)
    with pytest.raises(KeyError, match="simulated"):
        train_teacher(
            "prosodic",
            manifest,
            FOLD,
            cfg or teacher_config(),
            root / "run" / FOLD.id,
            features=features,
            progress=False,
            callbacks=[Interrupt(at=1)],
        )
    work = root / "run" / FOLD.id / "teachers" / "train" / "prosodic"
    assert (work / "checkpoints" / "last.ckpt").is_file()
    return manifest, features, work


def _epochs_started(manifest, features, root, cfg, capsys) -> tuple[list[int], str]:
    import lightning as L

    class Starts(L.Callback):
        epochs: list[int] = []

        def on_train_epoch_start(self, trainer, pl_module):
            self.epochs.append(trainer.current_epoch)

    starts = Starts()
    capsys.readouterr()
    train_teacher(
        "prosodic",
        manifest,
        FOLD,
        cfg,
        root / "run" / FOLD.id,
        features=features,
        progress=False,
        callbacks=[starts],
    )
    return starts.epochs, capsys.readouterr().err


def test_a_changed_config_never_resumes_a_stale_checkpoint(tmp_path, capsys):
    manifest, features, work = _interrupted_teacher(tmp_path)
    changed = teacher_config().override({"prosodic.optim.lr": 5e-3})
    epochs, err = _epochs_started(manifest, features, tmp_path, changed, capsys)
    assert epochs[0] == 0
    assert "was made under another config or from other data" in err
    assert "last.ckpt" in err and len(list((work / "stale").iterdir())) == 1


def test_a_truncated_checkpoint_is_named_and_training_starts_over(tmp_path, capsys):
    manifest, features, work = _interrupted_teacher(tmp_path)
    last = work / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    epochs, err = _epochs_started(manifest, features, tmp_path, teacher_config(), capsys)
    assert epochs[0] == 0
    assert "is unreadable" in err and str(last) in err.replace("\n", "")
    assert len(list((work / "stale").iterdir())) == 1  # kept for inspection, never resumed


# --------------------------------------------------------------------------- preemption


def _fake_slurm(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """The environment of task 0 of a one-task Slurm job, with an ``scontrol`` that records
    its arguments (no Slurm here)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "scontrol.log"
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$*" >> "{log}"\n')
    (bin_dir / "scontrol").chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "emodistill-fold",
        "SLURM_NTASKS": "1",
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_NNODES": "1",
        "SLURM_NODELIST": "localhost",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "SLURM_STEP_NUM_TASKS": "1",
    }
    return env, log


def test_sigusr1_requeues_through_lightning_and_the_requeued_task_resumes(tmp_path):
    """Slurm's ``--signal=USR1@120``: Lightning's SLURMEnvironment calls ``scontrol requeue``;
    Slurm then stops the task (SIGKILL here); the requeued task resumes the last finished epoch
    (never Lightning's mid-epoch ``hpc_ckpt``, whose epoch would not match an uninterrupted run)."""
    slurm, scontrol = _fake_slurm(tmp_path)
    root, marker = tmp_path / "job", tmp_path / "stalled"
    cmd = _worker("teacher", str(root), "--stall", "2", "3", str(marker))
    proc = subprocess.Popen(
        cmd, env={**_env(), **slurm}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    start = time.monotonic()
    while not marker.exists():
        assert proc.poll() is None, proc.stdout.read().decode(errors="replace")[-3000:]
        assert time.monotonic() - start < 240
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGUSR1)
    while not scontrol.exists():
        assert time.monotonic() - start < 240 and proc.poll() is None
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)  # what Slurm does to a requeued task
    proc.wait()
    assert scontrol.read_text().split() == ["requeue", "4242"]
    work = root / "run" / FOLD.id / "teachers" / "train" / "prosodic"
    assert list(work.glob("hpc_ckpt_*.ckpt"))  # Lightning's signal-time checkpoint

    done = subprocess.run(
        _worker("teacher", str(root)), env={**_env(), **slurm}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed prosodic teacher (fold spk0) from epoch 2" in done.stderr
    result = json.loads((work / "result.json").read_text())
    assert result["resumed"] is True and result["global_step"] == 4 * 6
    assert not list(work.glob("hpc_ckpt_*.ckpt")) and not (work / "checkpoints").exists()


def test_slurm_recipes_requeue_on_sigusr1():
    slurm = Path(__file__).resolve().parents[1] / "examples" / "slurm"
    for name in ("cv_fold.sbatch", "cv_ddp.sbatch"):
        text = (slurm / name).read_text()
        assert "#SBATCH --signal=USR1@" in text and "#SBATCH --requeue" in text, name
        assert "srun" in text, name  # the training process is a job step: it gets the signal


# --------------------------------------------------------------------------- faults


def test_disk_full_while_checkpointing_keeps_the_last_checkpoint_and_says_so(tmp_path, monkeypatch):
    """torch reports ENOSPC as a RuntimeError from deep inside its writer: the stage stops with
    an EnvironmentFault naming the checkpoint and the free space; the previous checkpoint is
    complete, and the rerun resumes it and ends as an uninterrupted run."""
    import emodistill.training.resume as resume
    from emodistill.util.files import EnvironmentFault

    manifest = text_manifest(tmp_path)
    features = lld_features(manifest)
    cfg = teacher_config()
    ref = train_teacher(
        "prosodic", manifest, FOLD, cfg, tmp_path / "ref", features=features, progress=False
    )
    real_save, saves = torch.save, []

    def full_disk(obj, f, *args, **kwargs):
        saves.append(f)
        if len(saves) == 3:  # epoch 0: best + last; epoch 1: best fails
            raise RuntimeError("PytorchStreamWriter failed writing file data/7: file write failed")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(resume.torch, "save", full_disk)
    fold_dir = tmp_path / "run" / FOLD.id
    with pytest.raises(
        EnvironmentFault, match=r"cannot write checkpoint .*(best|last)\.ckpt.*MiB free"
    ):
        train_teacher("prosodic", manifest, FOLD, cfg, fold_dir, features=features, progress=False)
    monkeypatch.setattr(resume.torch, "save", real_save)
    work = fold_dir / "teachers" / "train" / "prosodic"
    assert not list((work / "checkpoints").glob(".*.tmp"))  # no half-written file left
    assert torch.load(work / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0
    got = train_teacher(
        "prosodic", manifest, FOLD, cfg, fold_dir, features=features, progress=False
    )
    assert got["resumed"] and all(got[k] == ref[k] for k in ("wa", "ua", "val_ua", "global_step"))


def test_truncated_cache_entry_is_rebuilt_and_truncated_weights_are_named(tmp_path):
    import numpy as np

    from emodistill.corpora.splits import fold_utterances
    from emodistill.models.folder import ModelLoadError
    from emodistill.training.teacher_cache import load_teacher_outputs, write_teacher_outputs

    manifest = text_manifest(tmp_path)
    features = lld_features(manifest)
    fold_dir = tmp_path / "run" / FOLD.id
    cfg = teacher_config().override({"prosodic.optim.epochs": 1})
    train_teacher("prosodic", manifest, FOLD, cfg, fold_dir, features=features, progress=False)
    ref = np.array(load_teacher_outputs(fold_dir, "prosodic").embeddings)
    entry = fold_dir / "teachers" / "outputs" / "prosodic" / "embeddings.npy"
    entry.write_bytes(entry.read_bytes()[:90])
    with pytest.raises(ValueError, match=f"{entry}: unreadable"):
        load_teacher_outputs(fold_dir, "prosodic")
    # train-teachers' reuse path: a cache it cannot read is recomputed, to the same values.
    utts = [u for part in fold_utterances(manifest, FOLD) for u in part]
    again = write_teacher_outputs(fold_dir, "prosodic", utts, features=features)
    np.testing.assert_array_equal(np.array(again.embeddings), ref)

    weights = fold_dir / "teachers" / "prosodic" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    with pytest.raises(ModelLoadError, match=f"{weights}: unreadable weights"):
        write_teacher_outputs(fold_dir, "prosodic", utts, features=features)
