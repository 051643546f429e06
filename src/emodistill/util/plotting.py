"""Matplotlib for files only: pyplot on the Agg backend (no display needed) and atomic figure
writing. Shared by the cross-validation report, the layer probe and the corpus check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emodistill.util.files import atomic_path


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (works on a cluster node without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, dpi: int = 120, tight: bool = True) -> Path:
    """Write ``fig`` to ``path`` atomically (a reader never sees half a PNG); the format is the
    file's suffix (PNG when it has none)."""
    path = Path(path)
    with atomic_path(path) as tmp:  # the temporary name ends in .tmp: say the format
        fig.savefig(
            tmp,
            dpi=dpi,
            bbox_inches="tight" if tight else None,
            format=path.suffix.lstrip(".") or "png",
        )
    return path
