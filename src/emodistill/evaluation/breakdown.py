"""Where a gain comes from: test accuracy split by how the synthetic corpus made each utterance.

The synthetic corpus records per utterance (``synthesis.json``, key ``plan``) whether its words
carry the label's emotion (``lexical``), no emotion (``neutral words``) or another emotion
(``misleading``), and its prosodic intensity (``mild`` / ``clear``; neutral utterances have
none). If the linguistic teacher's knowledge reaches the student, distillation should help most
on lexical utterances with mild prosody, where the words are the better cue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from emodistill.util.files import read_json

#: Intensity at or above which a non-neutral utterance's prosody counts as clear (the synthetic
#: corpus draws mild from [0.05, 0.35] and clear from [0.8, 1.4]).
CLEAR_INTENSITY = 0.5

GROUPS = ("lexical", "neutral words", "misleading", "mild prosody", "clear prosody")


def utterance_groups(synthesis_json: str | Path) -> dict[str, tuple[str, ...]]:
    """utterance id -> the groups it belongs to (a words group, and a prosody group unless its
    label is neutral)."""
    plan = read_json(synthesis_json)["plan"]
    out = {}
    for p in plan:
        words = p.get("word_emotion")
        if words is None:
            g = ["neutral words"]
        elif words == p["label"]:
            g = ["lexical"]
        else:
            g = ["misleading"]
        if p["label"] != "neutral":
            g.append("clear prosody" if p["intensity"] >= CLEAR_INTENSITY else "mild prosody")
        out[p["id"]] = tuple(g)
    return out


def group_accuracy(
    predictions: Sequence[Mapping[str, Any]], groups: Mapping[str, Sequence[str]]
) -> dict[str, dict[str, float]]:
    """group -> {"accuracy", "n"} over every (utterance, run) of ``predictions`` (each a
    predictions.json dict with ``ids``, ``y_true``, ``y_pred``)."""
    hits = {g: 0 for g in GROUPS}
    counts = {g: 0 for g in GROUPS}
    for pred in predictions:
        for utt, t, p in zip(pred["ids"], pred["y_true"], pred["y_pred"], strict=True):
            for g in groups.get(utt, ()):
                counts[g] += 1
                hits[g] += int(t == p)
    return {
        g: {"accuracy": hits[g] / counts[g] if counts[g] else float("nan"), "n": counts[g]}
        for g in GROUPS
    }


def breakdown_markdown(table: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """A markdown table: rows = variants, columns = groups (accuracy in percent, n below)."""
    lines = ["| system | " + " | ".join(GROUPS) + " |", "|---" * (len(GROUPS) + 1) + "|"]
    for name, row in table.items():
        cells = [f"{100 * row[g]['accuracy']:.1f}" if row[g]["n"] else "-" for g in GROUPS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    some = next(iter(table.values()), None)
    if some:
        lines.append(
            "| n (utterance x run) | " + " | ".join(str(some[g]["n"]) for g in GROUPS) + " |"
        )
    return "\n".join(lines)
