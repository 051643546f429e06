"""Whisper encoders on inputs of any length (sliced positions), from transformers or CT2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from emodistill.audio import SAMPLE_RATE
from emodistill.models.encoders.base import EncoderError, SpeechEncoder, valid_mask
from emodistill.models.encoders.logmel import WHISPER_HOP, LogMelFrontend
from emodistill.util.files import read_json

#: WhisperConfig fields the encoder depends on (the rest describe the decoder).
WHISPER_ENCODER_FIELDS = (
    "d_model",
    "encoder_layers",
    "encoder_attention_heads",
    "encoder_ffn_dim",
    "num_mel_bins",
    "max_source_positions",
    "activation_function",
    "dropout",
    "attention_dropout",
    "activation_dropout",
    "encoder_layerdrop",
    "scale_embedding",
)


def whisper_encoder_config(**fields: Any):
    """A transformers ``WhisperConfig`` with only encoder fields set (eager/sdpa attention)."""
    from transformers import WhisperConfig

    unknown = set(fields) - set(WHISPER_ENCODER_FIELDS)
    if unknown:
        raise EncoderError(f"unknown Whisper encoder field(s) {sorted(unknown)}")
    return WhisperConfig(**fields)


class WhisperSpeechEncoder(SpeechEncoder):
    """Whisper encoder on raw audio of any length up to ``max_source_positions * 2`` mel frames.

    Holds a stock transformers ``WhisperEncoder`` (so its weights load from transformers or
    CTranslate2 checkpoints by name) but runs its layers itself: the stock forward refuses
    anything but 3000 mel frames. Here the positional embedding is sliced to the input length
    (what CTranslate2 does), padded mel frames and conv outputs are zeroed and padded frames
    are masked out of self-attention, so a clip's features do not depend on what it is
    batched with. With a full 30 s input this is exactly the stock computation.

    Args:
        config: a ``WhisperConfig`` (only encoder fields are used).
        frontend: the log-mel front end (its ``n_mels`` must equal ``config.num_mel_bins``).
        freeze_feature_encoder: freeze the two-conv stem (the analogue of the CNN front end of
            wav2vec2-like models).
        source: the model id it was loaded from (provenance only).
    """

    kind = "whisper"

    def __init__(
        self,
        config,
        frontend: LogMelFrontend | None = None,
        freeze_feature_encoder: bool = False,
        source: str | None = None,
    ):
        super().__init__()
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        frontend = frontend or LogMelFrontend(n_mels=config.num_mel_bins)
        if frontend.n_mels != config.num_mel_bins:
            raise EncoderError(
                f"front end gives {frontend.n_mels} mel bins, encoder expects {config.num_mel_bins}"
            )
        self.frontend = frontend
        self.encoder = WhisperEncoder(config)
        self.hidden_size = int(config.d_model)
        self.num_layers = int(config.encoder_layers)
        self.max_frames = int(config.max_source_positions)
        self.freeze_feature_encoder = bool(freeze_feature_encoder)
        self.source = source
        if freeze_feature_encoder:
            for conv in (self.encoder.conv1, self.encoder.conv2):
                conv.requires_grad_(False)

    @staticmethod
    def output_lengths(mel_lengths: Tensor) -> Tensor:
        """Frames after the stride-2 conv: ceil(mel_frames / 2)."""
        return torch.div(mel_lengths + 1, 2, rounding_mode="floor")

    def encode_mel(self, mel: Tensor, mel_lengths: Tensor | None = None) -> Tensor:
        """mel (B, n_mels, M) -> hidden (B, ceil(M/2), d_model); ``mel_lengths`` (B,) or None
        for all frames valid."""
        x, out_lengths = self.embed_mel(mel, mel_lengths)
        x = self.run_layers(x, out_lengths, 0, self.num_layers)
        return self.finish(x)

    def embed_mel(self, mel: Tensor, mel_lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """mel (B, n_mels, M) -> (input of layer 0 (B, ceil(M/2), d_model), frame_lengths)."""
        enc = self.encoder
        batch, _, m = mel.shape
        if mel_lengths is None:
            mel_lengths = torch.full((batch,), m, dtype=torch.long, device=mel.device)
        frames = valid_mask(mel_lengths, m)[:, None, :].to(mel.dtype)
        x = F.gelu(enc.conv1(mel * frames))
        # Zero the padded conv1 outputs: conv2 then sees what it sees for the clip alone.
        x = F.gelu(enc.conv2(x * frames))
        x = x.transpose(1, 2)
        t = x.shape[1]
        if t > self.max_frames:
            raise EncoderError(
                f"input of {t * 2 * WHISPER_HOP / SAMPLE_RATE:.1f} s is longer than this "
                f"Whisper encoder's {self.max_frames * 2 * WHISPER_HOP / SAMPLE_RATE:.0f} s "
                "window; cut long recordings into segments"
            )
        x = x + enc.embed_positions.weight[:t]  # the stock encoder does not scale either
        x = F.dropout(x, p=enc.dropout, training=self.training and self.frozen_layers is None)
        return x, self.output_lengths(mel_lengths)

    def run_layers(self, hidden: Tensor, frame_lengths: Tensor, start: int, stop: int) -> Tensor:
        enc = self.encoder
        keep = valid_mask(frame_lengths, hidden.shape[1])
        # Additive (B, 1, 1, T) mask: padded keys get the dtype's minimum.
        attn_mask = (~keep)[:, None, None, :].to(hidden.dtype) * torch.finfo(hidden.dtype).min
        for layer in enc.layers[start:stop]:
            if layer.training and enc.layerdrop > 0.0 and torch.rand([]) < enc.layerdrop:
                continue
            hidden = layer(hidden, attn_mask)
        return hidden

    def finish(self, hidden: Tensor) -> Tensor:
        return self.encoder.layer_norm(hidden)

    def embed(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        mel, mel_lengths = self.frontend(wav, lengths)
        return self.embed_mel(mel, mel_lengths)

    def bottom_modules(self) -> list[nn.Module]:
        return [self.frontend, self.encoder.conv1, self.encoder.conv2, self.encoder.embed_positions]

    def layer_modules(self) -> list[nn.Module]:
        return list(self.encoder.layers)

    def finish_modules(self) -> list[nn.Module]:
        return [self.encoder.layer_norm]

    def forward(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """wav (B, N) float32 16 kHz, lengths (B,) -> hidden (B, T, d_model), frame_lengths."""
        mel, mel_lengths = self.frontend(wav, lengths)
        hidden = self.encode_mel(mel, mel_lengths)
        return hidden, self.output_lengths(mel_lengths)

    def config_dict(self) -> dict[str, Any]:
        cfg = self.encoder.config
        return {
            "kind": self.kind,
            "config": {k: getattr(cfg, k) for k in WHISPER_ENCODER_FIELDS},
            "frontend": self.frontend.config_dict(),
            "freeze_feature_encoder": self.freeze_feature_encoder,
            "source": self.source,
        }


def _whisper_frontend_settings(folder: Path) -> dict[str, Any]:
    """n_mels / n_fft / hop and mel filters from a folder's preprocessor_config.json, if any."""
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return {}
    try:
        pre = read_json(path)
    except ValueError as err:
        raise EncoderError(str(err)) from err
    out: dict[str, Any] = {}
    if "feature_size" in pre:
        out["n_mels"] = int(pre["feature_size"])
    if "n_fft" in pre:
        out["n_fft"] = int(pre["n_fft"])
    if "hop_length" in pre:
        out["hop_length"] = int(pre["hop_length"])
    if pre.get("mel_filters") is not None:
        out["mel_filters"] = np.asarray(pre["mel_filters"], dtype=np.float64)
    rate = int(pre.get("sampling_rate", SAMPLE_RATE))
    if rate != SAMPLE_RATE:
        raise EncoderError(f"{path}: sampling_rate {rate}, emodistill uses {SAMPLE_RATE} Hz")
    return out


def load_whisper_transformers(
    model_id: str, freeze_feature_encoder: bool, source: str
) -> WhisperSpeechEncoder:
    from transformers import WhisperModel

    whisper = WhisperModel.from_pretrained(model_id, dtype=torch.float32)
    stock = whisper.get_encoder()
    fields = {k: getattr(stock.config, k) for k in WHISPER_ENCODER_FIELDS}
    settings: dict[str, Any] = {}
    try:
        from transformers import WhisperFeatureExtractor

        fe = WhisperFeatureExtractor.from_pretrained(model_id)
        settings = {
            "n_mels": fe.feature_size,
            "n_fft": fe.n_fft,
            "hop_length": fe.hop_length,
            "mel_filters": fe.mel_filters,
        }
    except Exception:  # no preprocessor_config.json: Whisper defaults for this mel count
        settings = {"n_mels": fields["num_mel_bins"]}
    encoder = WhisperSpeechEncoder(
        whisper_encoder_config(**fields),
        LogMelFrontend(**settings),
        freeze_feature_encoder=freeze_feature_encoder,
        source=source,
    )
    encoder.encoder.load_state_dict(stock.state_dict(), strict=True)
    return encoder


def load_whisper_ct2(
    folder: Path, freeze_feature_encoder: bool, source: str
) -> WhisperSpeechEncoder:
    from emodistill.models.whisper_ct2 import load_ct2_whisper_encoder

    fields, state = load_ct2_whisper_encoder(folder)
    settings = _whisper_frontend_settings(folder)
    settings.setdefault("n_mels", fields["num_mel_bins"])
    encoder = WhisperSpeechEncoder(
        whisper_encoder_config(**fields),
        LogMelFrontend(**settings),
        freeze_feature_encoder=freeze_feature_encoder,
        source=source,
    )
    encoder.encoder.load_state_dict(state, strict=True)
    return encoder
