"""Cross-corpus evaluation: a trained speech-only model scored on another corpus's manifest.

Labels are matched by name (every loader writes the same English names, docs/data.md): the
evaluation uses the labels the model and the corpus share. Utterances of corpus labels the model
does not know are left out and counted; the model's own labels the corpus lacks are excluded from
the decision (argmax over the shared labels only), and how often the unrestricted argmax would
have chosen one of them is reported.

Writes, into ``OUT``: ``results.json`` (the cv format of
:func:`emodistill.evaluation.report.aggregate`, one fold named ``all``), ``predictions.json``
(ids, y_true, y_pred, probabilities over the model's labels), ``labels.json`` (the label
report), ``report.md`` and ``confusion.png``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from emodistill.corpora.manifest import Manifest

#: The single fold of a cross-corpus evaluation.
FOLD_ID = "all"
#: Files loaded and predicted per step (bounds memory on large corpora).
CHUNK = 64


def label_report(model_labels: list[str], manifest: Manifest) -> dict[str, Any]:
    """Shared labels (in the model's order) and what falls outside them on either side."""
    corpus = Counter(u.label for u in manifest.utterances)
    shared = [lab for lab in model_labels if lab in corpus]
    return {
        "model_labels": list(model_labels),
        "corpus_labels": dict(corpus.most_common()),
        "shared": shared,
        "corpus_only": {lab: n for lab, n in corpus.most_common() if lab not in shared},
        "model_only": [lab for lab in model_labels if lab not in corpus],
    }


def evaluate_model(
    model: Any,
    manifest: Manifest,
    out: str | Path,
    batch_size: int = 8,
    progress: bool = False,
) -> dict[str, Any]:
    """Score ``model`` (an :class:`~emodistill.inference.model.EmoDistill`) on ``manifest``.

    Returns:
        The results dict written to ``results.json`` (cv format, one fold ``all``, labels = the
        shared labels).

    Raises:
        ValueError: the model and the corpus share no label (names both label sets).
    """
    from emodistill.audio import load_audio
    from emodistill.evaluation.report import aggregate, plot_confusion, results_markdown
    from emodistill.runs.layout import (
        confusion_path,
        evaluation_labels_path,
        evaluation_predictions_path,
        report_path,
        results_path,
    )
    from emodistill.util.files import write_json_atomic, write_text_atomic

    report = label_report(list(model.labels), manifest)
    shared = report["shared"]
    if not shared:
        raise ValueError(
            f"{manifest.path}: the model's labels ({', '.join(model.labels)}) and the corpus's "
            f"({', '.join(report['corpus_labels'])}) have none in common"
        )
    columns = np.array([model.labels.index(lab) for lab in shared])
    utts = [u for u in manifest.utterances if u.label in shared]
    probs = np.zeros((len(utts), len(model.labels)), dtype=np.float32)
    for start in range(0, len(utts), CHUNK):
        chunk = utts[start : start + CHUNK]
        signals = [load_audio(u.path, model.sample_rate) for u in chunk]
        probs[start : start + len(chunk)] = model.predict_proba(signals, batch_size, progress)
    y_true = [shared.index(u.label) for u in utts]
    y_pred = probs[:, columns].argmax(axis=1).tolist()
    outside = int(np.isin(probs.argmax(axis=1), columns, invert=True).sum())
    report.update(evaluated=len(utts), argmax_outside_shared=outside)

    out = Path(out)
    results = aggregate({FOLD_ID: {"y_true": y_true, "y_pred": y_pred}}, shared)
    write_json_atomic(results_path(out), results)
    write_json_atomic(
        evaluation_predictions_path(out),
        {
            "ids": [u.id for u in utts],
            "y_true": y_true,
            "y_pred": y_pred,
            "labels": list(model.labels),
            "probabilities": probs.round(6).tolist(),
        },
    )
    write_json_atomic(evaluation_labels_path(out), report)
    title = f"Cross-corpus evaluation: {Path(str(model.path or 'model')).name} on {manifest.path}"
    write_text_atomic(
        report_path(out), results_markdown(results, title, "cross-corpus", (), _notes(report))
    )
    plot_confusion(results["confusion"], shared, confusion_path(out), "Cross-corpus")
    return results


def _notes(report: dict[str, Any]) -> list[str]:
    corpus_only = ", ".join(f"{lab} ({n})" for lab, n in report["corpus_only"].items())
    notes = [
        "## Labels",
        "",
        f"Shared labels (evaluated): {', '.join(report['shared'])}; "
        f"{report['evaluated']} utterances.",
        f"Corpus labels the model does not know (left out): {corpus_only or 'none'}.",
        f"Model labels the corpus lacks (excluded from the argmax): "
        f"{', '.join(report['model_only']) or 'none'}; the unrestricted argmax chose one of "
        f"them for {report['argmax_outside_shared']} utterance(s).",
    ]
    return ["\n".join(notes)]
