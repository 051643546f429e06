"""Whisper's log-mel front end in torch (inside the model, so it exports to ONNX)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from emodistill.audio import SAMPLE_RATE
from emodistill.models.encoders.base import EncoderError, valid_mask

#: Defaults of the Whisper log-mel front end (openai/whisper audio.py).
WHISPER_N_FFT = 400
WHISPER_HOP = 160
WHISPER_N_MELS = 80


def _mel_filters(n_mels: int, n_fft: int, sampling_rate: int) -> np.ndarray:
    """(n_fft // 2 + 1, n_mels) Slaney mel filters, exactly as WhisperFeatureExtractor."""
    from transformers.audio_utils import mel_filter_bank

    return mel_filter_bank(
        num_frequency_bins=1 + n_fft // 2,
        num_mel_filters=n_mels,
        min_frequency=0.0,
        max_frequency=8000.0,
        sampling_rate=sampling_rate,
        norm="slaney",
        mel_scale="slaney",
    )


class LogMelFrontend(nn.Module):
    """Whisper's log-mel spectrogram in torch, for variable-length batches.

    Matches ``WhisperFeatureExtractor`` on the valid frames: periodic Hann window, n_fft 400,
    hop 160, centred frames (reflect padding at the start; zeros after the end, as the
    extractor pads the audio with zeros to 30 s), power spectrum, Slaney mel filters,
    log10 clamped at 1e-10, dynamic range limited to max - 8 per utterance (max over its
    valid frames only, so padding never changes a clip's features), then (x + 4) / 4.
    The STFT is a strided conv1d with fixed windowed-DFT kernels, which exports to ONNX as a
    plain Conv.

    ``forward(wav (B, N), lengths (B,))`` -> ``(mel (B, n_mels, M), mel_lengths (B,))`` with
    ``M = N // hop`` and ``mel_lengths = lengths // hop``; padded frames are set to 0.
    """

    def __init__(
        self,
        n_mels: int = WHISPER_N_MELS,
        n_fft: int = WHISPER_N_FFT,
        hop_length: int = WHISPER_HOP,
        sampling_rate: int = SAMPLE_RATE,
        mel_filters: np.ndarray | None = None,
    ):
        super().__init__()
        self.n_mels, self.n_fft, self.hop_length = int(n_mels), int(n_fft), int(hop_length)
        self.sampling_rate = int(sampling_rate)
        if mel_filters is None:
            mel_filters = _mel_filters(self.n_mels, self.n_fft, self.sampling_rate)
        mel_filters = np.asarray(mel_filters, dtype=np.float64)
        n_freq = self.n_fft // 2 + 1
        if mel_filters.shape != (n_freq, self.n_mels):
            raise EncoderError(
                f"mel filters have shape {mel_filters.shape}, expected ({n_freq}, {self.n_mels})"
            )
        # (n_mels, n_freq); persistent so a saved model keeps whatever filters it was built with.
        self.register_buffer("mel_filters", torch.from_numpy(mel_filters.T).float())
        n = np.arange(self.n_fft)
        window = 0.5 - 0.5 * np.cos(2 * np.pi * n / self.n_fft)  # periodic Hann
        k = np.arange(n_freq)[:, None]
        angle = 2 * np.pi * k * n[None, :] / self.n_fft
        kernel = np.concatenate([window * np.cos(angle), -window * np.sin(angle)], axis=0)
        # Derived from n_fft alone: not saved.
        self.register_buffer(
            "dft_kernel", torch.from_numpy(kernel[:, None, :]).float(), persistent=False
        )

    def forward(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        # Always float32: under mixed precision a bf16 DFT/mel product would cost the log-mel
        # about two significant digits.
        with torch.autocast(device_type=wav.device.type, enabled=False):
            return self._forward(wav.float(), lengths)

    def _forward(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        batch, n = wav.shape
        wav = wav * valid_mask(lengths, n).to(wav.dtype)
        half = self.n_fft // 2
        x = wav[:, None, :]
        x = F.pad(x, (half, 0), mode="reflect")
        x = F.pad(x, (0, half))
        spec = F.conv1d(x, self.dft_kernel, stride=self.hop_length)  # (B, 2*n_freq, n//hop + 1)
        n_freq = self.n_fft // 2 + 1
        power = spec[:, :n_freq] ** 2 + spec[:, n_freq:] ** 2
        power = power[:, :, :-1]  # the extractor drops the last frame
        mel = torch.matmul(self.mel_filters, power)
        log_spec = torch.clamp(mel, min=1e-10).log10()
        mel_lengths = torch.div(lengths, self.hop_length, rounding_mode="floor").clamp(min=1)
        frames = valid_mask(mel_lengths, log_spec.shape[-1])[:, None, :]
        floor = torch.finfo(log_spec.dtype).min
        peak = log_spec.masked_fill(~frames, floor).amax(dim=(1, 2), keepdim=True)
        log_spec = torch.maximum(log_spec, peak - 8.0)
        log_spec = (log_spec + 4.0) / 4.0
        return log_spec * frames.to(log_spec.dtype), mel_lengths

    def config_dict(self) -> dict[str, Any]:
        return {
            "n_mels": self.n_mels,
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "sampling_rate": self.sampling_rate,
        }
