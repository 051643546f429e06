"""Small helpers every layer may use: atomic files and JSON, progress bars, plots, logging."""
