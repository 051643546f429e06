"""What a per-file stage (corpus check, feature extraction) makes of a file that failed.

One bad file is reported and the stage goes on; a failing machine (disk full, I/O error, ...)
stops it, since every later file would fail too and the result would silently be a subset.
"""

from __future__ import annotations

from pathlib import Path

from emodistill.audio.loading import AudioError
from emodistill.util.files import EnvironmentFault, is_environment_error


def file_error(
    err: Exception, path: str | Path, stage: str, failed: str | None = None, advice: str = ""
) -> str:
    """The one-line error of ``path`` that raised ``err`` in ``stage``.

    An :class:`AudioError` is its own message (it names the file); another error is
    ``"<path>: <Type>: <err>"`` (``"<path>: <failed> (<Type>: <err>)"`` when ``failed`` is
    given).

    Raises:
        EnvironmentFault: ``err`` is the machine's, not the file's; the message says that
            ``stage`` stopped at ``path`` (then ``advice``, e.g. what to do before re-running).

    >>> file_error(ValueError("no header"), "a.wav", "corpus check")
    'a.wav: ValueError: no header'
    """
    if isinstance(err, AudioError):
        return str(err)
    if is_environment_error(err):
        raise EnvironmentFault(
            f"{stage} stopped at {path}: {err} (the machine failed, not the file{advice})"
        ) from err
    if failed is None:
        return f"{path}: {type(err).__name__}: {err}"
    return f"{path}: {failed} ({type(err).__name__}: {err})"
