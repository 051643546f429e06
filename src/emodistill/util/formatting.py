"""Numbers as the reports, cards and terminal tables print them."""

from __future__ import annotations

import math


def pct(value: float | None) -> str:
    """A fraction as a percentage with two decimals; ``-`` for missing values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100.0 * value:.2f}"
