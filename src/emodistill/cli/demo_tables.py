"""The demo's columns and how they print: the rich tables of the terminal and ``demo.md``."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from emodistill.config.variants import (
    BASELINE,
    FULL,
    ONE_TEACHER_LEFT_OUT,
    TEACHERS_ALONE,
    short_title,
)
from emodistill.evaluation.report import pct

#: Student variants trained by the demo, in order (plain fine-tune first: the baseline). The
#: single-teacher students (``no_linguistic_teacher``, ``no_prosodic_teacher``) would double the
#: student time; ``emodistill cv ... --variant`` runs them on the demo's teachers, and the
#: demo's report shows them when their results are in the run folder.
DEMO_VARIANTS = (BASELINE, FULL)
EXTRA_VARIANTS = ONE_TEACHER_LEFT_OUT
TEACHER_VARIANTS = TEACHERS_ALONE

#: The demo table's column of the linear probe on the students' frozen features.
PROBE_COLUMN = "linear_probe"
#: The demo table's columns in order: (variant, its short label from ``variants``).
COLUMNS = (
    *((name, short_title(name)) for name in TEACHER_VARIANTS),
    (PROBE_COLUMN, "probe"),
    *((name, short_title(name)) for name in (*DEMO_VARIANTS, *EXTRA_VARIANTS)),
)


def verdict_line(cmp: dict | None) -> str:
    """The verdict of a comparison with its UA 95 % CI in points (or "no comparison")."""
    from emodistill.evaluation.compare import verdict

    if not cmp:
        return "no comparison"
    low, high = cmp["ua"]["ci95"]
    return f"{verdict(cmp)}: 95 % CI [{100 * low:+.2f}, {100 * high:+.2f}]"


def compare_table(compare: dict[str, Any]) -> Table:
    """A rich table: each student variant minus plain fine-tuning, paired over folds x seeds."""
    table = Table(title="Paired against plain fine-tuning (UA points, folds x seeds)")
    for col in ("variant", "pairs", "mean gain", "95 % CI", "W/T/L", "Wilcoxon p", "verdict"):
        table.add_column(col, justify="left" if col in ("variant", "verdict") else "right")
    for variant, cmp in compare.items():
        ua = cmp["ua"]
        low, high = ua["ci95"]
        table.add_row(
            dict(COLUMNS).get(variant, variant),
            str(cmp["n_pairs"]),
            f"{100 * ua['mean_gain']:+.2f}",
            f"[{100 * low:+.2f}, {100 * high:+.2f}]",
            f"{ua['wins']}/{ua['ties']}/{ua['losses']}",
            f"{ua['wilcoxon_p']:.3f}",
            verdict_line(cmp).split(":")[0],
        )
    return table


def _cell(col: dict, fold: str | None) -> tuple[str, str]:
    if fold is None:
        m = col.get("mean")
        return (pct(m["wa"]), pct(m["ua"])) if m else ("-", "-")
    f = col["folds"].get(fold)
    return (pct(f["wa"]), pct(f["ua"])) if f else ("-", "-")


def demo_table(summary: dict[str, Any]) -> Table:
    """A rich table: WA/UA of T_L, T_P, the plain and the EmoDistill student, per fold + mean."""
    table = Table(title="Speaker-independent test results (percent)", show_lines=False)
    table.add_column("fold", style="bold")
    shown = _shown(summary)
    for _, title in shown:
        style = "bold green" if title.startswith("EmoDistill") else None
        table.add_column(f"{title}\nWA", justify="right", style=style)
        table.add_column("UA", justify="right", style=style)
    for fold in [*summary["folds"], None]:
        cells = []
        for variant, _ in shown:
            cells += _cell(summary["columns"][variant], fold)
        table.add_row("mean" if fold is None else fold, *cells, end_section=fold is None)
    table.caption = (
        "T_L: text teacher (needs transcripts). T_P: prosodic teacher (eGeMAPS). "
        f"{_probe_caption(summary)}plain: student fine-tuned with CE only. EmoDistill: distilled "
        "from both. Students hear audio only."
    )
    return table


def _shown(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The table's (column, title) pairs that have results."""
    return [(v, t) for v, t in COLUMNS if summary["columns"].get(v)]


def _probe_caption(summary: dict[str, Any]) -> str:
    probe = summary["columns"].get(PROBE_COLUMN)
    if not probe:
        return ""
    return (
        f"probe: logistic regression on the students' frozen encoder features (mean-pooled "
        f"layer {probe['layer']}), the floor a trained student must beat. "
    )


def demo_markdown(summary: dict[str, Any], quick: bool = False) -> str:
    """``demo.md``: the comparison table and where everything is."""
    shown = _shown(summary)
    head = "| fold | " + " | ".join(f"{t} WA | {t} UA" for _, t in shown) + " |"
    lines = [
        "# EmoDistill demo" + (" (quick smoke run: numbers mean nothing)" if quick else ""),
        "",
        f"Synthetic espeak-ng corpus, folds: {summary['fold_scheme']} (test speakers held out). "
        "Students: Whisper tiny.en encoder, audio only. Percent.",
        "",
        head,
        "|---" * (1 + 2 * len(shown)) + "|",
    ]
    for fold in [*summary["folds"], None]:
        cells = []
        for variant, _ in shown:
            cells += _cell(summary["columns"][variant], fold)
        name = "**mean**" if fold is None else fold
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"EmoDistill − plain student, mean UA: **{summary['gain_ua']:+.2f}** points "
        f"({verdict_line(summary.get('compare', {}).get(FULL))}).",
        "",
        f"Fold values are means over seeds {summary.get('seeds')}. {_probe_caption(summary)}",
        "",
        "## Paired against plain fine-tuning (UA points, per fold x seed)",
        "",
        "| variant | pairs | mean gain | 95 % CI | W/T/L | Wilcoxon p |",
        "|---|---|---|---|---|---|",
    ]
    for variant, cmp in summary.get("compare", {}).items():
        ua = cmp["ua"]
        low, high = ua["ci95"]
        lines.append(
            f"| {dict(COLUMNS).get(variant, variant)} | {cmp['n_pairs']} | "
            f"{100 * ua['mean_gain']:+.2f} | [{100 * low:+.2f}, {100 * high:+.2f}] | "
            f"{ua['wins']}/{ua['ties']}/{ua['losses']} | {ua['wilcoxon_p']:.3f} |"
        )
    if summary.get("breakdown"):
        from emodistill.evaluation.breakdown import breakdown_markdown

        lines += [
            "",
            "## Test accuracy by sentence type (percent; all folds and seeds)",
            "",
            breakdown_markdown(summary["breakdown"]),
        ]
    lines += [
        "",
        f"Speech-only model: `{summary['model']}` (EmoDistill student of fold "
        f"{summary['model_fold']}, {summary.get('model_choice', 'best validation UA')}).",
        "",
        "Per-variant reports: `report.md` (EmoDistill), `variants/<variant>/report.md`.",
        "",
    ]
    return "\n".join(lines)
