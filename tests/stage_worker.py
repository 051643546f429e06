"""A training stage run in a child process, so a test can kill it with SIGKILL (test_resume.py).

``python stage_worker.py teacher ROOT [--stall EPOCH BATCH MARKER]``: the prosodic teacher of
test_teachers' corpus (ROOT: its folder), with dropout and random crops, so a resumed run only
matches an uninterrupted one when the random generators are restored too.
``python stage_worker.py cli [--stall EPOCH BATCH MARKER] -- ARGS...``: ``emodistill ARGS``.
With ``--stall``, training writes MARKER when it reaches (EPOCH, BATCH) and waits there to be
killed: a kill mid-epoch at a known place, through the real code path.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))


def stall_callback(epoch: int, batch: int, marker: Path):
    import lightning as L

    class Stall(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, b, batch_idx):
            if trainer.current_epoch == epoch and batch_idx == batch:
                marker.write_text("stalled\n")
                time.sleep(600)

    return Stall()


def install_stall(stall) -> None:
    """Every Trainer the stages make gets the stall callback (the CLI takes no callbacks)."""
    import emodistill.training.common as common

    make = common.make_trainer

    def make_trainer(*args, **kwargs):
        trainer = make(*args, **kwargs)
        trainer.callbacks.append(stall)
        return trainer

    common.make_trainer = make_trainer


def teacher_config():
    from test_teachers import tiny_config

    return tiny_config(epochs=4).override({"prosodic.dropout": 0.3, "prosodic.max_frames": 20})


def run_teacher(root: Path) -> None:
    from test_teachers import FOLD, lld_features, text_manifest

    from emodistill.training.teachers import train_teacher

    manifest = text_manifest(root)
    train_teacher(
        "prosodic",
        manifest,
        FOLD,
        teacher_config(),
        root / "run" / FOLD.id,
        features=lld_features(manifest),
        progress=False,
    )


def main(argv: list[str]) -> None:
    import torch

    torch.set_num_threads(1)
    mode, rest = argv[0], argv[1:]
    if "--stall" in rest:
        i = rest.index("--stall")
        epoch, batch, marker = int(rest[i + 1]), int(rest[i + 2]), Path(rest[i + 3])
        install_stall(stall_callback(epoch, batch, marker))
        del rest[i : i + 4]
    if mode == "teacher":
        run_teacher(Path(rest[0]))
    elif mode == "cli":
        from emodistill.cli.app import app

        args = rest[rest.index("--") + 1 :] if "--" in rest else rest
        app(args, standalone_mode=True)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
