"""``optim.class_weights``: inverse-frequency cross-entropy weights for the student (UA weighs
every class equally; the demo preset turns them on, as the linear probe's ``balanced``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_distill import _fold, fresh_run, one_thread, prepared  # noqa: F401 - fixtures


def test_class_weights_are_inverse_frequency_and_zero_for_absent_classes():
    from emodistill.training.common import class_weights_of

    w = class_weights_of([0, 0, 0, 1, 2, 2], 4)
    # N / (C * n_c): 6 / (4 * 3), 6 / (4 * 1), 6 / (4 * 2); class 3 never seen
    assert w.tolist() == pytest.approx([0.5, 1.5, 0.75, 0.0])
    assert class_weights_of([0, 1, 2, 3] * 5, 4).tolist() == [1.0] * 4


def test_weighted_cross_entropy_is_the_students_ce_term():
    from emodistill.config import DistillConfig
    from emodistill.models.losses import emodistill_loss

    torch.manual_seed(0)
    logits, labels = torch.randn(6, 4), torch.tensor([0, 0, 0, 1, 2, 2])
    w = torch.tensor([0.5, 1.5, 0.75, 0.0])
    cfg = DistillConfig(use_linguistic=False, use_prosodic=False)
    out = emodistill_loss(logits, labels, cfg, class_weights=w)
    assert out.terms["ce"] == pytest.approx(F.cross_entropy(logits, labels, weight=w).item())
    assert out.terms["ce"] != pytest.approx(F.cross_entropy(logits, labels).item())


def test_distill_gives_the_student_the_training_split_s_weights(prepared, tmp_path, monkeypatch):  # noqa: F811
    import emodistill.training.distill as distill_mod
    from emodistill.corpora.manifest import Manifest
    from emodistill.corpora.splits import fold_utterances
    from emodistill.training.common import class_weights_of

    m, fold = _fold(prepared)
    # drop one training clip of the first class so the split is not balanced
    train = fold_utterances(m, fold)[0]
    first = next(u for u in train if m.label_index(u.label) == 0)
    m = Manifest(m.path, [u for u in m.utterances if u.id != first.id], m.labels)
    seen = {}
    real = distill_mod.StudentModule

    def spy(*args, **kwargs):
        seen["w"] = kwargs.get("class_weights")
        return real(*args, **kwargs)

    monkeypatch.setattr(distill_mod, "StudentModule", spy)
    cfg = prepared["config"].override(
        {"student": {"select": "last", "optim": {"epochs": 1, "class_weights": True}}}
    )
    run = fresh_run(prepared, tmp_path / "run")
    with one_thread():
        distill_mod.distill(m, fold, cfg, run, "no_teachers", progress=False)
    targets = [m.label_index(u.label) for u in fold_utterances(m, fold)[0]]
    expected = class_weights_of(targets, len(m.labels))
    assert seen["w"] is not None and torch.allclose(seen["w"], expected)
    assert len(set(expected.tolist())) > 1  # the test would catch weights of all ones


def test_demo_preset_weights_classes():
    from emodistill.config import load_config

    assert load_config("demo").student.optim.class_weights is True
