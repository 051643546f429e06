"""emodistill compare: paired differences, cluster-bootstrap CI, wins/ties/losses, Wilcoxon."""

from __future__ import annotations

import json
from itertools import product

import pytest
from typer.testing import CliRunner

from emodistill.cli.app import app
from emodistill.evaluation.compare import compare_results


def _results(ua: dict[tuple[str, int], float], wa_shift: float = 0.0, runs: bool = True) -> dict:
    rows = [
        {"fold": f, "seed": s, "ua": v, "wa": v + wa_shift, "f1": v, "n": 10}
        for (f, s), v in ua.items()
    ]
    out = {"folds": [dict(r) for r in rows if r["seed"] == 0]}
    if runs:
        out["runs"] = rows
    return out


def _exact_wilcoxon_two_sided(diffs: list[float]) -> float:
    """Exact two-sided signed-rank p by enumerating all sign patterns (no ties in |d|)."""
    ranks = {d: r for r, d in enumerate(sorted(diffs, key=abs), 1)}
    w_plus = sum(ranks[d] for d in diffs if d > 0)
    n = len(diffs)
    total = n * (n + 1) // 2
    stats = [
        sum(r for r, s in zip(range(1, n + 1), signs, strict=True) if s)
        for signs in product([0, 1], repeat=n)
    ]
    extreme = min(w_plus, total - w_plus)
    tail = sum(1 for w in stats if w <= extreme) / len(stats)
    return min(1.0, 2 * tail)


def test_hand_computed_pairs_mean_wins_and_wilcoxon():
    variant = _results({("g1", 0): 0.60, ("g2", 0): 0.70, ("g3", 0): 0.45})
    base = _results({("g1", 0): 0.50, ("g2", 0): 0.50, ("g3", 0): 0.50})
    cmp = compare_results(variant, base, "full", "no_teachers")
    assert cmp["n_pairs"] == 3 and cmp["variant"] == "full" and cmp["baseline"] == "no_teachers"
    assert [round(p["ua"], 9) for p in cmp["pairs"]] == [0.1, 0.2, -0.05]
    assert cmp["ua"]["mean_gain"] == pytest.approx(0.25 / 3)
    assert (cmp["ua"]["wins"], cmp["ua"]["ties"], cmp["ua"]["losses"]) == (2, 0, 1)
    # Exact: ranks 1 (0.05), 2 (0.1), 3 (0.2); W+ = 5 of 6; P(W+ >= 5) = 2/8 -> p = 0.5.
    assert _exact_wilcoxon_two_sided([0.1, 0.2, -0.05]) == pytest.approx(0.5)
    assert cmp["ua"]["wilcoxon_p"] == pytest.approx(0.5)
    # Resampling folds can draw g3 three times (probability 1/27 > 2.5 %): the CI holds 0.
    low, high = cmp["ua"]["ci95"]
    assert low == pytest.approx(-0.05) and high > 0
    assert cmp["wa"]["mean_gain"] == pytest.approx(0.25 / 3)


def test_ci_excludes_zero_when_every_fold_gains_and_seeds_are_clustered():
    gains = {"g1": 0.10, "g2": 0.20, "g3": 0.05, "g4": 0.15}
    variant = _results({(f, s): 0.5 + g + 0.01 * s for f, g in gains.items() for s in (0, 1)})
    base = _results({(f, s): 0.5 for f in gains for s in (0, 1)})
    cmp = compare_results(variant, base, "full", "no_teachers")
    assert cmp["n_pairs"] == 8
    low, high = cmp["ua"]["ci95"]
    # Fold means are 0.105, 0.205, 0.055, 0.155: every resample mean lies between the extremes.
    assert 0.055 - 1e-12 <= low < high <= 0.205 + 1e-12 and low > 0
    assert cmp["ua"]["wins"] == 8 and cmp["ua"]["losses"] == 0


def test_missing_pairs_are_reported_and_all_ties_give_p_one():
    variant = _results({("g1", 0): 0.5, ("g2", 0): 0.6, ("g3", 1): 0.7})
    base = _results({("g1", 0): 0.5, ("g2", 0): 0.6, ("g4", 0): 0.7})
    cmp = compare_results(variant, base, "full", "no_teachers")
    assert cmp["n_pairs"] == 2 and cmp["ua"]["ties"] == 2 and cmp["ua"]["wilcoxon_p"] == 1.0
    assert cmp["unpaired"] == {"variant": ["g3/seed1"], "baseline": ["g4/seed0"]}
    with pytest.raises(ValueError, match="share no"):
        compare_results(_results({("a", 0): 0.5}), _results({("b", 0): 0.5}), "x", "y")


def test_old_results_without_runs_pair_on_folds():
    variant = _results({("g1", 0): 0.6, ("g2", 0): 0.7}, runs=False)
    base = _results({("g1", 0): 0.5, ("g2", 0): 0.5}, runs=False)
    assert compare_results(variant, base, "v", "b")["ua"]["mean_gain"] == pytest.approx(0.15)


def test_cli_run_folder_and_two_file_forms(tmp_path):
    run = tmp_path / "run"
    (run / "variants" / "no_teachers").mkdir(parents=True)
    (run / "results.json").write_text(json.dumps(_results({("g1", 0): 0.6, ("g2", 0): 0.7})))
    (run / "variants" / "no_teachers" / "results.json").write_text(
        json.dumps(_results({("g1", 0): 0.5, ("g2", 0): 0.5}))
    )
    res = CliRunner().invoke(app, ["compare", str(run), "--baseline", "no_teachers"])
    assert res.exit_code == 0, res.output
    data = json.loads((run / "compare-full-vs-no_teachers.json").read_text())
    assert {"baseline", "variant", "n_pairs", "pairs", "ua", "wa"} <= set(data)
    assert set(data["pairs"][0]) == {"fold", "seed", "ua", "wa"}
    assert set(data["ua"]) == {"mean_gain", "ci95", "wins", "ties", "losses", "wilcoxon_p"}
    assert data["ua"]["mean_gain"] == pytest.approx(0.15)
    two = CliRunner().invoke(
        app, ["compare", str(run / "results.json"), str(run / "variants/no_teachers/results.json")]
    )
    assert two.exit_code == 0, two.output
    missing = CliRunner().invoke(app, ["compare", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no such results file" in missing.output
