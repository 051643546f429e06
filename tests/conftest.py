"""Shared test fixtures: tiny synthetic audio in tmp_path, no network."""

from __future__ import annotations

import os

# No hub access in tests: every model is built and saved by the test itself.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
