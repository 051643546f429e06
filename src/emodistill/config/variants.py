"""The paper's Table 2 variants (and sweep points) as data: one home for names, titles,
distillation switches, paper numbers and which teachers a variant reads."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from emodistill.config.settings import TEACHER_KINDS, DistillConfig


@dataclass(frozen=True)
class Variant:
    """One row of the paper's Table 2 (or a sweep point).

    Attributes:
        name: folder name and the key in ``ablation.json``.
        title: human-readable row name.
        distill: overrides of :class:`DistillConfig` fields.
        logit_teachers: teachers whose logits are distilled (the others keep only their
            embedding term); ``None`` = both, as the config says.
        teacher: when set, no student is trained: the fold's test predictions are that
            teacher's own (from its cached outputs).
        paper: the paper's (WA, UA) in percent for this row, if it has one.
        short: a column label for narrow tables (the demo's); the name when empty.
    """

    name: str
    title: str = ""
    distill: Mapping[str, Any] = field(default_factory=dict)
    logit_teachers: tuple[str, ...] | None = None
    teacher: str | None = None
    paper: tuple[float, float] | None = None
    short: str = ""

    def distill_config(self, base: DistillConfig) -> DistillConfig:
        """``base`` with this variant's overrides applied."""
        return dataclasses.replace(base, **dict(self.distill))

    def student_epochs(self, base: DistillConfig, plain_epochs: int) -> int:
        """Epochs this variant's student trains: ``base.epochs`` when it learns from a teacher
        and that is set, else ``plain_epochs`` (the config's ``student.optim.epochs``)."""
        taught = self.teacher is None and bool(self.teachers_needed(base))
        return int(base.epochs) if taught and base.epochs is not None else int(plain_epochs)

    def teachers_needed(self, base: DistillConfig) -> tuple[str, ...]:
        """The teachers whose cached outputs this variant reads (in :data:`TEACHER_KINDS`
        order): a teacher-only variant its teacher; a student each enabled teacher that has a
        logit or an embedding term."""
        if self.teacher is not None:
            return (self.teacher,)
        d = self.distill_config(base)
        logit = self.logit_teachers or TEACHER_KINDS
        return tuple(
            k
            for k in TEACHER_KINDS
            if getattr(d, f"use_{k}") and ((d.logit_kd and k in logit) or d.embedding_kd)
        )


_PLAIN = {"use_linguistic": False, "use_prosodic": False, "beta": 0.0, "gamma": 0.0}

#: The paper's eight Table 2 variants in its row order (names are a contract: ``ablation.json``
#: keys, ``cv --variant`` values).
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("full", "EmoDistill (full)", paper=(75.16, 76.12), short="EmoDistill"),
        Variant("no_logit_kd", "w/o logit KD", {"logit_kd": False}, paper=(73.94, 74.02)),
        Variant(
            "no_embedding_kd", "w/o embedding KD", {"embedding_kd": False}, paper=(73.88, 74.01)
        ),
        Variant(
            "no_prosodic_teacher",
            "w/o prosodic teacher T_P",
            {"use_prosodic": False},
            paper=(74.09, 72.82),
            short="T_L only",
        ),
        Variant(
            "no_linguistic_teacher",
            "w/o linguistic teacher T_L",
            {"use_linguistic": False},
            paper=(66.01, 67.27),
            short="T_P only",
        ),
        # Plain fine-tuning: alpha * CE only.
        Variant(
            "no_teachers",
            "w/o teachers (plain fine-tune)",
            _PLAIN,
            paper=(69.92, 70.17),
            short="plain",
        ),
        Variant(
            "prosodic_teacher_only",
            "T_P alone",
            teacher="prosodic",
            paper=(49.42, 50.08),
            short="T_P",
        ),
        Variant(
            "linguistic_teacher_only",
            "T_L alone (needs transcripts)",
            teacher="linguistic",
            paper=(71.09, 71.83),
            short="T_L",
        ),
    )
}

#: The variant every other is compared against.
BASELINE = "no_teachers"
#: The method itself (the run folder's top-level results).
FULL = "full"
#: The plain student trained on the training speakers only: when students also train on the
#: validation speakers (``student.train_on_validation``), the ``student`` teacher weighting
#: compares the teachers with this one's validation UA, which is still held out.
HELDOUT_PLAIN = Variant("no_teachers_heldout", "plain, training speakers only", _PLAIN)
#: The two students that leave one teacher out (Table 2): T_P only, then T_L only.
ONE_TEACHER_LEFT_OUT = ("no_linguistic_teacher", "no_prosodic_teacher")
#: The two teachers evaluated alone (their own test predictions, no student).
TEACHERS_ALONE = ("linguistic_teacher_only", "prosodic_teacher_only")


def get_variant(variant: str | Variant) -> Variant:
    """A :class:`Variant` by name (or passed through); the error lists the known names."""
    if isinstance(variant, Variant):
        return variant
    try:
        return VARIANTS[variant]
    except KeyError:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}") from None


def variant_distill_config(base: DistillConfig, variant: str | Variant) -> DistillConfig:
    """``base`` with the variant's overrides applied."""
    return get_variant(variant).distill_config(base)


def short_title(name: str) -> str:
    """A variant's column label (:attr:`Variant.short`; the name for other names)."""
    v = VARIANTS.get(name)
    return (v.short or v.name) if v is not None else name


def variant_title(name: str) -> str:
    """The row title of a variant name (the name itself for sweep points and unknown names)."""
    v = VARIANTS.get(name)
    return v.title if v is not None else name


def paper_numbers(name: str) -> tuple[float, float] | None:
    """The paper's (WA, UA) in percent for a variant name; None for other names.

    >>> paper_numbers("full"), paper_numbers("sweep_prosodic_tau2")
    ((75.16, 76.12), None)
    """
    v = VARIANTS.get(name)
    return v.paper if v is not None else None


def sweep_variant(teacher: str, tau: float) -> Variant:
    """The sweep point: ``tau_<teacher> = tau``, the other teacher's logit KD removed."""
    if teacher not in TEACHER_KINDS:
        raise ValueError(f"teacher must be one of {TEACHER_KINDS}, got {teacher!r}")
    if not tau > 0:
        raise ValueError(f"temperatures must be > 0, got {tau}")
    name = f"sweep_{teacher}_tau{tau:g}"
    return Variant(name, name, {f"tau_{teacher}": float(tau)}, (teacher,))


def describe_variants() -> str:
    """One line per variant: name and its DistillConfig overrides (for docs and --help)."""
    lines = []
    for name, v in VARIANTS.items():
        what = f"teacher {v.teacher} alone" if v.teacher else json.dumps(dict(v.distill)) or "{}"
        lines.append(f"{name}: {what}")
    return "\n".join(lines)
