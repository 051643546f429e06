"""Rendering one planned utterance with espeak-ng: SSML prosody, re-speaking a slow rendering
faster, vocal-effort tilt, gain with a soft limiter, silence and a noise floor (16 kHz wav)."""

from __future__ import annotations

import io
import math
import os
import shutil
import subprocess
from pathlib import Path
from typing import Protocol
from xml.sax.saxutils import escape

import numpy as np
import soundfile as sf
import soxr

from emodistill.audio import SAMPLE_RATE, write_wav

#: Environment variable naming the espeak-ng executable (default: ``espeak-ng`` on PATH).
ESPEAK_ENV = "EMODISTILL_ESPEAK"


class SynthError(RuntimeError):
    """The corpus cannot be synthesised (espeak-ng missing or failing, bad arguments)."""


class SpeechPlan(Protocol):
    """What rendering reads of a ``synthetic.UtterancePlan``."""

    id: str
    transcript: str
    voice: str
    pitch: int
    range_pct: int
    rate: int
    gap: int
    tilt: float
    gain_db: float
    noise_db: float
    seed: int


#: espeak-ng amplitude (-a): low enough that loud emotions have headroom before the limiter.
_ESPEAK_AMPLITUDE = 50
#: Silence threshold for trimming espeak-ng's own leading/trailing silence.
_TRIM_THRESHOLD = 1e-3
#: Longest speech (s) before padding: slower renderings are re-spoken faster to keep clips short.
MAX_SPEECH_SECONDS = 3.5


def espeak_binary() -> str:
    name = os.environ.get(ESPEAK_ENV, "espeak-ng")
    found = shutil.which(name)
    if found is None:
        raise SynthError(
            f"espeak-ng not found ({name!r} is not on PATH): install the Debian/Ubuntu package "
            "`espeak-ng` (sudo apt-get install espeak-ng; macOS: brew install espeak-ng)"
        )
    return found


def espeak_command(binary: str, plan: SpeechPlan, rate: int) -> list[str]:
    ssml = f'<speak><prosody range="{plan.range_pct}%">{escape(plan.transcript)}</prosody></speak>'
    return [
        binary,
        "-m",  # SSML input: pitch range has no command-line flag
        "-v",
        plan.voice,
        "-p",
        str(plan.pitch),
        "-s",
        str(rate),
        "-a",
        str(_ESPEAK_AMPLITUDE),
        "-g",
        str(plan.gap),
        "--stdout",
        ssml,
    ]


def _limit(x: np.ndarray, knee: float = 0.9) -> np.ndarray:
    """Soft limiter above ``knee`` (an overdriven microphone, not hard digital clipping)."""
    mag = np.abs(x)
    over = mag > knee
    if np.any(over):
        head = 1.0 - knee
        x = x.copy()
        x[over] = np.sign(x[over]) * (knee + head * np.tanh((mag[over] - knee) / head))
    return x


def _speak(binary: str, plan: SpeechPlan, rate: int) -> tuple[np.ndarray, int]:
    """Run espeak-ng; returns its (N,) float32 output with the silence around it trimmed."""
    cmd = espeak_command(binary, plan, rate)
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SynthError(f"espeak-ng failed for utterance {plan.id} ({plan.voice}): {err}") from err
    stderr = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode != 0 or not proc.stdout:
        raise SynthError(
            f"espeak-ng failed for utterance {plan.id} (voice {plan.voice}, "
            f"exit {proc.returncode}): {stderr or 'no audio and no message'}"
        )
    try:
        wav, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    except Exception as err:  # soundfile raises several types for garbage input
        raise SynthError(
            f"espeak-ng gave unreadable audio for utterance {plan.id} ({err}); stderr: {stderr}"
        ) from err
    if wav.ndim == 2:
        wav = wav.mean(axis=1)
    voiced = np.flatnonzero(np.abs(wav) > _TRIM_THRESHOLD)
    if voiced.size == 0:
        raise SynthError(f"espeak-ng produced silence for utterance {plan.id}: {plan.transcript!r}")
    return wav[voiced[0] : voiced[-1] + 1], sr


def render_utterance(plan: SpeechPlan, binary: str, path: Path) -> tuple[float, int]:
    """Synthesise one utterance to ``path`` (16 kHz mono PCM_16).

    Returns:
        (duration in seconds, speaking rate actually used in words per minute).
    """
    rate = plan.rate
    wav, sr = _speak(binary, plan, rate)
    if wav.size / sr > MAX_SPEECH_SECONDS:
        # Deterministic (depends on the plan only): re-speak just fast enough to fit.
        rate = int(math.ceil(rate * wav.size / sr / MAX_SPEECH_SECONDS))
        wav, sr = _speak(binary, plan, rate)
    if sr != SAMPLE_RATE:
        wav = soxr.resample(wav, sr, SAMPLE_RATE, quality="HQ").astype(np.float32)
    # Vocal effort as spectral tilt: first-order shelf y = x + c (x - x[n-1]); DC gain stays 1.
    c = np.float32(plan.tilt)
    wav = wav + c * np.diff(wav, prepend=wav[:1])
    wav = _limit(wav * np.float32(10 ** (plan.gain_db / 20)))
    rng = np.random.default_rng(plan.seed)
    lead, trail = (int(rng.uniform(0.1, 0.3) * SAMPLE_RATE) for _ in range(2))
    out = np.concatenate(
        [np.zeros(lead, np.float32), wav.astype(np.float32), np.zeros(trail, np.float32)]
    )
    noise = rng.standard_normal(out.size).astype(np.float32) * np.float32(
        10 ** (plan.noise_db / 20)
    )
    out = np.clip(out + noise, -1.0, 1.0)
    write_wav(path, out, SAMPLE_RATE)
    return out.size / SAMPLE_RATE, rate


def espeak_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, timeout=10, check=False)
        return out.stdout.decode("utf-8", "replace").strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
