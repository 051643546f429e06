"""Typed configuration for every stage, and the named presets.

A :class:`Config` is saved inside every checkpoint and model folder (as a plain dict), so a
model loads without the training config. Presets (``demo``, ``paper-hubert-base``,
``paper-hubert-large``) are data: YAML files in ``emodistill/presets/`` that override the
defaults below. A user's own YAML file is applied the same way, on top of a preset it names
with ``preset: NAME``.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

#: Canonical label order for the 4-class IEMOCAP setup and the demo corpus.
LABELS_4 = ("neutral", "happy", "angry", "sad")

#: The two teachers, in the order every report lists them.
TEACHER_KINDS = ("linguistic", "prosodic")

#: Embedded-default model identifiers, resolved to real folders by ``emodistill.models.assets``.
EMBEDDED_TEXT_ENCODER = "embedded:all-minilm-l6-v2"
EMBEDDED_SPEECH_ENCODER = "embedded:whisper-tiny.en"


@dataclass
class FoldConfig:
    """How utterances are split into speaker-independent folds."""

    scheme: str = "speaker"  # speaker | session | groups
    groups: int = 5  # number of speaker groups for scheme == "groups"
    val_speakers: int = 1  # validation speakers drawn from the training speakers
    seed: int = 0


@dataclass
class OptimConfig:
    """AdamW with linear warm-up then cosine decay; early stopping on validation UA."""

    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    epochs: int = 10
    batch_size: int = 16
    accumulate_grad_batches: int = 1
    patience: int = 5  # epochs without a better validation UA before stopping
    class_weights: bool = False
    grad_clip: float = 1.0
    # The student's trainable encoder layers learn at this rate (None: ``lr``, as the heads);
    # a pretrained layer usually wants a smaller step than freshly initialised heads.
    encoder_lr: float | None = None


@dataclass
class LinguisticConfig:
    """Linguistic teacher T_L: a transformers text encoder + linear classifier."""

    model: str = EMBEDDED_TEXT_ENCODER
    pooling: str = "mean"  # mean | cls
    max_length: int = 64
    dropout: float = 0.1
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-5, epochs=6))


@dataclass
class ProsodicConfig:
    """Prosodic teacher T_P: a 2D ResNet over eGeMAPS LLDs (1 x time x 25), or an MLP over
    their utterance statistics (``arch: functionals``)."""

    arch: str = "resnet"  # resnet (the paper's) | functionals

    channels: list[int] = field(default_factory=lambda: [16, 32, 64])
    blocks: list[int] = field(default_factory=lambda: [1, 1, 1])
    embedding_dim: int = 128
    dropout: float = 0.2
    max_frames: int = 1500  # 15 s at 100 frames/s; longer inputs are cropped in training
    # z-normalise every LLD with its speaker's own mean/std (label-free; docs/teachers.md)
    speaker_norm: bool = False
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, epochs=30, patience=8))


@dataclass
class AugmentConfig:
    """Training-only augmentation of the student's frames (works on cached frozen states).

    ``time_mask``: up to this fraction of each clip's frames, in two spans, is left out of the
    pooling; ``channel_mask``: this fraction of the hidden channels is zeroed per clip;
    ``mixup``: Beta(mixup, mixup) mixing of two clips' frames, and of their targets (the loss
    is the same mix of the two clips' losses); 0 switches each off.
    """

    time_mask: float = 0.0
    channel_mask: float = 0.0
    mixup: float = 0.0


@dataclass
class StudentConfig:
    """Speech-only student: encoder -> pooling -> two GELU heads -> FFN classifier."""

    encoder: str = EMBEDDED_SPEECH_ENCODER
    freeze_feature_encoder: bool = True  # CNN front end of HuBERT/wav2vec2-like encoders
    # "all" (end to end) or N: only the top N encoder layers train; the frozen bottom's output
    # is computed once per utterance and cached (docs/student.md)
    trainable_layers: int | str = "all"
    # mean | attention | stats | attention_stats | conv | conv_mean (docs/student.md)
    pooling: str = "mean"
    layer_weights: bool = False  # learned softmax-weighted sum over all layers (SUPERB)
    layer_norm: bool = False  # with layer_weights: normalise each layer before the sum
    # conv / conv_mean pooling: the temporal CNN's width and first stride (None: the defaults
    # of models/pooling.py, 128 and 2)
    conv_channels: int | None = None
    conv_stride: int | None = None
    pooled_norm: bool = False  # batch-normalise the pooled vector before the heads
    # after training, recompute the batch norms' statistics on clean (unmixed) training clips:
    # mixup leaves their variance too small for single clips (training/precise_bn.py)
    precise_bn: bool = False
    # an ensemble of this many pooling + head sets over the same encoder frames, each trained on
    # its own loss with its own mixup draws, their class probabilities averaged (docs/student.md:
    # "Members"; no preset uses it: no gain shown on fresh seeds)
    members: int = 1
    # pool encoder layer k's output (1..layers; None = the last layer, after its final norm);
    # the layers above k are not run
    pool_layer: int | None = None
    # training-only augmentation of the frames entering the pooling (docs/student.md)
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig())
    projection_hidden: int = 256
    classifier_hidden: int = 256
    dropout: float = 0.1
    max_seconds: float = 8.0  # training crops; inference takes any length via segmentation
    # which epoch's weights the student keeps: "best" validation UA, or the "last" epoch (with a
    # few validation speakers, picking the best epoch fits their noise: docs/defaults.md)
    select: str = "best"
    # train on the training and the validation speakers (as the linear probe refits on both);
    # needs select: last. The validation UA is then not held out; the `student` teacher
    # weighting compares teachers with a plain student trained on the training speakers only
    # (variant no_teachers_heldout; docs/defaults.md)
    train_on_validation: bool = False
    # training batches of clips of similar length (less padding for audio; label-skewed batches
    # that repeat every epoch on a small corpus, docs/defaults.md) or random ones
    group_by_length: bool = False
    # z-normalise the pooled layer's frames with label-free statistics of each speaker's clips,
    # shrunk towards the training set's by n / (n + speaker_shrink) (docs/speaker.md); needs
    # trainable_layers: 0 and no layer weights
    speaker_norm: bool = False
    speaker_shrink: float = 2.0
    # statistics from the clips of these labels only (e.g. [neutral, calm]: a model for profiles
    # enrolled from calm speech; training labels are known, test clips are picked by label to
    # simulate such an enrolment); None: every clip, label-free
    speaker_stats_labels: list[str] | None = None
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-5, epochs=8))

    def __post_init__(self) -> None:
        if self.select not in ("best", "last"):
            raise ValueError(f"student.select must be 'best' or 'last', got {self.select!r}")
        if self.train_on_validation and self.select != "last":
            raise ValueError(
                "student.train_on_validation needs student.select: last (the best epoch would "
                "be chosen on clips the student trained on)"
            )
        if self.speaker_norm and (str(self.trainable_layers) != "0" or self.layer_weights):
            raise ValueError(
                "student.speaker_norm needs a frozen pooled layer: set student.trainable_layers: "
                f"0 and layer_weights: false (got {self.trainable_layers!r}, "
                f"{self.layer_weights})"
            )
        for name in ("conv_channels", "conv_stride"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"student.{name} must be >= 1 (or null), got {value}")
        if int(self.members) < 1:
            raise ValueError(f"student.members must be >= 1, got {self.members}")
        if self.speaker_shrink < 0:
            raise ValueError(f"student.speaker_shrink must be >= 0, got {self.speaker_shrink}")


@dataclass
class DistillConfig:
    """The loss of docs/student.md: alpha*CE + beta*L_KD + gamma*L_emb, every choice a field."""

    alpha: float = 1.0
    beta: float = 1.0
    gamma: float = 1.0
    # Per-teacher weights; None = the shared beta / gamma above (the paper's formulation).
    beta_linguistic: float | None = None
    beta_prosodic: float | None = None
    gamma_linguistic: float | None = None
    gamma_prosodic: float | None = None
    # fixed: the weights above; validation: each teacher's weights are scaled by how far its
    # UA on the fold's validation speakers is above chance (0 at chance; docs/student.md)
    teacher_weighting: str = "fixed"
    tau_linguistic: float = 4.0
    tau_prosodic: float = 1.0
    tau_squared: bool = True  # Hinton's tau^2 scaling of each KL term
    use_linguistic: bool = True
    use_prosodic: bool = True
    logit_kd: bool = True
    embedding_kd: bool = True
    # Epochs of a student that learns from a teacher (None: student.optim.epochs, as a plain
    # student). Distillation profits from a longer schedule where the plain student does not
    # (docs/defaults.md, "student schedule"); the learning-rate schedule spans these epochs.
    epochs: int | None = None

    def __post_init__(self) -> None:
        if self.epochs is not None and int(self.epochs) < 1:
            raise ValueError(f"distill.epochs must be >= 1 (or null), got {self.epochs}")


@dataclass
class TrainerConfig:
    """Lightning trainer settings (devices, precision, DDP, logging).

    ``logger``: ``csv`` writes every stage's ``logs/metrics.csv`` (losses, validation metrics,
    the learning rate; the run report's ``curves.png`` is drawn from these);
    ``tensorboard`` also writes TensorBoard event files into ``tensorboard/`` beside it (needs
    ``pip install 'emodistill[tensorboard]'``). The CSV logs are written either way.
    """

    accelerator: str = "auto"
    devices: str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    # auto -> bf16-mixed on CUDA and on CPUs with bf16 instructions (AVX512-BF16 / AMX),
    # else 32-true (training/common.py, resolve_precision)
    precision: str = "auto"
    num_workers: int = 0
    limit_train_batches: float = 1.0
    log_every_n_steps: int = 10
    logger: str = "csv"  # csv | tensorboard (csv logs are always kept; docs/results.md)


@dataclass
class Config:
    """Everything that determines a run's result."""

    name: str = "default"
    labels: list[str] = field(default_factory=lambda: list(LABELS_4))
    seed: int = 0
    # Students are trained once per fold and seed (cv --seeds); None = [seed]. Teachers are
    # trained once per fold, with ``seed``.
    seeds: list[int] | None = None
    folds: FoldConfig = field(default_factory=FoldConfig)
    linguistic: LinguisticConfig = field(default_factory=LinguisticConfig)
    prosodic: ProsodicConfig = field(default_factory=ProsodicConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def run_seeds(self) -> list[int]:
        """The student seeds of a cross-validation: ``seeds``, or ``[seed]``."""
        return [int(s) for s in self.seeds] if self.seeds else [int(self.seed)]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        return _build(cls, data, "config")

    def override(self, updates: dict[str, Any]) -> Config:
        """A copy with ``updates`` (nested dict, or dotted keys) applied."""
        merged = self.to_dict()
        for key, value in updates.items():
            _merge(merged, _undot(key, value))
        return Config.from_dict(merged)

    def save(self, path: str | Path) -> None:
        """Write the config as JSON (atomically, ``_io``'s one JSON writer)."""
        from emodistill.util.files import write_json_atomic

        write_json_atomic(path, self.to_dict())


def _undot(key: str, value: Any) -> dict[str, Any]:
    parts = key.split(".")
    out: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        out = {part: out}
    return out


def _merge(base: dict[str, Any], updates: dict[str, Any]) -> None:
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    """Instantiate dataclass ``cls`` from ``data``, refusing unknown keys by name."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    kwargs = {}
    defaults = cls()
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        current = getattr(defaults, name)
        if is_dataclass(current):
            kwargs[name] = _build(type(current), value, f"{where}.{name}")
        else:
            kwargs[name] = _number(value, hints.get(name), f"{where}.{name}")
    return cls(**kwargs)


def _number(value: Any, hint: Any, where: str) -> Any:
    """``value`` as the number a numeric field declares, when it came as a string.

    YAML 1.1 (PyYAML) reads ``1e-3`` and ``5e-05`` as strings (a float needs a dot there), and
    a run's config.json passed back as ``--config`` is read the same way: such a string would
    reach the optimizer and fail there with a TypeError that names neither file nor key.
    """
    if not isinstance(value, str):
        return value
    allowed = set(typing.get_args(hint)) if typing.get_args(hint) else {hint}
    if str in allowed or not allowed & {float, int}:
        return value
    kind = float if float in allowed else int
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{where}: expected a number, got {value!r}") from None


def preset_names() -> list[str]:
    """Names of the shipped presets."""
    folder = resources.files("emodistill.config") / "presets"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _preset_data(name: str) -> dict[str, Any]:
    path = resources.files("emodistill.config") / "presets" / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(preset_names())}")
    return yaml.safe_load(path.read_text()) or {}


def load_config(spec: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Resolve ``spec`` (a preset name, a YAML file, or None for ``demo``) to a :class:`Config`.

    A YAML file may start from a preset with a top-level ``preset: NAME`` key.
    """
    spec = "demo" if spec is None else str(spec)
    if spec.endswith((".yaml", ".yml")) or Path(spec).is_file():
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML: {err}") from err
        base_name = data.pop("preset", None)
        base = load_config(base_name) if base_name else Config()
        try:
            config = base.override(data)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
    else:
        data = _preset_data(spec)
        config = Config().override(data)
        if config.name == "default":
            config = dataclasses.replace(config, name=spec)
    if overrides:
        config = config.override(overrides)
    return config


def resolve_config(
    config: Config | str | Path | None, overrides: dict[str, Any] | None = None
) -> Config:
    """A :class:`Config` from a Config, a preset name, a YAML file or None (``demo``), with
    ``overrides`` (nested dict or dotted keys) applied."""
    if isinstance(config, Config):
        return config.override(dict(overrides)) if overrides else config
    return load_config(config, dict(overrides) if overrides else None)
