"""Distillation under Lightning DDP: 2 CPU processes (gloo) end with the same weights and metric.

The training runs in a subprocess (Lightning's ``ddp`` strategy re-launches the script for rank
1), with a timeout so a hung collective fails the test instead of the suite.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import yaml
from test_distill import _one_thread, fresh_run, prepared  # noqa: F401 - shared fixtures

SCRIPT = textwrap.dedent(
    """
    import hashlib, json, sys
    from pathlib import Path

    from lightning.pytorch.callbacks import Callback

    from emodistill.config import load_config
    from emodistill.corpora.manifest import load_manifest
    from emodistill.corpora.splits import make_folds, select_folds
    from emodistill.training.distill import distill


    class Record(Callback):
        # Each rank writes a hash of its final weights and its last validation UA.
        def __init__(self, out):
            self.out = Path(out)

        def on_train_end(self, trainer, pl_module):
            h = hashlib.sha256()
            for k, v in sorted(pl_module.state_dict().items()):
                h.update(k.encode())
                h.update(v.detach().cpu().contiguous().numpy().tobytes())
            rec = {
                "rank": trainer.global_rank,
                "world": trainer.world_size,
                "hash": h.hexdigest(),
                "val_ua": float(trainer.callback_metrics["val_ua"]),
                "steps": int(trainer.global_step),
                "strategy": type(trainer.strategy).__name__,
            }
            (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(rec))


    if __name__ == "__main__":
        manifest, run, config, out = sys.argv[1:5]
        cfg = load_config(config).override(
            {"trainer.devices": "2", "trainer.strategy": "ddp", "trainer.accelerator": "cpu"}
        )
        m = load_manifest(manifest)
        f = cfg.folds
        fold = select_folds(make_folds(m, f.scheme, f.groups, f.val_speakers, f.seed), "g1")[0]
        distill(m, fold, cfg, run, progress=False, callbacks=[Record(out)])
    """
)


@pytest.mark.slow
def test_ddp_two_cpu_processes_agree(prepared, tmp_path):  # noqa: F811
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    run = fresh_run(prepared, tmp_path / "run")
    cfg = prepared["config"]
    cfg_file = tmp_path / "tiny.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg.to_dict()))
    script = tmp_path / "ddp_distill.py"
    script.write_text(SCRIPT)
    out = tmp_path / "ranks"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run(
        [sys.executable, str(script), str(prepared["manifest"]), str(run), str(cfg_file), str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    assert ranks[0]["strategy"] == "DDPStrategy"
    assert ranks[0]["hash"] == ranks[1]["hash"]  # gradients were all-reduced every step
    assert ranks[0]["val_ua"] == ranks[1]["val_ua"]  # torchmetrics synchronised validation
    # Each rank ran half of the epoch's batches (the sampler shards, it does not duplicate).
    from emodistill.corpora.manifest import load_manifest
    from emodistill.corpora.splits import make_folds

    m = load_manifest(prepared["manifest"])
    f = cfg.folds
    fold = make_folds(m, f.scheme, f.groups, f.val_speakers, f.seed)[0]
    n_train = len(m.by_speakers(fold.train_speakers))
    per_rank = math.ceil(math.ceil(n_train / cfg.student.optim.batch_size) / 2)
    assert ranks[0]["steps"] == ranks[1]["steps"] == per_rank * cfg.student.optim.epochs
    # Rank 0 alone wrote the model folder and the predictions.
    assert (run / "g1" / "student" / "model.safetensors").is_file()
    pred = json.loads((run / "g1" / "student" / "predictions.json").read_text())
    assert len(pred["ids"]) == len(m.by_speakers(fold.test_speakers))
