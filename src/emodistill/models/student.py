"""The EmoDistill student: speech encoder -> pooling -> two GELU heads -> FFN classifier.

Frames of the last encoder layer (or of layer ``pool_layer``, or a learned mix of every layer)
are pooled over valid frames (:mod:`emodistill.models.pooling`). With ``trainable_layers = N``
only the N layers below the pooled one (and the heads) train; the bottom runs frozen in eval
mode, so training may cache its output (``features/prefix_cache.py``); inference is unchanged.
The only network needed at inference: its model folder (:mod:`emodistill.models.folder`) loads
with :func:`load_student` without teachers, tokenizer, opensmile, CTranslate2 files or the hub.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from emodistill.models.encoders import SpeechEncoder, load_encoder, parse_trainable_layers
from emodistill.models.pooling import CONV_CHANNELS, CONV_STRIDE, POOLINGS, masked_mean
from emodistill.models.speaker_stats import EPS as SPEAKER_EPS
from emodistill.models.speaker_stats import GlobalStats
from emodistill.models.student_heads import (
    HeadSet,
    StudentDims,
    StudentOutput,
    combine_members,
    heads_with,
    pool_with,
)


class EmoDistillStudent(nn.Module):
    """Speech-only student S of docs/student.md ("Student").

    Args:
        encoder: a :class:`SpeechEncoder` (raw audio in, frame features out).
        num_labels: number of emotion classes C.
        d_linguistic: size d_L of e^_L (the linguistic teacher's embedding size).
        d_prosodic: size d_P of e^_P (the prosodic teacher's embedding size).
        projection_hidden: hidden size of each projection head.
        classifier_hidden: hidden size of the classifier.
        dropout: dropout inside the heads and the classifier.
        pooling: ``mean`` or ``attention`` (:data:`POOLINGS`).
        layer_weights: pool a learned softmax-weighted sum of every layer's output (the
            embedding output and each layer's) instead of the last layer's.
        pooled_norm: standardise the pooled vector with batch normalisation (running statistics
            in eval mode) before the heads -- what a linear probe's feature scaling does; frozen
            encoder states have a few channels far larger than the rest.
        layer_norm: with ``layer_weights``, normalise each layer's frames (layer norm without
            parameters) before the weighted sum, so a layer with a large residual-stream norm
            (the middle layers of Whisper before its final norm) does not dominate the mix.
        trainable_layers: top encoder layers that train (None = all; see
            :func:`~emodistill.models.encoders.parse_trainable_layers`), counted down from
            ``pool_layer``; the rest is frozen in eval mode.
        pool_layer: pool the output of encoder layer k (1 .. layers) instead of the last one
            (None). Layers above k are never run (and never trained): the middle layers of a
            speech encoder often expose more emotion than its last one, and the student gets
            cheaper.
        speaker_norm: z-normalise the pooled layer's frames with statistics of the speaker's
            clips (:mod:`emodistill.models.speaker_stats`) before pooling; the training set's
            global statistics (buffers ``speaker_mean`` / ``speaker_var``) stand in when no
            speaker's are given. Needs a frozen pooled layer (``trainable_layers: 0``, no layer
            weights): the statistics are of fixed states.
        speaker_shrink: k of the shrinkage ``n / (n + k)`` towards the global statistics.
        conv_channels, conv_stride: the temporal CNN of ``conv`` / ``conv_mean`` pooling
            (:class:`~emodistill.models.pooling.ConvPool`): its width and its first layer's
            stride (its cost falls with both).
        members: an ensemble of this many pooling + head sets (:class:`HeadSet`) over the
            same encoder frames, each initialised on its own and trained on its own loss; the
            output averages their class probabilities. Member 0 is the student's own
            ``pool`` / ``pooled_norm`` / ``proj_*`` / ``classifier`` (a one-member student's
            weights keep their names), the others are ``more_members``.
    """

    def __init__(
        self,
        encoder: SpeechEncoder,
        num_labels: int,
        d_linguistic: int,
        d_prosodic: int,
        projection_hidden: int = 256,
        classifier_hidden: int = 256,
        dropout: float = 0.1,
        pooling: str = "mean",
        layer_weights: bool = False,
        trainable_layers: int | None = None,
        layer_norm: bool = False,
        pooled_norm: bool = False,
        pool_layer: int | None = None,
        speaker_norm: bool = False,
        speaker_shrink: float = 2.0,
        conv_channels: int = CONV_CHANNELS,
        conv_stride: int = CONV_STRIDE,
        members: int = 1,
    ):
        super().__init__()
        if int(members) < 1:
            raise ValueError(f"members must be >= 1, got {members}")
        if num_labels < 2:
            raise ValueError(f"num_labels must be >= 2, got {num_labels}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.encoder = encoder
        h = encoder.hidden_size
        depth = encoder.num_layers if pool_layer is None else int(pool_layer)
        if not 1 <= depth <= encoder.num_layers:
            raise ValueError(
                f"pool_layer must be 1..{encoder.num_layers} (the encoder's layers), "
                f"got {pool_layer}"
            )
        #: encoder layers the student runs (layers above it are unused)
        self.depth = depth
        trainable_layers = parse_trainable_layers(trainable_layers, depth)
        self.dims = StudentDims(
            num_labels=int(num_labels),
            d_linguistic=int(d_linguistic),
            d_prosodic=int(d_prosodic),
            projection_hidden=int(projection_hidden),
            classifier_hidden=int(classifier_hidden),
            dropout=float(dropout),
            pooling=pooling,
            layer_weights=bool(layer_weights),
            trainable_layers=trainable_layers,
            layer_norm=bool(layer_norm),
            pooled_norm=bool(pooled_norm),
            pool_layer=None if pool_layer is None else depth,
            speaker_norm=bool(speaker_norm),
            speaker_shrink=float(speaker_shrink),
            conv_channels=int(conv_channels),
            conv_stride=int(conv_stride),
            members=int(members),
        )
        if speaker_norm and (trainable_layers != 0 or layer_weights):
            raise ValueError(
                "speaker_norm needs a frozen pooled layer (trainable_layers: 0, layer_weights: "
                f"false), got trainable_layers {trainable_layers}, layer_weights {layer_weights}"
            )
        if speaker_norm:  # the training set's clip-mean statistics (set by the trainer)
            self.register_buffer("speaker_mean", torch.zeros(h))
            self.register_buffer("speaker_var", torch.ones(h))
        self.trainable_layers = trainable_layers
        if trainable_layers is not None:
            encoder.freeze_bottom(depth - trainable_layers)
        if depth < encoder.num_layers:  # never run: kept (checkpoints load by name), not trained
            for module in encoder.layer_modules()[depth:] + encoder.finish_modules():
                module.requires_grad_(False)
        head = HeadSet(self.dims, h)
        # member 0's modules live on the student itself (the names a one-member student saves)
        self.pool: nn.Module | None = head.pool
        # Training-only frame augmentation (training/augment.py), set by the trainer; it holds
        # no weights and is a no-op in eval mode, so model folders and inference never see it.
        self.augment: nn.Module | None = None
        # Softmax weights over depth + 1 states; zeros = uniform at the start.
        self.layer_logits = nn.Parameter(torch.zeros(depth + 1)) if layer_weights else None
        self.pooled_norm = head.pooled_norm
        self.proj_linguistic = head.proj_linguistic
        self.proj_prosodic = head.proj_prosodic
        self.classifier = head.classifier
        self.more_members = (
            nn.ModuleList(HeadSet(self.dims, h) for _ in range(members - 1))
            if members > 1
            else None
        )

    @classmethod
    def from_dims(cls, encoder: SpeechEncoder, dims: StudentDims) -> EmoDistillStudent:
        """The student of ``dims`` around ``encoder`` (random head weights)."""
        return cls(encoder, **dataclasses.asdict(dims))

    @property
    def head_config(self) -> dict[str, Any]:
        """``dims`` as the dict saved under ``"heads"`` in the model folder's config."""
        return self.dims.to_dict()

    def global_stats(self) -> GlobalStats:
        """The training set's clip-mean statistics (``speaker_norm`` students only)."""
        if not self.dims.speaker_norm:
            raise ValueError("this student was trained without speaker_norm")
        return GlobalStats(
            self.speaker_mean.detach().cpu().numpy(),
            self.speaker_var.detach().cpu().numpy(),
            self.dims.speaker_shrink,
        )

    def set_global_stats(self, glob: GlobalStats) -> None:
        """Set the buffers that :meth:`normalise` uses when no speaker's statistics are given."""
        self.speaker_mean.copy_(torch.as_tensor(glob.mean, dtype=self.speaker_mean.dtype))
        self.speaker_var.copy_(torch.as_tensor(glob.var, dtype=self.speaker_var.dtype))

    @property
    def num_labels(self) -> int:
        return self.dims.num_labels

    @property
    def frozen_layers(self) -> int | None:
        """Encoder layers below the trainable part (None: nothing beyond the CNN is frozen)."""
        if self.trainable_layers is None:
            return None
        return self.depth - self.trainable_layers

    @property
    def prefix_states(self) -> int:
        """How many frame tensors :meth:`prefix` returns per utterance (K of (B, K, T, H))."""
        if self.frozen_layers is None:
            raise ValueError("prefix: the student has no frozen bottom (trainable_layers: all)")
        return self.frozen_layers + 1 if self.layer_logits is not None else 1

    def _augment(self, hidden: Tensor, frame_lengths: Tensor) -> tuple[Tensor, Tensor | None]:
        """Training-only frame augmentation, shared by every member: (frames, keep mask)."""
        if self.training and self.augment is not None:
            return self.augment(hidden, frame_lengths)
        return hidden, None

    def _pool(self, hidden: Tensor, frame_lengths: Tensor) -> Tensor:
        """Member 0's pooled vector (B, P)."""
        hidden, keep = self._augment(hidden, frame_lengths)
        return pool_with(self, self.dims.pooling, hidden, frame_lengths, keep)

    @property
    def num_members(self) -> int:
        """How many pooling + head sets the student averages (``members``)."""
        return self.dims.members

    def _pool_heads(
        self,
        hidden: Tensor,
        frame_lengths: Tensor,
        members: bool = False,
        member: int | None = None,
    ):
        """Frames (B, T, H) -> every member's pooling and heads: their combined
        :class:`StudentOutput`, with ``members`` the list of each member's own, with ``member``
        = k member k's alone."""
        every = (self,) if self.more_members is None else (self, *self.more_members)
        if member is not None:
            if not 0 <= member < len(every):
                raise ValueError(f"member must be 0..{len(every) - 1}, got {member}")
            every = every[member : member + 1]
        hidden, keep = self._augment(hidden, frame_lengths)
        outs = [
            heads_with(m, pool_with(m, self.dims.pooling, hidden, frame_lengths, keep))
            for m in every
        ]
        if members:
            return outs
        return outs[0] if len(outs) == 1 else combine_members(outs)

    def _mix(self, states: list[Tensor]) -> Tensor:
        weights = torch.softmax(self.layer_logits, dim=0)
        if self.dims.layer_norm:
            states = [F.layer_norm(s, s.shape[-1:]) for s in states]
        return sum(w * s for w, s in zip(weights, states, strict=True))

    def _states(self, wav: Tensor, lengths: Tensor, stop: int) -> tuple[list[Tensor], Tensor]:
        """Outputs of the embedding and of layers 1..stop (``finish`` after the last layer)."""
        enc = self.encoder
        hidden, frame_lengths = enc.embed(wav, lengths)
        states = [hidden]
        for i in range(stop):
            hidden = enc.run_layers(hidden, frame_lengths, i, i + 1)
            states.append(hidden)
        if stop == enc.num_layers:
            states[-1] = enc.finish(states[-1])
        return states, frame_lengths

    @torch.no_grad()
    def prefix(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """What the frozen bottom computes: ``(states (B, K, T, H), frame_lengths (B,))``.

        K = 1 (the input of the first trainable layer; the final output when every layer is
        frozen), or ``frozen_layers + 1`` with layer weights (every state up to there).
        Deterministic: the bottom is always in eval mode.
        """
        k = self.frozen_layers
        if k is None:
            raise ValueError("prefix: the student has no frozen bottom (trainable_layers: all)")
        states, frame_lengths = self._states(wav, lengths, k)
        if self.layer_logits is None:
            states = states[-1:]
        return torch.stack(states, dim=1), frame_lengths

    def from_prefix(
        self,
        prefix: Tensor,
        frame_lengths: Tensor,
        members: bool = False,
        member: int | None = None,
    ):
        """The rest of the forward pass from :meth:`prefix`'s output (B, K, T, H); with
        ``speaker_norm`` the prefix comes speaker-normalised (``DistillDataset`` does it).
        ``members``: a list of each member's output instead of their combination; ``member``
        = k: member k's output alone."""
        enc = self.encoder
        k = self.frozen_layers
        states = list(prefix.unbind(dim=1))
        hidden = states[-1]
        for i in range(k, self.depth):
            hidden = enc.run_layers(hidden, frame_lengths, i, i + 1)
            if i == enc.num_layers - 1:
                hidden = enc.finish(hidden)
            states.append(hidden)
        if self.layer_logits is not None:
            hidden = self._mix(states)
        return self._pool_heads(hidden, frame_lengths, members, member)

    def _heads(self, pooled: Tensor) -> StudentOutput:
        """Member 0's heads on its pooled vector (B, P)."""
        return heads_with(self, pooled)

    def pooled_states(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """The frames that are pooled: (B, T, H) and frame_lengths (B,)."""
        if self.layer_logits is not None or self.depth < self.encoder.num_layers:
            states, frame_lengths = self._states(wav, lengths, self.depth)
            hidden = self._mix(states) if self.layer_logits is not None else states[-1]
            return hidden, frame_lengths
        return self.encoder(wav, lengths)

    def normalise(self, hidden: Tensor, speaker: Tensor | None = None) -> Tensor:
        """hidden (B, T, H) -> ``(hidden - mu) / sigma`` with speaker (B, 2, H) ``[mu, sigma]``
        (:func:`~emodistill.models.speaker_stats.normaliser`), or the global statistics when
        None. Unchanged for a student without ``speaker_norm``."""
        if not self.dims.speaker_norm:
            return hidden
        if speaker is None:
            mu, sigma = self.speaker_mean, torch.sqrt(self.speaker_var + SPEAKER_EPS)
            return (hidden - mu) / sigma
        speaker = speaker.to(hidden.dtype)
        return (hidden - speaker[:, None, 0]) / speaker[:, None, 1]

    def clip_means(self, wav: Tensor, lengths: Tensor) -> Tensor:
        """(B, H) mean over each clip's valid frames of the pooled layer (before any speaker
        normalisation): what a speaker's statistics are made of."""
        hidden, frame_lengths = self.pooled_states(wav, lengths)
        return masked_mean(hidden, frame_lengths, None)

    def pooled(self, wav: Tensor, lengths: Tensor, speaker: Tensor | None = None) -> Tensor:
        """wav (B, N), lengths (B,) -> utterance vector (B, H), pooled over valid frames."""
        hidden, frame_lengths = self.pooled_states(wav, lengths)
        return self._pool(self.normalise(hidden, speaker), frame_lengths)

    def forward(
        self,
        wav: Tensor,
        lengths: Tensor | None = None,
        speaker: Tensor | None = None,
        members: bool = False,
        member: int | None = None,
    ):
        """wav (B, N) float32 16 kHz; lengths (B,) long valid samples (None: all valid);
        speaker (B, 2, H) ``[mu, sigma]`` of each clip's speaker (``speaker_norm`` only; None:
        the training set's global statistics). Returns a :class:`StudentOutput`; with
        ``members`` the list of each member's own (what training computes its loss on), with
        ``member`` = k member k's alone."""
        if lengths is None:
            lengths = torch.full((wav.shape[0],), wav.shape[1], dtype=torch.long, device=wav.device)
        hidden, frame_lengths = self.pooled_states(wav, lengths)
        return self._pool_heads(self.normalise(hidden, speaker), frame_lengths, members, member)


def build_student(cfg, num_labels: int, d_linguistic: int, d_prosodic: int) -> EmoDistillStudent:
    """Student with a pretrained encoder (``cfg.encoder`` via :func:`load_encoder`).

    Args:
        cfg: a :class:`emodistill.config.StudentConfig`.
        num_labels, d_linguistic, d_prosodic: class count and the teachers' embedding sizes.
    """
    encoder = load_encoder(cfg.encoder, freeze_feature_encoder=cfg.freeze_feature_encoder)
    return EmoDistillStudent(
        encoder,
        num_labels=num_labels,
        d_linguistic=d_linguistic,
        d_prosodic=d_prosodic,
        projection_hidden=cfg.projection_hidden,
        classifier_hidden=cfg.classifier_hidden,
        dropout=cfg.dropout,
        pooling=cfg.pooling,
        layer_weights=cfg.layer_weights,
        trainable_layers=cfg.trainable_layers,
        layer_norm=cfg.layer_norm,
        pooled_norm=cfg.pooled_norm,
        pool_layer=cfg.pool_layer,
        speaker_norm=cfg.speaker_norm,
        speaker_shrink=cfg.speaker_shrink,
        members=cfg.members,
        # None: the pooling's own default (one home: models/pooling.py)
        **{k: v for k in ("conv_channels", "conv_stride") if (v := getattr(cfg, k)) is not None},
    )


__all__ = [
    "EmoDistillStudent",
    "StudentDims",
    "StudentOutput",
    "build_student",
]
