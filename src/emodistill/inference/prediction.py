"""What a prediction gives back (:class:`Prediction`, :class:`FailedPrediction`: the JSON
contract of ``predict`` and ``POST /predict``) and the printable names of its inputs.

    >>> Prediction("a.wav", "sad", {"happy": 0.25, "sad": 0.75}).to_dict()
    {'file': 'a.wav', 'label': 'sad', 'probabilities': {'happy': 0.25, 'sad': 0.75}}
    >>> display_name(b"caf\\xe9.wav")
    'caf\\\\xe9.wav'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from emodistill.audio import AudioSource, source_name


@dataclass
class Prediction:
    """One input's result: the most probable label and every label's probability."""

    file: str | None
    label: str
    probabilities: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """``{"file", "label", "probabilities": {label: p}}`` (the JSON contract of ``predict``)."""
        return {"file": self.file, "label": self.label, "probabilities": dict(self.probabilities)}


@dataclass
class FailedPrediction:
    """An input that could not be predicted, with the reason."""

    file: str | None
    error: str

    def to_dict(self) -> dict[str, Any]:
        """``{"file", "error"}`` (the JSON contract of ``predict`` for a bad file)."""
        return {"file": self.file, "error": self.error}


def display_name(path: str | os.PathLike | bytes) -> str:
    """A printable, valid-UTF-8 name for a path, whatever bytes the file system holds.

    Undecodable bytes (a Latin-1 ``é`` in a UTF-8 world, say) are shown as ``\\xe9`` rather than
    crashing the print or producing invalid JSON.
    """
    raw = os.fsencode(path)
    return raw.decode("utf-8", "backslashreplace")


def source_display_name(source: AudioSource) -> str:
    """:func:`display_name` of a path; an open file's ``name`` (or ``<upload>``) otherwise."""
    if isinstance(source, (str, os.PathLike, bytes)):
        return display_name(source)
    return source_name(source)


def safe_text(text: str) -> str:
    """``text`` with lone surrogates (from undecodable file names) shown as ``\\xNN``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
