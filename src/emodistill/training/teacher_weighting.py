"""Teacher-aware distillation: how much each teacher may teach, from what it knows.

A teacher at chance (e.g. the text teacher on a corpus whose every emotion is spoken over the
same sentences) carries no information about the label, yet fixed-weight KD pulls the student
towards its near-uniform outputs and towards an embedding that says nothing about emotion. The
``validation`` rule scales each teacher's KD and embedding terms by a factor in [0, 1] computed
from the teacher's UA on the fold's **validation** speakers — data the student may use for
model selection anyway; test speakers are never read:

    chance = 1 / C
    noise  = 2 * sqrt(chance * (1 - chance) / n_val)        # 2 standard errors of a guesser
    w      = clip((UA_val - chance - noise) / noise, 0, 1)

so ``w = 0`` while the teacher is within two standard errors of chance, ``w = 1`` from four
standard errors above it, linear in between. With 60 validation clips and 4 classes that is
``w = 0`` below UA 0.36 and ``w = 1`` above 0.47.

"Above chance" is not enough: a teacher weaker than what the student learns alone still pulls
it down (RAVDESS, issue 17). The ``student`` rule compares each teacher with the **plain
student** (same fold, seed and student settings, CE only) on the same validation speakers:

    se = sqrt(UA_t * (1 - UA_t) / n_val + UA_s * (1 - UA_s) / n_val)   # of the difference
    z  = (UA_t - UA_s) / se
    w  = clip(z - 1, 0, 1) * w_validation

so a teacher teaches only when its lead over the student is beyond what two models' difference
on the same n_val clips shows by chance: nothing up to one standard error of the difference,
full weight from two (about 8 and 16 points at UA 0.75 on 56 clips), linear in between; a
teacher at chance gets 0 whatever the student does. (Until the eleventh session the rule
used one standard error of UA_s alone and gave full weight from one: on RAVDESS-4, seeds 0-3,
T_P taught 7 of 32 runs on leads of 3-6 points, inside that noise, and those students lost
2.5 UA points to the plain ones on average, 5 of the 7: docs/results.md.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from emodistill.evaluation.metrics import compute_metrics

WEIGHTINGS = ("fixed", "validation", "student")


def chance_level(num_classes: int) -> float:
    """UA of a guesser: 1 / C."""
    return 1.0 / float(num_classes)


def chance_margin(num_classes: int, n: int) -> float:
    """Two standard errors of a guesser's accuracy on ``n`` items."""
    p = chance_level(num_classes)
    return 2.0 * math.sqrt(p * (1.0 - p) / max(int(n), 1))


def weight_from_ua(ua: float, num_classes: int, n: int) -> float:
    """The ``validation`` rule's factor for a teacher with validation UA ``ua`` on ``n`` clips."""
    noise = chance_margin(num_classes, n)
    value = (float(ua) - chance_level(num_classes) - noise) / noise
    return float(min(1.0, max(0.0, value)))


def lead_z(ua: float, student_ua: float, n: int) -> float:
    """The teacher's validation lead over the plain student in standard errors of the
    difference of two UAs on the same ``n`` clips."""
    p_t, p_s = (min(max(float(u), 1e-3), 1 - 1e-3) for u in (ua, student_ua))
    se = math.sqrt((p_t * (1.0 - p_t) + p_s * (1.0 - p_s)) / max(int(n), 1))
    return (float(ua) - float(student_ua)) / se


def weight_against_student(ua: float, student_ua: float, num_classes: int, n: int) -> float:
    """The ``student`` rule's factor: teacher validation UA ``ua`` against the plain student's
    ``student_ua`` on the same ``n`` validation clips: 0 up to a lead of one standard error
    of the difference (:func:`lead_z`), 1 from two."""
    value = lead_z(ua, student_ua, n) - 1.0
    return float(min(1.0, max(0.0, value))) * weight_from_ua(ua, num_classes, n)


def at_chance(ua: float, num_classes: int, n: int) -> bool:
    """True when ``ua`` is within two standard errors of chance."""
    return float(ua) <= chance_level(num_classes) + chance_margin(num_classes, n)


def teacher_validation_ua(
    teachers: Mapping[str, Any], val_ids: Sequence[str], y_val: Sequence[int], num_classes: int
) -> dict[str, float]:
    """kind -> UA of the teacher's cached logits on the validation utterances."""
    out = {}
    for kind, outputs in teachers.items():
        pred = np.asarray(outputs.logits_of(list(val_ids))).argmax(axis=1)
        out[kind] = float(compute_metrics(list(y_val), pred.tolist(), num_classes)["ua"])
    return out


def teacher_weights(
    rule: str,
    val_ua: Mapping[str, float],
    num_classes: int,
    n_val: int,
    student_val_ua: float | None = None,
) -> dict[str, float] | None:
    """Per-teacher factors under ``rule`` (None for ``fixed``: every factor 1).

    ``student`` needs ``student_val_ua``, the plain student's validation UA on the same clips.
    """
    if rule not in WEIGHTINGS:
        raise ValueError(f"distill.teacher_weighting must be one of {WEIGHTINGS}, got {rule!r}")
    if rule == "fixed":
        return None
    if rule == "student":
        if student_val_ua is None:
            raise ValueError("teacher_weighting 'student' needs the plain student's validation UA")
        return {
            k: weight_against_student(ua, student_val_ua, num_classes, n_val)
            for k, ua in val_ua.items()
        }
    return {k: weight_from_ua(ua, num_classes, n_val) for k, ua in val_ua.items()}


def weight_reasons(
    val_ua: Mapping[str, float],
    weights: Mapping[str, float] | None,
    num_classes: int,
    n_val: int,
    student_val_ua: float | None = None,
) -> dict[str, str]:
    """kind -> one sentence saying why the teacher got its weight (for reports)."""
    out = {}
    for kind, ua in val_ua.items():
        w = 1.0 if weights is None else float(weights.get(kind, 1.0))
        if weights is None:
            why = "fixed weights"
        elif at_chance(ua, num_classes, n_val):
            why = f"at chance on validation (UA {100 * ua:.1f}, chance {100 / num_classes:.1f})"
        elif student_val_ua is not None and ua <= student_val_ua:
            why = (
                f"no better than the plain student on validation (UA {100 * ua:.1f} vs "
                f"{100 * student_val_ua:.1f})"
            )
        elif student_val_ua is not None:
            z = lead_z(ua, student_val_ua, n_val)
            noise = f" by less than the noise of {n_val} clips" if z <= 1.0 else ""
            why = (
                f"better than the plain student on validation{noise} (UA {100 * ua:.1f} vs "
                f"{100 * student_val_ua:.1f}, z {z:.2f})"
            )
        else:
            why = f"validation UA {100 * ua:.1f} above chance ({100 / num_classes:.1f})"
        out[kind] = f"weight {w:.2f}: {why}"
    return out


def chance_report(
    val_ua: Mapping[str, float], num_classes: int, n_val: int, weights: Mapping[str, float] | None
) -> list[str]:
    """One line per teacher: validation UA beside chance, and a plain warning at chance."""
    chance = chance_level(num_classes)
    lines = []
    for kind, ua in val_ua.items():
        line = f"{kind} teacher: validation UA {100 * ua:.1f} (chance {100 * chance:.1f}"
        line += f", n = {n_val})"
        if weights is not None:
            line += f", weight {weights.get(kind, 1.0):.2f}"
        if at_chance(ua, num_classes, n_val):
            what = (
                "the words carry no emotion here (e.g. a fixed-sentence corpus)"
                if kind == "linguistic"
                else "its features do not separate the classes"
            )
            fix = (
                "teacher weight 0 under distill.teacher_weighting: validation"
                if weights is not None
                else "use distill.teacher_weighting: validation, or a variant without it "
                f"(--variant no_{kind}_teacher)"
            )
            line += f" -- AT CHANCE: {what}; it should not teach ({fix})"
        lines.append(line)
    return lines


def validation_chance_report(
    labels: Sequence[str], val: Sequence[Any], outputs: Mapping[str, Any]
) -> list[str]:
    """:func:`chance_report` lines of teachers whose outputs (``TeacherOutputs``, None: not
    at hand) cover the validation utterances ``val``; no lines when none are covered."""
    if any(o is None for o in outputs.values()):
        return []
    ids = [u.id for u in val if all(u.id in o for o in outputs.values())]
    if not ids:
        return []
    by_id = {u.id: list(labels).index(u.label) for u in val}
    ua = teacher_validation_ua(outputs, ids, [by_id[i] for i in ids], len(labels))
    return chance_report(ua, len(labels), len(ids), None)
