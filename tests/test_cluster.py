"""The cluster recipe (docs/cluster.md) without a cluster: array task ids map to every fold
exactly once, the Slurm scripts wire `emodistill folds` / `cv` / `sbatch` as documented, and
`cv --num-nodes` reaches Lightning's Trainer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emodistill.cli.app import app
from emodistill.cli.common import KNOWN_ERROR_EXIT
from emodistill.config import resolve_config
from emodistill.corpora.manifest import load_manifest
from emodistill.corpora.splits import config_folds

SLURM = Path(__file__).resolve().parents[1] / "examples" / "slurm"
SPEAKERS = [f"spk{i}" for i in range(8)]


@pytest.fixture()
def manifest(tmp_path):
    """8 speakers x 2 labels; no audio needed (folds depend on the rows only)."""
    rows = [
        f"{s}_{lab},{s}_{lab}.wav,{lab},{s},," for s in SPEAKERS for lab in ("neutral", "angry")
    ]
    path = tmp_path / "m.csv"
    path.write_text("id,path,label,speaker,session,transcript\n" + "\n".join(rows) + "\n")
    return path


def _config(tmp_path, folds: str) -> Path:
    path = tmp_path / f"cfg-{abs(hash(folds))}.yaml"
    path.write_text(f"preset: demo\nfolds: {folds}\n")
    return path


def _lines(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return result.output.split()


@pytest.mark.parametrize(
    "folds, n",
    [("{scheme: speaker}", 8), ("{scheme: groups, groups: 3}", 3), (None, 6)],  # None: demo
)
def test_array_tasks_map_to_every_fold_exactly_once(manifest, tmp_path, folds, n):
    config = "demo" if folds is None else str(_config(tmp_path, folds))
    runner = CliRunner()
    listed = _lines(runner.invoke(app, ["folds", str(manifest), "--config", config]))
    expected = config_folds(
        load_manifest(manifest, check_files=False), resolve_config(config).folds
    )
    assert listed == [f.id for f in expected] and len(listed) == n
    by_task = [
        _lines(runner.invoke(app, ["folds", str(manifest), "--config", config, "--task", str(i)]))
        for i in range(n)
    ]
    assert all(len(ids) == 1 for ids in by_task)
    assert [ids[0] for ids in by_task] == listed  # task i runs fold i: each fold once
    for bad in (n, n + 5, -1):
        result = runner.invoke(
            app, ["folds", str(manifest), "--config", config, "--task", str(bad)]
        )
        assert result.exit_code == KNOWN_ERROR_EXIT, result.output
        assert f"array task {bad} has no fold" in result.output
        assert f"--array=0-{n - 1}" in result.output and "Traceback" not in result.output


def _stubs(tmp_path) -> dict[str, str]:
    """PATH with a fake ``sbatch`` (records its arguments, prints job ids 101, 102, ...) and a
    fake ``emodistill`` that runs the real ``folds`` and records every other command."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    (bin_dir / "sbatch").write_text(
        "#!/usr/bin/env bash\n"
        f'n=$(grep -c "^sbatch" "{log}" 2>/dev/null || true)\n'
        f'echo "sbatch $*" >> "{log}"\n'
        'echo "$((101 + n));cluster1"\n'
    )
    (bin_dir / "emodistill").write_text(
        "#!/usr/bin/env bash\n"
        f'if [ "$1" = folds ]; then exec "{sys.executable}" -m emodistill.cli.app "$@"; fi\n'
        f'echo "emodistill $*" >> "{log}"\n'
    )
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.pop("SBATCH_ARGS", None)
    return env


def test_slurm_scripts_without_slurm(manifest, tmp_path):
    config = str(_config(tmp_path, "{scheme: groups, groups: 3}"))
    run = tmp_path / "run"
    env = _stubs(tmp_path)
    log = tmp_path / "calls.log"
    for script in SLURM.iterdir():
        subprocess.run(["bash", "-n", str(script)], check=True)

    # submit: features, then the 3-task array after it, then the aggregate after the array.
    sub = subprocess.run(
        ["bash", str(SLURM / "submit_cv.sh"), str(manifest), str(run), config],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert sub.returncode == 0, sub.stderr
    calls = log.read_text().splitlines()
    assert len(calls) == 3 and "cv_features.sbatch" in calls[0]
    assert "--dependency=afterok:101" in calls[1] and "--array=0-2" in calls[1]
    assert calls[1].endswith(f"cv_fold.sbatch {manifest} {run} {config}")
    assert "--dependency=afterok:102" in calls[2] and "cv_aggregate.sbatch" in calls[2]
    assert "fold array 102 (tasks 0-2, 3 folds); aggregate job 103" in sub.stdout

    # one array task: the fold of its id, run with cv --folds; an id past the folds fails.
    log.unlink()
    folds = [
        f.id
        for f in config_folds(
            load_manifest(manifest, check_files=False), resolve_config(config).folds
        )
    ]
    task = subprocess.run(
        ["bash", str(SLURM / "cv_fold.sbatch"), str(manifest), str(run), config],
        env=dict(env, SLURM_ARRAY_TASK_ID="1"), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert task.returncode == 0, task.stderr
    assert log.read_text().splitlines() == [
        f"emodistill cv {manifest} --out {run} --config {config} --folds {folds[1]}"
    ]
    log.unlink()
    past = subprocess.run(
        ["bash", str(SLURM / "cv_fold.sbatch"), str(manifest), str(run), config],
        env=dict(env, SLURM_ARRAY_TASK_ID="3"), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert past.returncode == KNOWN_ERROR_EXIT and "array task 3 has no fold" in past.stderr
    assert not log.exists()  # no cv run started


def test_cv_num_nodes_reaches_the_trainer(manifest, tmp_path, monkeypatch):
    import emodistill.training.cv as cv
    from emodistill.training.common import make_trainer

    seen = {}
    monkeypatch.setattr(cv, "cross_validate", lambda *a, **kw: seen.update(kw))
    args = ["cv", str(manifest), "--out", str(tmp_path / "run"), "--devices", "1"]
    args += ["--num-nodes", "2", "--strategy", "ddp", "--accelerator", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert seen["overrides"]["trainer.num_nodes"] == 2
    cfg = resolve_config(None, seen["overrides"])
    trainer = make_trainer(cfg.trainer, tmp_path / "t", max_epochs=1, progress=False)
    assert trainer.num_nodes == 2 and trainer.world_size == 2
    assert type(trainer.strategy).__name__ == "DDPStrategy"
