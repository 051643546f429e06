"""Read a CTranslate2 Whisper ``model.bin`` and map its encoder onto transformers' WhisperEncoder.

CTranslate2's binary format (version 6, written by ``ctranslate2.specs.ModelSpec._serialize``),
all integers little-endian::

    uint32 binary_version (6)
    string spec_name ("WhisperSpec")        string = uint16 length incl. NUL, bytes, NUL
    uint32 spec_revision
    uint32 num_variables
    num_variables x:
        string name                          e.g. "encoder/layer_0/self_attention/linear_0/weight"
        uint8  rank, rank x uint32 dims
        uint8  dtype id                      0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16
        uint32 num_bytes, raw bytes (C order)
    uint32 num_aliases
    num_aliases x: string alias, string target

Quantised weights (int8 / int16) come with a ``<name>_scale`` variable; the float weight is
``value / scale`` (per output row for int8, one scalar for int16).

Encoder mapping (CTranslate2 name -> transformers ``WhisperEncoder`` key)::

    conv{1,2}/{weight,bias}                      conv{1,2}.{weight,bias}
    position_encodings/encodings                 embed_positions.weight
    layer_norm/{gamma,beta}                      layer_norm.{weight,bias}
    layer_i/self_attention/layer_norm/*          layers.i.self_attn_layer_norm.*
    layer_i/self_attention/linear_0 (fused qkv)  layers.i.self_attn.{q,k,v}_proj (k has no bias:
                                                 the fused bias's k third is all zeros)
    layer_i/self_attention/linear_1              layers.i.self_attn.out_proj
    layer_i/ffn/layer_norm/*                     layers.i.final_layer_norm.*
    layer_i/ffn/linear_{0,1}                     layers.i.fc{1,2}
    num_heads (int16 scalar)                     config.encoder_attention_heads
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

SUPPORTED_BINARY_VERSIONS = (5, 6)
#: dtype ids of include/ctranslate2/types.h, in order.
_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")


class CT2FormatError(ValueError):
    """A model.bin that cannot be read or mapped; the message names the file."""


@dataclass
class CT2Model:
    """Variables of a CTranslate2 model.bin (only those selected when reading)."""

    path: Path
    binary_version: int
    spec_name: str
    revision: int
    variables: dict[str, np.ndarray] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)


def _read(f: BinaryIO, fmt: str, path: Path) -> Any:
    size = struct.calcsize("<" + fmt)
    data = f.read(size)
    if len(data) != size:
        raise CT2FormatError(f"{path}: file ends early (truncated model.bin?)")
    return struct.unpack("<" + fmt, data)[0]


def _read_string(f: BinaryIO, path: Path) -> str:
    n = _read(f, "H", path)
    data = f.read(n)
    if len(data) != n or not data.endswith(b"\0"):
        raise CT2FormatError(f"{path}: malformed string in header")
    return data[:-1].decode("utf-8")


def _decode(raw: bytes, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    if dtype == "bfloat16":  # numpy has no bfloat16: widen the bits to float32
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)


def read_ct2_model(path: str | Path, prefix: str | None = None) -> CT2Model:
    """Parse a CTranslate2 ``model.bin``.

    Args:
        path: the model.bin file.
        prefix: read only variables whose name starts with it (others are skipped by seeking,
            e.g. ``"encoder/"`` skips the decoder's ~30 MB for Whisper tiny).
    """
    path = Path(path)
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below; seek-heavy)
    except OSError as err:
        raise CT2FormatError(f"{path}: cannot open: {err}") from err
    with f:
        version = _read(f, "I", path)
        if version not in SUPPORTED_BINARY_VERSIONS:
            raise CT2FormatError(
                f"{path}: CTranslate2 binary version {version} is not supported "
                f"(supported: {SUPPORTED_BINARY_VERSIONS})"
            )
        model = CT2Model(path, version, _read_string(f, path), _read(f, "I", path))
        # First pass: the index (name -> dtype, shape, offset), seeking over the data.
        index: dict[str, tuple[str, tuple[int, ...], int, int]] = {}
        count = _read(f, "I", path)
        for _ in range(count):
            name = _read_string(f, path)
            rank = _read(f, "B", path)
            shape = tuple(_read(f, "I", path) for _ in range(rank))
            type_id = _read(f, "B", path)
            if type_id >= len(_DTYPES):
                raise CT2FormatError(f"{path}: variable {name}: unknown dtype id {type_id}")
            dtype = _DTYPES[type_id]
            nbytes = _read(f, "I", path)
            itemsize = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
            if int(np.prod(shape, dtype=np.int64)) * itemsize != nbytes:
                raise CT2FormatError(f"{path}: variable {name}: {nbytes} bytes for shape {shape}")
            index[name] = (dtype, shape, f.tell(), nbytes)
            f.seek(nbytes, 1)
        n_alias = _read(f, "I", path)
        for _ in range(n_alias):
            alias = _read_string(f, path)
            model.aliases[alias] = _read_string(f, path)
        if f.read(1):
            raise CT2FormatError(f"{path}: unexpected data after the alias table")
        # Second pass: the wanted variables, and the targets of wanted aliases (CTranslate2
        # stores identical tensors once, e.g. two all-zero biases, possibly under a name
        # outside the prefix).
        wanted = {n: n for n in index if prefix is None or n.startswith(prefix)}
        for alias, target in model.aliases.items():
            if prefix is None or alias.startswith(prefix):
                if target not in index:
                    raise CT2FormatError(f"{path}: alias {alias} -> unknown variable {target}")
                wanted[alias] = target
        for name, source in sorted(wanted.items(), key=lambda kv: index[kv[1]][2]):
            dtype, shape, offset, nbytes = index[source]
            f.seek(offset)
            raw = f.read(nbytes)
            if len(raw) != nbytes:
                raise CT2FormatError(f"{path}: file ends inside variable {source}")
            model.variables[name] = _decode(raw, dtype, shape)
            model.dtypes[name] = dtype
    return model


def _float(model: CT2Model, name: str) -> np.ndarray:
    """Variable ``name`` as float32, dequantised with ``name + '_scale'`` if it is integer."""
    if name not in model.variables:
        raise CT2FormatError(f"{model.path}: missing variable {name}")
    value = model.variables[name]
    dtype = model.dtypes[name]
    if dtype in ("int8", "int16"):
        scale_name = name + "_scale"
        if scale_name not in model.variables:
            raise CT2FormatError(f"{model.path}: quantised {name} has no {scale_name}")
        scale = model.variables[scale_name].astype(np.float32)
        value = value.astype(np.float32)
        if scale.ndim == 1:  # int8: one scale per output row
            scale = scale.reshape((-1,) + (1,) * (value.ndim - 1))
        return value / scale
    return value.astype(np.float32)


def ct2_whisper_encoder_fields(model: CT2Model) -> dict[str, Any]:
    """transformers WhisperConfig encoder fields inferred from the variables' shapes."""
    v = model.variables
    need = ("encoder/conv1/weight", "encoder/num_heads", "encoder/position_encodings/encodings")
    for name in need:
        if name not in v:
            raise CT2FormatError(f"{model.path}: missing {name} (not a Whisper model?)")
    layers = sorted({int(m.group(1)) for k in v if (m := re.match(r"encoder/layer_(\d+)/", k))})
    if layers != list(range(len(layers))) or not layers:
        raise CT2FormatError(f"{model.path}: encoder layers are {layers}, expected 0..n-1")
    d_model, n_mels, _ = v["encoder/conv1/weight"].shape
    return {
        "d_model": int(d_model),
        "encoder_layers": len(layers),
        "encoder_attention_heads": int(v["encoder/num_heads"]),
        "encoder_ffn_dim": int(v["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "num_mel_bins": int(n_mels),
        "max_source_positions": int(v["encoder/position_encodings/encodings"].shape[0]),
        "activation_function": "gelu",
        "dropout": 0.0,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "encoder_layerdrop": 0.0,
        "scale_embedding": False,
    }


def ct2_whisper_encoder_state_dict(model: CT2Model, atol_k_bias: float = 0.0) -> dict:
    """transformers WhisperEncoder state dict (float32 tensors) from a CTranslate2 Whisper model.

    The fused ``self_attention/linear_0`` (3*d, d) is split into q, k, v; its bias's k third
    must be all zeros (transformers' k_proj has no bias) and is dropped.
    """
    fields = ct2_whisper_encoder_fields(model)
    d = fields["d_model"]
    t = lambda name: torch.from_numpy(np.ascontiguousarray(_float(model, name)))  # noqa: E731
    state = {
        "conv1.weight": t("encoder/conv1/weight"),
        "conv1.bias": t("encoder/conv1/bias"),
        "conv2.weight": t("encoder/conv2/weight"),
        "conv2.bias": t("encoder/conv2/bias"),
        "embed_positions.weight": t("encoder/position_encodings/encodings"),
        "layer_norm.weight": t("encoder/layer_norm/gamma"),
        "layer_norm.bias": t("encoder/layer_norm/beta"),
    }
    for i in range(fields["encoder_layers"]):
        src, dst = f"encoder/layer_{i}", f"layers.{i}"
        qkv_w = t(f"{src}/self_attention/linear_0/weight")
        qkv_b = t(f"{src}/self_attention/linear_0/bias")
        if qkv_w.shape != (3 * d, d) or qkv_b.shape != (3 * d,):
            raise CT2FormatError(
                f"{model.path}: {src}/self_attention/linear_0 has shape {tuple(qkv_w.shape)}, "
                f"expected fused q/k/v {(3 * d, d)}"
            )
        k_bias = qkv_b[d : 2 * d]
        if k_bias.abs().max() > atol_k_bias:
            raise CT2FormatError(
                f"{model.path}: {src} key bias is not zero (max {k_bias.abs().max():.3g}); "
                "transformers' Whisper k_proj has no bias"
            )
        state.update(
            {
                f"{dst}.self_attn.q_proj.weight": qkv_w[:d].clone(),
                f"{dst}.self_attn.k_proj.weight": qkv_w[d : 2 * d].clone(),
                f"{dst}.self_attn.v_proj.weight": qkv_w[2 * d :].clone(),
                f"{dst}.self_attn.q_proj.bias": qkv_b[:d].clone(),
                f"{dst}.self_attn.v_proj.bias": qkv_b[2 * d :].clone(),
                f"{dst}.self_attn.out_proj.weight": t(f"{src}/self_attention/linear_1/weight"),
                f"{dst}.self_attn.out_proj.bias": t(f"{src}/self_attention/linear_1/bias"),
                f"{dst}.self_attn_layer_norm.weight": t(f"{src}/self_attention/layer_norm/gamma"),
                f"{dst}.self_attn_layer_norm.bias": t(f"{src}/self_attention/layer_norm/beta"),
                f"{dst}.fc1.weight": t(f"{src}/ffn/linear_0/weight"),
                f"{dst}.fc1.bias": t(f"{src}/ffn/linear_0/bias"),
                f"{dst}.fc2.weight": t(f"{src}/ffn/linear_1/weight"),
                f"{dst}.fc2.bias": t(f"{src}/ffn/linear_1/bias"),
                f"{dst}.final_layer_norm.weight": t(f"{src}/ffn/layer_norm/gamma"),
                f"{dst}.final_layer_norm.bias": t(f"{src}/ffn/layer_norm/beta"),
            }
        )
    # Every encoder variable must be used: an unmapped one means a spec we do not understand.
    used = {
        "encoder/num_heads",
        *(k for k in model.variables if k.startswith("encoder/") and k.endswith("_scale")),
    }
    mapped_sources = {
        "conv1/weight", "conv1/bias", "conv2/weight", "conv2/bias",
        "position_encodings/encodings", "layer_norm/gamma", "layer_norm/beta",
    }  # fmt: skip
    per_layer = {
        "self_attention/linear_0/weight", "self_attention/linear_0/bias",
        "self_attention/linear_1/weight", "self_attention/linear_1/bias",
        "self_attention/layer_norm/gamma", "self_attention/layer_norm/beta",
        "ffn/linear_0/weight", "ffn/linear_0/bias", "ffn/linear_1/weight", "ffn/linear_1/bias",
        "ffn/layer_norm/gamma", "ffn/layer_norm/beta",
    }  # fmt: skip
    used |= {f"encoder/{k}" for k in mapped_sources}
    used |= {f"encoder/layer_{i}/{k}" for i in range(fields["encoder_layers"]) for k in per_layer}
    unused = sorted(k for k in model.variables if k.startswith("encoder/") and k not in used)
    if unused:
        raise CT2FormatError(f"{model.path}: unmapped encoder variable(s) {unused}")
    return state


def load_ct2_whisper_encoder(folder: str | Path) -> tuple[dict[str, Any], dict]:
    """(WhisperConfig encoder fields, WhisperEncoder state dict) from a CTranslate2 folder."""
    folder = Path(folder)
    path = folder / "model.bin"
    model = read_ct2_model(path, prefix="encoder/")
    if model.spec_name != "WhisperSpec":
        raise CT2FormatError(f"{path}: spec is {model.spec_name!r}, expected 'WhisperSpec'")
    fields = ct2_whisper_encoder_fields(model)
    return fields, ct2_whisper_encoder_state_dict(model)


__all__ = [
    "CT2FormatError",
    "CT2Model",
    "ct2_whisper_encoder_fields",
    "ct2_whisper_encoder_state_dict",
    "load_ct2_whisper_encoder",
    "read_ct2_model",
]
