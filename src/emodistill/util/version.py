"""The package version (one place; ``emodistill.__version__`` and the service read it)."""

__version__ = "0.1.0"
