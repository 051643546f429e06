"""Speech-only inference: a model folder in, emotion probabilities out.

    >>> from emodistill import EmoDistill
    >>> m = EmoDistill.from_pretrained("runs/demo/model")
    >>> m.predict("clip.wav").label
    'happy'

Nothing here needs a teacher, a tokenizer, opensmile or the training config: a model folder
(:mod:`emodistill.models.folder`: config + weights, or the ONNX export for the onnxruntime
backend) is all.

Efficiency choices (see docs/inference.md for the measurements):

* inputs are sorted by length and batched with their neighbours, a batch padding none of its
  inputs by more than 20 % (:data:`emodistill.inference.batching.MAX_PADDING`), and the
  results are put back in the caller's order;
* the network runs under ``torch.inference_mode``;
* inputs longer than the encoder's maximum (30 s; Whisper's positional table ends there) are
  cut into equal windows no longer than that maximum, and the window probabilities are averaged,
  weighted by window length: nothing is truncated;
* files longer than :data:`STREAM_ABOVE_SECONDS` are read block by block (bounded memory).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from emodistill.audio import (
    DEFAULT_LIMITS,
    MIN_SECONDS,
    SAMPLE_RATE,
    AudioError,
    AudioLimits,
    AudioSource,
    Check,
    OpenAudio,
    audio_info,
    open_audio,
    prepare_signal,
)
from emodistill.inference.batching import max_window_seconds, pad_invariant
from emodistill.inference.forward import forward_windows
from emodistill.inference.long_audio import STREAM_ABOVE_SECONDS, stream_windows
from emodistill.inference.prediction import (
    FailedPrediction,
    Prediction,
    display_name,
    safe_text,
    source_display_name,
)
from emodistill.inference.runner import Runner, TorchRunner
from emodistill.inference.speaker import enroll, speaker_normaliser
from emodistill.models.card import card_summary, carry_model_card
from emodistill.models.folder import (
    ONNX_FILES,
    ModelLoadError,
    config_path,
    copy_model_files,
    read_config,
    resolve_model_folder,
)
from emodistill.models.speaker_stats import MIN_ENROL_SECONDS, SpeakerProfile
from emodistill.util.progress import terminal_progress

#: Backends of :meth:`EmoDistill.from_pretrained` (``model_folder.ONNX_FILES``: the ONNX ones
#: and the file each reads).
BACKENDS = ("torch", *ONNX_FILES)


class EmoDistill:
    """A speech-only emotion model ready to predict.

    Build it with :meth:`from_pretrained`; or wrap any ``runner(wav (B, N), lengths (B,)) ->
    probabilities (B, C)`` and its ``config`` dict directly.
    """

    def __init__(
        self,
        runner: Runner,
        config: dict[str, Any],
        path: Path | None = None,
        backend: str = "torch",
        module: Any = None,
    ) -> None:
        self.runner = runner
        self.config = config
        self.path = path
        self.backend = backend
        self.module = module  # the torch network (None for onnx)
        self.labels: list[str] = list(config["labels"])
        self.sample_rate = int(config.get("sample_rate", SAMPLE_RATE))
        self.max_seconds = max_window_seconds(config)
        self.pad_invariant = pad_invariant(config)

    # ------------------------------------------------------------------ loading / saving

    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike,
        device: str = "cpu",
        backend: str = "torch",
        num_threads: int | None = None,
    ) -> EmoDistill:
        """Load a model folder (or a hub id, through ``huggingface_hub.snapshot_download``).

        Args:
            model: a model folder (config + weights); with ``backend="onnx"``
                the folder's ``model.onnx`` is used (``"onnx-int8"``: ``model.int8.onnx``), or
                ``model`` may be an ``.onnx`` file.
            device: ``cpu`` or ``cuda`` (torch backend; onnx picks CUDA if its provider exists).
            backend: ``torch``, ``onnx`` or ``onnx-int8`` (onnxruntime).
            num_threads: intra-op CPU threads; ``None``: ``$EMODISTILL_NUM_THREADS`` if set, else
                the library default (one per physical core).
        """
        if num_threads is None and os.environ.get("EMODISTILL_NUM_THREADS", "").isdigit():
            num_threads = int(os.environ["EMODISTILL_NUM_THREADS"])
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
        path = Path(model)
        onnx_file: Path | None = None
        if backend in ONNX_FILES and path.suffix == ".onnx":
            if not path.is_file():
                raise ModelLoadError(f"{path}: no such ONNX file")
            onnx_file, path = path, path.parent
        folder = resolve_model_folder(path if onnx_file else model)
        if backend in ONNX_FILES:
            from emodistill.inference.onnx import OnnxPredictor

            name = ONNX_FILES[backend]
            onnx_file = onnx_file or folder / name
            if not onnx_file.is_file():
                flag = " --quantize int8" if backend == "onnx-int8" else ""
                raise ModelLoadError(
                    f"{folder}: no {name}; run `emodistill export-onnx {folder} "
                    f"{folder / name}{flag}` first"
                )
            runner = OnnxPredictor(onnx_file, num_threads=num_threads, device=device)
            # An exported file carries its config; a folder's own config wins if present.
            if config_path(folder).is_file() or not runner.config:
                config = read_config(folder)
            else:
                config = runner.config
            return cls(runner, config, path=folder, backend=backend)
        import torch

        from emodistill.models.student_folder import load_student

        if num_threads:
            torch.set_num_threads(int(num_threads))
        try:
            module, config = load_student(folder, map_location="cpu")
        except ModelLoadError:
            raise
        except (FileNotFoundError, ValueError) as err:
            raise ModelLoadError(f"{folder}: {err}") from err
        return cls(TorchRunner(module, device), config, path=folder, backend="torch", module=module)

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write the model folder: config, weights (from ONNX: the folder's files) and card."""
        folder = Path(folder)
        if self.module is not None:
            from emodistill.models.student_folder import save_student

            extra = {k: v for k, v in self.config.items() if k == "inference"}
            save_student(
                self.module,
                folder,
                self.labels,
                training_config=self.config.get("training_config"),
                extra=extra or None,
            )
        elif self.path is None:
            raise ModelLoadError("this model has no weights in memory or on disk to save")
        else:
            copy_model_files(self.path, folder)
        carry_model_card(self.path, folder)
        return folder

    # ------------------------------------------------------------------ prediction

    @property
    def speaker_norm(self) -> bool:
        """Whether the model was trained with ``student.speaker_norm`` (docs/speaker.md)."""
        return bool((self.config.get("heads") or {}).get("speaker_norm"))

    def enroll(
        self,
        items: Any,
        sampling_rate: int | None = None,
        min_seconds: float = MIN_ENROL_SECONDS,
        progress: bool = False,
    ) -> SpeakerProfile:
        """A speaker profile from clips of one voice (paths, arrays or a list of them): one clip
        mean per clip (per window of at most ``max_seconds`` of a longer one). Unusable clips
        are logged and skipped; :class:`~emodistill.inference.speaker.EnrolmentError` when
        nothing usable or less than ``min_seconds`` of audio remains."""
        return enroll(self, items, sampling_rate, min_seconds, progress).profile

    def predict(
        self,
        x: Any,
        sampling_rate: int | None = None,
        batch_size: int = 8,
        progress: bool = False,
        profile: SpeakerProfile | str | os.PathLike | None = None,
        speaker_norm: bool = False,
    ) -> Prediction | list[Prediction]:
        """Predict emotion from audio alone.

        Args:
            x: a file path, an array ((N,) or (N, channels); needs ``sampling_rate``), a torch
                tensor, or a list of these.
            sampling_rate: rate of array inputs in Hz (files carry their own).
            batch_size: windows per forward pass.
            profile: a ``speaker_norm`` model: normalise every input with this speaker profile
                (a :class:`SpeakerProfile` or its JSON file, from :meth:`enroll`).
            speaker_norm: a ``speaker_norm`` model: treat all inputs as one voice, normalised
                with the statistics of their own clip means.

        Returns:
            one :class:`Prediction` for a single input, a list (same order) for a list.

        Raises:
            AudioError: an input that is not usable audio (the message names it).
            BadProfile, SpeakerNormError: an unusable profile, or one of ``profile`` /
                ``speaker_norm`` on a model trained without ``student.speaker_norm``.
        """
        single = not isinstance(x, (list, tuple))
        items = [x] if single else list(x)
        speaker = speaker_normaliser(self, items, sampling_rate, profile, speaker_norm)
        results = self._predict_group(items, sampling_rate, batch_size, progress, speaker=speaker)
        return results[0] if single else results  # type: ignore[return-value]

    def predict_files(
        self,
        paths: Sequence[str | os.PathLike],
        batch_size: int = 8,
        progress: bool = False,
        group: int | None = None,
        profile: SpeakerProfile | str | os.PathLike | None = None,
        speaker_norm: bool = False,
    ) -> list[Prediction | FailedPrediction]:
        """Predict many files; a bad file gives a :class:`FailedPrediction`, the rest go on.

        Files are read ``group`` at a time (default ``8 * batch_size``) so memory stays bounded
        however many files there are; inside a group they are batched by similar length.
        ``profile`` / ``speaker_norm``: as :meth:`predict` (``speaker_norm`` reads every file
        twice: once for its clip means, once to predict).
        """
        speaker = speaker_normaliser(self, paths, None, profile, speaker_norm, progress=progress)
        group = group or max(1, 8 * batch_size)
        results: list[Prediction | FailedPrediction] = []
        bar = terminal_progress(progress, len(paths))
        with bar or nullcontext():
            task = bar.add_task("predicting", total=len(paths)) if bar else None
            for start in range(0, len(paths), group):
                chunk = paths[start : start + group]
                results.extend(
                    self._predict_group(chunk, None, batch_size, failures=True, speaker=speaker)
                )
                if bar:
                    bar.advance(task, len(chunk))
        return results

    def _predict_group(
        self,
        inputs: Sequence[Any],
        sampling_rate: int | None,
        batch_size: int,
        progress: bool = False,
        failures: bool = False,
        speaker: np.ndarray | None = None,
    ) -> list[Prediction | FailedPrediction]:
        """The one predict loop: files and arrays in, results in their order.

        Each file is opened once (``audio.open_audio``): its header says whether it is read at
        once (then batched with the others by length) or streamed (:meth:`predict_long_file`).
        ``failures``: a file's :class:`AudioError` gives a :class:`FailedPrediction` instead of
        being raised. ``speaker``: (2, H) ``[mu, sigma]`` for every input (None: the model's
        global statistics).
        """
        out: list[Prediction | FailedPrediction | None] = [None] * len(inputs)
        signals: list[np.ndarray] = []
        slots: list[int] = []
        for i, item in enumerate(inputs):
            if not isinstance(item, (str, os.PathLike)):
                signals.append(self._array(item, sampling_rate))
                slots.append(i)
                continue
            try:
                with open_audio(item) as audio:
                    if audio.info.duration > STREAM_ABOVE_SECONDS:
                        audio.name = display_name(item)  # as predict_long_file names it
                        out[i] = self._predict_stream(audio, batch_size, speaker=speaker)
                    else:
                        signals.append(audio.load(self.sample_rate))
                        slots.append(i)
            except AudioError as err:
                if not failures:
                    raise
                out[i] = FailedPrediction(display_name(item), safe_text(str(err)))
        probs = self.predict_proba(signals, batch_size, progress, speaker=speaker)
        for i, p in zip(slots, probs, strict=True):
            item = inputs[i]
            name = display_name(item) if isinstance(item, (str, os.PathLike)) else None
            out[i] = self._prediction(name, p)
        return out  # type: ignore[return-value]

    def predict_long_file(
        self,
        path: AudioSource,
        batch_size: int = 8,
        limits: AudioLimits = DEFAULT_LIMITS,
        name: str | None = None,
        check: Check | None = None,
        profile: SpeakerProfile | str | os.PathLike | None = None,
        speaker_norm: bool = False,
    ) -> Prediction:
        """Whole-file prediction of a long recording, streamed in ``max_seconds`` blocks.

        Block probabilities are averaged weighted by block length (memory: a batch of blocks).
        A short last block is merged with the one before and the pair split evenly, so no
        window is shorter than half the maximum. ``path`` may be an open binary file;
        ``limits``, ``name`` and ``check`` as :func:`emodistill.audio.load_audio`; ``profile``
        and ``speaker_norm`` (the recording's own windows are the clips) as :meth:`predict`.
        """
        name = name if name is not None else source_display_name(path)
        speaker = speaker_normaliser(self, [path], None, profile, speaker_norm, limits, name)
        with open_audio(path, limits, name) as audio:
            return self._predict_stream(audio, batch_size, check, speaker)

    def _predict_stream(
        self,
        audio: OpenAudio,
        batch_size: int = 8,
        check: Check | None = None,
        speaker: np.ndarray | None = None,
    ) -> Prediction:
        """:meth:`predict_long_file` of a file already open (``speaker``: (2, H) or None)."""
        total = np.zeros(len(self.labels), dtype=np.float64)
        weight = 0
        batch: list[np.ndarray] = []

        def flush() -> None:
            nonlocal total, weight
            if batch:
                p = self.predict_proba(batch, batch_size, check=check, speaker=speaker)
                w = np.array([b.size for b in batch], dtype=np.float64)
                total += (p * w[:, None]).sum(0)
                weight += int(w.sum())
                batch.clear()

        for window in stream_windows(audio, self.max_seconds, self.sample_rate, check):
            batch.append(window)
            if len(batch) >= batch_size:
                flush()
        flush()
        return self._prediction(audio.name, total / max(weight, 1))

    def predict_proba(
        self,
        signals: Sequence[np.ndarray],
        batch_size: int = 8,
        progress: bool = False,
        check: Check | None = None,
        speaker: np.ndarray | None = None,
    ) -> np.ndarray:
        """Probabilities for 16 kHz mono signals, in their order.

        Args:
            signals: list of (N_i,) float32 arrays at ``self.sample_rate``.
            check: called before each forward pass; raises to abandon the work.
            speaker: a ``speaker_norm`` model's normaliser ``[mu, sigma]``: (2, H) for every
                signal, or (len(signals), 2, H) one per signal; None: the global statistics.

        Returns:
            (len(signals), C) float32; a signal longer than ``max_seconds`` is the length-weighted
            mean over its equal windows.
        """
        return forward_windows(
            self.runner,
            signals,
            len(self.labels),
            int(self.max_seconds * self.sample_rate),
            batch_size,
            self.pad_invariant,
            progress,
            check,
            speaker,
        )

    # ------------------------------------------------------------------ helpers

    def _array(self, item: Any, sampling_rate: int | None) -> np.ndarray:
        if hasattr(item, "detach"):  # torch tensor
            item = item.detach().cpu().numpy()
        if not isinstance(item, np.ndarray):
            raise TypeError(
                f"predict() takes a path, an array or a list of them, got {type(item).__name__}"
            )
        if sampling_rate is None:
            raise ValueError("predict(array) needs sampling_rate= (the array's rate in Hz)")
        return prepare_signal(item, sampling_rate, self.sample_rate, min_seconds=MIN_SECONDS)

    def _prediction(self, name: str | None, probs: np.ndarray) -> Prediction:
        probs = np.asarray(probs, dtype=np.float64)
        return Prediction(
            file=name,
            label=self.labels[int(np.argmax(probs))],
            probabilities={lab: float(p) for lab, p in zip(self.labels, probs, strict=True)},
        )

    def info(self) -> dict[str, Any]:
        """Model facts for people and pages: labels, encoder, rate, folder, card summary."""
        encoder = self.config.get("encoder") or {}
        return {
            "path": str(self.path) if self.path else None,
            "labels": self.labels,
            "sample_rate": self.sample_rate,
            "encoder": encoder.get("model_type") or encoder.get("kind"),
            "encoder_source": encoder.get("source"),
            "backend": self.backend,
            "max_window_seconds": self.max_seconds,
            "summary": card_summary(self.path) if self.path else None,
        }

    def __repr__(self) -> str:
        return f"EmoDistill(path={self.path}, labels={self.labels}, backend={self.backend!r})"


def check_audio_file(
    path: AudioSource, limits: AudioLimits = DEFAULT_LIMITS, name: str | None = None
):
    """Header of an audio file (``audio.audio_info``: refuses unsupported, unreadable, empty,
    0-frame, truncated and out-of-limits files, naming the file)."""
    return audio_info(path, limits, name)
