"""Tiny random models for tests, saved the way hub models are so the real loading path runs.

Each factory takes the sizes a test needs; seeds are fixed so a test's model is reproducible.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_bert_folder(
    folder: Path,
    words: Iterable[str],
    layers: int = 2,
    intermediate_size: int = 64,
    max_positions: int = 64,
    dropout: float | None = None,
) -> Path:
    """A random BERT (hidden 32, 2 heads) + a word-level WordPiece tokenizer over ``words``.

    transformers 5.x ignores ``vocab_file=``, so the vocabulary is passed as a dict.
    ``dropout`` overrides both of BERT's dropout probabilities (None keeps the defaults).
    """
    from transformers import BertConfig, BertModel, BertTokenizer

    tokens = [*SPECIAL_TOKENS, *words]
    tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(tokens)})
    torch.manual_seed(0)
    extra = {}
    if dropout is not None:
        extra = {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
    config = BertConfig(
        vocab_size=len(tokens),
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_positions,
        **extra,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_hubert_config(
    layers: int = 1,
    intermediate_size: int = 37,
    conv_stride: tuple[int, int] = (10, 8),
    conv_kernel: tuple[int, int] = (10, 8),
    norm: str = "layer",
):
    """A random-HuBERT config (hidden 32, 2 heads); ``norm`` is "layer" or "group"."""
    from transformers import HubertConfig

    return HubertConfig(
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=intermediate_size,
        conv_dim=(16, 16),
        conv_stride=conv_stride,
        conv_kernel=conv_kernel,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm=norm,
        do_stable_layer_norm=norm == "layer",
    )


def tiny_hubert_folder(folder: Path, **config_kw) -> Path:
    """A random HuBERT (see :func:`tiny_hubert_config`) saved as a transformers folder."""
    from transformers import HubertModel

    torch.manual_seed(0)
    HubertModel(tiny_hubert_config(**config_kw)).save_pretrained(folder)
    return folder


def tiny_whisper_encoder(layers: int = 2, **kw):
    """A random Whisper encoder (d_model 32, 2 heads, 80 mel bins) with the sliced forward."""
    from emodistill.models.encoders import WhisperSpeechEncoder, whisper_encoder_config

    torch.manual_seed(0)
    cfg = whisper_encoder_config(
        d_model=32,
        encoder_layers=layers,
        encoder_attention_heads=2,
        encoder_ffn_dim=64,
        num_mel_bins=80,
        max_source_positions=1500,
    )
    return WhisperSpeechEncoder(cfg, **kw)
