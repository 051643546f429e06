"""The EmoDistill student: speech encoder -> masked mean pool -> two GELU heads -> FFN classifier.

The only network needed at inference. Its model folder holds ``config.json`` (labels, encoder
architecture, head sizes, optionally the training config) and ``model.safetensors``; it loads
with :func:`load_student` without teachers, tokenizer, opensmile, CTranslate2 files or the hub.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from emodistill._io import atomic_path, write_text_atomic
from emodistill.audio import SAMPLE_RATE
from emodistill.models.encoders import (
    SpeechEncoder,
    build_encoder_from_config,
    load_encoder,
    valid_mask,
)

MODEL_FORMAT = "emodistill-student"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class StudentOutput(NamedTuple):
    """logits (B, C); emb_linguistic (B, d_L) = e^_L; emb_prosodic (B, d_P) = e^_P."""

    logits: Tensor
    emb_linguistic: Tensor
    emb_prosodic: Tensor


def ffn(d_in: int, d_hidden: int, d_out: int, dropout: float) -> nn.Sequential:
    """Linear -> GELU -> Dropout -> Linear."""
    return nn.Sequential(
        nn.Linear(d_in, d_hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_hidden, d_out)
    )


def masked_mean(hidden: Tensor, lengths: Tensor) -> Tensor:
    """Mean of hidden (B, T, H) over the first lengths[b] frames -> (B, H)."""
    mask = valid_mask(lengths, hidden.shape[1]).to(hidden.dtype)[:, :, None]
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class EmoDistillStudent(nn.Module):
    """Speech-only student S of DESIGN.md section 1.

    Args:
        encoder: a :class:`SpeechEncoder` (raw audio in, frame features out).
        num_labels: number of emotion classes C.
        d_linguistic: size d_L of e^_L (the linguistic teacher's embedding size).
        d_prosodic: size d_P of e^_P (the prosodic teacher's embedding size).
        projection_hidden: hidden size of each projection head.
        classifier_hidden: hidden size of the classifier.
        dropout: dropout inside the heads and the classifier.
    """

    def __init__(
        self,
        encoder: SpeechEncoder,
        num_labels: int,
        d_linguistic: int,
        d_prosodic: int,
        projection_hidden: int = 256,
        classifier_hidden: int = 256,
        dropout: float = 0.1,
    ):
        super().__init__()
        if num_labels < 2:
            raise ValueError(f"num_labels must be >= 2, got {num_labels}")
        self.encoder = encoder
        h = encoder.hidden_size
        self.head_config = {
            "num_labels": int(num_labels),
            "d_linguistic": int(d_linguistic),
            "d_prosodic": int(d_prosodic),
            "projection_hidden": int(projection_hidden),
            "classifier_hidden": int(classifier_hidden),
            "dropout": float(dropout),
        }
        self.proj_linguistic = ffn(h, projection_hidden, d_linguistic, dropout)
        self.proj_prosodic = ffn(h, projection_hidden, d_prosodic, dropout)
        self.classifier = ffn(d_linguistic + d_prosodic, classifier_hidden, num_labels, dropout)

    @property
    def num_labels(self) -> int:
        return self.head_config["num_labels"]

    def pooled(self, wav: Tensor, lengths: Tensor) -> Tensor:
        """wav (B, N), lengths (B,) -> utterance vector (B, H), mean over valid frames."""
        hidden, frame_lengths = self.encoder(wav, lengths)
        return masked_mean(hidden, frame_lengths)

    def forward(self, wav: Tensor, lengths: Tensor | None = None) -> StudentOutput:
        """wav (B, N) float32 16 kHz; lengths (B,) long valid samples (None: all valid)."""
        if lengths is None:
            lengths = torch.full((wav.shape[0],), wav.shape[1], dtype=torch.long, device=wav.device)
        pooled = self.pooled(wav, lengths)
        e_l = self.proj_linguistic(pooled)
        e_p = self.proj_prosodic(pooled)
        logits = self.classifier(torch.cat([e_l, e_p], dim=-1))
        return StudentOutput(logits, e_l, e_p)


def build_student(cfg, num_labels: int, d_linguistic: int, d_prosodic: int) -> EmoDistillStudent:
    """Student with a pretrained encoder (``cfg.encoder`` via :func:`load_encoder`).

    Args:
        cfg: a :class:`emodistill.config.StudentConfig`.
        num_labels, d_linguistic, d_prosodic: class count and the teachers' embedding sizes.
    """
    encoder = load_encoder(cfg.encoder, freeze_feature_encoder=cfg.freeze_feature_encoder)
    return EmoDistillStudent(
        encoder,
        num_labels=num_labels,
        d_linguistic=d_linguistic,
        d_prosodic=d_prosodic,
        projection_hidden=cfg.projection_hidden,
        classifier_hidden=cfg.classifier_hidden,
        dropout=cfg.dropout,
    )


def _state_for_saving(model: nn.Module) -> dict[str, Tensor]:
    """CPU, contiguous tensors; tensors sharing storage are copied (safetensors refuses them)."""
    seen: set[tuple[int, int]] = set()
    out = {}
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        key = (t.untyped_storage().data_ptr(), t.storage_offset())
        if t.numel() and (key in seen or t.untyped_storage().nbytes() != t.nbytes):
            t = t.clone()
        seen.add(key)
        out[name] = t
    return out


_RESERVED = {"format", "format_version", "labels", "sample_rate", "encoder", "heads"}


def save_student(
    model: EmoDistillStudent,
    folder: str | Path,
    labels: list[str],
    training_config: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Write ``folder/config.json`` and ``folder/model.safetensors`` (each atomically).

    Args:
        model: the student.
        folder: created if missing; existing files of the same names are replaced.
        labels: class names in logit order (length = ``num_labels``).
        training_config: the full ``Config.to_dict()`` used to train it (optional).
        extra: more top-level keys for config.json (e.g. metrics, fold); may not override the
            format keys.

    Returns:
        the folder.
    """
    from safetensors.torch import save_file

    labels = [str(x) for x in labels]
    if len(labels) != model.num_labels:
        raise ValueError(f"{len(labels)} labels given for a model with {model.num_labels} outputs")
    extra = dict(extra or {})
    clash = _RESERVED & set(extra) | ({"training_config"} & set(extra))
    if clash:
        raise ValueError(f"extra may not set reserved config key(s) {sorted(clash)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "format": MODEL_FORMAT,
        "format_version": FORMAT_VERSION,
        "labels": labels,
        "sample_rate": SAMPLE_RATE,
        "encoder": model.encoder.config_dict(),
        "heads": dict(model.head_config),
        "training_config": training_config,
        **extra,
    }
    text = json.dumps(config, indent=2, default=_json_default) + "\n"
    state = _state_for_saving(model)
    with atomic_path(folder / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    write_text_atomic(folder / CONFIG_NAME, text)
    return folder


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def read_student_config(folder: str | Path) -> dict[str, Any]:
    """config.json of a student model folder, checked for format and version."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (not an emodistill model folder?)")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON: {err}") from err
    if config.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: format is {config.get('format')!r}, expected {MODEL_FORMAT!r}")
    if int(config.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {config['format_version']} is newer than this emodistill "
            f"supports ({FORMAT_VERSION}); upgrade emodistill"
        )
    for key in ("labels", "encoder", "heads"):
        if key not in config:
            raise ValueError(f"{path}: missing key {key!r}")
    return config


def student_from_config(config: dict[str, Any]) -> EmoDistillStudent:
    """The architecture described by a model folder's config.json, with random weights."""
    encoder = build_encoder_from_config(config["encoder"])
    return EmoDistillStudent(encoder, **config["heads"])


def load_student(
    folder: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[EmoDistillStudent, dict[str, Any]]:
    """Load a student model folder written by :func:`save_student`.

    Returns:
        (model in eval mode on ``map_location``, config dict).
    """
    from safetensors.torch import load_file

    folder = Path(folder)
    config = read_student_config(folder)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: no such file")
    model = student_from_config(config)
    state = load_file(str(weights), device=str(map_location))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{weights}: weights do not match {folder / CONFIG_NAME}: {err}") from err
    model.to(map_location)
    model.eval()
    return model, config


__all__ = [
    "EmoDistillStudent",
    "StudentOutput",
    "build_student",
    "load_student",
    "masked_mean",
    "read_student_config",
    "save_student",
    "student_from_config",
]
