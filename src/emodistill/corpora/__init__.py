"""Corpora as manifest CSVs: the manifest contract, IEMOCAP, the synthetic demo corpus, folds."""

from emodistill.corpora.manifest import (
    MANIFEST_COLUMNS,
    Manifest,
    ManifestError,
    Utterance,
    load_manifest,
    write_manifest,
)
from emodistill.corpora.splits import Fold, fold_utterances, make_folds, select_folds

__all__ = [
    "MANIFEST_COLUMNS",
    "Fold",
    "Manifest",
    "ManifestError",
    "Utterance",
    "fold_utterances",
    "load_manifest",
    "make_folds",
    "select_folds",
    "write_manifest",
]
