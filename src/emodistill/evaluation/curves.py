"""Training curves of a variant: per-epoch loss terms and validation UA over folds x seeds.

Every training stage logs through Lightning's ``CSVLogger`` (``training/common.py``) into its
work folder's ``logs/metrics.csv``; a student's rows hold ``train_loss_epoch`` (Eq. 5's total),
``train_ce_epoch``, ``train_kd_epoch``, ``train_embedding_epoch`` (``training/module.py``) and
``val_ua`` once per epoch, and ``lr`` per logged step (drawn: its epoch's last value). This
module reads those files, averages each column per epoch over a variant's runs (mean ± std; a
run that stopped early counts only in the epochs it reached) and draws ``curves.png`` beside the
variant's report (docs/results.md).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from emodistill.util.plotting import pyplot, save_figure

#: metrics.csv columns drawn, in panel order, with each panel's title.
CURVES = (
    ("train_loss_epoch", "train loss (Eq. 5 total)"),
    ("train_ce_epoch", "train CE"),
    ("train_kd_epoch", "train logit KD"),
    ("train_embedding_epoch", "train embedding KD"),
    ("val_ua", "validation UA (%)"),
    ("lr", "learning rate (last step of the epoch)"),
)

#: An epoch table: column -> {epoch: value}.
EpochTable = dict[str, dict[int, float]]


def read_epochs(path: str | Path) -> EpochTable:
    """Per-epoch values of every column of a Lightning ``metrics.csv``.

    Rows without an ``epoch`` or a value are skipped; where an epoch has several values of a
    column (a resumed run that logged the epoch twice, or per-step columns) the last one wins.

    Raises:
        ValueError: the file has no ``epoch`` column (names the file).
    """
    path = Path(path)
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if "epoch" not in (reader.fieldnames or []):
            raise ValueError(f"{path}: not a Lightning metrics.csv (no 'epoch' column)")
        table: EpochTable = {}
        for row in reader:
            if not row.get("epoch"):
                continue
            epoch = int(float(row["epoch"]))
            for key, value in row.items():
                if key in ("epoch", "step") or value in (None, ""):
                    continue
                table.setdefault(key, {})[epoch] = float(value)
    return table


def band(
    tables: Sequence[Mapping[str, Mapping[int, float]]], column: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(epochs (E,), mean (E,), std (E,)) of ``column`` over the runs that logged each epoch
    (population std; 0 where one run reached the epoch). Epochs count from 1.

    >>> epochs, mean, std = band([{"val_ua": {0: 0.5, 1: 0.7}}, {"val_ua": {0: 0.7}}], "val_ua")
    >>> epochs.tolist(), [round(m, 2) for m in mean.tolist()], [round(s, 2) for s in std.tolist()]
    ([1, 2], [0.6, 0.7], [0.1, 0.0])
    """
    epochs = sorted({e for t in tables for e in t.get(column, {})})
    mean, std = [], []
    for e in epochs:
        values = [t[column][e] for t in tables if e in t.get(column, {})]
        mean.append(float(np.mean(values)))
        std.append(float(np.std(values)))
    return np.array(epochs, dtype=int) + 1, np.array(mean), np.array(std)


def plot_curves(
    tables: Sequence[Mapping[str, Mapping[int, float]]], path: str | Path, title: str = ""
) -> Path:
    """One panel per :data:`CURVES` column: mean over runs per epoch with a ± std band.

    A panel whose column no run logged (a log written before the column existed) says so
    instead of drawing a line. Plain fine-tuning logs its KD terms too (all zero).
    """
    plt = pyplot()
    cols = 3
    rows = math.ceil(len(CURVES) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.0 * cols, 3.0 * rows), squeeze=False, layout="constrained"
    )
    for ax, (column, label) in zip(axes.flat, CURVES, strict=False):
        epochs, mean, std = band(tables, column)
        scale = 100.0 if column.startswith("val_") else 1.0
        if len(epochs):
            ax.plot(epochs, scale * mean, "o-", markersize=3)
            ax.fill_between(epochs, scale * (mean - std), scale * (mean + std), alpha=0.25)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(CURVES) :]:
        ax.axis("off")
    fig.suptitle(f"{title} (mean ± std over {len(tables)} fold x seed runs)".strip(), fontsize=10)
    path = Path(path)
    save_figure(fig, path)
    plt.close(fig)
    return path


def curves_markdown(logs: Mapping[str, str | Path], image: str | Path, report: str | Path) -> str:
    """The report's "Training curves" section: the image and a link to every run's log.

    Args:
        logs: run name (``g1, seed 0``) -> its ``metrics.csv``.
        image: the ``curves.png`` path.
        report: the ``report.md`` path (links are relative to its folder, so the run folder
            can be moved or copied whole).
    """
    base = Path(report).parent

    def rel(p: str | Path) -> str:
        return Path(os.path.relpath(Path(p), base)).as_posix()

    out = [
        "## Training curves",
        "",
        "Per epoch, mean ± std over folds x seeds: the training loss of Eq. 5 and its terms "
        "(CE, logit KD, embedding KD; before their weights), the validation UA and the learning "
        "rate.",
        "",
        f"![training curves]({rel(image)})",
        "",
        "Per-run logs (Lightning CSV, with the learning rate as `lr`): "
        + ", ".join(f"[{name}]({rel(p)})" for name, p in logs.items())
        + ".",
    ]
    return "\n".join(out)
