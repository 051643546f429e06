"""eGeMAPS features: extraction, the content-and-config-keyed cache, speaker
normalisation and the student's encoder prefix cache.

The public names of ``extract``, ``egemaps`` and ``cache`` are importable from here."""

from emodistill.features.extract import (
    FEATURE_CODE_VERSION,
    FRAME_RATE,
    INDEX_NAME,
    LOCK_DIR,
    MIN_SECONDS,
    N_LLD,
    STALE_TMP_SECONDS,
    FeatureSettings,
    FeatureStore,
    default_cache_dir,
    egemaps_llds,
    entry_key,
    extract_features,
    feature_columns,
    functional_settings,
)

__all__ = [
    "FEATURE_CODE_VERSION",
    "FRAME_RATE",
    "INDEX_NAME",
    "LOCK_DIR",
    "MIN_SECONDS",
    "N_LLD",
    "STALE_TMP_SECONDS",
    "FeatureSettings",
    "FeatureStore",
    "default_cache_dir",
    "egemaps_llds",
    "entry_key",
    "extract_features",
    "feature_columns",
    "functional_settings",
]
