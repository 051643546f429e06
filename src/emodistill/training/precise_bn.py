"""Precise batch-norm statistics after training (Wu & Johnson, "Rethinking 'Batch' in
BatchNorm", 2021): the running mean and variance recomputed as a plain average over clean
training batches.

Why the student needs it: mixup trains the pooled vector's batch norm on mixed clips. The mean
of a mix lam * a + (1 - lam) * b is the mix of the means, but its spread is smaller (for
lam ~ Beta(0.4, 0.4) the variance of two independent clips' mix is about 0.78 of one clip's), so
the running variance learned in training is too small for the single clips seen at test time.

Not ``torch.optim.swa_utils.update_bn``: it runs the whole model in training mode (dropout and
the student's frame masking would shape the statistics) and feeds it ``batch[0]``, while a
student batch is a dict that ``StudentModule.run_student`` reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn


def precise_batch_norm(model: nn.Module, batches: Iterable[Any], run: Callable[[Any], Any]) -> int:
    """Replace every batch norm's running statistics of ``model`` with their average over
    ``batches`` (each batch weighs the same), the rest of the model in eval mode (no dropout,
    no augmentation) and without gradients.

    Args:
        model: a network with batch norms (nothing happens without them).
        batches: clean training batches (no mixup), whatever ``run`` takes.
        run: runs the model on one batch (e.g. ``StudentModule.run_student``).

    Returns:
        The number of batches averaged (0 when the model has no batch norm).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: every batch counts the same
        m.train()
    n = 0
    with torch.no_grad():
        for batch in batches:
            run(batch)
            n += 1
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.train(was_training)
    return n


def precise_student_norms(module: Any, loader: Iterable[Any]) -> int:
    """:func:`precise_batch_norm` of a :class:`~emodistill.training.module.StudentModule`'s
    student over a loader of its (clean: mixup happens in the training step, not in the loader)
    training batches, each moved to the module's device."""
    device = module.device if module.device.type != "meta" else torch.device("cpu")
    batches = (module.transfer_batch_to_device(b, device, 0) for b in loader)
    return precise_batch_norm(module.student, batches, module.run_student)
