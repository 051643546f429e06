"""Layer probe: how much emotion each layer of a frozen speech encoder exposes.

Per encoder layer (0 = the embedding output, the stem plus positions; L = the last layer,
after its final norm), every utterance's frames are mean-pooled over its valid frames and a
class-balanced logistic regression is trained on the same speaker-independent folds as ``cv``
(C chosen by UA on the fold's validation speakers, refit on training + validation speakers,
scored on the test speakers: :func:`emodistill.evaluation.baseline.run_fold`). Users pick a
backbone and the layers to train or to mix with it (in SER the middle layers often carry more
emotion than the last one: SUPERB's weighted sum).

The frame states come from the same on-disk cache a frozen student with layer weights trains
from (:class:`~emodistill.features.prefix_cache.PrefixCache`), so a probe and a later
``trainable_layers: 0, layer_weights: true`` run compute the encoder once between them.

Writes ``OUT/probe.json`` (per layer: UA per fold, mean and std over folds; the best layer) and
``OUT/probe.png`` (UA per layer with the fold spread).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emodistill.corpora.manifest import Manifest
from emodistill.corpora.splits import Fold, fold_utterances
from emodistill.evaluation.metrics import compute_metrics


def layer_states(
    manifest: Manifest,
    encoder: str,
    cache_dir: str | Path,
    max_seconds: float | None = None,
    progress: bool = True,
    utterances: Sequence[Any] | None = None,
) -> tuple[list[str], np.ndarray]:
    """Mean-pooled frozen states of every layer.

    Returns:
        ``(ids, pooled)`` with pooled (N, L + 1, H) float32: row i is utterance ``ids[i]``,
        column k the mean over valid frames of layer k's output (0 = embedding output).
    """
    import torch

    from emodistill.config import StudentConfig
    from emodistill.features.prefix_cache import PrefixCache
    from emodistill.models.student import build_student

    utts = list(utterances if utterances is not None else manifest.utterances)
    cfg = StudentConfig(encoder=encoder, trainable_layers=0, layer_weights=True)
    # Heads are never used: any sizes do; the cache key covers only the frozen encoder.
    student = build_student(cfg, max(len(manifest.labels), 2), 8, 8)
    with torch.inference_mode():
        cache = PrefixCache(student, utts, cache_dir, max_seconds=max_seconds, progress=progress)
    pooled = np.stack([np.asarray(cache[u.id], dtype=np.float32).mean(axis=1) for u in utts])
    return [u.id for u in utts], pooled


def probe_layers(
    manifest: Manifest,
    folds: Sequence[Fold],
    pooled: np.ndarray,
    ids: Sequence[str],
    c_values: Sequence[float] = (0.001, 0.01, 0.1, 1.0),
) -> dict[str, Any]:
    """Linear-probe UA per layer and fold.

    Args:
        manifest: the corpus (labels and speakers).
        folds: speaker-independent folds (validation speakers choose C).
        pooled: (N, L + 1, H) from :func:`layer_states`, rows in ``ids`` order.
        ids: utterance ids of the rows.

    Returns:
        ``{"layers": [{"layer", "ua": {fold: UA}, "mean", "std"}], "best_layer", "folds"}``.
    """
    from emodistill.evaluation.baseline import BaselineConfig, run_fold

    by_id = {u.id: u for u in manifest.utterances}
    y = np.array([manifest.label_index(by_id[i].label) for i in ids])
    speakers = np.array([by_id[i].speaker for i in ids])
    row_of = {uid: r for r, uid in enumerate(ids)}
    cfg = BaselineConfig(c_values=list(c_values), max_iter=2000)

    def mask(part) -> np.ndarray:
        m = np.zeros(len(ids), dtype=bool)
        m[[row_of[u.id] for u in part if u.id in row_of]] = True
        return m

    parts = {f.id: tuple(mask(p) for p in fold_utterances(manifest, f)) for f in folds}
    layers = []
    for k in range(pooled.shape[1]):
        x = pooled[:, k, :].astype(np.float64)
        ua = {}
        for fold in folds:
            res = run_fold(x, y, speakers, parts[fold.id], len(manifest.labels), cfg)
            ua[fold.id] = compute_metrics(res["y_true"], res["y_pred"], len(manifest.labels))["ua"]
        values = np.array(list(ua.values()))
        layers.append(
            {"layer": k, "ua": ua, "mean": float(values.mean()), "std": float(values.std())}
        )
    best = max(layers, key=lambda r: r["mean"])["layer"]
    return {"layers": layers, "best_layer": int(best), "folds": [f.id for f in folds]}


def plot_probe(result: dict[str, Any], path: str | Path, title: str) -> Path:
    """UA per layer (mean over folds, error bars = std over folds) -> ``path`` (PNG)."""
    from emodistill.util.plotting import pyplot, save_figure

    plt = pyplot()
    layers = [r["layer"] for r in result["layers"]]
    mean = [100 * r["mean"] for r in result["layers"]]
    std = [100 * r["std"] for r in result["layers"]]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * len(layers) + 2), 3.2))
    ax.errorbar(layers, mean, yerr=std, marker="o", capsize=3)
    if result.get("chance") is not None:
        ax.axhline(100 * result["chance"], color="grey", ls=":", label="chance")
        ax.legend(loc="lower right")
    ax.set_xticks(layers)
    ax.set_xlabel("encoder layer (0 = embedding output)")
    ax.set_ylabel("test UA, % (linear probe)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = save_figure(fig, path, dpi=110, tight=False)
    plt.close(fig)
    return path


def run_probe(
    manifest: Manifest,
    folds: Sequence[Fold],
    out: str | Path,
    encoder: str,
    cache_dir: str | Path,
    max_seconds: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Probe every layer of ``encoder`` on ``folds``; write ``probe.json`` and ``probe.png``.

    Returns:
        The :func:`probe_layers` result with ``encoder``, ``chance``, ``n`` and ``seconds``.
    """
    from emodistill.util.files import write_json_atomic

    start = time.perf_counter()
    keep = {u.id for f in folds for part in fold_utterances(manifest, f) for u in part}
    utts = [u for u in manifest.utterances if u.id in keep]
    ids, pooled = layer_states(manifest, encoder, cache_dir, max_seconds, progress, utts)
    result = probe_layers(manifest, folds, pooled, ids)
    result.update(
        encoder=encoder,
        manifest=str(manifest.path) if manifest.path is not None else None,
        chance=1.0 / len(manifest.labels),
        n=len(ids),
        max_seconds=max_seconds,
        seconds=round(time.perf_counter() - start, 2),
    )
    out = Path(out)
    write_json_atomic(out / "probe.json", result)
    plot_probe(result, out / "probe.png", f"layer probe: {encoder} ({len(folds)} folds)")
    return result


__all__ = ["layer_states", "plot_probe", "probe_layers", "run_probe"]
