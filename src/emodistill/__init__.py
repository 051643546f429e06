"""emodistill: speech emotion recognition distilled from linguistic and prosodic teachers.

Public API (heavy modules are imported lazily so ``import emodistill`` stays light)::

    from emodistill import EmoDistill
    model = EmoDistill.from_pretrained("runs/demo/model")
    model.predict("clip.wav")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emodistill.util.version import __version__

_LAZY = {
    "EmoDistill": "emodistill.inference.model",
    "Config": "emodistill.config",
    "load_config": "emodistill.config",
    "load_manifest": "emodistill.corpora.manifest",
    "Manifest": "emodistill.corpora.manifest",
    "Utterance": "emodistill.corpora.manifest",
    "make_folds": "emodistill.corpora.splits",
    "load_audio": "emodistill.audio",
    "extract_features": "emodistill.features",
    "train_teacher": "emodistill.training.teachers",
    "train_teachers": "emodistill.training.teachers",
    "distill": "emodistill.training.distill",
    "cross_validate": "emodistill.training.cv",
    "ablate": "emodistill.training.cv",
    "sweep_temperature": "emodistill.training.cv",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from emodistill.inference.model import EmoDistill  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'emodistill' has no attribute {name!r}")
