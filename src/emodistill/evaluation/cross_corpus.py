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

A ``student.speaker_norm`` model is evaluated speaker-normalised: each speaker (the manifest's
``speaker`` column) is normalised with the statistics of their own clips in the evaluated set,
as cross-validation normalises its test speakers. That reads the test speakers' unlabelled
audio, so the results say so (``"speaker_norm": true``, and the report's title and notes).
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
    speaker_norm = bool(getattr(model, "speaker_norm", False))
    norms = speaker_norms(model, utts) if speaker_norm else None
    probs = np.zeros((len(utts), len(model.labels)), dtype=np.float32)
    for start in range(0, len(utts), CHUNK):
        chunk = utts[start : start + CHUNK]
        signals = [load_audio(u.path, model.sample_rate) for u in chunk]
        speaker = None if norms is None else np.stack([norms[u.speaker] for u in chunk])
        probs[start : start + len(chunk)] = model.predict_proba(
            signals, batch_size, progress, speaker=speaker
        )
    y_true = [shared.index(u.label) for u in utts]
    y_pred = probs[:, columns].argmax(axis=1).tolist()
    outside = int(np.isin(probs.argmax(axis=1), columns, invert=True).sum())
    report.update(evaluated=len(utts), argmax_outside_shared=outside, speaker_norm=speaker_norm)
    if speaker_norm:
        report["speakers"] = len(norms)

    out = Path(out)
    results = aggregate({FOLD_ID: {"y_true": y_true, "y_pred": y_pred}}, shared)
    if speaker_norm:  # its own rows: a plain model's results.json keeps the cv format
        results["speaker_norm"] = True
    write_json_atomic(results_path(out), results)
    write_json_atomic(
        evaluation_predictions_path(out),
        {
            "ids": [u.id for u in utts],
            "y_true": y_true,
            "y_pred": y_pred,
            "labels": list(model.labels),
            "probabilities": probs.round(6).tolist(),
            "speaker_norm": speaker_norm,
        },
    )
    write_json_atomic(evaluation_labels_path(out), report)
    title = f"Cross-corpus evaluation: {Path(str(model.path or 'model')).name} on {manifest.path}"
    if speaker_norm:
        title += " (speaker-normalised)"
    write_text_atomic(
        report_path(out), results_markdown(results, title, "cross-corpus", (), _notes(report))
    )
    plot_confusion(results["confusion"], shared, confusion_path(out), "Cross-corpus")
    return results


def speaker_norms(model: Any, utts: list[Any]) -> dict[str, np.ndarray]:
    """Speaker -> (2, H) ``[mu, sigma]`` from the clip means of that speaker's clips in
    ``utts`` (each clip whole, one mean per window of at most the model's maximum, as
    ``enroll`` computes them), shrunk towards the model's global statistics."""
    from emodistill.audio import load_audio
    from emodistill.inference.speaker import require_speaker_norm, signal_clip_means
    from emodistill.models.speaker_stats import SpeakerStats, normaliser

    require_speaker_norm(model, "evaluate (a speaker_norm model)")
    by_speaker: dict[str, SpeakerStats] = {}
    for u in utts:
        means, seconds = signal_clip_means(model, load_audio(u.path, model.sample_rate))
        stats = by_speaker.setdefault(u.speaker, SpeakerStats())
        for m, sec in zip(means, seconds, strict=True):
            stats.add(m, sec)
    glob = model.runner.global_stats()
    return {spk: normaliser(stats, glob) for spk, stats in by_speaker.items()}


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
    if report.get("speaker_norm"):
        notes += [
            "",
            "## Speaker-normalised",
            "",
            f"A student.speaker_norm model: each of the {report['speakers']} speakers was "
            "normalised with the statistics of their own clips in this evaluated set (unlabelled "
            "audio of the test speakers; docs/speaker.md). Compare it with other "
            "speaker-normalised results, not with single-clip ones.",
        ]
    return ["\n".join(notes)]
