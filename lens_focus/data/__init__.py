"""Data sources, one module each, and what they share (:mod:`lens_focus.data.base`). Every
source is registered, with one builder protocol, in :mod:`lens_focus.sources`."""
from __future__ import annotations

from .base import DataError, Selection, Split, assemble, check_positions, read_jsonl, require, split_indices

__all__ = ["DataError", "Selection", "Split", "assemble", "check_positions", "read_jsonl", "require", "split_indices"]
