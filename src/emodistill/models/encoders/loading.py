"""Entry points: load a pretrained encoder by id, or rebuild one from its config dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emodistill.models import assets
from emodistill.models.encoders.base import EncoderError, SpeechEncoder
from emodistill.models.encoders.hubert import TransformersSpeechEncoder, load_transformers_encoder
from emodistill.models.encoders.logmel import LogMelFrontend
from emodistill.models.encoders.whisper import (
    WhisperSpeechEncoder,
    load_whisper_ct2,
    load_whisper_transformers,
    whisper_encoder_config,
)
from emodistill.models.folder import config_path
from emodistill.util.files import read_json


def is_ct2_folder(path: str | Path) -> bool:
    """True for a CTranslate2 model folder: ``model.bin`` and no transformers ``model_type``."""
    path = Path(path)
    if not (path / "model.bin").is_file():
        return False
    try:
        config = read_json(config_path(path))
    except (OSError, ValueError):
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
        return load_whisper_ct2(Path(resolved), freeze_feature_encoder, model_id)
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(resolved)
    except Exception as err:
        raise EncoderError(
            f"cannot load speech encoder {model_id!r} ({resolved}): {err}. Give a hub id, a "
            "transformers model folder or a CTranslate2 Whisper folder"
        ) from err
    if config.model_type == "whisper":
        return load_whisper_transformers(resolved, freeze_feature_encoder, model_id)
    return load_transformers_encoder(resolved, freeze_feature_encoder, model_id)


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
