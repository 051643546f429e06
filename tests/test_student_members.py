"""``student.members``: an ensemble of pooling + head sets over the same encoder frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from factories import tiny_whisper_encoder

from emodistill.config import DistillConfig, OptimConfig, StudentConfig
from emodistill.models.student import EmoDistillStudent
from emodistill.models.student_folder import load_student
from emodistill.training.module import StudentModule


def _student(members: int, pooling: str = "conv_mean", seed: int = 1) -> EmoDistillStudent:
    torch.manual_seed(seed)
    return EmoDistillStudent(
        tiny_whisper_encoder(layers=2),
        4,
        6,
        5,
        8,
        8,
        dropout=0.0,
        pooling=pooling,
        trainable_layers=0,
        pooled_norm=True,
        conv_channels=6,
        members=members,
    )


def _batch(model: EmoDistillStudent):
    torch.manual_seed(3)
    prefix, frames = model.prefix(
        0.3 * torch.randn(4, 5000), torch.tensor([5000, 3000, 4000, 2000])
    )
    return {
        "prefix": prefix,
        "frame_lengths": frames,
        "labels": torch.tensor([0, 1, 2, 3]),
        "teacher_logits": {"prosodic": torch.randn(4, 4), "linguistic": torch.randn(4, 4)},
        "teacher_emb": {"prosodic": torch.randn(4, 5), "linguistic": torch.randn(4, 6)},
    }


@pytest.mark.parametrize("pooling", ["conv_mean", "mean"])
def test_members_output_is_the_mean_of_their_probabilities(pooling):
    model = _student(3, pooling).eval()
    batch = _batch(model)
    out = model.from_prefix(batch["prefix"], batch["frame_lengths"])
    each = model.from_prefix(batch["prefix"], batch["frame_lengths"], members=True)
    assert out.logits.shape == (4, 4) and len(each) == 3 and len(out) == 3
    probs = torch.stack([m.logits.softmax(-1) for m in each]).mean(0)
    assert torch.allclose(out.logits.softmax(-1), probs, atol=1e-6)
    assert torch.allclose(out.emb_prosodic, torch.stack([m.emb_prosodic for m in each]).mean(0))
    # each member starts from its own weights, so they disagree before any training
    assert not torch.allclose(each[0].logits, each[1].logits)
    # member 0 is the student's own head set: what a one-member student computes
    assert torch.allclose(
        each[0].logits,
        model._heads(model._pool(batch["prefix"][:, -1], batch["frame_lengths"])).logits,
    )


def test_one_member_keeps_the_saved_names_and_returns_no_members():
    model = _student(1).eval()
    assert model.more_members is None
    assert not any(k.startswith("more_members") for k in model.state_dict())
    batch = _batch(model)
    one = model.from_prefix(batch["prefix"], batch["frame_lengths"], members=True)
    assert len(one) == 1
    assert torch.equal(
        one[0].logits, model.from_prefix(batch["prefix"], batch["frame_lengths"]).logits
    )
    more = _student(2)
    assert any(k.startswith("more_members.0.proj_linguistic") for k in more.state_dict())


def test_members_learn_on_their_own_losses():
    """The loss is the mean of each member's own EmoDistill loss (not the loss of their mean
    output), and every member's heads get gradients."""
    model = _student(3).train()
    module = StudentModule(model, DistillConfig(), OptimConfig(), 4)
    batch = _batch(model)
    torch.manual_seed(0)
    each = model.from_prefix(batch["prefix"], batch["frame_lengths"], members=True)
    want = torch.stack([module._member_loss(m, batch).total for m in each]).mean()
    torch.manual_seed(0)
    got = module.loss(batch)
    assert torch.allclose(got.total, want)
    assert set(got.terms) == set(module._member_loss(each[0], batch).terms)
    got.total.backward()
    for head in (model, *model.more_members):
        assert head.classifier[0].weight.grad is not None
        assert head.pool.conv1.weight.grad is not None
    # member k alone is what the combined forward computes for it
    for k in range(3):
        alone = model.from_prefix(batch["prefix"], batch["frame_lengths"], member=k)
        assert torch.allclose(alone.logits, each[k].logits, atol=1e-6)
    with pytest.raises(ValueError, match="member"):
        model.from_prefix(batch["prefix"], batch["frame_lengths"], member=3)


def test_each_member_draws_its_own_mixup():
    """With mixup, each member sees its own mixing partners and lambda: the loss is the mean
    of the members' mixup losses, drawn one after the other."""
    model = _student(3).train()
    module = StudentModule(model, DistillConfig(), OptimConfig(), 4, mixup=0.4)
    batch = _batch(model)
    torch.manual_seed(5)
    got = module.mixup_loss(batch)
    torch.manual_seed(5)
    want = [module._mixup_loss(batch, member=k).total for k in range(3)]
    assert torch.allclose(got.total, torch.stack(want).mean())
    got.total.backward()
    for head in (model, *model.more_members):
        assert head.classifier[0].weight.grad is not None


def test_members_are_padding_invariant():
    model = _student(2).eval()
    wav = 0.3 * torch.randn(2, 6000)
    lengths = torch.tensor([6000, 2500])
    both = model(wav, lengths).logits
    alone = model(wav[1:, :2500], lengths[1:]).logits
    assert torch.allclose(both[1], alone[0], atol=1e-5)


def test_members_round_trip_through_a_folder_and_onnx(tmp_path):
    from test_inference import assert_onnx_parity, build_tiny_model

    folder = build_tiny_model(
        tmp_path / "m", "whisper", pooling="conv_mean", pooled_norm=True, conv_channels=6, members=3
    )
    student, config = load_student(folder)
    assert config["heads"]["members"] == 3 and len(student.more_members) == 2
    _, want = assert_onnx_parity(folder, tmp_path / "m.onnx")
    np.testing.assert_allclose(want.sum(-1), 1.0, atol=1e-5)


def test_members_setting_is_checked():
    with pytest.raises(ValueError, match="members"):
        StudentConfig(members=0)
    with pytest.raises(ValueError, match="members"):
        _student(0)
