"""The progress bars of long loops (rich), silent when disabled: :func:`make_progress` builds
every one (the other helpers and the extraction, synthesis and transcription bars use it)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def make_progress(
    *columns: Any, enabled: bool = True, transient: bool = False, stderr: bool = False
) -> Any:
    """A rich ``Progress`` with ``columns`` (rich's default columns when none), on stderr or
    rich's default console; ``enabled=False``: a disabled one (shows nothing)."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True) if stderr else None
    return Progress(*columns, console=console, transient=transient, disable=not enabled)


class progress_bar:
    """Rich progress bar context giving an ``advance(k)`` callable (a no-op when disabled).

    ``with progress_bar(True, total, "teacher outputs") as advance: ... advance(len(batch))``
    """

    def __init__(self, enabled: bool, total: int, description: str):
        self.enabled = enabled
        self.total = total
        self.description = description
        self._bar: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda k: None
        from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn

        self._bar = make_progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
        )
        self._bar.__enter__()
        task = self._bar.add_task(self.description, total=self.total)
        return lambda k: self._bar.advance(task, k)

    def __exit__(self, *exc: Any) -> bool:
        if self._bar is not None:
            self._bar.__exit__(*exc)
        return False


def track(items: Iterable[T], description: str, enabled: bool = True) -> Iterator[T]:
    """Iterate ``items`` with a progress bar (needs ``len(items)``)."""
    items = list(items)
    with progress_bar(enabled, len(items), description) as advance:
        for item in items:
            yield item
            advance(1)


def terminal_progress(enabled: bool, total: int):
    """A transient rich ``Progress`` on stderr (``add_task``/``advance`` it), or None when
    disabled, not worth showing (fewer than 2 steps) or stderr is not a terminal."""
    if not enabled or total < 2:
        return None
    bar = make_progress(transient=True, stderr=True)
    return bar if bar.console.is_terminal else None
