"""Training batches that never hold a single clip.

BatchNorm in training mode needs more than one value per channel (the functionals prosodic
teacher's ``stats_norm``, the student's ``pooled_norm``): a training split of ``k * batch + 1``
clips would end every epoch with a batch of one and stop with "Expected more than 1 value per
channel when training". Every training loader cuts its batches here instead: a last batch of one
clip joins the batch before it (no clip is dropped; that batch holds ``batch + 1`` clips).

* :func:`cut_batches` — the one rule, on a list of indices.
* :func:`num_batches` — how many batches it makes (the LR schedule's steps per epoch).
* :class:`MergingBatchSampler` — ``BatchSampler`` with that rule (the teachers' loaders; under
  DDP Lightning injects its ``DistributedSampler`` through the ``sampler`` argument, and each
  rank cuts its own share the same way).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from torch.utils.data import BatchSampler, Sampler


def cut_batches(indices: Iterable[int], batch_size: int) -> list[list[int]]:
    """``indices`` cut into batches of ``batch_size``; a last batch of one joins the one before.

    >>> cut_batches(range(7), 3)
    [[0, 1, 2], [3, 4, 5, 6]]
    >>> cut_batches(range(6), 4)
    [[0, 1, 2, 3], [4, 5]]
    >>> cut_batches([5], 4)  # a split of one clip cannot be helped (train_* refuse it)
    [[5]]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    items = list(indices)
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    if batch_size > 1 and len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2].extend(batches.pop())
    return batches


def num_batches(n: int, batch_size: int) -> int:
    """``len(cut_batches(range(n), batch_size))``.

    >>> [num_batches(n, 4) for n in (0, 1, 4, 5, 6, 9)]
    [0, 1, 1, 1, 2, 2]
    """
    full, rest = divmod(max(0, int(n)), max(1, int(batch_size)))
    if rest == 1 and full > 0 and batch_size > 1:
        return full
    return full + (rest > 0)


def check_trainable(n: int, what: str) -> None:
    """Refuse a training split of fewer than two clips (BatchNorm, and a model, need two).

    Raises:
        ValueError: naming ``what`` (e.g. "fold g1's prosodic teacher").
    """
    if n < 2:
        raise ValueError(
            f"{what}: the training split holds {n} clip(s); training needs at least 2 "
            "(add training speakers or choose another fold scheme)"
        )


class MergingBatchSampler(BatchSampler):
    """``BatchSampler(sampler, batch_size, drop_last=False)`` whose batches follow
    :func:`cut_batches`: the order of ``sampler`` is kept, only a last batch of one is merged.

    ``drop_last=True`` behaves as PyTorch's (a short last batch is dropped).
    """

    def __init__(self, sampler: Sampler[int] | Sequence[int], batch_size: int, drop_last: bool):
        super().__init__(sampler, batch_size, drop_last)

    def __iter__(self) -> Iterator[list[int]]:
        if self.drop_last:
            yield from super().__iter__()
            return
        yield from cut_batches(iter(self.sampler), self.batch_size)

    def __len__(self) -> int:
        if self.drop_last:
            return super().__len__()
        return num_batches(len(self.sampler), self.batch_size)  # type: ignore[arg-type]
