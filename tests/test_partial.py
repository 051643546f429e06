"""Partial fine-tuning from a cached frozen prefix, pooling, and per-teacher loss weights."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from factories import tiny_hubert_folder, tiny_whisper_encoder

from emodistill.config import DistillConfig
from emodistill.features.prefix_cache import PrefixCache, collate_prefix
from emodistill.models.encoders import load_encoder
from emodistill.models.losses import emodistill_loss
from emodistill.models.student import EmoDistillStudent
from emodistill.models.student_folder import load_student, save_student
from emodistill.training.teacher_weighting import teacher_weights, weight_from_ua


def _clips(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = max(lengths)
    wav = torch.zeros(len(lengths), n)
    for i, m in enumerate(lengths):
        wav[i, :m] = 0.3 * torch.randn(m, generator=g)
    return wav, torch.tensor(lengths)


def _no_randomness(encoder):
    """Dropout and LayerDrop off, so train-mode passes can be compared exactly."""
    for module in encoder.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        elif isinstance(getattr(module, "dropout", None), float):
            module.dropout = 0.0
    config = getattr(getattr(encoder, "model", None), "config", None)
    if config is not None:
        config.layerdrop = 0.0
    return encoder


def _encoders(tmp_path):
    hub = tiny_hubert_folder(tmp_path / "hubert", layers=3, conv_stride=(5, 4))
    return {
        "whisper": lambda: tiny_whisper_encoder(layers=3),
        "hubert": lambda: _no_randomness(load_encoder(str(hub))),
    }


def _student(encoder, trainable, pooling="attention", layer_weights=False):
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
    )


def _loss(out, y, t_logits, t_emb):
    return emodistill_loss(
        out.logits,
        y,
        DistillConfig(),
        teacher_logits=t_logits,
        teacher_emb=t_emb,
        student_emb={"linguistic": out.emb_linguistic, "prosodic": out.emb_prosodic},
    ).total


def assert_cache_parity(uncached, cached) -> None:
    """The loss and every trainable gradient of ``cached`` (from prefixes computed one clip at a
    time, as the cache does, then padded into a batch) equal ``uncached``'s from audio (< 1e-5).
    Both students start from the same weights."""
    wav, lengths = _clips([4000, 6400, 5200])
    y = torch.tensor([0, 2, 3])
    g = torch.Generator().manual_seed(3)
    t_logits = {k: torch.randn(3, 4, generator=g) for k in ("linguistic", "prosodic")}
    t_emb = {"linguistic": torch.randn(3, 6, generator=g), "prosodic": torch.randn(3, 5)}

    loss_a = _loss(uncached(wav, lengths), y, t_logits, t_emb)
    loss_a.backward()
    rows = []
    for i in range(3):
        states, frames = cached.prefix(wav[i : i + 1, : lengths[i]], lengths[i : i + 1])
        rows.append(states[0, :, : int(frames[0])].numpy())
    prefix, frame_lengths = collate_prefix(rows)
    loss_b = _loss(cached.from_prefix(prefix, frame_lengths), y, t_logits, t_emb)
    loss_b.backward()

    assert abs(float(loss_a) - float(loss_b)) < 1e-5
    grads_a = {n: p.grad for n, p in uncached.named_parameters() if p.requires_grad}
    grads_b = {n: p.grad for n, p in cached.named_parameters() if p.requires_grad}
    assert grads_a.keys() == grads_b.keys() and grads_a
    for name, ga in grads_a.items():
        assert ga is not None, name
        assert float((ga - grads_b[name]).abs().max()) < 1e-5, name


@pytest.mark.parametrize("kind", ["whisper", "hubert"])
@pytest.mark.parametrize("trainable,layer_weights", [(1, False), (0, False), (2, True)])
def test_cached_prefix_gives_same_loss_and_gradients(tmp_path, kind, trainable, layer_weights):
    make = _encoders(tmp_path)[kind]
    uncached = _student(make(), trainable, layer_weights=layer_weights).train()
    cached = _student(make(), trainable, layer_weights=layer_weights).train()
    cached.load_state_dict(uncached.state_dict())
    assert_cache_parity(uncached, cached)
    # Exactly the top `trainable` layers (and the heads) train.
    enc = uncached.encoder
    frozen = [p for m in enc._frozen_modules() for p in m.parameters()]
    assert frozen and all(not p.requires_grad for p in frozen)
    n_layers = enc.num_layers
    for i, layer in enumerate(enc.layer_modules()):
        assert all(p.requires_grad == (i >= n_layers - trainable) for p in layer.parameters())


@pytest.mark.parametrize("pooling", ["mean", "attention"])
@pytest.mark.parametrize("layer_weights", [False, True])
def test_pooling_is_padding_invariant(pooling, layer_weights):
    model = _student(tiny_whisper_encoder(), None, pooling, layer_weights).eval()
    clip, _ = _clips([5000], seed=4)
    alone = model(clip, torch.tensor([5000])).logits
    wav = torch.randn(2, 9000)  # noise, not zeros, after the clip: it must be masked out
    wav[0, :5000] = clip[0]
    batched = model(wav, torch.tensor([5000, 9000])).logits[:1]
    assert float((alone - batched).abs().max()) < 1e-5


def test_trainable_layers_one_saves_a_full_model_that_predicts_from_audio(tmp_path):
    """The model folder of a partially trained student reproduces the cached test pass."""
    student = _student(tiny_whisper_encoder(layers=2), 1)
    with torch.no_grad():  # move the trainable part away from its initial weights
        for p in student.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    folder = save_student(student, tmp_path / "model", ["a", "b", "c", "d"])
    loaded, config = load_student(folder)
    assert config["heads"]["trainable_layers"] == 1 and config["heads"]["pooling"] == "attention"

    class U:
        def __init__(self, i, n):
            self.id, self.path = f"u{i}", tmp_path / f"u{i}.wav"
            sf.write(self.path, 0.2 * np.random.default_rng(i).normal(size=n), 16000)

    utts = [U(0, 7000), U(1, 11000)]
    cache = PrefixCache(student, utts, tmp_path / "cache", progress=False)
    assert cache.computed == 2
    again = PrefixCache(student, utts, tmp_path / "cache", progress=False)
    assert again.computed == 0  # content-keyed: nothing recomputed
    prefix, frames = collate_prefix([cache[u.id] for u in utts])
    student.eval()
    with torch.no_grad():
        p_cached = torch.softmax(student.from_prefix(prefix, frames).logits, -1)
        from emodistill.audio import load_audio

        for i, u in enumerate(utts):
            wav = torch.from_numpy(load_audio(u.path))[None]
            p_audio = torch.softmax(loaded(wav, torch.tensor([wav.shape[1]])).logits, -1)
            assert float((p_audio[0] - p_cached[i]).abs().max()) < 1e-5
    # Other frozen weights: another cache entry.
    other = _student(tiny_whisper_encoder(layers=2), 1)
    with torch.no_grad():
        other.encoder.encoder.conv1.weight.add_(0.1)
    assert PrefixCache(other, utts, tmp_path / "cache", progress=False).computed == 2


def test_per_teacher_weights_equal_to_shared_reproduce_the_shared_loss():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(5, 4, generator=g)
    y = torch.tensor([0, 1, 2, 3, 0])
    tl = {k: torch.randn(5, 4, generator=g) for k in ("linguistic", "prosodic")}
    te = {k: torch.randn(5, 3, generator=g) for k in ("linguistic", "prosodic")}
    se = {k: torch.randn(5, 3, generator=g) for k in ("linguistic", "prosodic")}
    base = DistillConfig(beta=0.7, gamma=0.3)
    same = DistillConfig(
        beta=0.7,
        gamma=0.3,
        beta_linguistic=0.7,
        beta_prosodic=0.7,
        gamma_linguistic=0.3,
        gamma_prosodic=0.3,
    )
    a = emodistill_loss(z, y, base, tl, te, se).total
    b = emodistill_loss(z, y, same, tl, te, se).total
    assert float(a) == float(b)
    # Switching one teacher's weights to 0 equals dropping that teacher.
    off = DistillConfig(beta=0.7, gamma=0.3, beta_prosodic=0.0, gamma_prosodic=0.0)
    no_p = DistillConfig(beta=0.7, gamma=0.3, use_prosodic=False)
    c = emodistill_loss(z, y, off, tl, te, se).total
    d = emodistill_loss(z, y, no_p, tl, te, se).total
    assert abs(float(c) - float(d)) < 1e-6
    # A teacher-aware factor of 0 does the same.
    e = emodistill_loss(z, y, base, tl, te, se, teacher_weights={"prosodic": 0.0}).total
    assert abs(float(e) - float(d)) < 1e-6


def test_uniform_teacher_gets_weight_zero():
    from emodistill.training.teacher_weighting import teacher_validation_ua

    class Outputs:
        def __init__(self, logits):
            self.logits = logits

        def logits_of(self, ids):
            return self.logits[[int(i) for i in ids]]

    n = 60
    y = np.arange(n) % 4
    uniform = Outputs(np.zeros((n, 4), dtype=np.float32))  # argmax 0 everywhere: UA = 0.25
    good = Outputs(np.eye(4, dtype=np.float32)[y] * 3)
    ua = teacher_validation_ua(
        {"linguistic": uniform, "prosodic": good}, [str(i) for i in range(n)], y.tolist(), 4
    )
    assert ua["linguistic"] == pytest.approx(0.25) and ua["prosodic"] == pytest.approx(1.0)
    w = teacher_weights("validation", ua, 4, n)
    assert w == {"linguistic": 0.0, "prosodic": 1.0}
    assert teacher_weights("fixed", ua, 4, n) is None
    # Linear between 2 and 4 standard errors above chance.
    se = np.sqrt(0.25 * 0.75 / n)
    assert weight_from_ua(0.25 + 3 * se, 4, n) == pytest.approx(0.5)


def test_a_clip_shorter_than_both_crops_is_encoded_once(tmp_path):
    """The training crop and the evaluation crop share the entry of a clip neither cuts; a clip
    one of them cuts gets its own entry for that crop, holding the centre of the clip."""
    from emodistill.audio import load_audio
    from emodistill.features.prefix_cache import centre_crop

    student = _student(tiny_whisper_encoder(layers=2), 1).eval()

    class U:
        def __init__(self, i, n):
            self.id, self.path = f"u{i}", tmp_path / f"u{i}.wav"
            sf.write(self.path, 0.2 * np.random.default_rng(i).normal(size=n), 16000)

    short, long = U(0, 6000), U(1, 12000)  # 0.375 s and 0.75 s; the crop below is 0.5 s
    train = PrefixCache(student, [short, long], tmp_path / "c", max_seconds=0.5, progress=False)
    assert train.computed == 2
    whole = PrefixCache(student, [short, long], tmp_path / "c", max_seconds=30.0, progress=False)
    assert whole.computed == 1  # only the long clip: the short one's entry serves both crops
    assert whole.paths[short.id] == train.paths[short.id]
    assert whole.paths[long.id] != train.paths[long.id]
    assert PrefixCache(student, [short, long], tmp_path / "c", None, False).computed == 0
    assert PrefixCache(student, [long], tmp_path / "c", 0.5, False).computed == 0
    for cache, seconds in ((train, 0.5), (whole, 30.0)):
        wav = centre_crop(load_audio(long.path), int(seconds * 16000))
        with torch.no_grad():
            want, frames = student.prefix(torch.from_numpy(wav)[None], torch.tensor([len(wav)]))
        got = np.asarray(cache[long.id])
        assert got.shape == (1, int(frames[0]), want.shape[-1])
        np.testing.assert_allclose(got, want[0, :, : int(frames[0])].numpy(), atol=1e-5)


def test_encoder_lr_gives_the_trainable_encoder_layers_their_own_rate(tmp_path):
    """``optim.encoder_lr``: the trained top layer steps at its own rate, the heads at ``lr``;
    frozen layers are in no group, and matrices alone are weight-decayed."""
    from emodistill.config import OptimConfig
    from emodistill.training.common import configure_adamw, student_param_groups

    student = _student(tiny_whisper_encoder(layers=3), trainable=1)
    in_encoder = {id(p) for p in student.encoder.parameters()}
    groups = student_param_groups(student, OptimConfig(lr=1e-3, encoder_lr=1e-5))
    grouped = [p for g in groups for p in g["params"]]
    assert len(grouped) == len({id(p) for p in grouped})  # no parameter twice
    assert {id(p) for p in grouped} == {id(p) for p in student.parameters() if p.requires_grad}
    for g in groups:
        ids = {id(p) for p in g["params"]}
        assert ids <= in_encoder or not ids & in_encoder  # a group is encoder or heads
        assert g["lr"] == (1e-5 if ids <= in_encoder else 1e-3)
        assert (g["weight_decay"] > 0) == all(p.ndim > 1 for p in g["params"])
    assert any({id(p) for p in g["params"]} <= in_encoder for g in groups)
    opt = configure_adamw(groups, OptimConfig(lr=1e-3, encoder_lr=1e-5), 10)["optimizer"]
    assert sorted({g["lr"] for g in opt.param_groups}) == [1e-5, 1e-3]
    # without encoder_lr every group runs at lr (the frozen demo student: heads only)
    same = student_param_groups(student, OptimConfig(lr=1e-3))
    assert {g["lr"] for g in same} == {1e-3}


def test_auto_precision_is_bf16_where_the_hardware_computes_it(monkeypatch):
    """``trainer.precision: auto``: bf16-mixed on CUDA and on a CPU with native bf16, float32 on
    any other CPU; an explicit precision is kept as written."""
    from emodistill.training import common

    assert isinstance(common.cpu_has_bf16(), bool)
    monkeypatch.setattr(common.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(common, "cpu_has_bf16", lambda: True)
    assert common.resolve_precision("auto", "auto") == "bf16-mixed"
    assert common.resolve_precision("auto", "cpu") == "bf16-mixed"
    assert common.resolve_precision("32-true", "cpu") == "32-true"
    monkeypatch.setattr(common, "cpu_has_bf16", lambda: False)
    assert common.resolve_precision("auto", "auto") == "32-true"
    monkeypatch.setattr(common.torch.cuda, "is_available", lambda: True)
    assert common.resolve_precision("auto", "auto") == "bf16-mixed"
    assert common.resolve_precision("auto", "cpu") == "32-true"


def test_frozen_frames_are_read_once_and_kept_in_memory(tmp_path, monkeypatch):
    """DistillDataset keeps a clip's cached frames (speaker-normalised) in memory after the
    first read, within AUDIO_CACHE_BYTES; the values equal a fresh read of the cache entry."""
    from types import SimpleNamespace

    import emodistill.training.data as data

    rng = np.random.default_rng(0)
    paths = {}
    for n, t in enumerate((5, 9, 7)):
        paths[f"u{n}"] = tmp_path / f"u{n}.npy"
        np.save(paths[f"u{n}"], rng.standard_normal((1, t, 4)).astype(np.float32))

    class Frames:
        reads = 0
        frames = {i: int(np.load(p).shape[1]) for i, p in paths.items()}

        def __getitem__(self, utt_id):
            Frames.reads += 1
            return np.load(paths[utt_id], mmap_mode="r")

    utts = [SimpleNamespace(id=f"u{n}", label="a") for n in range(3)]
    norms = {u.id: np.stack([np.full(4, 0.5), np.full(4, 2.0)]).astype(np.float32) for u in utts}
    ds = data.DistillDataset(utts, {"a": 0}, None, True, prefix=Frames(), speaker_norms=norms)
    first = [ds[(i, 0, True)]["prefix"] for i in range(3)]
    again = [ds[(i, 1, True)]["prefix"] for i in range(3)]
    assert Frames.reads == 3  # the second epoch came from memory
    for n, (a, b) in enumerate(zip(first, again, strict=True)):
        expected = (np.load(paths[f"u{n}"]) - 0.5) / 2.0
        assert a.dtype == np.float32 and np.array_equal(a, expected) and np.array_equal(b, a)
    assert np.load(paths["u0"])[0, 0, 0] != first[0][0, 0, 0]  # the cache entry is untouched

    monkeypatch.setattr(data, "AUDIO_CACHE_BYTES", 0)  # no room: every epoch reads again
    Frames.reads = 0
    ds = data.DistillDataset(utts, {"a": 0}, None, True, prefix=Frames())
    for epoch in range(2):
        assert np.array_equal(ds[(1, epoch, True)]["prefix"], np.load(paths["u1"]))
    assert Frames.reads == 2
