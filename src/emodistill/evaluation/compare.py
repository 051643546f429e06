"""Paired statistics of one variant against a baseline over folds x seeds (docs/results.md).

Each (fold, seed) run of the variant is paired with the baseline's run on the same fold and
seed: same speakers, same data order, same schedule, only the method differs. Reported per
metric (UA and WA, fractions as in results.json):

* ``mean_gain``: the mean of the paired differences (variant − baseline);
* ``ci95``: a 95 % percentile bootstrap interval of that mean, resampling **folds** (a cluster
  bootstrap: a resample draws folds with replacement and keeps all seeds of each drawn fold,
  because runs of one fold share its test speakers and are not independent);
* ``wins`` / ``ties`` / ``losses`` over the pairs (tie: |d| < 1e-9);
* ``wilcoxon_p``: the two-sided Wilcoxon signed-rank p over the pairs (1.0 when every
  difference is zero or there are fewer than 2 pairs).

A gain is "shown" only when the whole interval lies above 0; an interval containing 0 is "no
difference shown".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
TIE = 1e-9


def runs_of(results: Mapping[str, Any]) -> dict[tuple[str, int], dict[str, float]]:
    """(fold, seed) -> {"ua", "wa"} from ``runs``, or from ``folds`` (seed 0) in older files."""
    rows = results.get("runs")
    if rows is None:
        rows = [{**f, "seed": 0} for f in results.get("folds", [])]
    return {(str(r["fold"]), int(r["seed"])): {"ua": r["ua"], "wa": r["wa"]} for r in rows}


def wilcoxon_p(diffs: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p of ``diffs`` (zeros dropped; 1.0 if nothing is left)."""
    d = np.asarray(diffs, dtype=np.float64)
    d = d[np.abs(d) >= TIE]
    if len(d) < 1:
        return 1.0
    from scipy.stats import wilcoxon

    return float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def cluster_bootstrap_ci(
    diffs: np.ndarray,
    clusters: list[str],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """95 % percentile interval of the mean of ``diffs``, resampling clusters (folds)."""
    names = sorted(set(clusters))
    index = {c: i for i, c in enumerate(names)}
    k = len(names)
    sums = np.zeros(k)
    counts = np.zeros(k)
    for d, c in zip(diffs, clusters, strict=True):
        sums[index[c]] += d
        counts[index[c]] += 1
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, k, size=(resamples, k))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def compare_results(
    variant_results: Mapping[str, Any],
    baseline_results: Mapping[str, Any],
    variant: str,
    baseline: str,
) -> dict[str, Any]:
    """Paired statistics of two results.json dicts (see the module docstring).

    Returns:
        ``{"baseline", "variant", "n_pairs", "pairs": [{"fold", "seed", "ua", "wa"}],
        "ua": {"mean_gain", "ci95": [low, high], "wins", "ties", "losses", "wilcoxon_p"},
        "wa": {...}, "unpaired": {"variant": [...], "baseline": [...]}}``; differences are
        fractions.

    Raises:
        ValueError: no (fold, seed) appears in both.
    """
    a, b = runs_of(variant_results), runs_of(baseline_results)
    keys = [k for k in a if k in b]
    if not keys:
        raise ValueError(
            f"{variant} and {baseline} share no (fold, seed) run: {sorted(a)} vs {sorted(b)}"
        )
    pairs = [
        {
            "fold": f,
            "seed": s,
            "ua": a[(f, s)]["ua"] - b[(f, s)]["ua"],
            "wa": a[(f, s)]["wa"] - b[(f, s)]["wa"],
        }  # fmt: skip
        for f, s in keys
    ]
    out: dict[str, Any] = {
        "baseline": baseline,
        "variant": variant,
        "n_pairs": len(pairs),
        "pairs": pairs,
    }
    clusters = [p["fold"] for p in pairs]
    for metric in ("ua", "wa"):
        d = np.array([p[metric] for p in pairs], dtype=np.float64)
        low, high = cluster_bootstrap_ci(d, clusters)
        out[metric] = {
            "mean_gain": float(d.mean()),
            "ci95": [low, high],
            "wins": int((d >= TIE).sum()),
            "ties": int((np.abs(d) < TIE).sum()),
            "losses": int((d <= -TIE).sum()),
            "wilcoxon_p": wilcoxon_p(d),
        }
    out["unpaired"] = {
        "variant": [f"{f}/seed{s}" for f, s in a if (f, s) not in b],
        "baseline": [f"{f}/seed{s}" for f, s in b if (f, s) not in a],
    }
    return out


def compare_against_baseline(
    run_dir: str | Path,
    results: Mapping[str, Mapping[str, Any] | None],
    names: Sequence[str] | None = None,
) -> dict[str, dict[str, Any] | str]:
    """Every variant of ``results`` (or of ``names``) paired against plain fine-tuning.

    The one comparison of a run folder (``cv``'s ablation and sweep, ``demo``): each result is
    written to ``RUN_DIR/compare-<variant>-vs-<baseline>.json`` (``layout.compare_path``).

    Returns:
        variant name -> the :func:`compare_results` dict, or the message of why it could not be
        paired (no common fold and seed); the baseline itself, variants without results and
        every variant when the baseline has none are left out.
    """
    from emodistill.config.variants import BASELINE
    from emodistill.runs.layout import compare_path
    from emodistill.util.files import write_json_atomic

    base = results.get(BASELINE)
    out: dict[str, dict[str, Any] | str] = {}
    if not base:
        return out
    for name in results if names is None else names:
        res = results.get(name)
        if name == BASELINE or not res or "folds" not in res:
            continue
        try:
            cmp = compare_results(res, base, name, BASELINE)
        except ValueError as err:
            out[name] = str(err)
            continue
        write_json_atomic(compare_path(run_dir, name, BASELINE), cmp)
        out[name] = cmp
    return out


def verdict(cmp: Mapping[str, Any], metric: str = "ua") -> str:
    """``gain shown`` / ``loss shown`` (CI excludes 0) or ``no difference shown``."""
    low, high = cmp[metric]["ci95"]
    if low > 0:
        return "gain shown"
    if high < 0:
        return "loss shown"
    return "no difference shown"


def compare_markdown(cmp: Mapping[str, Any]) -> str:
    """A short markdown table (percent points) and the verdict."""
    lines = [
        f"`{cmp['variant']}` − `{cmp['baseline']}`, {cmp['n_pairs']} (fold, seed) pairs:",
        "",
        "| metric | mean gain | 95 % CI (folds resampled) | wins/ties/losses | Wilcoxon p |",
        "|---|---|---|---|---|",
    ]
    for metric in ("ua", "wa"):
        m = cmp[metric]
        low, high = m["ci95"]
        lines.append(
            f"| {metric.upper()} | {100 * m['mean_gain']:+.2f} | [{100 * low:+.2f}, "
            f"{100 * high:+.2f}] | {m['wins']}/{m['ties']}/{m['losses']} | "
            f"{m['wilcoxon_p']:.4f} |"
        )
    lines += ["", f"Verdict (UA): **{verdict(cmp)}**."]
    return "\n".join(lines)
