"""Speech encoders with one interface: raw 16 kHz audio in, frame features and lengths out.

Two families:

* :class:`TransformersSpeechEncoder` wraps any transformers ``AutoModel`` speech encoder
  (HuBERT, wav2vec2, WavLM, data2vec-audio) loaded by hub id or folder. It applies the input
  normalisation the model's feature extractor would apply, so it takes raw audio.
* :class:`WhisperSpeechEncoder` runs a Whisper encoder on inputs of any length up to 30 s by
  slicing the positional embedding to the input length (as CTranslate2 does), instead of
  padding every clip to 30 s (~16x the compute for 3 s clips). Its log-mel front end
  (:class:`LogMelFrontend`) is written in torch inside the module, so the whole model takes
  raw audio and exports to ONNX. Weights come from a transformers ``openai/whisper-*`` folder
  or from a CTranslate2 / faster-whisper folder (:mod:`emodistill.models.whisper_ct2`).

Every encoder can describe itself with :meth:`SpeechEncoder.config_dict`, and
:func:`build_encoder_from_config` rebuilds the same architecture (random weights) from that
dict alone, so a saved model folder loads offline without the hub or the original files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from emodistill import assets
from emodistill.audio import SAMPLE_RATE
from emodistill.model_folder import config_path

#: Defaults of the Whisper log-mel front end (openai/whisper audio.py).
WHISPER_N_FFT = 400
WHISPER_HOP = 160
WHISPER_N_MELS = 80


class EncoderError(ValueError):
    """A speech encoder that cannot be loaded or run; the message says which and why."""


def valid_mask(lengths: Tensor, size: int) -> Tensor:
    """(B, size) bool mask, True where index < lengths[b]."""
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]


class SpeechEncoder(nn.Module):
    """Common interface of every speech encoder.

    ``forward(wav (B, N) float32 at 16 kHz, lengths (B,) long)`` returns
    ``(hidden (B, T, H), frame_lengths (B,) long)``; frames at or beyond ``frame_lengths[b]``
    are padding. ``hidden_size`` is H.

    The same computation is also available in three stages, which partial fine-tuning uses to
    run (and cache) a frozen bottom once and train only the top layers::

        hidden, frame_lengths = embed(wav, lengths)          # front end -> input of layer 0
        hidden = run_layers(hidden, frame_lengths, i, j)      # transformer layers i .. j-1
        hidden = finish(hidden)                               # final layer norm, if any

    ``finish(run_layers(*embed(wav, lengths), 0, num_layers))`` equals ``forward`` in eval mode.
    ``freeze_bottom(k)`` freezes the front end and layers ``0 .. k-1`` and keeps them in eval
    mode (no dropout, no SpecAugment) even while the rest trains, so that their output is a
    deterministic function of the audio that may be cached.
    """

    hidden_size: int
    num_layers: int
    kind: str = "abstract"
    frozen_layers: int | None = None  # None: only what freeze_feature_encoder froze

    def forward(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover
        raise NotImplementedError

    def embed(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover
        """wav (B, N), lengths (B,) -> (input of layer 0 (B, T, H), frame_lengths (B,))."""
        raise NotImplementedError

    def run_layers(
        self, hidden: Tensor, frame_lengths: Tensor, start: int, stop: int
    ) -> Tensor:  # pragma: no cover
        """Transformer layers ``start .. stop-1`` on hidden (B, T, H) -> (B, T, H)."""
        raise NotImplementedError

    def finish(self, hidden: Tensor) -> Tensor:
        """What follows the last layer (a final layer norm for some models): (B, T, H)."""
        return hidden

    def bottom_modules(self) -> list[nn.Module]:  # pragma: no cover
        """The modules of :meth:`embed` (front end, stem, positional embedding)."""
        raise NotImplementedError

    def layer_modules(self) -> list[nn.Module]:  # pragma: no cover
        """The transformer layers, bottom first."""
        raise NotImplementedError

    def freeze_bottom(self, layers: int) -> None:
        """Freeze :meth:`embed` and the first ``layers`` transformer layers (0 .. num_layers);
        with ``num_layers`` the final :meth:`finish` is frozen too."""
        if not 0 <= layers <= self.num_layers:
            raise EncoderError(f"can freeze 0..{self.num_layers} layers, not {layers}")
        self.frozen_layers = int(layers)
        for module in self._frozen_modules():
            module.requires_grad_(False)
        self.train(self.training)

    def _frozen_modules(self) -> list[nn.Module]:
        if self.frozen_layers is None:
            return []
        mods = self.bottom_modules() + self.layer_modules()[: self.frozen_layers]
        if self.frozen_layers == self.num_layers:
            mods += self.finish_modules()
        return mods

    def finish_modules(self) -> list[nn.Module]:
        """The modules of :meth:`finish` (none by default)."""
        return []

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()  # frozen = deterministic: no dropout, no SpecAugment, no LayerDrop
        return self

    def config_dict(self) -> dict[str, Any]:  # pragma: no cover
        """JSON-serialisable description from which :func:`build_encoder_from_config` rebuilds
        the architecture."""
        raise NotImplementedError


# --------------------------------------------------------------------------- transformers


def _freeze_cnn(model: nn.Module) -> bool:
    """Freeze the convolutional waveform front end of a wav2vec2-like model, if it has one."""
    if hasattr(model, "freeze_feature_encoder"):
        model.freeze_feature_encoder()
        return True
    front = getattr(model, "feature_extractor", None)
    if front is None:
        return False
    if hasattr(front, "_freeze_parameters"):
        front._freeze_parameters()
    else:
        for p in front.parameters():
            p.requires_grad = False
    return True


class TransformersSpeechEncoder(SpeechEncoder):
    """A transformers wav2vec2-family encoder (HuBERT, wav2vec2, WavLM, data2vec-audio).

    Args:
        model: the base model (``AutoModel``), returning ``last_hidden_state``.
        do_normalize: zero-mean unit-variance normalisation per utterance over its valid
            samples, as the model's feature extractor does.
        use_attention_mask: pass an attention mask (models with ``feat_extract_norm ==
            "layer"``); group-norm models were trained without one and must not get it.
        freeze_feature_encoder: freeze the CNN front end (recorded for rebuilding).
        source: the model id it was loaded from (provenance only).
    """

    kind = "transformers"

    def __init__(
        self,
        model: nn.Module,
        do_normalize: bool = True,
        use_attention_mask: bool | None = None,
        freeze_feature_encoder: bool = True,
        source: str | None = None,
    ):
        super().__init__()
        self.model = model
        config = model.config
        self.hidden_size = int(config.hidden_size)
        self.do_normalize = bool(do_normalize)
        if use_attention_mask is None:
            use_attention_mask = getattr(config, "feat_extract_norm", "layer") == "layer"
        self.use_attention_mask = bool(use_attention_mask)
        self.freeze_feature_encoder = bool(freeze_feature_encoder)
        self.source = source
        encoder = getattr(model, "encoder", None)
        self.num_layers = len(getattr(encoder, "layers", ()))
        # Stable-layer-norm encoders (wav2vec2-large-lv60, HuBERT-large) normalise after the
        # layers; the others before them.
        self._stable_ln = bool(getattr(config, "do_stable_layer_norm", False))
        if freeze_feature_encoder:
            _freeze_cnn(model)

    def _prepare(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        mask = valid_mask(lengths, wav.shape[1])
        maskf = mask.to(wav.dtype)
        if self.do_normalize:
            # Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm over the valid samples only.
            n = lengths.to(wav.dtype).clamp(min=1)[:, None]
            mean = (wav * maskf).sum(dim=1, keepdim=True) / n
            var = (((wav - mean) * maskf) ** 2).sum(dim=1, keepdim=True) / n
            wav = (wav - mean) / torch.sqrt(var + 1e-7)
        return wav * maskf, mask  # padding value 0, as the feature extractor pads

    def _frame_lengths(self, lengths: Tensor, frames: int) -> Tensor:
        out = self.model._get_feat_extract_output_lengths(lengths)
        return out.clamp(min=1, max=frames).long()

    def forward(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """wav (B, N) float32 16 kHz, lengths (B,) -> hidden (B, T, H), frame_lengths (B,)."""
        if self.frozen_layers is not None:
            hidden, frame_lengths = self.embed(wav, lengths)
            hidden = self.run_layers(hidden, frame_lengths, 0, self.num_layers)
            return self.finish(hidden), frame_lengths
        wav, mask = self._prepare(wav, lengths)
        attention_mask = mask.long() if self.use_attention_mask else None
        hidden = self.model(wav, attention_mask=attention_mask).last_hidden_state
        return hidden, self._frame_lengths(lengths, hidden.shape[1])

    def _check_staged(self) -> None:
        if self.model.config.model_type == "wavlm":
            # WavLM's layers pass a relative position bias computed by layer 0 upwards.
            raise EncoderError(
                "partial fine-tuning (student.trainable_layers other than 'all') is not "
                "supported for WavLM encoders; use trainable_layers: all"
            )

    def embed(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        self._check_staged()
        wav, _ = self._prepare(wav, lengths)
        m = self.model
        feats = m.feature_extractor(wav).transpose(1, 2)
        frame_lengths = self._frame_lengths(lengths, feats.shape[1])
        hidden = m.feature_projection(feats)
        if isinstance(hidden, tuple):  # wav2vec2 also returns the normalised CNN features
            hidden = hidden[0]
        if m.training and self.frozen_layers is None:
            hidden = m._mask_hidden_states(hidden)  # SpecAugment, as the stock forward
        enc = m.encoder
        if self.use_attention_mask:
            hidden = hidden * valid_mask(frame_lengths, hidden.shape[1])[..., None].to(hidden.dtype)
        hidden = hidden + enc.pos_conv_embed(hidden)
        if not self._stable_ln:
            hidden = enc.layer_norm(hidden)
        return enc.dropout(hidden), frame_lengths

    def run_layers(self, hidden: Tensor, frame_lengths: Tensor, start: int, stop: int) -> Tensor:
        self._check_staged()
        from transformers.masking_utils import create_bidirectional_mask

        enc = self.model.encoder
        mask = None
        if self.use_attention_mask:
            mask = create_bidirectional_mask(
                config=self.model.config,
                inputs_embeds=hidden,
                attention_mask=valid_mask(frame_lengths, hidden.shape[1]).long(),
            )
        layerdrop = float(getattr(self.model.config, "layerdrop", 0.0) or 0.0)
        for layer in enc.layers[start:stop]:
            if layer.training and layerdrop > 0.0 and torch.rand([]) < layerdrop:
                continue
            out = layer(hidden, attention_mask=mask)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    def finish(self, hidden: Tensor) -> Tensor:
        return self.model.encoder.layer_norm(hidden) if self._stable_ln else hidden

    def bottom_modules(self) -> list[nn.Module]:
        m = self.model
        mods = [m.feature_extractor, m.feature_projection, m.encoder.pos_conv_embed]
        mods.append(m.encoder.dropout)
        if not self._stable_ln:
            mods.append(m.encoder.layer_norm)
        if getattr(m, "masked_spec_embed", None) is not None:
            m.masked_spec_embed.requires_grad_(False)  # SpecAugment is off under a frozen bottom
        return mods

    def layer_modules(self) -> list[nn.Module]:
        return list(self.model.encoder.layers)

    def finish_modules(self) -> list[nn.Module]:
        return [self.model.encoder.layer_norm] if self._stable_ln else []

    def config_dict(self) -> dict[str, Any]:
        config = self.model.config.to_dict()
        return {
            "kind": self.kind,
            "model_type": self.model.config.model_type,
            "config": config,
            "do_normalize": self.do_normalize,
            "use_attention_mask": self.use_attention_mask,
            "freeze_feature_encoder": self.freeze_feature_encoder,
            "source": self.source,
        }


def _feature_extractor_settings(folder_or_id: str) -> dict[str, Any]:
    """do_normalize / return_attention_mask from the model's preprocessor config, if any."""
    try:
        from transformers import AutoFeatureExtractor

        fe = AutoFeatureExtractor.from_pretrained(folder_or_id)
    except Exception:  # no preprocessor_config.json: fall back to the model config
        return {}
    out = {}
    if hasattr(fe, "do_normalize"):
        out["do_normalize"] = bool(fe.do_normalize)
    rate = getattr(fe, "sampling_rate", SAMPLE_RATE)
    if rate != SAMPLE_RATE:
        raise EncoderError(
            f"{folder_or_id}: feature extractor expects {rate} Hz audio; emodistill uses "
            f"{SAMPLE_RATE} Hz"
        )
    return out


def _load_transformers_encoder(
    model_id: str, freeze_feature_encoder: bool, source: str
) -> TransformersSpeechEncoder:
    from transformers import AutoModel

    model = AutoModel.from_pretrained(model_id, dtype=torch.float32)
    if not hasattr(model, "_get_feat_extract_output_lengths"):
        raise EncoderError(
            f"{source}: {type(model).__name__} is not a wav2vec2-family speech encoder "
            "(HuBERT, wav2vec2, WavLM, data2vec-audio) or Whisper"
        )
    settings = _feature_extractor_settings(model_id)
    return TransformersSpeechEncoder(
        model,
        do_normalize=settings.get("do_normalize", True),
        use_attention_mask=None,  # from feat_extract_norm, as transformers documents
        freeze_feature_encoder=freeze_feature_encoder,
        source=source,
    )


# --------------------------------------------------------------------------- Whisper


def _mel_filters(n_mels: int, n_fft: int, sampling_rate: int) -> np.ndarray:
    """(n_fft // 2 + 1, n_mels) Slaney mel filters, exactly as WhisperFeatureExtractor."""
    from transformers.audio_utils import mel_filter_bank

    return mel_filter_bank(
        num_frequency_bins=1 + n_fft // 2,
        num_mel_filters=n_mels,
        min_frequency=0.0,
        max_frequency=8000.0,
        sampling_rate=sampling_rate,
        norm="slaney",
        mel_scale="slaney",
    )


class LogMelFrontend(nn.Module):
    """Whisper's log-mel spectrogram in torch, for variable-length batches.

    Matches ``WhisperFeatureExtractor`` on the valid frames: periodic Hann window, n_fft 400,
    hop 160, centred frames (reflect padding at the start; zeros after the end, as the
    extractor pads the audio with zeros to 30 s), power spectrum, Slaney mel filters,
    log10 clamped at 1e-10, dynamic range limited to max - 8 per utterance (max over its
    valid frames only, so padding never changes a clip's features), then (x + 4) / 4.
    The STFT is a strided conv1d with fixed windowed-DFT kernels, which exports to ONNX as a
    plain Conv.

    ``forward(wav (B, N), lengths (B,))`` -> ``(mel (B, n_mels, M), mel_lengths (B,))`` with
    ``M = N // hop`` and ``mel_lengths = lengths // hop``; padded frames are set to 0.
    """

    def __init__(
        self,
        n_mels: int = WHISPER_N_MELS,
        n_fft: int = WHISPER_N_FFT,
        hop_length: int = WHISPER_HOP,
        sampling_rate: int = SAMPLE_RATE,
        mel_filters: np.ndarray | None = None,
    ):
        super().__init__()
        self.n_mels, self.n_fft, self.hop_length = int(n_mels), int(n_fft), int(hop_length)
        self.sampling_rate = int(sampling_rate)
        if mel_filters is None:
            mel_filters = _mel_filters(self.n_mels, self.n_fft, self.sampling_rate)
        mel_filters = np.asarray(mel_filters, dtype=np.float64)
        n_freq = self.n_fft // 2 + 1
        if mel_filters.shape != (n_freq, self.n_mels):
            raise EncoderError(
                f"mel filters have shape {mel_filters.shape}, expected ({n_freq}, {self.n_mels})"
            )
        # (n_mels, n_freq); persistent so a saved model keeps whatever filters it was built with.
        self.register_buffer("mel_filters", torch.from_numpy(mel_filters.T).float())
        n = np.arange(self.n_fft)
        window = 0.5 - 0.5 * np.cos(2 * np.pi * n / self.n_fft)  # periodic Hann
        k = np.arange(n_freq)[:, None]
        angle = 2 * np.pi * k * n[None, :] / self.n_fft
        kernel = np.concatenate([window * np.cos(angle), -window * np.sin(angle)], axis=0)
        # Derived from n_fft alone: not saved.
        self.register_buffer(
            "dft_kernel", torch.from_numpy(kernel[:, None, :]).float(), persistent=False
        )

    def forward(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        # Always float32: under mixed precision a bf16 DFT/mel product would cost the log-mel
        # about two significant digits.
        with torch.autocast(device_type=wav.device.type, enabled=False):
            return self._forward(wav.float(), lengths)

    def _forward(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        batch, n = wav.shape
        wav = wav * valid_mask(lengths, n).to(wav.dtype)
        half = self.n_fft // 2
        x = wav[:, None, :]
        x = F.pad(x, (half, 0), mode="reflect")
        x = F.pad(x, (0, half))
        spec = F.conv1d(x, self.dft_kernel, stride=self.hop_length)  # (B, 2*n_freq, n//hop + 1)
        n_freq = self.n_fft // 2 + 1
        power = spec[:, :n_freq] ** 2 + spec[:, n_freq:] ** 2
        power = power[:, :, :-1]  # the extractor drops the last frame
        mel = torch.matmul(self.mel_filters, power)
        log_spec = torch.clamp(mel, min=1e-10).log10()
        mel_lengths = torch.div(lengths, self.hop_length, rounding_mode="floor").clamp(min=1)
        frames = valid_mask(mel_lengths, log_spec.shape[-1])[:, None, :]
        floor = torch.finfo(log_spec.dtype).min
        peak = log_spec.masked_fill(~frames, floor).amax(dim=(1, 2), keepdim=True)
        log_spec = torch.maximum(log_spec, peak - 8.0)
        log_spec = (log_spec + 4.0) / 4.0
        return log_spec * frames.to(log_spec.dtype), mel_lengths

    def config_dict(self) -> dict[str, Any]:
        return {
            "n_mels": self.n_mels,
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "sampling_rate": self.sampling_rate,
        }


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
        pre = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise EncoderError(f"{path}: not valid JSON: {err}") from err
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


def _load_whisper_transformers(
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


def _load_whisper_ct2(
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


# --------------------------------------------------------------------------- entry points


def is_ct2_folder(path: str | Path) -> bool:
    """True for a CTranslate2 model folder: ``model.bin`` and no transformers ``model_type``."""
    path = Path(path)
    if not (path / "model.bin").is_file():
        return False
    try:
        config = json.loads(config_path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return True
    return "model_type" not in config


def load_encoder(model_id: str, freeze_feature_encoder: bool = True) -> SpeechEncoder:
    """Load a pretrained speech encoder.

    Args:
        model_id: ``embedded:whisper-tiny.en``, a hub id or a local folder: a transformers
            wav2vec2-family model (HuBERT, wav2vec2, WavLM, data2vec-audio), a transformers
            Whisper model (``openai/whisper-*``), or a CTranslate2 / faster-whisper folder.
        freeze_feature_encoder: freeze the CNN front end (wav2vec2 family) or conv stem
            (Whisper).

    Returns:
        a :class:`SpeechEncoder` in train mode with pretrained weights.
    """
    resolved = assets.resolve(model_id)
    if is_ct2_folder(resolved):
        return _load_whisper_ct2(Path(resolved), freeze_feature_encoder, model_id)
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(resolved)
    except Exception as err:
        raise EncoderError(
            f"cannot load speech encoder {model_id!r} ({resolved}): {err}. Give a hub id, a "
            "transformers model folder or a CTranslate2 Whisper folder"
        ) from err
    if config.model_type == "whisper":
        return _load_whisper_transformers(resolved, freeze_feature_encoder, model_id)
    return _load_transformers_encoder(resolved, freeze_feature_encoder, model_id)


def build_encoder_from_config(d: dict[str, Any]) -> SpeechEncoder:
    """Rebuild an encoder's architecture (random weights) from its :meth:`config_dict`.

    Needs no hub access and no original files: load the weights from a saved state dict.
    """
    kind = d.get("kind")
    if kind == "transformers":
        from transformers import AutoConfig, AutoModel

        cfg = dict(d["config"])
        model_type = cfg.pop("model_type", d.get("model_type"))
        config = AutoConfig.for_model(model_type, **cfg)
        model = AutoModel.from_config(config)
        return TransformersSpeechEncoder(
            model,
            do_normalize=d.get("do_normalize", True),
            use_attention_mask=d.get("use_attention_mask"),
            freeze_feature_encoder=d.get("freeze_feature_encoder", True),
            source=d.get("source"),
        )
    if kind == "whisper":
        return WhisperSpeechEncoder(
            whisper_encoder_config(**d["config"]),
            LogMelFrontend(**d.get("frontend", {})),
            freeze_feature_encoder=d.get("freeze_feature_encoder", False),
            source=d.get("source"),
        )
    raise EncoderError(f"unknown encoder kind {kind!r} in config (expected transformers|whisper)")


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with requires_grad)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


__all__ = [
    "EncoderError",
    "LogMelFrontend",
    "SpeechEncoder",
    "TransformersSpeechEncoder",
    "WhisperSpeechEncoder",
    "build_encoder_from_config",
    "count_parameters",
    "is_ct2_folder",
    "load_encoder",
    "valid_mask",
]
