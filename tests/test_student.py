"""Student network and speech encoders on tiny random models (no hub, no network)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from factories import tiny_hubert_folder, tiny_whisper_encoder

from emodistill.config import StudentConfig
from emodistill.models.encoders import (
    LogMelFrontend,
    TransformersSpeechEncoder,
    WhisperSpeechEncoder,
    build_encoder_from_config,
    load_encoder,
    whisper_encoder_config,
)
from emodistill.models.student import EmoDistillStudent, StudentOutput, build_student
from emodistill.models.student_folder import load_student, save_student

LABELS = ["neutral", "happy", "angry", "sad"]


def _tiny_hubert_folder(path, norm="layer"):
    return tiny_hubert_folder(path, layers=2, conv_stride=(5, 4), norm=norm)


def _tiny_whisper_encoder(**kw):
    return tiny_whisper_encoder(**kw)


def _clip(n, seed=0):
    g = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    x = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.02 * g.normal(
        size=n
    )
    return torch.from_numpy(x.astype(np.float32))


def _padded_batch(clip, other_len=9000):
    """clip placed first in a batch padded with noise (not zeros) up to a longer second clip."""
    n = max(clip.shape[0], other_len)
    wav = torch.randn(2, n)  # non-zero padding: the model must mask it
    wav[0, : clip.shape[0]] = clip
    return wav, torch.tensor([clip.shape[0], other_len])


@pytest.fixture(scope="module")
def hubert_folder(tmp_path_factory):
    return _tiny_hubert_folder(tmp_path_factory.mktemp("hubert"))


def test_hubert_encoder_loads_from_folder(hubert_folder):
    enc = load_encoder(str(hubert_folder), freeze_feature_encoder=True)
    assert isinstance(enc, TransformersSpeechEncoder)
    assert enc.hidden_size == 32 and enc.use_attention_mask and enc.do_normalize
    assert all(not p.requires_grad for p in enc.model.feature_extractor.parameters())
    assert any(p.requires_grad for p in enc.model.encoder.parameters())
    wav = torch.randn(2, 8000)
    hidden, frames = enc.eval()(wav, torch.tensor([8000, 4000]))
    expected = enc.model._get_feat_extract_output_lengths(torch.tensor([8000, 4000]))
    assert hidden.shape == (2, int(expected[0]), 32)
    assert frames.tolist() == expected.tolist()
    unfrozen = load_encoder(str(hubert_folder), freeze_feature_encoder=False)
    assert all(p.requires_grad for p in unfrozen.model.feature_extractor.parameters())


def test_hubert_student_padding_invariance_and_round_trip(hubert_folder, tmp_path):
    torch.manual_seed(0)
    enc = load_encoder(str(hubert_folder))
    model = EmoDistillStudent(enc, 4, 6, 5, projection_hidden=16, classifier_hidden=16).eval()
    clip = _clip(5000)
    alone = model(clip[None], torch.tensor([5000]))
    wav, lengths = _padded_batch(clip)
    batched = model(wav, lengths)
    assert (batched.logits[0] - alone.logits[0]).abs().max() < 1e-4
    save_student(model, tmp_path / "m", LABELS, training_config={"seed": 0}, extra={"fold": "x"})
    loaded, config = load_student(tmp_path / "m")
    assert config["labels"] == LABELS and config["fold"] == "x"
    assert config["encoder"]["kind"] == "transformers"
    again = loaded(wav, lengths)
    for a, b in zip(batched, again, strict=True):
        assert torch.equal(a, b)


def test_group_norm_model_gets_no_attention_mask(tmp_path):
    enc = load_encoder(str(_tiny_hubert_folder(tmp_path / "g", norm="group")))
    assert not enc.use_attention_mask
    rebuilt = build_encoder_from_config(json.loads(json.dumps(enc.config_dict())))
    assert not rebuilt.use_attention_mask


def test_frontend_matches_whisper_feature_extractor():
    from transformers import WhisperFeatureExtractor

    clip = _clip(48000)  # 3 s
    ref = WhisperFeatureExtractor()(clip.numpy(), sampling_rate=16000, return_tensors="np")
    ref = ref.input_features[0]  # (80, 3000), padded to 30 s
    mel, mel_len = LogMelFrontend()(clip[None], torch.tensor([48000]))
    assert mel.shape == (1, 80, 300) and mel_len.tolist() == [300]
    assert np.abs(mel[0].numpy() - ref[:, :300]).max() < 1e-3
    # Padding with other content changes nothing in the clip's frames.
    wav, lengths = _padded_batch(clip, other_len=64000)
    mel2, _ = LogMelFrontend()(wav, lengths)
    assert torch.allclose(mel2[0, :, :300], mel[0], atol=1e-5)
    assert mel2[0, :, 300:].abs().max() == 0


@pytest.mark.parametrize("n", [16000, 15840])  # even and odd mel frame counts
def test_whisper_padding_invariance(n):
    enc = _tiny_whisper_encoder().eval()
    clip = _clip(n)
    h1, f1 = enc(clip[None], torch.tensor([n]))
    wav, lengths = _padded_batch(clip, other_len=30000)
    h2, f2 = enc(wav, lengths)
    assert f1.tolist() == [(n // 160 + 1) // 2] and f2[0] == f1[0]
    assert h1.shape[1] == f1[0]
    assert (h2[0, : f1[0]] - h1[0]).abs().max() < 1e-4


def test_whisper_sliced_equals_stock_encoder_on_equivalent_input():
    """Our sliced-position forward == stock WhisperEncoder built for exactly that length."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    enc = _tiny_whisper_encoder().eval()
    mel = torch.randn(2, 80, 200)
    ours = enc.encode_mel(mel)
    cfg = whisper_encoder_config(**{**enc.config_dict()["config"], "max_source_positions": 100})
    stock = WhisperEncoder(cfg).eval()
    state = enc.encoder.state_dict()
    state["embed_positions.weight"] = state["embed_positions.weight"][:100]
    stock.load_state_dict(state, strict=True)
    with torch.no_grad():
        ref = stock(mel).last_hidden_state
    assert (ours - ref).abs().max() < 1e-5


def test_whisper_student_round_trip_and_rebuild(tmp_path):
    enc = _tiny_whisper_encoder(freeze_feature_encoder=True)
    assert not enc.encoder.conv1.weight.requires_grad
    model = EmoDistillStudent(enc, 4, 8, 4, projection_hidden=16, classifier_hidden=16).eval()
    wav, lengths = _padded_batch(_clip(12000), other_len=16000)
    out = model(wav, lengths)
    assert isinstance(out, StudentOutput)
    assert out.logits.shape == (2, 4)
    assert out.emb_linguistic.shape == (2, 8) and out.emb_prosodic.shape == (2, 4)
    save_student(model, tmp_path / "w", LABELS)
    loaded, config = load_student(tmp_path / "w")
    assert config["format"] == "emodistill-student" and config["format_version"] == 1
    assert config["sample_rate"] == 16000 and config["training_config"] is None
    assert config["heads"]["d_linguistic"] == 8
    for a, b in zip(out, loaded(wav, lengths), strict=True):
        assert torch.equal(a, b)


def test_gradients_reach_encoder_and_heads():
    enc = _tiny_whisper_encoder()
    model = EmoDistillStudent(enc, 3, 4, 4, projection_hidden=8, classifier_hidden=8).train()
    out = model(torch.randn(2, 8000), torch.tensor([8000, 6000]))
    (out.logits.sum() + out.emb_linguistic.sum() + out.emb_prosodic.sum()).backward()
    for name in (
        "encoder.encoder.layers.0.fc1.weight",
        "proj_prosodic.0.weight",
        "classifier.3.bias",
    ):
        assert dict(model.named_parameters())[name].grad is not None, name


def test_build_student_from_config(hubert_folder):
    cfg = StudentConfig(encoder=str(hubert_folder), projection_hidden=8, classifier_hidden=8)
    model = build_student(cfg, num_labels=4, d_linguistic=6, d_prosodic=5)
    assert model.classifier[-1].out_features == 4
    assert model.proj_linguistic[-1].out_features == 6


def test_load_student_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_student(tmp_path)
    (tmp_path / "config.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="format"):
        load_student(tmp_path)
    model = EmoDistillStudent(_tiny_whisper_encoder(), 4, 4, 4, 8, 8)
    with pytest.raises(ValueError, match="labels"):
        save_student(model, tmp_path / "x", ["a", "b"])


@pytest.mark.parametrize("family", ["wav2vec2", "wavlm", "data2vec-audio"])
def test_other_transformers_families_load_and_rebuild(tmp_path, family):
    from transformers import (
        Data2VecAudioConfig,
        Data2VecAudioModel,
        Wav2Vec2Config,
        Wav2Vec2Model,
        WavLMConfig,
        WavLMModel,
    )

    config_cls, model_cls = {
        "wav2vec2": (Wav2Vec2Config, Wav2Vec2Model),
        "wavlm": (WavLMConfig, WavLMModel),
        "data2vec-audio": (Data2VecAudioConfig, Data2VecAudioModel),
    }[family]
    kw = dict(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(16, 16),
        conv_stride=(5, 4),
        conv_kernel=(10, 8),
        num_conv_pos_embeddings=5,
        num_conv_pos_embedding_groups=2,
    )
    if family == "data2vec-audio":
        kw["conv_pos_kernel_size"] = 5
    torch.manual_seed(0)
    model_cls(config_cls(**kw)).save_pretrained(tmp_path)
    enc = load_encoder(str(tmp_path)).eval()
    assert enc.config_dict()["model_type"] == family
    wav, lengths = torch.randn(2, 6000), torch.tensor([6000, 4000])
    hidden, frames = enc(wav, lengths)
    assert hidden.shape[0] == 2 and hidden.shape[2] == 32 and frames[0] == hidden.shape[1]
    rebuilt = build_encoder_from_config(json.loads(json.dumps(enc.config_dict())))
    rebuilt.load_state_dict(enc.state_dict(), strict=True)
    assert torch.equal(rebuilt.eval()(wav, lengths)[0], hidden)


def test_frontend_stays_float32_under_autocast():
    clip = _clip(16000)[None]
    lengths = torch.tensor([16000])
    ref, _ = LogMelFrontend()(clip, lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mel, _ = LogMelFrontend()(clip, lengths)
    assert mel.dtype == torch.float32
    assert (mel - ref).abs().max() < 1e-6


@pytest.mark.parametrize("with_preprocessor", [True, False])
def test_transformers_whisper_folder(tmp_path, with_preprocessor):
    """An openai/whisper-* style folder (WhisperModel + feature extractor config)."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    torch.manual_seed(0)
    cfg = WhisperConfig(
        vocab_size=64,
        d_model=32,
        encoder_layers=1,
        encoder_attention_heads=2,
        decoder_layers=1,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=100,  # the stock encoder then takes exactly 2 s
        max_target_positions=16,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )
    whisper = WhisperModel(cfg).eval()
    whisper.save_pretrained(tmp_path)
    if with_preprocessor:
        WhisperFeatureExtractor().save_pretrained(tmp_path)
    enc = load_encoder(str(tmp_path)).eval()
    assert isinstance(enc, WhisperSpeechEncoder) and enc.hidden_size == 32
    clip = _clip(32000)
    with torch.no_grad():
        ours, frames = enc(clip[None], torch.tensor([32000]))
        mel, _ = enc.frontend(clip[None], torch.tensor([32000]))
        ref = whisper.get_encoder()(mel).last_hidden_state
    assert frames.tolist() == [100]
    assert (ours - ref).abs().max() < 1e-5
