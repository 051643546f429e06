"""Linguistic teacher T_L: a transformers text encoder, pooled, with a linear emotion classifier.

The encoder is any ``AutoModel`` (hub id, local folder, or ``embedded:all-minilm-l6-v2``) and is
fine-tuned end to end. A trained teacher is saved as a self-contained model folder::

    config.json         {"model_type": "emodistill-linguistic-teacher", "encoder_config": {...},
                         "head": {...}, "labels": [...], "training_config": {...}}
    model.safetensors   encoder + classifier weights
    tokenizer files     whatever the tokenizer's ``save_pretrained`` writes

and loads back with :meth:`LinguisticTeacher.from_pretrained` without the hub (the encoder is
rebuilt with ``AutoModel.from_config`` from the saved transformers config).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from emodistill.models.folder import (
    BadModelConfig,
    load_weights,
    read_config,
    weights_path,
    write_model_folder,
)

MODEL_TYPE = "emodistill-linguistic-teacher"


class MissingTranscriptsError(ValueError):
    """Utterances without transcripts reached the linguistic teacher."""


@dataclass
class LinguisticHeadConfig:
    """Everything besides the encoder's own config that rebuilds a :class:`LinguisticTeacher`."""

    labels: list[str] = field(default_factory=list)
    pooling: str = "mean"  # mean over the attention mask | cls (first token)
    dropout: float = 0.1
    max_length: int = 64
    encoder: str = ""  # where the encoder came from (informational)


class LinguisticTeacher(nn.Module):
    """Text encoder -> pooled embedding e_L -> dropout -> linear classifier.

    Args:
        encoder: a transformers ``PreTrainedModel`` returning ``last_hidden_state`` (B, L, H).
        head: labels (C = len(labels)), pooling, dropout and tokenizer max length.
        tokenizer: the matching tokenizer (kept for :meth:`encode` and saving; not a parameter).
    """

    def __init__(self, encoder: nn.Module, head: LinguisticHeadConfig, tokenizer: Any = None):
        super().__init__()
        if head.pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {head.pooling!r}")
        if not head.labels:
            raise ValueError("LinguisticHeadConfig.labels is empty")
        self.encoder = encoder
        self.head_config = head
        self.tokenizer = tokenizer
        hidden = int(encoder.config.hidden_size)
        self.dropout = nn.Dropout(head.dropout)
        self.classifier = nn.Linear(hidden, len(head.labels))

    @property
    def embedding_dim(self) -> int:
        """d_L, the encoder's hidden size."""
        return int(self.encoder.config.hidden_size)

    @property
    def num_classes(self) -> int:
        return len(self.head_config.labels)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_encoder(
        cls,
        model_id: str,
        labels: Sequence[str],
        pooling: str = "mean",
        dropout: float = 0.1,
        max_length: int = 64,
    ) -> LinguisticTeacher:
        """A new teacher around the pretrained encoder ``model_id`` (hub id, folder, embedded:*).

        The classifier is freshly initialised; the tokenizer comes from the same folder.
        """
        from transformers import AutoModel, AutoTokenizer

        from emodistill.models.assets import resolve

        source = resolve(model_id)
        try:
            encoder = AutoModel.from_pretrained(source)
            tokenizer = AutoTokenizer.from_pretrained(source)
        except OSError as err:
            raise OSError(f"cannot load text encoder {model_id!r} (from {source}): {err}") from err
        head = LinguisticHeadConfig(
            labels=list(labels),
            pooling=pooling,
            dropout=dropout,
            max_length=max_length,
            encoder=model_id,
        )
        return cls(encoder, head, tokenizer)

    @classmethod
    def from_pretrained(cls, folder: str | Path, map_location: str = "cpu") -> LinguisticTeacher:
        """Load a teacher saved by :meth:`save_pretrained` (no hub access needed)."""
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        folder = Path(folder)
        data = read_config(folder, MODEL_TYPE, "linguistic teacher")
        enc_cfg = dict(data["encoder_config"])
        enc_type = enc_cfg.pop("model_type")
        enc_config = AutoConfig.for_model(enc_type, **enc_cfg)
        encoder = AutoModel.from_config(enc_config)
        # Pass the encoder's config: the folder's own config is ours, not a transformers one.
        tokenizer = AutoTokenizer.from_pretrained(str(folder), config=enc_config)
        model = cls(encoder, LinguisticHeadConfig(**data["head"]), tokenizer)
        state = load_weights(folder, device=map_location)
        missing, unexpected = model.load_state_dict(state, strict=False)
        # Buffers some encoders create deterministically (e.g. position_ids) may be absent.
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise BadModelConfig(
                f"{weights_path(folder)}: weights do not match the config "
                f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
            )
        return model.eval()

    def save_pretrained(
        self, folder: str | Path, training_config: dict[str, Any] | None = None
    ) -> Path:
        """Write the config, the weights and the tokenizer files as the model folder ``folder``.

        The whole folder is replaced at once (``model_folder.write_model_folder``), so a crash
        never leaves a half-written teacher behind.
        """
        enc_cfg = self.encoder.config.to_dict()
        config = {
            "model_type": MODEL_TYPE,
            "encoder_config": enc_cfg,
            "head": asdict(self.head_config),
            "labels": list(self.head_config.labels),
            "embedding_dim": self.embedding_dim,
        }
        if training_config is not None:
            config["training_config"] = training_config
        tokenizer = self.tokenizer
        # Tied/shared tensors must be cloned for safetensors; contiguous for the same reason.
        state = {k: v.detach().cpu().contiguous().clone() for k, v in self.state_dict().items()}
        return write_model_folder(
            folder,
            config,
            state,
            extra=None if tokenizer is None else lambda tmp: tokenizer.save_pretrained(str(tmp)),
        )

    # ------------------------------------------------------------------ use

    def encode(self, texts: Sequence[str], device: str | torch.device = "cpu") -> dict:
        """Tokenise ``texts`` (padded to the longest, truncated to ``max_length``).

        Returns ``{"input_ids": (B, L) long, "attention_mask": (B, L) long}``.
        """
        if self.tokenizer is None:
            raise RuntimeError("this LinguisticTeacher has no tokenizer")
        batch = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.head_config.max_length,
            return_tensors="pt",
        )
        return {
            "input_ids": batch["input_ids"].to(device),
            "attention_mask": batch["attention_mask"].to(device),
        }

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Classify token sequences.

        Args:
            input_ids: (B, L) token ids.
            attention_mask: (B, L), 1 for real tokens, 0 for padding.

        Returns:
            logits (B, C) and the pooled embedding e_L (B, d_L) (before dropout).
        """
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.head_config.pooling == "cls":
            emb = hidden[:, 0]
        else:
            mask = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, L, 1)
            emb = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        logits = self.classifier(self.dropout(emb))
        return logits, emb


def check_transcripts(utterances: Sequence[Any], manifest_path: str | Path | None) -> None:
    """Raise :class:`MissingTranscriptsError` if any utterance lacks a transcript.

    The message names the manifest and the command that fills transcripts in.
    """
    missing = [u.id for u in utterances if not (u.transcript or "").strip()]
    if not missing:
        return
    where = str(manifest_path) if manifest_path else "the manifest"
    shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
    raise MissingTranscriptsError(
        f"{where}: {len(missing)} of {len(utterances)} utterances have no transcript ({shown}); "
        "the linguistic teacher needs text. Fill them in with speech recognition: "
        f"`emodistill corpus transcribe {where} --out WITH_TRANSCRIPTS.csv`, then train on the "
        "new manifest."
    )
