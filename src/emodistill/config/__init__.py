"""Typed configuration, the named presets and the Table 2 variants (named overrides)."""

from emodistill.config.settings import (
    EMBEDDED_SPEECH_ENCODER,
    EMBEDDED_TEXT_ENCODER,
    LABELS_4,
    TEACHER_KINDS,
    AugmentConfig,
    Config,
    DistillConfig,
    FoldConfig,
    LinguisticConfig,
    OptimConfig,
    ProsodicConfig,
    StudentConfig,
    TrainerConfig,
    load_config,
    preset_names,
    resolve_config,
)

__all__ = [
    "AugmentConfig",
    "Config",
    "DistillConfig",
    "EMBEDDED_SPEECH_ENCODER",
    "EMBEDDED_TEXT_ENCODER",
    "FoldConfig",
    "LABELS_4",
    "LinguisticConfig",
    "OptimConfig",
    "ProsodicConfig",
    "StudentConfig",
    "TEACHER_KINDS",
    "TrainerConfig",
    "load_config",
    "preset_names",
    "resolve_config",
]
