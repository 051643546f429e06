"""transformers wav2vec2-family encoders (HuBERT, wav2vec2, WavLM, data2vec-audio)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from emodistill.audio import SAMPLE_RATE
from emodistill.models.encoders.base import EncoderError, SpeechEncoder, valid_mask


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


def load_transformers_encoder(
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
