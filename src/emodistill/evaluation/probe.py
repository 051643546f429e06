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
from emodistill.runs.layout import probe_file

#: The probe's grid of inverse regularisation strengths (chosen per fold on validation UA).
PROBE_C_VALUES = (0.001, 0.01, 0.1, 1.0)


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
    from emodistill.features.prefix_cache import LayerMeans
    from emodistill.models.encoders import load_encoder

    utts = list(utterances if utterances is not None else manifest.utterances)
    cache = LayerMeans(load_encoder(encoder), utts, cache_dir, max_seconds, progress)
    pooled = cache.array([u.id for u in utts])
    return [u.id for u in utts], pooled


def probe_layers(
    manifest: Manifest,
    folds: Sequence[Fold],
    pooled: np.ndarray,
    ids: Sequence[str],
    c_values: Sequence[float] = PROBE_C_VALUES,
) -> dict[str, Any]:
    """Linear-probe UA per layer and fold.

    Args:
        manifest: the corpus (labels and speakers).
        folds: speaker-independent folds (validation speakers choose C).
        pooled: (N, L + 1, H) from :func:`layer_states`, rows in ``ids`` order.
        ids: utterance ids of the rows.

    Returns:
        ``{"layers": [{"layer", "ua": {fold: UA}, "wa": {fold: WA}, "mean", "std", "wa_mean"}],
        "best_layer", "folds"}`` (``mean`` and ``std``: of UA over folds).
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
        ua, wa = {}, {}
        for fold in folds:
            res = run_fold(x, y, speakers, parts[fold.id], len(manifest.labels), cfg)
            scores = compute_metrics(res["y_true"], res["y_pred"], len(manifest.labels))
            ua[fold.id], wa[fold.id] = scores["ua"], scores["wa"]
        values = np.array(list(ua.values()))
        layers.append(
            {
                "layer": k,
                "ua": ua,
                "wa": wa,
                "mean": float(values.mean()),
                "std": float(values.std()),
                "wa_mean": float(np.mean(list(wa.values()))),
            }
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
    reuse: bool = False,
) -> dict[str, Any]:
    """Probe every layer of ``encoder`` on ``folds``; write ``probe.json`` and ``probe.png``.

    ``reuse``: return the ``probe.json`` already in ``out`` when it was computed on the same
    data and settings (its ``key``, :func:`probe_key`); locked against a concurrent writer.

    Returns:
        The :func:`probe_layers` result with ``encoder``, ``chance``, ``n``, ``seconds`` and
        ``key``.
    """
    from emodistill.util.files import folder_lock, read_json

    out = Path(out)
    key = probe_key(manifest, folds, encoder, max_seconds)
    with folder_lock(out, "the linear probe"):
        if reuse and probe_file(out).is_file():
            old = read_json(probe_file(out))
            if old.get("key") == key:
                return old
        return _probe(manifest, folds, out, encoder, cache_dir, max_seconds, progress, key)


def _probe(manifest, folds, out: Path, encoder, cache_dir, max_seconds, progress, key):
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
    result["key"] = key
    write_json_atomic(probe_file(out), result)
    plot_probe(result, probe_file(out, ".png"), f"layer probe: {encoder} ({len(folds)} folds)")
    return result


def probe_key(
    manifest: Manifest, folds: Sequence[Fold], encoder: str, max_seconds: float | None
) -> str:
    """Hex digest of everything a probe result depends on: the encoder, the crop, the C grid
    and every fold's data (:func:`~emodistill.corpora.splits.fold_fingerprint`)."""
    import hashlib
    import json

    from emodistill.corpora.splits import fold_fingerprint

    meta = {
        "encoder": encoder,
        "max_seconds": max_seconds,
        "c_values": list(PROBE_C_VALUES),
        "folds": {f.id: fold_fingerprint(manifest, f) for f in folds},
    }
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()


def probe_comparison(probe: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    """A student variant's test UA against the probe's best and last layer on the same folds.

    Args:
        probe: a ``probe.json`` result.
        results: a variant's ``results.json`` (its ``folds`` hold each fold's UA, mean over
            seeds).

    Returns:
        ``{"folds", "student", "probe_best", "probe_last", "best_layer", "last_layer",
        "diff_best", "ci95_best", "diff_last", "ci95_last"}``: mean UA over the folds both
        have, and the paired student − probe difference with its 95 % fold-bootstrap CI.
    """
    from emodistill.evaluation.compare import cluster_bootstrap_ci

    student = {f["fold"]: f["ua"] for f in results.get("folds", [])}
    layers = {r["layer"]: r for r in probe["layers"]}
    best, last = int(probe["best_layer"]), max(layers)
    folds = [f for f in student if f in layers[best]["ua"]]
    out: dict[str, Any] = {"folds": folds, "best_layer": best, "last_layer": last}
    if not folds:
        return out
    s = np.array([student[f] for f in folds])
    out["student"] = float(s.mean())
    for name, k in (("best", best), ("last", last)):
        p = np.array([layers[k]["ua"][f] for f in folds])
        d = s - p
        out[f"probe_{name}"] = float(p.mean())
        out[f"diff_{name}"] = float(d.mean())
        out[f"ci95_{name}"] = list(cluster_bootstrap_ci(d, folds)) if len(folds) > 1 else None
    return out


def verdict(diff: float, ci: Sequence[float] | None) -> str:
    """ "above", "below" or "no difference shown" for a paired difference and its CI."""
    if ci is None:
        return "one fold: no CI"
    if ci[0] > 0:
        return "above its probe"
    if ci[1] < 0:
        return "below its probe"
    return "no difference shown"


def probe_markdown(cmp: dict[str, Any], label: str = "student") -> str:
    """The report section that puts the linear probe beside a student (:func:`probe_comparison`)."""
    if not cmp.get("folds"):
        return ""

    def ci(v):
        return "-" if v is None else f"[{100 * v[0]:+.2f}, {100 * v[1]:+.2f}]"

    rows = [
        "## Linear probe on the same frozen features and folds",
        "",
        "A logistic regression on mean-pooled frozen encoder states (`emodistill probe`: C chosen "
        "on the validation speakers) is the floor a trained student must beat. Paired per fold "
        f"({len(cmp['folds'])} folds; the student's UA is its mean over seeds).",
        "",
        "| system | UA | student − it | 95 % CI | |",
        "|---|---|---|---|---|",
        f"| {label} | {100 * cmp['student']:.2f} | | | |",
    ]
    for name, title in (("best", "best layer"), ("last", "last layer")):
        k = cmp[f"{name}_layer"]
        if name == "last" and k == cmp["best_layer"]:
            continue
        d, c = cmp[f"diff_{name}"], cmp[f"ci95_{name}"]
        rows.append(
            f"| linear probe (layer {k}, {title}) | {100 * cmp[f'probe_{name}']:.2f} | "
            f"{100 * d:+.2f} | {ci(c)} | {verdict(d, c)} |"
        )
    return "\n".join(rows)


__all__ = [
    "PROBE_C_VALUES",
    "layer_states",
    "plot_probe",
    "probe_comparison",
    "probe_key",
    "probe_layers",
    "probe_markdown",
    "run_probe",
    "verdict",
]
