"""Issue 17: student capacity options, augmentation, the ``student`` weighting rule, the
functionals prosodic teacher and the layer probe."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from factories import tiny_whisper_encoder

from emodistill.config import DistillConfig, OptimConfig
from emodistill.models.augment import StateAugment
from emodistill.models.encoders import valid_mask
from emodistill.models.pooling import CONV_CHANNELS, ConvPool
from emodistill.models.prosodic import (
    ProsodicFunctionals,
    ProsodicNet,
    ProsodicNetConfig,
    build_prosodic_net,
)
from emodistill.models.student import EmoDistillStudent
from emodistill.models.student_folder import load_student, save_student
from emodistill.training.module import StudentModule
from emodistill.training.teacher_weighting import (
    teacher_validation_ua,
    teacher_weights,
    weight_against_student,
    weight_reasons,
)

LABELS = ["neutral", "happy", "angry", "sad"]


def _student(
    pooling="attention_stats", layer_weights=True, layer_norm=True, trainable=0, pooled_norm=True
):
    torch.manual_seed(1)
    return EmoDistillStudent(
        tiny_whisper_encoder(layers=2),
        4,
        6,
        5,
        8,
        8,
        dropout=0.0,
        pooling=pooling,
        layer_weights=layer_weights,
        layer_norm=layer_norm,
        trainable_layers=trainable,
        pooled_norm=pooled_norm,
    )


# --------------------------------------------------------------------------- pooling, mix


@pytest.mark.parametrize("pooling", ["stats", "attention_stats", "conv", "conv_mean"])
@pytest.mark.parametrize("layer_norm", [False, True])
def test_stats_pooling_and_normalised_mix_are_padding_invariant(pooling, layer_norm):
    model = _student(pooling, True, layer_norm).eval()
    g = torch.Generator().manual_seed(3)
    clip = 0.3 * torch.randn(1, 5000, generator=g)
    alone = model(clip, torch.tensor([5000])).logits
    wav = torch.randn(2, 9000)  # noise after the clip: it must be masked out
    wav[0, :5000] = clip[0]
    batched = model(wav, torch.tensor([5000, 9000])).logits[:1]
    assert float((alone - batched).abs().max()) < 1e-5
    # stats pooling doubles the pooled width the heads read; conv reads [mean, max] of its CNN
    # conv_mean: the plain mean of the frames in front of the CNN's [mean, max]
    h = model.encoder.hidden_size
    width = {"conv": 2 * CONV_CHANNELS, "conv_mean": h + 2 * CONV_CHANNELS}.get(pooling, 2 * h)
    assert model.proj_linguistic[0].in_features == width


@pytest.mark.parametrize("with_mean", [False, True])
@pytest.mark.parametrize("lengths", [(31, 50), (30, 7), (1, 2)])
def test_conv_pooling_is_padding_invariant_for_odd_and_tiny_lengths(lengths, with_mean):
    torch.manual_seed(0)
    pool = ConvPool(16, with_mean=with_mean).eval()
    width = max(lengths)
    batch = 5.0 * torch.ones(len(lengths), width, 16)  # padding that must not leak in
    clips = [torch.randn(1, n, 16) for n in lengths]
    for i, clip in enumerate(clips):
        batch[i, : lengths[i]] = clip[0]
    out = pool(batch, torch.tensor(lengths))
    assert out.shape == (len(lengths), 2 * CONV_CHANNELS + (16 if with_mean else 0))
    if with_mean:  # the first 16 values are the plain mean of the clip's frames
        for i, clip in enumerate(clips):
            assert float((out[i, :16] - clip[0].mean(0)).abs().max()) < 1e-5
    for i, clip in enumerate(clips):
        alone = pool(clip, torch.tensor([lengths[i]]))
        assert float((alone[0] - out[i]).abs().max()) < 1e-5


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("time_mask", [False, True])
def test_packed_convolutions_equal_the_padded_ones_with_their_gradients(stride, time_mask):
    """A batch's clips laid end to end (the path batches of two or more take) give the padded
    batch's outputs on every valid frame, and the same weight gradients, bit for bit or
    nearly: nothing leaks across the gaps between clips, with or without a time mask."""
    torch.manual_seed(0)
    pool = ConvPool(12, channels=8, stride=stride, with_mean=True)
    lengths = torch.tensor([37, 5, 50, 1, 0, 22, 2])
    hidden = torch.randn(len(lengths), 50, 12)
    keep = valid_mask(lengths, 50)
    if time_mask:
        keep &= torch.rand(keep.shape) > 0.3
    out_keep = keep[:, ::stride]
    padded = pool._convolve_padded(hidden, keep, out_keep)
    packed = pool._convolve_packed(hidden, lengths, keep, out_keep)
    assert packed.shape == padded.shape
    on = out_keep[:, None, :].float()
    assert float(((padded - packed) * on).abs().max()) < 1e-6
    params = list(pool.parameters())
    g_pad = torch.autograd.grad((padded * on).square().sum(), params)
    g_pack = torch.autograd.grad((packed * on).square().sum(), params)
    for a, b in zip(g_pad, g_pack, strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)
    # The whole pooling, batched (packed) against each clip alone (padded path, batch of 1).
    together = pool(hidden, lengths, keep)
    for i in range(len(lengths)):
        alone = pool(hidden[i : i + 1], lengths[i : i + 1], keep[i : i + 1])
        assert float((alone[0] - together[i]).abs().max()) < 1e-5


def test_conv_pooling_rejects_an_even_kernel():
    with pytest.raises(ValueError, match="odd"):
        ConvPool(8, kernel=4)


def test_conv_pooling_max_finds_a_short_event_that_the_mean_dilutes():
    """The max half of the pooled vector reacts to a 5-frame event in 200 frames as much as to
    one in 54 frames (both far enough from the clip's edges for the receptive field); the mean
    half falls with the clip's length."""
    torch.manual_seed(0)
    pool = ConvPool(8).eval()
    event = torch.zeros(1, 5, 8)
    event[..., 0] = 4.0
    short = torch.cat([torch.zeros(1, 24, 8), event, torch.zeros(1, 25, 8)], dim=1)
    long = torch.cat([torch.zeros(1, 98, 8), event, torch.zeros(1, 97, 8)], dim=1)
    a = pool(short, torch.tensor([54]))[0]
    b = pool(long, torch.tensor([200]))[0]
    c = CONV_CHANNELS
    assert torch.allclose(a[c:], b[c:], atol=1e-5)  # max: same peak response
    assert float((a[:c] - b[:c]).abs().max()) > 1e-3  # mean: diluted


def test_layer_norm_changes_the_mix_and_round_trips(tmp_path):
    plain, normed = _student("stats", True, False).eval(), _student("stats", True, True).eval()
    normed.load_state_dict(plain.state_dict())
    wav = 0.3 * torch.randn(1, 4000)
    assert not torch.allclose(plain(wav).logits, normed(wav).logits)
    folder = save_student(normed, tmp_path / "m", LABELS)
    loaded, config = load_student(folder)
    assert config["heads"]["layer_norm"] is True and config["heads"]["pooling"] == "stats"
    assert (
        config["heads"]["pooled_norm"] is True and "pooled_norm.running_mean" in normed.state_dict()
    )
    assert torch.allclose(loaded(wav).logits, normed(wav).logits, atol=1e-6)


# --------------------------------------------------------------------------- augmentation


def test_state_augment_keeps_shapes_and_padding_and_is_off_in_eval():
    aug = StateAugment(time_mask=0.5, channel_mask=0.5).train()
    torch.manual_seed(0)
    hidden = torch.randn(3, 40, 16)
    lengths = torch.tensor([40, 25, 3])
    out, keep = aug(hidden, lengths)
    assert out.shape == hidden.shape and keep.shape == (3, 40)
    valid = valid_mask(lengths, 40)
    assert not bool((keep & ~valid).any())  # padded frames are never kept
    assert bool(keep.any(dim=1).all())  # every clip keeps a frame
    assert int(keep.sum()) < int(valid.sum())  # something was masked
    zeroed = (out == 0).all(dim=1)  # (B, H) channels zero on every frame
    assert bool(zeroed.any())
    assert torch.equal(
        out[~zeroed[:, None, :].expand_as(out)], hidden[~zeroed[:, None, :].expand_as(out)]
    )
    aug.eval()
    same, keep_eval = aug(hidden, lengths)
    assert torch.equal(same, hidden) and torch.equal(keep_eval, valid)


def test_augmented_student_is_deterministic_in_eval_and_random_in_training():
    model = _student("attention_stats", True, True)
    model.augment = StateAugment(time_mask=0.4, channel_mask=0.3)
    prefix, frames = model.prefix(0.3 * torch.randn(2, 6000), torch.tensor([6000, 4000]))
    model.eval()
    a = model.from_prefix(prefix, frames).logits
    b = model.from_prefix(prefix, frames).logits
    assert torch.equal(a, b)
    model.augment.eval()
    assert torch.equal(model.from_prefix(prefix, frames).logits, a)
    model.train()
    torch.manual_seed(5)
    c = model.from_prefix(prefix, frames).logits
    assert not torch.allclose(a, c)
    assert "augment" not in json.dumps(model.head_config)  # training-only: never saved
    assert not any(k.startswith("augment") for k in model.state_dict())


def test_state_augment_refuses_bad_fractions():
    with pytest.raises(ValueError, match="time_mask"):
        StateAugment(time_mask=1.0)


def _mixup_batch(model) -> dict:
    """Four clips' cached frames, labels and teacher outputs for a mixup step."""
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


def test_mixup_loss_mixes_inputs_and_targets():
    model = _student("stats", True, True)
    module = StudentModule(model, DistillConfig(), OptimConfig(), 4, mixup=0.4)
    batch = _mixup_batch(model)
    torch.manual_seed(0)
    out = module.mixup_loss(batch)
    assert out.total.ndim == 0 and torch.isfinite(out.total)
    out.total.backward()
    assert model.classifier[0].weight.grad is not None
    # lam folds to >= 0.5, so with a single clip (perm = identity) mixup is the plain loss
    one = {
        k: (v[:1] if torch.is_tensor(v) else {t: x[:1] for t, x in v.items()})
        for k, v in batch.items()
    }
    model.eval()
    assert torch.allclose(module.mixup_loss(one).total, module.loss(one).total, atol=1e-5)


def test_mixup_feeds_the_student_exactly_the_mixed_frames(monkeypatch):
    """The frames are mixed in place on the gathered copy: the student sees
    lam * x + (1 - lam) * x[perm] to the bit, and the batch itself is left as it was."""
    from emodistill.models import augment

    model = _student("stats", True, True)
    module = StudentModule(model, DistillConfig(), OptimConfig(), 4, mixup=0.4)
    batch = _mixup_batch(model)
    kept, frames = batch["prefix"].clone(), batch["frame_lengths"]
    monkeypatch.setattr(augment, "mixup_lambda", lambda alpha: 0.6180339887)
    seen = []
    monkeypatch.setattr(
        module,
        "run_student",
        lambda b, **kw: (
            seen.append(b) or module.student.from_prefix(b["prefix"], b["frame_lengths"])
        ),
    )
    torch.manual_seed(3)
    perm = torch.randperm(4)
    torch.manual_seed(3)
    module.mixup_loss(batch)
    lam = 0.6180339887
    assert torch.equal(seen[0]["prefix"], lam * kept + (1.0 - lam) * kept[perm])
    assert torch.equal(batch["prefix"], kept)
    assert torch.equal(seen[0]["frame_lengths"], torch.maximum(frames, frames[perm]))


# --------------------------------------------------------------------------- weighting rule


class _Outputs:
    """Hand-made cached teacher outputs: rows of logits per utterance id."""

    def __init__(self, logits):
        self.logits = logits

    def logits_of(self, ids):
        return np.stack([self.logits[i] for i in ids])


def _teacher(correct, y, n_classes=4):
    """Logits that predict y[i] on the first ``correct`` clips and a wrong class elsewhere."""
    rows = {}
    for i, label in enumerate(y):
        z = np.zeros(n_classes, np.float32)
        z[label if i < correct else (label + 1) % n_classes] = 5.0
        rows[f"u{i}"] = z
    return _Outputs(rows)


def test_student_rule_zero_for_a_teacher_worse_than_the_student_positive_for_a_better_one():
    y = [i % 4 for i in range(60)]
    ids = [f"u{i}" for i in range(60)]
    teachers = {"linguistic": _teacher(30, y), "prosodic": _teacher(51, y)}
    val_ua = teacher_validation_ua(teachers, ids, y, 4)
    assert val_ua["linguistic"] == pytest.approx(30 / 60) and val_ua["prosodic"] == pytest.approx(
        51 / 60
    )
    student = 0.70  # the plain student's validation UA on the same clips
    w = teacher_weights("student", val_ua, 4, 60, student_val_ua=student)
    assert w["linguistic"] == 0.0  # worse than the student (though far above chance)
    assert w["prosodic"] == 1.0  # 15 points better: two standard errors of the difference (7.5)
    # better by less than one standard error of the difference (about 8 points): noise -> 0;
    # between one and two -> part of the weight; exactly equal -> 0
    assert weight_against_student(0.73, student, 4, 60) == 0.0
    assert 0.0 < weight_against_student(0.80, student, 4, 60) < 1.0
    assert weight_against_student(student, student, 4, 60) == 0.0
    # the validation rule would have let the weaker teacher teach in full
    assert teacher_weights("validation", val_ua, 4, 60)["linguistic"] == 1.0
    reasons = weight_reasons(val_ua, w, 4, 60, student)
    assert "no better than the plain student" in reasons["linguistic"]
    assert reasons["prosodic"].startswith("weight 1.00: better than the plain student")
    noise = weight_reasons({"prosodic": 0.73}, {"prosodic": 0.0}, 4, 60, student)
    assert "by less than the noise of 60 clips" in noise["prosodic"]


def test_student_rule_leaves_leads_inside_the_noise_of_the_validation_clips_untaught():
    """RAVDESS-4's validation pairs (56 clips): T_P's 3-6 point leads over the plain student,
    which taught at weights 0.48-1.00 under the earlier rule and cost those students 2.5 UA
    on average, are inside one standard error of the difference; a 20-point lead teaches."""
    for teacher, plain in [(0.828, 0.766), (0.828, 0.781), (0.656, 0.625), (0.656, 0.594)]:
        assert weight_against_student(teacher, plain, 4, 56) == 0.0
    assert weight_against_student(0.95, 0.75, 4, 56) == 1.0


def test_student_rule_gives_zero_to_a_teacher_at_chance_even_over_a_worse_student():
    assert weight_against_student(0.30, 0.20, 4, 60) == 0.0


def test_student_rule_needs_the_student_ua():
    with pytest.raises(ValueError, match="plain student"):
        teacher_weights("student", {"prosodic": 0.5}, 4, 60)


# --------------------------------------------------------------------------- functionals T_P


def _llds(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), max(lengths), 25, generator=g)
    return x, torch.tensor(lengths)


def test_functionals_teacher_is_padding_invariant_and_saves(tmp_path):
    cfg = ProsodicNetConfig(labels=LABELS, embedding_dim=16, arch="functionals")
    net = build_prosodic_net(cfg)
    assert isinstance(net, ProsodicFunctionals)
    net.train()
    x, lengths = _llds([50, 30, 80, 12])
    net(x, lengths)  # batch-norm statistics move off their initial values
    net.eval()
    clip = x[1:2, :30]
    alone_logits, alone_emb = net(clip, torch.tensor([30]))
    padded = torch.randn(1, 90, 25) * 100  # garbage after the clip
    padded[0, :30] = clip[0]
    logits, emb = net(padded, torch.tensor([30]))
    assert torch.allclose(alone_logits, logits, atol=1e-5) and emb.shape == (1, 16)
    assert torch.allclose(alone_emb, emb, atol=1e-5)
    folder = net.save_pretrained(tmp_path / "tp")
    loaded = ProsodicNet.from_pretrained(folder)
    assert isinstance(loaded, ProsodicFunctionals)
    assert torch.allclose(loaded(padded, torch.tensor([30]))[0], logits, atol=1e-6)


def test_functionals_statistics_match_numpy():
    net = ProsodicFunctionals(ProsodicNetConfig(labels=LABELS, arch="functionals"))
    x, lengths = _llds([20])
    stats = net.statistics(x, lengths)[0].numpy()
    a = x[0].numpy()
    np.testing.assert_allclose(stats[:25], a.mean(0), atol=1e-5)
    np.testing.assert_allclose(stats[25:50], a.std(0), atol=1e-4)
    np.testing.assert_allclose(stats[75:100], np.sort(a, 0)[10], atol=1e-6)  # median, rank 10
    np.testing.assert_allclose(stats[-25:], np.abs(np.diff(a, axis=0)).mean(0), atol=1e-5)


def test_unknown_prosodic_arch_is_refused():
    with pytest.raises(ValueError, match="prosodic.arch"):
        build_prosodic_net(ProsodicNetConfig(labels=LABELS, arch="lstm"))


# --------------------------------------------------------------------------- probe


def test_probe_writes_per_layer_results_on_a_tiny_random_encoder(tmp_path, monkeypatch):
    from emodistill.corpora.manifest import Manifest, Utterance
    from emodistill.corpora.splits import make_folds
    from emodistill.evaluation.probe import run_probe
    from emodistill.models import encoders

    encoder = tiny_whisper_encoder(layers=2)
    monkeypatch.setattr(encoders, "load_encoder", lambda *_a, **_k: encoder)
    rng = np.random.default_rng(0)
    utts = []
    for spk in range(4):
        for i in range(8):
            label = LABELS[i % 4]
            path = tmp_path / f"s{spk}_{i}.wav"
            tone = np.sin(np.arange(4000) * (0.02 + 0.02 * (i % 4)))  # class-dependent pitch
            sf.write(path, 0.3 * tone + 0.01 * rng.normal(size=4000), 16000)
            utts.append(Utterance(f"s{spk}_{i}", path, label, f"spk{spk}", None, None))
    manifest = Manifest(tmp_path / "m.csv", utts, LABELS)
    folds = make_folds(manifest, scheme="groups", groups=2, val_speakers=1, seed=0)
    res = run_probe(manifest, folds, tmp_path / "out", "tiny", tmp_path / "cache", progress=False)
    saved = json.loads((tmp_path / "out" / "probe.json").read_text())
    assert [r["layer"] for r in saved["layers"]] == [0, 1, 2]  # embedding + 2 layers
    for row in saved["layers"]:
        assert set(row["ua"]) == {f.id for f in folds}
        assert 0.0 <= row["mean"] <= 1.0
    assert saved["best_layer"] == res["best_layer"] and saved["n"] == 32
    assert (tmp_path / "out" / "probe.png").stat().st_size > 1000
    # one (layers + 1, H) mean per clip, cached: a second probe runs no encoder
    cache_files = sorted((tmp_path / "cache").rglob("*.npy"))
    assert len(cache_files) == 32
    assert all(np.load(f).shape == (3, encoder.hidden_size) for f in cache_files)
    monkeypatch.setattr(encoder, "embed", None)  # would fail if called
    again = run_probe(manifest, folds, tmp_path / "o2", "tiny", tmp_path / "cache", progress=False)
    assert again["layers"] == res["layers"]


def test_report_says_which_teachers_taught_with_which_weight_and_why():
    from emodistill.evaluation.report import teaching_markdown, teaching_of

    preds = {
        ("g1", 0): {
            "teacher_val_ua": {"linguistic": 0.25, "prosodic": 0.8},
            "teacher_weights": {"linguistic": 0.0, "prosodic": 1.0},
            "student_val_ua": 0.7,
            "teacher_weight_reasons": weight_reasons(
                {"linguistic": 0.25, "prosodic": 0.8},
                {"linguistic": 0.0, "prosodic": 1.0},
                4,
                60,
                0.7,
            ),
        },
        ("g1", 1): {"teacher_val_ua": {}},  # a plain student: nothing to say
    }
    rows = teaching_of(preds)
    assert len(rows) == 1 and rows[0]["weights"] == {"linguistic": 0.0, "prosodic": 1.0}
    text = teaching_markdown(rows)
    assert "| g1 | 0 | 25.00 | 0.00 | 80.00 | 1.00 | 70.00 |" in text
    assert "linguistic: at chance" in text and "prosodic: better than the plain student" in text


def test_conv_pooling_student_exports_to_onnx_with_parity(tmp_path):
    from test_inference import assert_onnx_parity, build_tiny_model

    folder = build_tiny_model(tmp_path / "m", "whisper", pooling="conv", pooled_norm=True)
    assert_onnx_parity(folder, tmp_path / "m.onnx")  # three lengths, odd frame counts among them


def test_conv_width_and_stride_round_trip_through_a_folder_and_onnx(tmp_path):
    """The demo's cheaper conv (``conv_channels``, ``conv_stride``) is saved in the heads and
    rebuilt from there: model folder and ONNX export give the same probabilities."""
    from test_inference import assert_onnx_parity, build_tiny_model

    from emodistill.inference.batching import pad_batch
    from emodistill.inference.model import EmoDistill

    folder = build_tiny_model(
        tmp_path / "m",
        "whisper",
        pooling="conv_mean",
        pooled_norm=True,
        conv_channels=6,
        conv_stride=4,
    )
    student, config = load_student(folder)
    assert config["heads"]["conv_channels"] == 6
    assert student.dims.conv_channels == 6 and student.dims.conv_stride == 4
    assert student.pool.conv1.out_channels == 6 and student.pool.conv1.stride == (4,)
    assert student.proj_linguistic[0].in_features == 32 + 2 * 6
    clips, want = assert_onnx_parity(folder, tmp_path / "m.onnx")
    # a clip pools the same alone as padded in a batch (the stride-4 validity rule)
    alone = EmoDistill.from_pretrained(folder).runner(*pad_batch(clips[1:2]))
    assert np.abs(alone[0] - want[1]).max() < 1e-5


def test_conv_settings_are_checked():
    from emodistill.config import StudentConfig

    with pytest.raises(ValueError, match="conv_channels"):
        StudentConfig(conv_channels=0)
