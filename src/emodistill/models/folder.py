"""Model folders: their file names, format and version, the one config check, atomic writes.

Every trained network (the speech-only student and both teachers) lives in a folder holding
:data:`CONFIG_NAME` (a JSON object) and :data:`WEIGHTS_NAME` (safetensors); nothing else is
needed to load it. A student's config carries ``"format": STUDENT_FORMAT`` and a
``format_version``; a teacher's carries its ``model_type``. A student folder may also hold the
ONNX exports :data:`ONNX_NAME` and :data:`ONNX_INT8_NAME`. Other modules name these files only
through this module.

    >>> from pathlib import Path
    >>> config_path(Path("runs/demo/model")).as_posix()
    'runs/demo/model/config.json'
    >>> ONNX_FILES["onnx-int8"]
    'model.int8.onnx'
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from emodistill.util.files import (
    atomic_folder,
    atomic_path,
    json_text,
    read_json,
    write_text_atomic,
)

#: The model's description (JSON). transformers and CTranslate2 folders use the same name.
CONFIG_NAME = "config.json"
#: The weights (safetensors).
WEIGHTS_NAME = "model.safetensors"
#: ``format`` tag of a speech-only student's config.
STUDENT_FORMAT = "emodistill-student"
#: Newest student ``format_version`` this code reads (and the one it writes).
FORMAT_VERSION = 1
#: The float ONNX export inside a student folder.
ONNX_NAME = "model.onnx"
#: The int8 ONNX export inside a student folder (``export-onnx --quantize int8``).
ONNX_INT8_NAME = "model.int8.onnx"
#: ONNX backends of ``EmoDistill.from_pretrained`` and the file each reads.
ONNX_FILES = {"onnx": ONNX_NAME, "onnx-int8": ONNX_INT8_NAME}
#: The model card of a student folder (Hugging Face convention; ``emodistill.models.card``).
#: Optional: a folder without one (written before cards existed) loads the same.
CARD_NAME = "README.md"
#: Every file a student folder may hold (what copying a folder carries).
STUDENT_FILES = (CONFIG_NAME, WEIGHTS_NAME, ONNX_NAME, ONNX_INT8_NAME, CARD_NAME)


class ModelLoadError(RuntimeError):
    """A model folder (or hub id) that cannot be loaded; the message says which and why."""


class NoModelFolder(ModelLoadError, FileNotFoundError):
    """The folder (or its config) does not exist."""


class BadModelConfig(ModelLoadError, ValueError):
    """The config is not valid JSON, is another kind of model, or misses a key."""


def config_path(folder: str | Path) -> Path:
    """``folder/config.json``."""
    return Path(folder) / CONFIG_NAME


def weights_path(folder: str | Path) -> Path:
    """``folder/model.safetensors``."""
    return Path(folder) / WEIGHTS_NAME


def card_path(folder: str | Path) -> Path:
    """``folder/README.md``: the model card."""
    return Path(folder) / CARD_NAME


def is_model_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds both a config and weights (a finished save)."""
    return config_path(folder).is_file() and weights_path(folder).is_file()


def model_files(folder: str | Path) -> tuple[Path, Path]:
    """(config, weights): the files that define a model (what a cache key hashes)."""
    return config_path(folder), weights_path(folder)


# --------------------------------------------------------------------------- reading


def read_config(
    folder: str | Path, model_type: str | None = None, what: str = "model"
) -> dict[str, Any]:
    """The config of a model folder, checked: the one validator of every model folder.

    Args:
        folder: the model folder.
        model_type: ``None`` for a speech-only student (format, version and the keys
            ``labels``, ``encoder`` and ``heads`` checked); ``"any"`` for any model (a JSON
            object); otherwise the ``model_type`` a teacher's config must carry.
        what: words for the message when there is no config (``"prosodic teacher"``).

    Raises:
        NoModelFolder: no config (message names the folder and ``what`` it should be).
        BadModelConfig: invalid JSON, another kind of model, a newer format, a missing key.
    """
    folder = Path(folder)
    path = config_path(folder)
    if not path.is_file():
        raise NoModelFolder(f"{folder}: not a {what} folder (no {CONFIG_NAME})")
    try:
        config = read_json(path)
    except ValueError as err:  # "<path>: not valid JSON (...)"
        raise BadModelConfig(str(err)) from err
    if not isinstance(config, dict):
        raise BadModelConfig(f"{path}: not a JSON object ({type(config).__name__})")
    if model_type == "any":
        return config
    if model_type is not None:
        if config.get("model_type") != model_type:
            raise BadModelConfig(
                f"{path}: model_type is {config.get('model_type')!r}, expected {model_type!r}"
            )
        return config
    if config.get("format") != STUDENT_FORMAT:
        raise BadModelConfig(
            f"{path}: not an emodistill speech-only model (format {config.get('format')!r}, "
            f"expected {STUDENT_FORMAT!r})"
        )
    if int(config.get("format_version", 0)) > FORMAT_VERSION:
        raise BadModelConfig(
            f"{path}: format_version {config['format_version']} is newer than this emodistill "
            f"supports ({FORMAT_VERSION}); upgrade emodistill"
        )
    if not config.get("labels"):
        raise BadModelConfig(f"{path}: no labels")
    for key in ("encoder", "heads"):
        if key not in config:
            raise BadModelConfig(f"{path}: missing key {key!r}")
    return config


def load_weights(folder: str | Path, device: str = "cpu") -> dict[str, Any]:
    """The state dict in ``folder/model.safetensors`` (tensors on ``device``).

    Raises:
        NoModelFolder: no weights file (a save that did not finish).
        ModelLoadError: a weights file that cannot be read (truncated), named.
    """
    from safetensors.torch import load_file

    path = weights_path(folder)
    if not path.is_file():
        raise NoModelFolder(f"{path}: no such file")
    try:
        return load_file(str(path), device=str(device))
    except Exception as err:  # SafetensorError: truncated or overwritten file
        raise ModelLoadError(
            f"{path}: unreadable weights ({type(err).__name__}: {err}); the file is truncated or "
            "corrupt: copy it again, or delete its folder and rerun the command that made it"
        ) from err


# --------------------------------------------------------------------------- writing


def _save_weights(state: Mapping[str, Any], path: Path) -> None:
    from safetensors.torch import save_file

    save_file(dict(state), str(path), metadata={"format": "pt"})


def config_text(config: Mapping[str, Any], default: Callable[[Any], Any] | None = None) -> str:
    """The config as written: :func:`emodistill.util.files.json_text`, indent 2, ASCII escapes.

    ASCII escapes keep the bytes of folders written before (a teacher cache hashes them).
    """
    return json_text(config, default=default, ensure_ascii=True)


def write_model_files(folder: str | Path, config_json: str, state: Mapping[str, Any]) -> Path:
    """Write weights, then config, each atomically, into ``folder`` (other files stay).

    For the student, whose folder also holds predictions and exports. A reader sees either the
    old config or the new one, and a config never names weights that are not there yet.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(weights_path(folder)) as tmp:
        _save_weights(state, tmp)
    write_text_atomic(config_path(folder), config_json)
    return folder


def write_model_folder(
    folder: str | Path,
    config: Mapping[str, Any],
    state: Mapping[str, Any],
    extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write a whole model folder (config, weights, ``extra(tmp)``'s files) and swap it in.

    The files go into a temporary sibling folder that then replaces ``folder``
    (:func:`emodistill.util.files.atomic_folder`), so a crash never leaves a half-written model.
    """
    folder = Path(folder)
    with atomic_folder(folder) as tmp:
        if extra is not None:
            extra(tmp)
        config_path(tmp).write_text(config_text(config))
        _save_weights(state, weights_path(tmp))
    return folder


def copy_model_files(src: str | Path, dest: str | Path) -> Path:
    """Copy the files of a student folder (config, weights, ONNX exports present) into ``dest``,
    each atomically; a file that already is the destination is left alone."""
    src, dest = Path(src), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in STUDENT_FILES:
        source = src / name
        if source.is_file() and source.resolve() != (dest / name).resolve():
            with atomic_path(dest / name) as tmp:
                shutil.copyfile(source, tmp)
    return dest


def replace_with_copy(src: str | Path, dest: str | Path) -> Path:
    """Replace ``dest`` whole by a copy of the model folder ``src`` (its model files only).

    Raises:
        NoModelFolder: ``src`` lacks its config or weights (did the training finish?).
    """
    src, dest = Path(src), Path(dest)
    if not is_model_folder(src):
        missing = WEIGHTS_NAME if config_path(src).is_file() else CONFIG_NAME
        raise NoModelFolder(f"{src}: no {missing} (did the student training finish?)")
    with atomic_folder(dest) as tmp:
        copy_model_files(src, tmp)
    return dest


# --------------------------------------------------------------------------- local or hub


#: What a hub id looks like: ``name`` (legacy canonical ids) or ``owner/name``.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


class NotAHubId(ValueError):
    """A path that does not exist locally and cannot be a hub id."""


def check_hub_id(model_id: str) -> None:
    """Refuse a ``model_id`` that does not exist locally and is not a plausible hub id.

    A mistyped local path (``./runs/modle``, ``/data/m``, ``runs/a/b``, or ``runs/modle`` while
    ``runs/`` is a folder here) is never sent to the hub, where it could name a stranger's model.

    Raises:
        NotAHubId: the message names the path and says it does not exist.
    """
    if Path(model_id).exists():
        return
    owner = model_id.split("/", 1)[0]
    if not _HUB_ID.match(model_id) or model_id.startswith((".", "~")):
        raise NotAHubId(f"{model_id}: no such local folder (and not a hub id like owner/name)")
    if "/" in model_id and Path(owner).is_dir():
        raise NotAHubId(
            f"{model_id}: no such local folder ({owner}/ exists here, so this is a local path, "
            "not a hub id)"
        )


def resolve_model_folder(model: str | os.PathLike) -> Path:
    """A local model folder for ``model``: a folder as is, or a hub id via ``snapshot_download``.

    Raises:
        ModelLoadError: neither a folder nor a downloadable hub id (offline: says so).
    """
    path = Path(model)
    if path.is_dir():
        return path
    text = str(model)
    if path.exists() or text.count("/") != 1:
        raise ModelLoadError(f"{text}: no such model folder")
    try:
        check_hub_id(text)  # a mistyped local path never goes to the hub
    except NotAHubId as err:
        raise ModelLoadError(
            str(err).replace("no such local folder", "no such model folder")
        ) from err
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=text))
    except Exception as err:  # hub client raises many types (offline, 404, auth)
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
        hint = " (HF_HUB_OFFLINE is set: only local folders can be loaded)" if offline else ""
        raise ModelLoadError(
            f"{text}: not a local folder, and the hub download failed{hint}: "
            f"{type(err).__name__}: {err}"
        ) from err
