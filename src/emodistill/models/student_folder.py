"""Student model folders: :func:`save_student` writes one, :func:`load_student` reads one back
(config + safetensors weights; the format lives in :mod:`emodistill.models.folder`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from emodistill.audio import SAMPLE_RATE
from emodistill.models.encoders import build_encoder_from_config
from emodistill.models.folder import (
    FORMAT_VERSION,
    STUDENT_FORMAT,
    BadModelConfig,
    config_path,
    config_text,
    load_weights,
    read_config,
    weights_path,
    write_model_files,
)
from emodistill.models.student import EmoDistillStudent, StudentDims


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
    """Write the model folder's config and weights (each atomically; other files stay).

    Args:
        model: the student.
        folder: created if missing; existing files of the same names are replaced.
        labels: class names in logit order (length = ``num_labels``).
        training_config: the full ``Config.to_dict()`` used to train it (optional).
        extra: more top-level keys for the config (e.g. metrics, fold); may not override the
            format keys.

    Returns:
        the folder.
    """
    labels = [str(x) for x in labels]
    if len(labels) != model.num_labels:
        raise ValueError(f"{len(labels)} labels given for a model with {model.num_labels} outputs")
    extra = dict(extra or {})
    clash = _RESERVED & set(extra) | ({"training_config"} & set(extra))
    if clash:
        raise ValueError(f"extra may not set reserved config key(s) {sorted(clash)}")
    config = {
        "format": STUDENT_FORMAT,
        "format_version": FORMAT_VERSION,
        "labels": labels,
        "sample_rate": SAMPLE_RATE,
        "encoder": model.encoder.config_dict(),
        "heads": model.dims.to_dict(),
        "training_config": training_config,
        **extra,
    }
    text = config_text(config, default=_json_default)
    return write_model_files(folder, text, _state_for_saving(model))


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def read_student_config(folder: str | Path) -> dict[str, Any]:
    """The config of a student model folder, checked for format, version and keys
    (:func:`emodistill.models.folder.read_config`)."""
    return read_config(folder)


def student_from_config(config: dict[str, Any]) -> EmoDistillStudent:
    """The architecture described by a model folder's config, with random weights."""
    encoder = build_encoder_from_config(config["encoder"])
    return EmoDistillStudent.from_dims(encoder, StudentDims.from_dict(config["heads"]))


def load_student(
    folder: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[EmoDistillStudent, dict[str, Any]]:
    """Load a student model folder written by :func:`save_student`.

    Returns:
        (model in eval mode on ``map_location``, config dict).
    """
    folder = Path(folder)
    config = read_config(folder)
    model = student_from_config(config)
    state = load_weights(folder, device=str(map_location))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise BadModelConfig(
            f"{weights_path(folder)}: weights do not match {config_path(folder)}: {err}"
        ) from err
    model.to(map_location)
    model.eval()
    return model, config
