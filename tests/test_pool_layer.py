"""``student.pool_layer``: the student pools a middle encoder layer (issue 25)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_partial import _clips, _encoders, assert_cache_parity

from emodistill.models.student import EmoDistillStudent
from emodistill.models.student_folder import load_student, save_student


def _student(
    encoder, pool_layer, trainable=None, pooling="mean", layer_weights=False, pooled_norm=True
):
    torch.manual_seed(1)
    return EmoDistillStudent(
        encoder,
        4,
        6,
        5,
        8,
        8,
        dropout=0.0,
        pooling=pooling,
        layer_weights=layer_weights,
        trainable_layers=trainable,
        pooled_norm=pooled_norm,
        pool_layer=pool_layer,
    )


@pytest.mark.parametrize("kind", ["whisper", "hubert"])
def test_pool_layer_pools_that_layers_output_and_never_runs_or_trains_the_layers_above(
    tmp_path, kind
):
    enc = _encoders(tmp_path)[kind]()
    model = _student(enc, pool_layer=2).eval()
    wav, lengths = _clips([4000, 6400])
    # By hand: embed, layers 1 and 2 (no final norm), masked mean, heads.
    hidden, frames = enc.embed(wav, lengths)
    hidden = enc.run_layers(hidden, frames, 0, 2)
    keep = (torch.arange(hidden.shape[1])[None, :] < frames[:, None]).float()[..., None]
    pooled = (hidden * keep).sum(1) / keep.sum(1)
    want = model._heads(pooled).logits
    got = model(wav, lengths).logits
    assert float((got - want).abs().max()) < 1e-5
    # The top layer and the final norm: no gradient, not trained, not run.
    model.train()
    model(wav, lengths).logits.sum().backward()
    top = enc.layer_modules()[2:] + enc.finish_modules()
    assert top and all(not p.requires_grad and p.grad is None for m in top for p in m.parameters())
    assert all(p.grad is not None for p in enc.layer_modules()[1].parameters() if p.requires_grad)
    # Padding invariance: a clip alone equals the clip padded with noise in a batch.
    model.eval()
    alone = model(wav[:1, :4000], lengths[:1]).logits
    noisy = wav.clone()
    noisy[0, 4000:] = torch.randn(2400)
    assert float((alone - model(noisy, lengths).logits[:1]).abs().max()) < 1e-5


@pytest.mark.parametrize("kind", ["whisper", "hubert"])
@pytest.mark.parametrize("trainable,layer_weights", [(0, False), (1, False), (1, True)])
def test_pool_layer_from_the_prefix_cache_gives_the_same_loss_and_gradients(
    tmp_path, kind, trainable, layer_weights
):
    make = _encoders(tmp_path)[kind]
    # no batch norm: over 3 clips it would scale float32 round-off up to the bound
    uncached = _student(make(), 2, trainable, "attention", layer_weights, False).train()
    cached = _student(make(), 2, trainable, "attention", layer_weights, False).train()
    cached.load_state_dict(uncached.state_dict())
    assert_cache_parity(uncached, cached)
    # Trainable: the `trainable` layers just below the pooled layer.
    for i, layer in enumerate(uncached.encoder.layer_modules()):
        assert all(p.requires_grad == (2 - trainable <= i < 2) for p in layer.parameters())


def test_pool_layer_round_trips_through_a_model_folder_and_onnx(tmp_path):
    from factories import tiny_whisper_encoder

    from emodistill.inference.batching import pad_batch
    from emodistill.inference.model import EmoDistill
    from emodistill.inference.onnx import OnnxPredictor, export_onnx

    model = _student(tiny_whisper_encoder(layers=3), pool_layer=2, trainable=0, pooling="conv_mean")
    with torch.no_grad():  # non-trivial batch-norm statistics
        model.pooled_norm.running_mean.uniform_(-1, 1)
        model.pooled_norm.running_var.uniform_(0.5, 2)
    folder = save_student(model.eval(), tmp_path / "m", ["neutral", "happy", "angry", "sad"])
    loaded, config = load_student(folder)
    assert config["heads"]["pool_layer"] == 2 and loaded.depth == 2
    wav, lengths = _clips([5000, 7100, 3300], seed=5)
    with torch.no_grad():
        want = model(wav, lengths).logits
        assert float((loaded(wav, lengths).logits - want).abs().max()) < 1e-6
    report = export_onnx(folder, tmp_path / "m.onnx")
    assert report["max_abs_diff"] < 1e-4
    clips = [wav[i, : int(n)].numpy() for i, n in enumerate(lengths)]
    padded, lens = pad_batch(clips)
    got = OnnxPredictor(tmp_path / "m.onnx")(padded, lens)
    ref = EmoDistill.from_pretrained(folder).runner(padded, lens)
    assert np.abs(got - ref).max() < 1e-4


def test_pool_layer_out_of_range_is_refused():
    from factories import tiny_whisper_encoder

    with pytest.raises(ValueError, match="pool_layer must be 1..2"):
        _student(tiny_whisper_encoder(layers=2), pool_layer=3)
