"""CTranslate2 model.bin reader and the Whisper encoder mapping, checked against ctranslate2."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from emodistill.models.encoders import (
    WhisperSpeechEncoder,
    build_encoder_from_config,
    load_encoder,
    whisper_encoder_config,
)
from emodistill.models.whisper_ct2 import CT2FormatError, read_ct2_model

ctranslate2 = pytest.importorskip("ctranslate2", reason="ctranslate2 not installed")


def _embedded_folder() -> Path:
    try:
        from emodistill.models import assets

        return assets.whisper_ct2_folder()
    except Exception as err:  # AssetError: package missing
        pytest.skip(f"embedded Whisper tiny.en unavailable: {err}")


@pytest.fixture(scope="module")
def tiny_en():
    folder = _embedded_folder()
    return folder, load_encoder("embedded:whisper-tiny.en").eval()


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    """A real spoken sentence (espeak-ng), resampled to 16 kHz by emodistill.audio."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    from emodistill.audio import load_audio

    path = tmp_path_factory.mktemp("speech") / "hello.wav"
    subprocess.run(
        ["espeak-ng", "-w", str(path), "hello there, how are you doing today"],
        check=True,
        capture_output=True,
    )
    return load_audio(path)


def test_header_and_encoder_variables():
    folder = _embedded_folder()
    model = read_ct2_model(folder / "model.bin", prefix="encoder/")
    assert (model.binary_version, model.spec_name) == (6, "WhisperSpec")
    assert len(model.variables) == 56
    assert model.dtypes["encoder/conv1/weight"] == "float16"
    assert model.variables["encoder/layer_0/self_attention/linear_0/weight"].shape == (1152, 384)
    assert int(model.variables["encoder/num_heads"]) == 6


def test_embedded_encoder_architecture(tiny_en):
    _, enc = tiny_en
    cfg = enc.encoder.config
    assert (cfg.d_model, cfg.encoder_layers, cfg.encoder_attention_heads) == (384, 4, 6)
    assert cfg.max_source_positions == 1500 and enc.frontend.n_mels == 80
    n_params = sum(p.numel() for p in enc.encoder.parameters())
    assert 7.5e6 < n_params < 8.5e6  # ~8.2M including the 1500 x 384 positions
    rebuilt = build_encoder_from_config(enc.config_dict())
    assert isinstance(rebuilt, WhisperSpeechEncoder)
    rebuilt.load_state_dict(enc.state_dict(), strict=True)


def test_matches_ctranslate2_encoder_on_real_speech(tiny_en, speech):
    """Both sides get the same 30 s log-mel (CTranslate2 requires 3000 frames)."""
    from transformers import WhisperFeatureExtractor

    folder, enc = tiny_en
    wav = np.zeros(480000, dtype=np.float32)
    wav[: len(speech)] = speech
    with torch.no_grad():
        mel, _ = enc.frontend(torch.from_numpy(wav)[None], torch.tensor([480000]))
        ours = enc.encode_mel(mel).numpy()
    ref_mel = WhisperFeatureExtractor()(speech, sampling_rate=16000, return_tensors="np")
    assert np.abs(ref_mel.input_features - mel.numpy()).max() < 1e-3
    ct2 = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32")
    features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel.numpy()))
    theirs = np.array(ct2.encode(features, to_cpu=True))
    assert theirs.shape == ours.shape == (1, 1500, 384)
    diff = np.abs(theirs - ours).max()
    assert diff < 1e-3, f"max abs diff vs ctranslate2: {diff}"


def test_short_input_equals_stock_encoder_with_sliced_positions(tiny_en, speech):
    """3 s of speech, no padding: ours == transformers' WhisperEncoder built for 300 frames."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    _, enc = tiny_en
    clip = torch.from_numpy(speech[:48000].copy())
    with torch.no_grad():
        hidden, frames = enc(clip[None], torch.tensor([clip.shape[0]]))
        mel, _ = enc.frontend(clip[None], torch.tensor([clip.shape[0]]))
    n_pos = mel.shape[-1] // 2
    assert frames.tolist() == [n_pos] and hidden.shape == (1, n_pos, 384)
    fields = {**enc.config_dict()["config"], "max_source_positions": n_pos}
    stock = WhisperEncoder(whisper_encoder_config(**fields)).eval()
    state = enc.encoder.state_dict()
    state["embed_positions.weight"] = state["embed_positions.weight"][:n_pos]
    stock.load_state_dict(state, strict=True)
    with torch.no_grad():
        ref = stock(mel).last_hidden_state
    assert (hidden - ref).abs().max() < 1e-4


def _tiny_ct2_folder(tmp_path: Path, quantization: str | None):
    """A tiny random Whisper written by CTranslate2's own converter code; returns (folder,
    reference encoder output on ``mel``, mel)."""
    from ctranslate2.converters.transformers import WhisperLoader
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(0)
    cfg = WhisperConfig(
        vocab_size=64,
        d_model=32,
        encoder_layers=2,
        encoder_attention_heads=2,
        decoder_layers=1,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=1500,
        max_target_positions=16,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )
    model = WhisperForConditionalGeneration(cfg).eval()
    mel = torch.randn(1, 80, 3000)
    with torch.no_grad():  # before quantising: CTranslate2 quantises the weights in place
        ref = model.model.encoder(mel).last_hidden_state
    spec = WhisperLoader().get_model_spec(model)
    spec.register_vocabulary([f"tok{i}" for i in range(64)])
    spec.validate()
    spec.optimize(quantization=quantization)
    spec.save(str(tmp_path))
    return tmp_path, ref, mel


@pytest.mark.parametrize(
    "quantization, tol", [(None, 1e-5), ("float16", 5e-3), ("int8", 2e-2), ("bfloat16", 3e-2)]
)
def test_reader_on_converter_output(tmp_path, quantization, tol):
    folder, ref, mel = _tiny_ct2_folder(tmp_path, quantization)
    enc = load_encoder(str(folder)).eval()
    assert isinstance(enc, WhisperSpeechEncoder)
    with torch.no_grad():
        ours = enc.encode_mel(mel)
    assert (ours - ref).abs().max() < tol


def test_format_errors(tmp_path):
    folder = _embedded_folder()
    head = (folder / "model.bin").read_bytes()[:5000]
    (tmp_path / "model.bin").write_bytes(head)
    with pytest.raises(CT2FormatError, match="ends"):
        read_ct2_model(tmp_path / "model.bin")
    (tmp_path / "model.bin").write_bytes((99).to_bytes(4, "little") + head[4:])
    with pytest.raises(CT2FormatError, match="version 99"):
        read_ct2_model(tmp_path / "model.bin")
