"""Model cards: the ``README.md`` of a speech-only model folder (docs/inference.md).

One function writes every card, :func:`write_model_card`, from the run's own files only: the
folder's config (its fold, seed, variant and training config), the variant's ``results.json``,
``RUN_DIR/teachers.json``, the paired comparison ``compare-<variant>-vs-no_teachers.json`` when
the run has one, and the corpus manifest with, beside it, the ``synthesis.json`` a synthetic
espeak-ng corpus leaves (such a model is marked as not for real voices). The card opens with
YAML front matter in the Hugging Face convention (``library_name``, ``pipeline_tag``,
``license``, ``base_model``, ``metrics``, ``model-index`` with the cross-validation means as
fractions) and its first paragraph is the one-line summary that ``predict`` and the web page
show (:func:`card_summary`). A folder without a card loads and predicts the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emodistill.config.variants import BASELINE
from emodistill.corpora.synthetic import SYNTHESIS_NAME
from emodistill.evaluation.compare import verdict
from emodistill.models.card import folder_facts, write_card
from emodistill.runs.layout import (
    compare_path,
    probe_path,
    results_path,
    teachers_summary_path,
)
from emodistill.util.files import read_json


def write_model_card(
    folder: str | Path,
    run_dir: str | Path | None = None,
    manifest: Any = None,
) -> Path:
    """Write ``folder/README.md`` for the student model in ``folder``.

    Args:
        folder: a student model folder (its config names the fold, seed and variant it was
            trained as, when it came from a run).
        run_dir: the run folder it came from; None: a card from the folder's config alone
            (labels, encoder, configuration; no results).
        manifest: the corpus (a :class:`~emodistill.corpora.manifest.Manifest` with a path) for
            its name, size, and whether it is synthetic (``synthesis.json`` beside it).

    Returns:
        The card's path.
    """
    folder = Path(folder)
    facts = _facts(folder, None if run_dir is None else Path(run_dir), manifest)
    return write_card(folder, facts)


def _facts(folder: Path, run_dir: Path | None, manifest: Any) -> dict[str, Any]:
    facts = folder_facts(folder)
    variant = facts["variant"]
    if manifest is not None and getattr(manifest, "path", None) is not None:
        path = Path(manifest.path)
        facts["corpus"] = f"{path.parent.name}/{path.name}"
        facts["utterances"] = len(manifest.utterances)
        facts["speakers"] = len(manifest.speakers())
        facts["synthetic"] = (path.parent / SYNTHESIS_NAME).is_file()
        facts["recipe"] = SYNTHESIS_NAME
    if run_dir is None:
        return facts
    results = results_path(run_dir, variant)
    if results.is_file():
        facts["results"] = read_json(results)
    teachers = teachers_summary_path(run_dir)
    if teachers.is_file() and variant != BASELINE:
        facts["teachers"] = read_json(teachers)
    compare = compare_path(run_dir, variant, BASELINE)
    if variant != BASELINE and compare.is_file():
        facts["compare"] = read_json(compare)
        facts["verdict"] = verdict(facts["compare"])
    if probe_path(run_dir).is_file() and "results" in facts:
        from emodistill.evaluation.probe import probe_comparison
        from emodistill.evaluation.probe import verdict as probe_verdict

        cmp = probe_comparison(read_json(probe_path(run_dir)), facts["results"])
        if cmp.get("folds"):
            cmp["verdict"] = probe_verdict(cmp["diff_best"], cmp.get("ci95_best"))
            facts["probe"] = cmp
    return facts
