"""Corpora as manifest CSVs: the manifest contract, IEMOCAP, the synthetic demo corpus, folds."""

from emodistill.corpora.manifest import (
    MANIFEST_COLUMNS,
    Manifest,
    ManifestError,
    Utterance,
    load_manifest,
    write_manifest,
)

__all__ = [
    "MANIFEST_COLUMNS",
    "Manifest",
    "ManifestError",
    "Utterance",
    "load_manifest",
    "write_manifest",
]
