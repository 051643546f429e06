"""What every ``emodistill`` command shares: the stderr console, common options, and
:func:`known_errors` (a known error is one line and exit code 2, not a traceback)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

console = Console(stderr=True)

#: Width of tables written to a file or a pipe (no terminal to measure): rich's default of 80
#: columns cut the demo's 11-column table to "72.…" in every saved log.
PIPE_WIDTH = 160


def output_console() -> Console:
    """A stdout console for results: the terminal's width, or :data:`PIPE_WIDTH` columns when
    stdout is a file or a pipe and ``COLUMNS`` does not say otherwise."""
    out = Console()
    if out.is_terminal or os.environ.get("COLUMNS"):
        return out
    return Console(width=PIPE_WIDTH)


ConfigOpt = typer.Option(
    None, "--config", "-c", help="Preset name (demo, paper-hubert-base, ...) or a YAML file."
)
FoldsOpt = typer.Option("all", "--folds", help="'all' or comma-separated fold IDs (test speakers).")


#: Exit code of a known error (bad input, bad environment): one line on stderr, no traceback.
KNOWN_ERROR_EXIT = 2


def fail(message: str, code: int = KNOWN_ERROR_EXIT) -> None:
    # markup=False: messages quote file names, which may hold [brackets]
    console.print("[bold red]error:[/] ", end="")
    console.print(message, markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _known_error(err: BaseException) -> bool:
    """Errors that are the user's input or environment, not a bug: shown as one line."""
    from filelock import Timeout

    from emodistill.models.assets import AssetError
    from emodistill.models.folder import ModelLoadError
    from emodistill.util.files import EnvironmentFault

    known: tuple[type[BaseException], ...] = (
        ValueError,  # ManifestError, AudioError, IemocapError, config errors, ...
        OSError,  # missing files, permissions, disk full
        EnvironmentFault,
        ModelLoadError,
        AssetError,
        Timeout,
    )
    return isinstance(err, known)


F = TypeVar("F", bound=Callable[..., Any])


def known_errors(fn: F) -> F:
    """Command decorator: a known error becomes ``error: <message>`` and exit code 2.

    Set ``EMODISTILL_TRACEBACK=1`` to get the traceback instead (for bug reports).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            if os.environ.get("EMODISTILL_TRACEBACK") or not _known_error(err):
                raise
            fail(f"{err}" if str(err) else type(err).__name__)

    return wrapper  # type: ignore[return-value]
