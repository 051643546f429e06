"""eGeMAPS v02 extraction: a pure ``f(signal, sampling_rate)`` and the settings that key it.

The prosodic teacher reads, per utterance, a (T, 25) float32 matrix: the 25 eGeMAPS v02 LLDs that
opensmile computes every 10 ms (``FRAME_RATE`` = 100 frames/s). Measured with opensmile 2.6.0 on
16 kHz audio: ``T = N // 160 - 4`` for ``N >= 960`` samples (the F0/jitter window is 60 ms, so the
first 4 hops have no complete frame); shorter signals give a single NaN row, so anything under
``MIN_SECONDS`` (60 ms) is refused as too short.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from emodistill.audio import SAMPLE_RATE, AudioError, prepare_signal

if TYPE_CHECKING:
    pass


#: Number of eGeMAPS v02 low-level descriptors per frame.
N_LLD = 25
#: LLD frames per second (10 ms hop).
FRAME_RATE = 100
#: Shortest audio that gives at least one complete eGeMAPS frame (60 ms F0 window).
MIN_SECONDS = 0.06
#: Bump when the extraction code changes its output: every cache entry then misses.
FEATURE_CODE_VERSION = 1


def _opensmile_version() -> str:
    # Package metadata, not ``opensmile.__version__``: a warm run need not import opensmile.
    from importlib.metadata import version

    return version("opensmile")


def _resampler_version() -> str:
    import soxr

    return f"soxr-{soxr.__version__}-HQ"


@dataclass(frozen=True)
class FeatureSettings:
    """Everything the content of a cache entry depends on besides the audio bytes.

    Any change gives new cache keys. ``feature_set`` and ``feature_level`` are member names of
    ``opensmile.FeatureSet`` / ``opensmile.FeatureLevel``.
    """

    feature_set: str = "eGeMAPSv02"
    feature_level: str = "LowLevelDescriptors"
    sample_rate: int = SAMPLE_RATE
    opensmile_version: str = field(default_factory=_opensmile_version)
    resampler: str = field(default_factory=_resampler_version)
    code_version: int = FEATURE_CODE_VERSION

    def digest(self) -> str:
        """sha256 hex digest of the settings (stable across processes and runs)."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


# One opensmile.Smile per process and settings: building it parses the config (a few ms) and
# opensmile is not documented as thread-safe, so each worker process keeps its own.
_SMILE: dict[tuple[str, str], Any] = {}


def _smile(settings: FeatureSettings) -> Any:
    import opensmile

    key = (settings.feature_set, settings.feature_level)
    smile = _SMILE.get(key)
    if smile is None:
        smile = opensmile.Smile(
            feature_set=getattr(opensmile.FeatureSet, settings.feature_set),
            feature_level=getattr(opensmile.FeatureLevel, settings.feature_level),
        )
        _SMILE[key] = smile
    return smile


def egemaps_llds(
    signal: np.ndarray,
    sampling_rate: int,
    settings: FeatureSettings | None = None,
    name: str = "<array>",
) -> np.ndarray:
    """eGeMAPS v02 LLDs of a signal: a pure function of ``signal`` and ``sampling_rate``.

    The signal is first converted to mono float32 at ``settings.sample_rate`` (16 kHz), so any
    input rate gives the features a cached file would get.

    Args:
        signal: (N,) or (N, channels) samples.
        sampling_rate: rate of ``signal`` in Hz.
        settings: extractor settings (default: eGeMAPSv02 LLDs at 16 kHz).
        name: what to call the signal in error messages (usually its file path).

    Returns:
        (T, 25) float32, ``T = N16 // 160 - 4`` where ``N16`` is the length at 16 kHz
        (about ``duration * FRAME_RATE``).

    Raises:
        AudioError: empty, non-finite or shorter than ``MIN_SECONDS`` audio, or non-finite
            features (names ``name``).
    """
    settings = settings or FeatureSettings()
    x = prepare_signal(
        signal, sampling_rate, settings.sample_rate, name=name, min_seconds=MIN_SECONDS
    )
    return extract_prepared(x, settings, name)


def extract_prepared(x: np.ndarray, settings: FeatureSettings, name: str) -> np.ndarray:
    """Features of ``x``, already mono at ``settings.sample_rate``: (T, columns) float32.

    Raises:
        AudioError: opensmile gave no frames or non-finite values (the message names ``name``).
    """
    frame = _smile(settings).process_signal(x, settings.sample_rate)
    feats = np.ascontiguousarray(frame.to_numpy(), dtype=np.float32)
    if feats.ndim != 2 or feats.shape[0] == 0:
        raise AudioError(f"{name}: opensmile returned no frames ({feats.shape})")
    if not np.all(np.isfinite(feats)):
        # opensmile fills too-short segments with NaN; anything else non-finite is a bug to see.
        raise AudioError(f"{name}: eGeMAPS features are not finite (audio too short or broken?)")
    return feats


#: Values per row of the opensmile outputs we cache besides the LLDs: (feature set, level) ->
#: columns. Entries of any other settings are checked against ``N_LLD`` columns.
FEATURE_COLUMNS = {("eGeMAPSv02", "Functionals"): 88}


def feature_columns(settings: FeatureSettings) -> int:
    """Columns of one cache entry under ``settings`` (25 LLDs per frame; 88 functionals)."""
    return FEATURE_COLUMNS.get((settings.feature_set, settings.feature_level), N_LLD)


def functional_settings() -> FeatureSettings:
    """eGeMAPS v02 *functionals*: one (1, 88) row of utterance statistics per file.

    Cached by :func:`extract_features` exactly like the LLDs (same folder, same content hash;
    the feature level is part of the key, so the two never collide).
    """
    return FeatureSettings(feature_level="Functionals")
