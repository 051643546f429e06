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

from emodistill.models.encoders.base import (
    EncoderError,
    SpeechEncoder,
    count_parameters,
    parse_trainable_layers,
    valid_mask,
)
from emodistill.models.encoders.hubert import TransformersSpeechEncoder
from emodistill.models.encoders.loading import (
    build_encoder_from_config,
    is_ct2_folder,
    load_encoder,
)
from emodistill.models.encoders.logmel import LogMelFrontend
from emodistill.models.encoders.whisper import WhisperSpeechEncoder, whisper_encoder_config

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
    "parse_trainable_layers",
    "valid_mask",
    "whisper_encoder_config",
]
