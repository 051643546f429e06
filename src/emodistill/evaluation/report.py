"""Cross-validation results: aggregation over folds, markdown reports and plots.

Per-fold test predictions (``predictions.json``: ids, y_true, y_pred, probabilities) are the
single source of truth; everything here is derived from them, so a re-run that finds more folds
on disk simply aggregates again. Metrics are fractions in [0, 1] in JSON and percentages in
markdown. Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emodistill.config.variants import FULL, paper_numbers, variant_title
from emodistill.evaluation.metrics import compute_metrics, mean_std
from emodistill.util.formatting import pct
from emodistill.util.plotting import pyplot, save_figure

RESULT_KEYS = ("folds", "mean", "std", "pooled", "labels", "confusion", "seeds", "runs")


# --------------------------------------------------------------------------- aggregation


def aggregate(predictions: Mapping[str, Mapping[str, Any]], labels: Sequence[str]) -> dict:
    """Per-fold, mean ± std over folds, and pooled metrics from per-fold predictions (one run per
    fold, seed 0): :func:`aggregate_runs` with ``{(fold, 0): predictions}``.

    Returns:
        ``{"folds": [{"fold", "wa", "ua", "f1", "n"}], "mean": {"wa", "ua", "f1"},
        "std": {"wa", "ua", "f1"}, "pooled": {"wa", "ua"}, "labels": [...],
        "confusion": C x C pooled counts (rows = true class), "seeds": [0], "runs": [...]}``;
        metrics are fractions.
    """
    return aggregate_runs({(fold_id, 0): pred for fold_id, pred in predictions.items()}, labels)


def aggregate_runs(
    predictions: Mapping[tuple[str, int], Mapping[str, Any]], labels: Sequence[str]
) -> dict:
    """:func:`aggregate` over folds x seeds.

    Args:
        predictions: ``(fold id, seed) -> predictions`` (fold order = first appearance).

    Returns:
        :func:`aggregate`'s keys, plus ``seeds`` (sorted) and ``runs`` (one ``{"fold", "seed",
        "wa", "ua", "f1", "n"}`` per fold x seed). ``folds`` holds each fold's metrics averaged
        over its seeds (``n`` = utterances of the fold), ``mean``/``std`` are over those fold
        means, ``pooled`` and ``confusion`` pool every run (an utterance counts once per seed).
    """
    num_classes = len(labels)
    runs = []
    by_fold: dict[str, list[dict]] = {}
    all_true: list[int] = []
    all_pred: list[int] = []
    for (fold_id, seed), pred in predictions.items():
        y_true = [int(v) for v in pred["y_true"]]
        y_pred = [int(v) for v in pred["y_pred"]]
        m = compute_metrics(y_true, y_pred, num_classes)
        run = {
            "fold": str(fold_id),
            "seed": int(seed),
            "wa": m["wa"],
            "ua": m["ua"],
            "f1": m["f1"],
            "n": len(y_true),
        }
        runs.append(run)
        by_fold.setdefault(str(fold_id), []).append(run)
        all_true += y_true
        all_pred += y_pred
    folds = [
        {
            "fold": fold_id,
            **{k: float(np.mean([r[k] for r in rs])) for k in ("wa", "ua", "f1")},
            "n": rs[0]["n"],
        }
        for fold_id, rs in by_fold.items()
    ]
    mean, std = {}, {}
    for key in ("wa", "ua", "f1"):
        mean[key], std[key] = mean_std([f[key] for f in folds])
    pooled = compute_metrics(all_true, all_pred, num_classes)
    return {
        "folds": folds,
        "mean": mean,
        "std": std,
        "pooled": {"wa": pooled["wa"], "ua": pooled["ua"]},
        "labels": list(labels),
        "confusion": pooled["confusion"],
        "seeds": sorted({r["seed"] for r in runs}),
        "runs": runs,
    }


def teaching_of(
    predictions: Mapping[tuple[str, int], Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Which teachers taught each (fold, seed) student, with which weight and why: one
    ``{"fold", "seed", "weighting", "weights", "teacher_val_ua", "student_val_ua", "reasons"}``
    per run that read teachers (empty for plain fine-tuning and teacher-only variants)."""
    rows = []
    for (fold_id, seed), pred in predictions.items():
        val_ua = pred.get("teacher_val_ua") or {}
        if not val_ua:
            continue
        weights = pred.get("teacher_weights")
        rows.append(
            {
                "fold": str(fold_id),
                "seed": int(seed),
                "weighting": "fixed" if weights is None else "teacher-aware",
                "weights": weights or {k: 1.0 for k in val_ua},
                "teacher_val_ua": dict(val_ua),
                "student_val_ua": pred.get("student_val_ua"),
                "reasons": dict(pred.get("teacher_weight_reasons") or {}),
            }
        )
    return rows


def teaching_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The report's "Which teachers taught" table (validation speakers only)."""
    kinds = sorted({k for r in rows for k in r["teacher_val_ua"]})
    head = " | ".join(f"{k} val UA | {k} weight" for k in kinds)
    out = [
        "## Which teachers taught",
        "",
        "Each teacher's UA on the fold's validation speakers, the plain student's where the "
        "`student` rule compared them, and the weight on the teacher's KD and embedding terms.",
        "",
        f"| fold | seed | {head} | plain student val UA | why |",
        "|---|---|" + "---|---|" * len(kinds) + "---|---|",
    ]
    for r in rows:
        cells = " | ".join(
            f"{pct(r['teacher_val_ua'].get(k))} | {r['weights'].get(k, 1.0):.2f}" for k in kinds
        )
        why = "; ".join(f"{k}: {v.split(': ', 1)[-1]}" for k, v in sorted(r["reasons"].items()))
        plain = pct(r["student_val_ua"]) if r["student_val_ua"] is not None else "-"
        out.append(f"| {r['fold']} | {r['seed']} | {cells} | {plain} | {why or '-'} |")
    return "\n".join(out)


# --------------------------------------------------------------------------- markdown


def _pm(results: Mapping[str, Any], key: str) -> str:
    return f"{pct(results['mean'][key])} ± {pct(results['std'][key])}"


def confusion_markdown(confusion: Sequence[Sequence[int]], labels: Sequence[str]) -> str:
    """The confusion matrix as a markdown table (rows = true class, columns = predicted)."""
    lines = ["| true \\ predicted | " + " | ".join(labels) + " |"]
    lines.append("|---" * (len(labels) + 1) + "|")
    for lab, row in zip(labels, confusion, strict=False):
        lines.append(f"| **{lab}** | " + " | ".join(str(int(v)) for v in row) + " |")
    return "\n".join(lines)


#: Heads a report of a ``student.speaker_norm`` run: its numbers are not single-clip ones.
SPEAKER_NORM_NOTE = (
    "**Speaker-normalised** (`student.speaker_norm`): every test speaker was normalised with "
    "statistics of their own unlabelled test clips, which a single-clip prediction does not "
    "have. Compare these numbers only with other speaker-normalised ones (a linear probe row "
    "below is not speaker-normalised); docs/speaker.md."
)


def results_markdown(
    results: Mapping[str, Any],
    title: str = "Cross-validation results",
    variant: str = FULL,
    missing: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> str:
    """``report.md``: per-fold table, mean ± std, pooled, confusion and the paper's numbers."""
    out = [f"# {title}", ""]
    if results.get("speaker_norm"):
        out += [SPEAKER_NORM_NOTE, ""]
    out.append(f"Variant `{variant}`: {variant_title(variant)}.")
    out.append("WA = accuracy, UA = mean per-class recall, F1 = macro-F1, in percent; every fold")
    out.append("holds out its test speakers.")
    out.append("")
    out += ["| fold | n | WA | UA | F1 |", "|---|---|---|---|---|"]
    for f in results["folds"]:
        out.append(f"| {f['fold']} | {f['n']} | {pct(f['wa'])} | {pct(f['ua'])} | {pct(f['f1'])} |")
    out.append(
        f"| **mean ± std** | {sum(f['n'] for f in results['folds'])} | {_pm(results, 'wa')} | "
        f"{_pm(results, 'ua')} | {_pm(results, 'f1')} |"
    )
    out.append(
        f"| **pooled** | | {pct(results['pooled']['wa'])} | {pct(results['pooled']['ua'])} | |"
    )
    out.append("")
    if missing:
        out.append(f"Folds not yet run (re-run `cv` to add them): {', '.join(missing)}.")
        out.append("")
    out += ["## Confusion matrix (pooled over folds)", ""]
    out.append(confusion_markdown(results["confusion"], results["labels"]))
    out.append("")
    paper = paper_numbers(variant)
    if paper:
        out += [
            "## Paper, for reference",
            "",
            f"Shome & Etemad (ICASSP 2024), IEMOCAP 4-class, leave-one-speaker-out, HuBERT-base, "
            f"same variant: WA {paper[0]:.2f}, UA {paper[1]:.2f}. Numbers on another corpus or "
            "encoder are not comparable with these.",
            "",
        ]
    for note in notes:
        out += [note, ""]
    return "\n".join(out)


def ablation_markdown(ablation: Mapping[str, Mapping[str, Any]]) -> str:
    """``ablation.md``: every variant's mean WA/UA (± std) and pooled, beside the paper's."""
    out = [
        "# Ablation (the paper's Table 2 variants)",
        "",
        "Ours: mean ± std over folds and pooled, percent. Paper: HuBERT-base on IEMOCAP "
        "(leave-one-speaker-out); not comparable in absolute terms with another corpus or "
        "encoder — compare the ordering of the rows.",
        "",
        "| variant | WA (ours) | UA (ours) | pooled WA | pooled UA | WA (paper) | UA (paper) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, res in ablation.items():
        paper = paper_numbers(name)
        pw, pu = (f"{paper[0]:.2f}", f"{paper[1]:.2f}") if paper else ("-", "-")
        out.append(
            f"| {variant_title(name)} (`{name}`) | {_pm(res, 'wa')} | {_pm(res, 'ua')} "
            f"| {pct(res['pooled']['wa'])} | {pct(res['pooled']['ua'])} | {pw} | {pu} |"
        )
    folds = sorted({f["fold"] for res in ablation.values() for f in res["folds"]})
    out += ["", f"Folds: {', '.join(folds)}.", ""]
    return "\n".join(out)


def sweep_markdown(sweep: Mapping[str, Any]) -> str:
    """``sweep_<teacher>.md``: mean WA/UA per temperature.

    ``sweep["results"]``: one results dict (as :func:`aggregate`) per temperature, plus ``tau``.
    """
    teacher = sweep["teacher"]
    other = "linguistic" if teacher == "prosodic" else "prosodic"
    out = [
        f"# Temperature sweep: {teacher} teacher",
        "",
        f"tau_{teacher} varied; the {other} teacher's logit KD removed (paper Fig. 2); "
        "everything else as the config. Mean ± std over folds, percent.",
        "",
        "| tau | WA | UA | F1 | pooled UA |",
        "|---|---|---|---|---|",
    ]
    for res in sweep["results"]:
        out.append(
            f"| {res['tau']:g} | {_pm(res, 'wa')} | {_pm(res, 'ua')} | {_pm(res, 'f1')} | "
            f"{pct(res['pooled']['ua'])} |"
        )
    out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------- plots


def plot_confusion(
    confusion: Sequence[Sequence[int]], labels: Sequence[str], path: str | Path, title: str = ""
) -> Path:
    """Row-normalised confusion matrix heat map with counts, saved as PNG."""
    plt = pyplot()
    counts = np.asarray(confusion, dtype=np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    norm = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.3 * len(labels) + 2, 1.2 * len(labels) + 1.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            color = "white" if norm[i, j] > 0.6 else "black"
            ax.text(j, i, f"{int(counts[i, j])}\n{100 * norm[i, j]:.0f}%", ha="center",
                    va="center", fontsize=8, color=color)  # fmt: skip
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="recall")
    ax.set_title(title or "Confusion matrix (pooled)")
    path = Path(path)
    save_figure(fig, path)
    plt.close(fig)
    return path


def plot_ablation(ablation: Mapping[str, Mapping[str, Any]], path: str | Path) -> Path:
    """Grouped bars: mean WA and UA (with std error bars) per variant, paper UA as markers."""
    plt = pyplot()
    names = list(ablation)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(names) + 2), 4.5))
    for k, (key, offset) in enumerate((("wa", -0.2), ("ua", 0.2))):
        means = [100 * _nan(ablation[n]["mean"][key]) for n in names]
        stds = [100 * _nan(ablation[n]["std"][key]) for n in names]
        ax.bar(x + offset, means, 0.4, yerr=stds, capsize=3, label=f"{key.upper()} (ours)",
               color=("#4C72B0", "#DD8452")[k])  # fmt: skip
    paper_ua = [(paper_numbers(n) or (np.nan, np.nan))[1] for n in names]
    ax.plot(x + 0.2, paper_ua, "k_", markersize=18, mew=2, label="UA (paper, IEMOCAP)")
    ax.set_xticks(x, [n.replace("_", "\n") for n in names], fontsize=8)
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title("Ablation: mean over folds")
    path = Path(path)
    save_figure(fig, path)
    plt.close(fig)
    return path


def plot_sweep(sweep: Mapping[str, Any], path: str | Path) -> Path:
    """UA and WA (mean ± std over folds) against the temperature, log-x axis."""
    plt = pyplot()
    taus = [row["tau"] for row in sweep["results"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, marker in (("ua", "o-"), ("wa", "s--")):
        means = np.array([100 * _nan(r["mean"][key]) for r in sweep["results"]])
        stds = np.array([100 * _nan(r["std"][key]) for r in sweep["results"]])
        ax.plot(taus, means, marker, label=key.upper())
        ax.fill_between(taus, means - stds, means + stds, alpha=0.15)
    ax.set_xscale("log", base=2)
    ax.set_xticks(taus, [f"{t:g}" for t in taus])
    ax.set_xlabel(f"tau ({sweep['teacher']} teacher)")
    ax.set_ylabel("%")
    ax.legend()
    ax.grid(alpha=0.3)
    ax.set_title(f"Temperature sweep, {sweep['teacher']} teacher")
    path = Path(path)
    save_figure(fig, path)
    plt.close(fig)
    return path


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)
