"""Precise batch-norm statistics: running statistics recomputed on clean batches after training
with mixup (training/precise_bn.py)."""

from __future__ import annotations

import torch
from test_distill import prepared  # noqa: F401 - fixture
from torch import nn


def test_running_statistics_become_the_average_over_the_clean_batches():
    from emodistill.training.precise_bn import precise_batch_norm

    torch.manual_seed(0)
    bn = nn.BatchNorm1d(3)
    drop = nn.Dropout(0.5)
    model = nn.Sequential(nn.Identity(), bn, drop).train()
    # statistics left by training on mixed inputs: far from those of the clean clips
    bn.running_mean.fill_(5.0)
    bn.running_var.fill_(0.1)
    batches = [2.0 + 3.0 * torch.randn(16, 3) for _ in range(4)]
    seen_modes = []
    drop.register_forward_hook(lambda m, i, o: seen_modes.append(m.training))

    n = precise_batch_norm(model, batches, model)

    assert n == 4
    mean = torch.stack([b.mean(0) for b in batches]).mean(0)
    var = torch.stack([b.var(0, unbiased=True) for b in batches]).mean(0)
    assert torch.allclose(bn.running_mean, mean, atol=1e-5)
    assert torch.allclose(bn.running_var, var, atol=1e-4)
    assert seen_modes == [False] * 4  # no dropout while the statistics are gathered
    assert bn.momentum == 0.1 and model.training and bn.training  # state given back
    # eval: a clean batch is standardised by its own distribution's statistics
    model.eval()
    with torch.no_grad():
        out = model(batches[0])
    assert abs(float(out.mean())) < 0.5 and 0.6 < float(out.std()) < 1.4


def test_a_model_without_batch_norm_is_left_alone():
    from emodistill.training.precise_bn import precise_batch_norm

    model = nn.Linear(3, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert precise_batch_norm(model, [torch.randn(4, 3)], model) == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_distill_recomputes_the_pooled_norm_on_the_training_batches(prepared, tmp_path):  # noqa: F811
    """`student.precise_bn`: the saved student's batch norm holds the statistics of one clean
    pass over the training batches (its batch count), not of the two epochs' mixed steps."""
    import math

    from test_distill import _fold, fresh_run, one_thread

    from emodistill.corpora.splits import fold_utterances
    from emodistill.models.student_folder import load_student
    from emodistill.runs.layout import student_dir
    from emodistill.training.distill import distill

    m, fold = _fold(prepared)
    cfg = prepared["config"].override(
        {
            "student": {
                "select": "last",
                "pooled_norm": True,
                "precise_bn": True,
                "augment": {"mixup": 0.4},
                "optim": {"epochs": 2, "batch_size": 4},
            }
        }
    )
    run = fresh_run(prepared, tmp_path / "run")
    with one_thread():
        distill(m, fold, cfg, run, "no_teachers", progress=False)
    student, _ = load_student(student_dir(run, fold.id, "no_teachers"))
    (bn,) = [x for x in student.modules() if isinstance(x, nn.BatchNorm1d)]
    batches = math.ceil(len(fold_utterances(m, fold)[0]) / 4)
    assert batches > 1 and int(bn.num_batches_tracked) == batches  # 2 * batches without it
    assert bn.momentum == 0.1
