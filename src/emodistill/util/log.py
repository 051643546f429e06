"""Library messages go through :mod:`logging`, one logger per package.

Library code calls ``log = get_logger(__name__)`` (``emodistill.training.distill`` logs to
``emodistill.training``) and never prints; it attaches no handler, so a program embedding the
library decides what is shown (``logging.getLogger("emodistill").setLevel(logging.WARNING)``
silences it). Messages may hold rich markup (``[yellow]warning:[/]``); a record's ``markup``,
``highlight`` and ``soft_wrap`` attributes (``extra=``) say how a rich console shows it.

The command line attaches :class:`ConsoleHandler` (:func:`log_to_console`): each message is
printed as it was before logging existed, through a rich console on stderr.
"""

from __future__ import annotations

import logging
from typing import Any

ROOT = "emodistill"

#: ``extra=`` for a message that quotes names (files, ids) which may hold [brackets].
PLAIN: dict[str, Any] = {"markup": False, "highlight": False}


def get_logger(module: str) -> logging.Logger:
    """The logger of ``module``'s package: ``emodistill.training.distill`` ->
    ``emodistill.training``.

    >>> get_logger("emodistill.training.distill").name
    'emodistill.training'
    """
    return logging.getLogger(".".join(module.split(".")[:2]))


class ConsoleHandler(logging.Handler):
    """Prints each record's message through a rich console on stderr (no time, no level)."""

    def __init__(self, console: Any = None, level: int = logging.NOTSET):
        super().__init__(level)
        if console is None:
            from rich.console import Console

            console = Console(stderr=True)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.print(
                record.getMessage(),
                markup=getattr(record, "markup", True),
                highlight=getattr(record, "highlight", True),
                soft_wrap=getattr(record, "soft_wrap", False),
            )
        except Exception:  # noqa: BLE001 - logging's own contract: never raise from emit
            self.handleError(record)


def log_to_console(level: int = logging.INFO, console: Any = None) -> ConsoleHandler:
    """Show the library's messages at ``level`` and above on a rich console (the CLI's choice);
    replaces a console handler attached before."""
    logger = logging.getLogger(ROOT)
    for old in [h for h in logger.handlers if isinstance(h, ConsoleHandler)]:
        logger.removeHandler(old)
    handler = ConsoleHandler(console)
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler
