"""ONNX export of the speech-only model, and the onnxruntime predictor that runs it.

The exported graph takes raw audio, exactly like the torch model:

    inputs   wav (B, N) float32, 16 kHz mono, zero-padded;  lengths (B,) int64 valid samples
    outputs  probabilities (B, C) float32 (softmax);  logits (B, C) float32

A ``speaker_norm`` student's graph also takes ``speaker`` (B, 2, H) float32, each clip's
``[mu, sigma]`` (:func:`~emodistill.models.speaker_stats.normaliser`), and also returns
``clip_means`` (B, H) (the pooled layer's mean over valid frames, before normalisation), so
enrolment runs through onnxruntime too; see :mod:`emodistill.inference.onnx_predictor`.

Batch and length axes are dynamic. The model folder's config (labels, sample rate, encoder)
is stored in the ONNX file's metadata under ``emodistill_config`` (and a ``speaker_norm``
student's global statistics and fingerprint under ``emodistill_speaker``), so an ``.onnx``
file is usable on its own. After writing, the export checks that onnxruntime and torch agree
on a batch of clips of different lengths (max abs difference of probabilities < ``tolerance``;
for a ``speaker_norm`` student with a speaker normaliser of the check clips that differs from
the global one, and the clip means too).

``quantize="int8"`` writes an int8 model instead (onnxruntime dynamic quantisation of the
MatMul/Gemm weights: the transformer layers, nearly all of the parameters; the convolutional
front end, including Whisper's log-mel DFT kernels, stays float because int8 there costs
accuracy and, on CPU, time). Its check is a parity report against the float torch model on a
few clips: label agreement and max |dp|, with no tolerance (quantisation error is a measured
property, not a bug); see :func:`int8_parity`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from emodistill.inference.batching import pad_batch
from emodistill.inference.onnx_predictor import (
    CLIP_MEANS_OUTPUT,
    CONFIG_KEY,
    INPUT_NAMES,
    OUTPUT_NAMES,
    SPEAKER_INPUT,
    SPEAKER_KEY,
    OnnxPredictor,
)
from emodistill.inference.onnx_speaker import (
    check_normalisers,
    is_speaker_wrapper,
    speaker_metadata,
    speaker_wrapper,
)
from emodistill.util.files import atomic_path

#: Quantisation modes of :func:`export_onnx`.
QUANTIZE_MODES = ("int8",)
#: Operator types int8 quantisation touches (see the module docstring for why not Conv).
INT8_OPS = ("MatMul", "Gemm")
#: An exported node inside one of the encoder's transformer layers (its module path).
TRANSFORMER_LAYER = re.compile(r"/layers\.\d+/")


class ExportError(RuntimeError):
    """The export failed or its output disagrees with torch; the message says how."""


def _wrapper(module: Any):
    import torch

    class ProbabilitiesAndLogits(torch.nn.Module):
        """(wav (B, N), lengths (B,)) -> (probabilities (B, C), logits (B, C))."""

        def __init__(self, student: torch.nn.Module) -> None:
            super().__init__()
            self.student = student

        def forward(self, wav: torch.Tensor, lengths: torch.Tensor):
            logits = self.student(wav, lengths).logits
            return torch.softmax(logits, dim=-1), logits

    if module.dims.speaker_norm:  # its graph has a third input and a third output
        return speaker_wrapper(module)
    return ProbabilitiesAndLogits(module).eval()


def export_onnx(
    model_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    opset: int = 17,
    tolerance: float = 1e-4,
    quantize: str | None = None,
) -> dict[str, Any]:
    """Export a model folder to ONNX with dynamic batch and length axes.

    Args:
        model_dir: a student model folder (:mod:`emodistill.models.folder`).
        out_path: ``.onnx`` file to write (atomically).
        opset: ONNX opset.
        tolerance: largest accepted |p_onnx - p_torch| on the check batch (float export).
        quantize: ``None`` (float32) or ``"int8"`` (dynamic int8 weights, see module docstring).

    Returns:
        ``{"path", "max_abs_diff", "opset"}``; with ``quantize``, also ``"quantize"``,
        ``"label_agreement"`` (fraction of check clips whose label matches the float model),
        ``"clips"`` and ``"float_max_abs_diff"`` (the float graph's own check). A
        ``speaker_norm`` student's report also has ``"clip_means_max_rel_diff"`` (the float
        graph's clip means vs torch, max |difference| over max |mean|; < ``tolerance`` too).

    Raises:
        ExportError: the export failed, or onnxruntime and torch disagree by more than
            ``tolerance``.
    """
    import torch

    from emodistill.models.student_folder import load_student

    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise ExportError(f"quantize must be one of {QUANTIZE_MODES}, got {quantize!r}")
    model_dir, out_path = Path(model_dir), Path(out_path)
    module, config = load_student(model_dir, map_location="cpu")
    wrapper = _wrapper(module.eval())
    sr = int(config.get("sample_rate", 16000))
    rng = np.random.default_rng(0)
    # Two clips of different lengths: the traced graph must not bake in either.
    example = pad_batch([0.1 * rng.standard_normal(n).astype(np.float32) for n in (sr, sr // 2)])
    args: tuple[Any, ...] = (torch.from_numpy(example[0]), torch.from_numpy(example[1]))
    try:
        if is_speaker_wrapper(wrapper):  # traced with a batch of two different normalisers
            args += (torch.from_numpy(check_normalisers(wrapper, *example)),)
        with atomic_path(out_path, fsync=False) as tmp:
            check = (tolerance, quantize)
            return _export_into(tmp, out_path, wrapper, args, config, sr, opset, *check)
    except ExportError:
        raise
    except Exception as err:
        raise ExportError(f"{model_dir}: ONNX export failed: {type(err).__name__}: {err}") from err


def _export_into(
    tmp: Path,
    out_path: Path,
    wrapper: Any,
    args: tuple[Any, ...],
    config: dict[str, Any],
    sr: int,
    opset: int,
    tolerance: float,
    quantize: str | None,
) -> dict[str, Any]:
    """Export into ``tmp`` (renamed to ``out_path`` by the caller), check it, quantise it."""
    import warnings

    import torch

    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # The TorchScript-based exporter: no onnxscript dependency, and it keeps the
        # length-dependent slicing (Whisper positions, masks) dynamic.
        warnings.simplefilter("ignore")
        inputs, outputs = list(INPUT_NAMES), list(OUTPUT_NAMES)
        if is_speaker_wrapper(wrapper):
            inputs.append(SPEAKER_INPUT)
            outputs.append(CLIP_MEANS_OUTPUT)
        axes: dict[str, dict[int, str]] = {name: {0: "batch"} for name in inputs + outputs}
        axes["wav"][1] = "samples"
        torch.onnx.export(
            wrapper,
            args,
            str(tmp),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    import onnx

    proto = onnx.load(str(tmp))
    meta = {k: v for k, v in config.items() if k != "training_config"}
    entry = proto.metadata_props.add()
    entry.key, entry.value = CONFIG_KEY, json.dumps(meta)
    if is_speaker_wrapper(wrapper):
        entry = proto.metadata_props.add()
        entry.key, entry.value = SPEAKER_KEY, json.dumps(speaker_metadata(wrapper.network))
    onnx.save(proto, str(tmp))
    diff = parity(wrapper, tmp, sr)
    if diff > tolerance:
        raise ExportError(
            f"{out_path}: onnxruntime and torch disagree (max |dp| = {diff:.2e} > {tolerance:.0e})"
        )
    report: dict[str, Any] = {"path": str(out_path), "max_abs_diff": diff, "opset": opset}
    if is_speaker_wrapper(wrapper):
        means_diff = clip_means_parity(wrapper, tmp, sr)
        if means_diff > tolerance:
            raise ExportError(
                f"{out_path}: onnxruntime and torch clip means disagree (max relative difference"
                f" {means_diff:.2e} > {tolerance:.0e})"
            )
        report["clip_means_max_rel_diff"] = means_diff
    if quantize == "int8":
        float_tmp = tmp.with_name(f"{tmp.name}.float.tmp")
        os.replace(tmp, float_tmp)
        try:
            quantize_int8(float_tmp, tmp)
        finally:
            float_tmp.unlink(missing_ok=True)
        check = int8_parity(wrapper, tmp, sr)
        report.update(
            quantize="int8",
            float_max_abs_diff=diff,
            max_abs_diff=check["max_abs_diff"],
            label_agreement=check["label_agreement"],
            clips=check["clips"],
        )
    return report


def in_transformer_layer(node_name: str) -> bool:
    """Whether an exported node belongs to one of the encoder's transformer layers (its module
    path holds ``/layers.N/``: ``/student/encoder/layers.0/...`` for transformers' Whisper,
    ``.../encoder/layers.0/...`` for HuBERT and wav2vec 2.0, ``/student/layers.0/...`` for the
    embedded Whisper tiny.en).

    >>> in_transformer_layer("/student/layers.2/fc1/MatMul")  # embedded Whisper tiny.en
    True
    >>> in_transformer_layer("/student/encoder/model/encoder/layers.0/attention/q_proj/MatMul")
    True
    >>> [in_transformer_layer(n) for n in ("/student/frontend/MatMul", "/student/classifier/Gemm")]
    [False, False]
    """
    return TRANSFORMER_LAYER.search(node_name) is not None


def float_nodes(float_path: str | os.PathLike) -> list[str]:
    """MatMul/Gemm nodes int8 leaves in float: every one outside the transformer layers.

    The heads (pooling scores, the two projection heads, the classifier) hold < 1 % of the
    parameters (no measurable size or speed to win) but decide the label directly
    (``bench/int8.py`` measures both modes on a trained model; docs/inference.md); the front
    end's log-mel DFT is a MatMul too, and int8 there costs accuracy. The rule names the
    layers rather than the encoder's scope, which differs between encoders: the embedded
    Whisper's nodes lie outside ``/student/encoder/``, and that rule had left its every MatMul
    in float (an "int8" file that was the float one) while quantising the test Whisper's DFT.
    """
    import onnx

    graph = onnx.load(str(float_path), load_external_data=False).graph
    names = []
    for n in graph.node:
        if n.op_type in INT8_OPS and not in_transformer_layer(n.name):
            names.append(n.name)
            if n.op_type == "Gemm":  # the quantiser first rewrites Gemm as NAME_MatMul + Add
                names.append(f"{n.name}_MatMul")
    return names


def quantize_int8(
    float_path: str | os.PathLike,
    out_path: str | os.PathLike,
    per_channel: bool = True,
    heads_in_float: bool = True,
    reduce_range: bool = True,
) -> None:
    """Dynamic int8 quantisation of a float ONNX file's MatMul/Gemm weights; keeps metadata.

    Dynamic (activation scales computed per batch at run time) rather than static: it needs no
    calibration audio, and measured on the embedded Whisper tiny student it is as fast (see
    docs/inference.md). ``per_channel`` (one weight scale per output channel) and
    ``heads_in_float`` (:func:`float_nodes`) are the defaults because they moved fewer labels of
    a trained model (``bench/int8.py``); False/False is the earlier per-tensor, all-MatMul mode.
    ``reduce_range`` (7-bit weights): on x86 CPUs without VNNI (AVX2 only, e.g. AMD Zen 3),
    onnxruntime multiplies uint8 activations by int8 weights with an instruction whose 16-bit
    sums saturate; a file quantised with full-range weights then ran 0.13 away from float on
    the test model there, against under 0.1 on a VNNI machine (onnxruntime's quantisation docs
    name the same remedy). The file is made once and runs on whatever CPU it is deployed to.
    """
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs a pre-processing hint on the root logger
    try:
        quantize_dynamic(
            str(float_path),
            str(out_path),
            op_types_to_quantize=list(INT8_OPS),
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            reduce_range=reduce_range,
            nodes_to_exclude=float_nodes(float_path) if heads_in_float else [],
        )
    finally:
        root.setLevel(level)
    # The quantiser writes a new graph; carry our config metadata across.
    src = onnx.load(str(float_path), load_external_data=False)
    proto = onnx.load(str(out_path))
    have = {p.key for p in proto.metadata_props}
    for entry in src.metadata_props:
        if entry.key not in have:
            new = proto.metadata_props.add()
            new.key, new.value = entry.key, entry.value
    onnx.save(proto, str(out_path))


def check_clips(sample_rate: int = 16000, n: int = 8) -> list[np.ndarray]:
    """``n`` deterministic check clips of 0.7-3.1 s: voiced-like tones with harmonics + noise."""
    rng = np.random.default_rng(2)
    clips = []
    for k in range(n):
        sec = 0.7 + 2.4 * k / max(1, n - 1)
        t = np.arange(int(sec * sample_rate)) / sample_rate
        f0 = 110 + 25 * k
        x = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in (1, 2, 3))
        x = 0.1 * x * (0.6 + 0.4 * np.sin(2 * np.pi * (1 + k % 3) * t))
        clips.append((x + 0.02 * rng.standard_normal(t.size)).astype(np.float32))
    return clips


def int8_parity(
    wrapper: Any, onnx_path: str | os.PathLike, sample_rate: int = 16000
) -> dict[str, Any]:
    """Float torch vs a (quantised) ONNX file, clip by clip on :func:`check_clips`.

    Returns:
        ``{"clips": n, "label_agreement": fraction in [0, 1], "max_abs_diff": max |dp|}``.
    """
    import torch

    predictor = OnnxPredictor(onnx_path)
    agree, worst = 0, 0.0
    clips = check_clips(sample_rate)
    # A speaker_norm model is checked with a speaker enrolled on every check clip.
    speaker = None
    if is_speaker_wrapper(wrapper):  # a speaker enrolled on the check clips (all but one)
        speaker = check_normalisers(wrapper, *pad_batch(clips))[-1:]
    for clip in clips:
        wav, lengths = pad_batch([clip])
        got = predictor(wav, lengths, speaker)[0]
        args = [torch.from_numpy(wav), torch.from_numpy(lengths)]
        if speaker is not None:
            args.append(torch.from_numpy(speaker))
        with torch.inference_mode():
            ref = wrapper(*args)[0].numpy()[0]
        agree += int(np.argmax(ref) == np.argmax(got))
        worst = max(worst, float(np.abs(ref - got).max()))
    return {"clips": len(clips), "label_agreement": agree / len(clips), "max_abs_diff": worst}


def _parity_batch(sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """The float check's batch: 3 noise clips of unequal lengths, padded."""
    rng = np.random.default_rng(1)
    clips = [
        0.1 * rng.standard_normal(int(s * sample_rate)).astype(np.float32) for s in (2.3, 0.7, 1.1)
    ]
    return pad_batch(clips)


def parity(wrapper: Any, onnx_path: str | os.PathLike, sample_rate: int = 16000) -> float:
    """Max |probabilities| difference, onnxruntime vs torch, on a batch of 3 unequal clips (a
    ``speaker_norm`` model: each with another normaliser, see
    :func:`~emodistill.inference.onnx_speaker.check_normalisers`)."""
    import torch

    wav, lengths = _parity_batch(sample_rate)
    args = [torch.from_numpy(wav), torch.from_numpy(lengths)]
    speaker = None
    if is_speaker_wrapper(wrapper):
        speaker = check_normalisers(wrapper, wav, lengths)
        args.append(torch.from_numpy(speaker))
    with torch.inference_mode():
        ref = wrapper(*args)[0].numpy()
    got = OnnxPredictor(onnx_path)(wav, lengths, speaker)
    return float(np.abs(ref - got).max())


def clip_means_parity(
    wrapper: Any, onnx_path: str | os.PathLike, sample_rate: int = 16000
) -> float:
    """Clip means (B, H), onnxruntime vs torch, on :func:`parity`'s batch: max |difference|
    relative to the largest |mean| (the pooled layer's scale is the encoder's, not 1)."""
    import torch

    wav, lengths = _parity_batch(sample_rate)
    with torch.inference_mode():
        ref = wrapper.network.clip_means(torch.from_numpy(wav), torch.from_numpy(lengths)).numpy()
    got = OnnxPredictor(onnx_path).clip_means(wav, lengths)
    return float(np.abs(ref - got).max() / max(float(np.abs(ref).max()), 1e-12))


__all__ = [
    "CONFIG_KEY",
    "INPUT_NAMES",
    "OUTPUT_NAMES",
    "QUANTIZE_MODES",
    "TRANSFORMER_LAYER",
    "ExportError",
    "OnnxPredictor",
    "check_clips",
    "clip_means_parity",
    "export_onnx",
    "float_nodes",
    "in_transformer_layer",
    "int8_parity",
    "parity",
    "quantize_int8",
    "speaker_metadata",
]
