"""Results written to disk and read back without running anything from the file: JSON for their
structure, safetensors for their arrays.

:func:`dump` writes a value made of ``None``, booleans, numbers, strings, lists, tuples, dicts
with string keys, numpy arrays and the toolkit's own records (:data:`RECORDS`: an answer, its
example and labeled sequence) as ``STEM.json`` and ``STEM.safetensors``; :func:`load` reads them
back, equal to what was written (tuples stay tuples, arrays keep their dtype and shape). Reading
builds only those types: a file from anyone cannot make it run code, as a pickle could.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from .answers import Answered
from .errors import InputError
from .labels import Example, LabeledSequence, Segment

RECORDS = {cls.__name__: cls for cls in (Answered, Example, LabeledSequence, Segment)}
"""The dataclasses a payload may hold, by name."""


def _encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float, np.integer, np.floating)):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = np.ascontiguousarray(value)
        return {"__array__": key}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, arrays) for v in value]}
    if isinstance(value, list):
        return [_encode(v, arrays) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"a payload's dict keys must be strings, got {sorted({type(k).__name__ for k in value})}")
        return {"__dict__": {k: _encode(v, arrays) for k, v in value.items()}}
    if dataclasses.is_dataclass(value) and type(value).__name__ in RECORDS:
        return {"__record__": type(value).__name__, "fields": {f.name: _encode(getattr(value, f.name), arrays) for f in dataclasses.fields(value) if f.init}}
    raise TypeError(f"a payload cannot hold a {type(value).__name__}")


def _decode(value: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
    if isinstance(value, list):
        return [_decode(v, arrays, where) for v in value]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        if value["__array__"] not in arrays:
            raise InputError(f"{where}: array {value['__array__']!r} is missing from its safetensors file")
        return arrays[value["__array__"]]
    if "__tuple__" in value:
        return tuple(_decode(v, arrays, where) for v in value["__tuple__"])
    if "__dict__" in value:
        return {k: _decode(v, arrays, where) for k, v in value["__dict__"].items()}
    if "__record__" in value:
        cls = RECORDS.get(value["__record__"])
        if cls is None:
            raise InputError(f"{where}: unknown record {value['__record__']!r}; a payload holds {', '.join(RECORDS)}")
        return cls(**{k: _decode(v, arrays, where) for k, v in value["fields"].items()})
    raise InputError(f"{where}: an object that is no part of a payload ({sorted(value)[:3]})")


def dump(value: Any, stem: str | Path) -> list[Path]:
    """Write ``value`` as ``stem.json`` and ``stem.safetensors``; returns both paths."""
    stem = Path(stem)
    arrays: dict[str, np.ndarray] = {}
    tree = _encode(value, arrays)
    paths = [stem.with_suffix(".json"), stem.with_suffix(".safetensors")]
    paths[0].write_text(json.dumps(tree, allow_nan=True))
    save_file(arrays, str(paths[1]))
    return paths


def load(stem: str | Path) -> Any:
    """The value :func:`dump` wrote at ``stem``; a malformed file is an error naming it."""
    stem = Path(stem)
    where = stem.with_suffix(".json")
    try:
        tree = json.loads(where.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{where}: not a payload written by lens_focus ({e})") from None
    try:
        arrays = load_file(str(stem.with_suffix(".safetensors")))
    except Exception as e:  # safetensors raises its own error types on a truncated or foreign file
        raise InputError(f"{stem.with_suffix('.safetensors')}: not a readable safetensors file ({type(e).__name__}: {e})") from None
    return _decode(tree, arrays, str(where))
