"""The EmoDistill training loss (docs/student.md, "Losses").

    p(z, tau)_i = softmax(z / tau)_i
    L_KD  = tau_L^2 * KL(p(z_L, tau_L) || p(z_S, tau_L))
          + tau_P^2 * KL(p(z_P, tau_P) || p(z_S, tau_P))
    L_emb = (1 - cos(e_L, e^_L)) + (1 - cos(e_P, e^_P))
    L     = alpha * CE(z_S, y) + beta * L_KD + gamma * L_emb

With per-teacher weights (``beta_linguistic`` ... ``gamma_prosodic``, each defaulting to the
shared ``beta`` / ``gamma``) and teacher-aware factors ``w_k`` (``teacher_weights``)::

    L = alpha * CE + sum_k w_k * (beta_k * tau_k^2 * KL_k + gamma_k * (1 - cos_k))

which is the shared formula, computed the same way, when all ``beta_k`` (and ``gamma_k``) are
equal and every ``w_k`` is 1.

Teachers are keyed ``"linguistic"`` and ``"prosodic"``. A teacher that is absent from the
dicts, or switched off by the config (``use_linguistic`` / ``use_prosodic``, ``logit_kd``,
``embedding_kd``), contributes exactly zero. Every term is a batch mean (KL with
``batchmean``), so values do not depend on the batch size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch.nn.functional as F
from torch import Tensor

from emodistill.config import TEACHER_KINDS, DistillConfig

TEACHERS = TEACHER_KINDS

#: Keys of :attr:`LossOutput.terms`, always all present.
TERM_KEYS = (
    "ce",
    "kd_linguistic",
    "kd_prosodic",
    "kd",
    "embedding",
    "emb_linguistic",
    "emb_prosodic",
)


@dataclass
class LossOutput:
    """``total``: scalar to back-propagate; ``terms``: each component (scalar tensors).

    ``kd_linguistic`` / ``kd_prosodic`` are the KL divergences before tau^2 scaling; ``kd`` is
    the (tau^2-scaled if ``cfg.tau_squared``) sum that ``beta`` multiplies; ``embedding`` is the
    sum ``emb_linguistic + emb_prosodic`` that ``gamma`` multiplies.
    """

    total: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)


def kd_kl(student_logits: Tensor, teacher_logits: Tensor, tau: float) -> Tensor:
    """KL(p(teacher, tau) || p(student, tau)), averaged over the batch (no tau^2 scaling).

    Args:
        student_logits: (B, C).
        teacher_logits: (B, C); treated as constants (no gradient to the teacher).
        tau: temperature > 0.
    """
    if tau <= 0:
        raise ValueError(f"temperature must be > 0, got {tau}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits "
            f"{tuple(teacher_logits.shape)} differ in shape"
        )
    log_p_student = F.log_softmax(student_logits / tau, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.detach().to(student_logits.dtype) / tau, dim=-1)
    # log_target=True keeps the teacher side exact when a teacher probability underflows.
    return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)


def cosine_distance(student_emb: Tensor, teacher_emb: Tensor) -> Tensor:
    """Mean over the batch of 1 - cos(teacher, student); (B, D) each, result in [0, 2]."""
    if student_emb.shape != teacher_emb.shape:
        raise ValueError(
            f"student embedding {tuple(student_emb.shape)} and teacher embedding "
            f"{tuple(teacher_emb.shape)} differ in shape"
        )
    cos = F.cosine_similarity(student_emb, teacher_emb.detach().to(student_emb.dtype), dim=-1)
    return (1.0 - cos).mean()


def _enabled(cfg: DistillConfig, teacher: str) -> bool:
    return bool(cfg.use_linguistic if teacher == "linguistic" else cfg.use_prosodic)


def _tau(cfg: DistillConfig, teacher: str) -> float:
    return float(cfg.tau_linguistic if teacher == "linguistic" else cfg.tau_prosodic)


def teacher_coefficients(
    cfg: DistillConfig, teacher_weights: Mapping[str, float] | None = None
) -> dict[str, tuple[float, float]]:
    """teacher -> (beta_k, gamma_k): per-teacher weights (default the shared beta / gamma),
    times the teacher-aware factor ``teacher_weights[k]`` (default 1)."""
    out = {}
    for k in TEACHERS:
        beta = getattr(cfg, f"beta_{k}")
        gamma = getattr(cfg, f"gamma_{k}")
        w = 1.0 if teacher_weights is None else float(teacher_weights.get(k, 1.0))
        out[k] = (
            w * float(cfg.beta if beta is None else beta),
            w * float(cfg.gamma if gamma is None else gamma),
        )
    return out


def emodistill_loss(
    student_logits: Tensor,
    labels: Tensor,
    cfg: DistillConfig,
    teacher_logits: dict[str, Tensor] | None = None,
    teacher_emb: dict[str, Tensor] | None = None,
    student_emb: dict[str, Tensor] | None = None,
    class_weights: Tensor | None = None,
    teacher_weights: Mapping[str, float] | None = None,
) -> LossOutput:
    """alpha * CE + beta * L_KD + gamma * L_emb for one batch.

    Args:
        student_logits: (B, C) student logits z_S.
        labels: (B,) long class indices.
        cfg: coefficients, temperatures and on/off switches.
        teacher_logits: {"linguistic": (B, C), "prosodic": (B, C)}; missing keys contribute 0.
        teacher_emb: {"linguistic": (B, d_L), "prosodic": (B, d_P)} teacher embeddings e_L, e_P.
        student_emb: the student's projections {"linguistic": (B, d_L), "prosodic": (B, d_P)}.
            An embedding term needs both sides; a teacher embedding without the student side
            is an error (it would silently drop a term the config asks for).
        class_weights: optional (C,) weights for the cross-entropy.
        teacher_weights: teacher-aware factors on each teacher's terms (missing = 1).

    Returns:
        :class:`LossOutput` with the scalar ``total`` and all :data:`TERM_KEYS` in ``terms``.
    """
    teacher_logits = teacher_logits or {}
    teacher_emb = teacher_emb or {}
    student_emb = student_emb or {}
    for name, d in (("teacher_logits", teacher_logits), ("teacher_emb", teacher_emb)):
        unknown = set(d) - set(TEACHERS)
        if unknown:
            raise ValueError(f"{name}: unknown teacher key(s) {sorted(unknown)}; use {TEACHERS}")
    zero = student_logits.new_zeros(())
    terms: dict[str, Tensor] = {}
    terms["ce"] = F.cross_entropy(student_logits, labels, weight=class_weights)

    kd_total = zero
    emb_total = zero
    coef = teacher_coefficients(cfg, teacher_weights)
    kd_weighted = zero
    emb_weighted = zero
    for teacher in TEACHERS:
        enabled = _enabled(cfg, teacher)
        kd = zero
        if enabled and cfg.logit_kd and teacher in teacher_logits:
            tau = _tau(cfg, teacher)
            kd = kd_kl(student_logits, teacher_logits[teacher], tau)
            scale = tau * tau if cfg.tau_squared else 1.0
            kd_total = kd_total + scale * kd
            kd_weighted = kd_weighted + coef[teacher][0] * scale * kd
        terms[f"kd_{teacher}"] = kd

        emb = zero
        if enabled and cfg.embedding_kd and teacher in teacher_emb:
            if teacher not in student_emb:
                raise ValueError(f"teacher_emb has {teacher!r} but student_emb does not")
            emb = cosine_distance(student_emb[teacher], teacher_emb[teacher])
            emb_total = emb_total + emb
            emb_weighted = emb_weighted + coef[teacher][1] * emb
        terms[f"emb_{teacher}"] = emb

    terms["kd"] = kd_total
    terms["embedding"] = emb_total
    betas = {c[0] for c in coef.values()}
    gammas = {c[1] for c in coef.values()}
    # Shared weights: exactly the paper's expression (same float operations as before).
    kd_part = betas.pop() * kd_total if len(betas) == 1 else kd_weighted
    emb_part = gammas.pop() * emb_total if len(gammas) == 1 else emb_weighted
    total = cfg.alpha * terms["ce"] + kd_part + emb_part
    return LossOutput(total=total, terms=terms)
