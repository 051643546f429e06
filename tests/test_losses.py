"""emodistill_loss against the worked cases of docs/student.md ("Losses") and its invariants."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from emodistill.config import DistillConfig
from emodistill.models.losses import TERM_KEYS, emodistill_loss

LOCAL_VECTORS = Path(__file__).parent / "data" / "losses.json"


def _cases(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cases"]


def _run_case(case: dict):
    t = lambda x: torch.tensor([x], dtype=torch.float64)  # noqa: E731  (batch of one)
    cfg = DistillConfig(
        alpha=case["alpha"],
        beta=case["beta"],
        gamma=case["gamma"],
        tau_linguistic=case["tau_linguistic"],
        tau_prosodic=case["tau_prosodic"],
    )
    return emodistill_loss(
        t(case["student_logits"]),
        torch.tensor([case["label"]]),
        cfg,
        teacher_logits={
            "linguistic": t(case["linguistic_logits"]),
            "prosodic": t(case["prosodic_logits"]),
        },
        teacher_emb={
            "linguistic": t(case["linguistic_embedding"]),
            "prosodic": t(case["prosodic_embedding"]),
        },
        student_emb={
            "linguistic": t(case["student_linguistic_embedding"]),
            "prosodic": t(case["student_prosodic_embedding"]),
        },
    )


def _check_case(case: dict) -> None:
    out = _run_case(case)
    exp = case["expected"]
    got = {
        "ce": out.terms["ce"],
        "kd_linguistic": out.terms["kd_linguistic"],
        "kd_prosodic": out.terms["kd_prosodic"],
        "kd_tau2_scaled": out.terms["kd"],
        "kd_unscaled": out.terms["kd_linguistic"] + out.terms["kd_prosodic"],
        "embedding": out.terms["embedding"],
        "total": out.total,
    }
    for key, value in exp.items():
        assert abs(float(got[key]) - value) < 1e-6, (key, float(got[key]), value)


@pytest.mark.parametrize("index", range(4))
def test_worked_cases_committed_copy(index):
    _check_case(_cases(LOCAL_VECTORS)[index])


def _batch(b=5, c=4, dl=6, dp=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, c, generator=g),
        torch.randint(0, c, (b,), generator=g),
        {"linguistic": torch.randn(b, c, generator=g), "prosodic": torch.randn(b, c, generator=g)},
        {
            "linguistic": torch.randn(b, dl, generator=g),
            "prosodic": torch.randn(b, dp, generator=g),
        },
    )


def test_terms_zero_when_student_equals_teacher():
    z, y, _, emb = _batch()
    # Scaled copies of the embedding: cosine ignores the norm, so 1 - cos is still 0.
    out = emodistill_loss(
        z,
        y,
        DistillConfig(tau_linguistic=4.0, tau_prosodic=0.5),
        teacher_logits={"linguistic": z.clone(), "prosodic": z.clone()},
        teacher_emb={k: v.clone() for k, v in emb.items()},
        student_emb={k: 3.0 * v for k, v in emb.items()},
    )
    assert set(out.terms) == set(TERM_KEYS)
    for key in (
        "kd_linguistic",
        "kd_prosodic",
        "kd",
        "emb_linguistic",
        "emb_prosodic",
        "embedding",
    ):
        assert abs(float(out.terms[key])) < 1e-6, key
    assert torch.allclose(out.total, out.terms["ce"], atol=1e-6)


@pytest.mark.parametrize(
    "flags, zero_keys",
    [
        ({"use_linguistic": False}, ["kd_linguistic", "emb_linguistic"]),
        ({"use_prosodic": False}, ["kd_prosodic", "emb_prosodic"]),
        ({"logit_kd": False}, ["kd_linguistic", "kd_prosodic", "kd"]),
        ({"embedding_kd": False}, ["emb_linguistic", "emb_prosodic", "embedding"]),
        (
            {"use_linguistic": False, "use_prosodic": False},
            ["kd_linguistic", "kd_prosodic", "kd", "emb_linguistic", "emb_prosodic", "embedding"],
        ),
    ],
)
def test_disabled_flags_zero_terms(flags, zero_keys):
    z, y, tl, emb = _batch()
    cfg = dataclasses.replace(DistillConfig(), **flags)
    full = emodistill_loss(z, y, DistillConfig(), tl, emb, {k: -v for k, v in emb.items()})
    out = emodistill_loss(z, y, cfg, tl, emb, {k: -v for k, v in emb.items()})
    for key in zero_keys:
        assert float(out.terms[key]) == 0.0, key
    for key in set(TERM_KEYS) - set(zero_keys) - {"kd", "embedding"}:
        assert torch.equal(out.terms[key], full.terms[key]), key
    expected = cfg.alpha * out.terms["ce"] + cfg.beta * out.terms["kd"]
    expected = expected + cfg.gamma * out.terms["embedding"]
    assert torch.allclose(out.total, expected)


def test_absent_teachers_contribute_zero():
    z, y, _, _ = _batch()
    out = emodistill_loss(z, y, DistillConfig())
    assert torch.allclose(out.total, out.terms["ce"])
    assert all(float(out.terms[k]) == 0.0 for k in TERM_KEYS if k != "ce")


def test_tau_squared_switch():
    z, y, tl, _ = _batch()
    cfg = DistillConfig(tau_linguistic=3.0, tau_prosodic=2.0, tau_squared=False)
    out = emodistill_loss(z, y, cfg, tl)
    assert torch.allclose(out.terms["kd"], out.terms["kd_linguistic"] + out.terms["kd_prosodic"])
    out2 = emodistill_loss(z, y, dataclasses.replace(cfg, tau_squared=True), tl)
    assert torch.allclose(
        out2.terms["kd"], 9 * out.terms["kd_linguistic"] + 4 * out.terms["kd_prosodic"]
    )


def test_gradients_flow_to_student_only():
    z, y, tl, emb = _batch()
    z = z.requires_grad_()
    student = {k: torch.randn_like(v).requires_grad_() for k, v in emb.items()}
    teacher_logits = {k: v.requires_grad_() for k, v in tl.items()}
    out = emodistill_loss(z, y, DistillConfig(), teacher_logits, emb, student)
    out.total.backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    for v in student.values():
        assert v.grad is not None and v.grad.abs().sum() > 0
    # Teachers are frozen: the loss treats their outputs as constants.
    assert all(v.grad is None for v in teacher_logits.values())


def test_shape_mismatch_is_reported():
    z, y, tl, emb = _batch()
    with pytest.raises(ValueError, match="differ in shape"):
        emodistill_loss(z, y, DistillConfig(), {"linguistic": tl["linguistic"][:, :3]})
    with pytest.raises(ValueError, match="student_emb does not"):
        emodistill_loss(z, y, DistillConfig(), teacher_emb=emb)
