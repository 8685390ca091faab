"""Results of long loops kept as they finish, so that an interrupted run resumes where it stopped.

A :class:`RowCache` maps a key (any JSON value: the cell of a grid, such as ``["contextual", 20,
0.1]``) to the JSON value computed for it, and appends each new entry to a JSON-lines file at
once. Given the same file again, a loop finds the cells it already has and computes only the rest.
Without a file it is an in-memory no-op store, so library functions take one unconditionally.
Each entry also records the seconds its computation took (``seconds``), so that a step resumed
over several runs still knows what its cells cost in all (:func:`cell_seconds`). A loop declares
its cells' keys before it computes them (:meth:`RowCache.expect`, kept beside the file), so that a
reader of the folder tells how many of them remain. A cell that takes long may be computed in pieces
(:meth:`RowCache.pieces`, one batch of prompts at a time): an interrupted cell then resumes from its
last finished piece.

The key must name everything the value depends on that can change between runs of the same file;
callers that change anything else (the model, the examples) start a new file.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NamedTuple, TypeVar

from .errors import InputError

T = TypeVar("T")


def _key(key: Any) -> str:
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


def _entries(path: Path) -> Iterator[tuple[str, dict]]:
    """The entries of a cache file as ``(key, entry)``, read only: a line being written (or not an
    entry) is passed over; a file not written yet has none."""
    path = Path(path)
    for line in path.read_text().splitlines() if path.exists() else ():
        try:
            entry = json.loads(line)
            key, _ = _key(entry["key"]), entry["value"]
        except (ValueError, KeyError, TypeError):
            continue
        yield key, entry


def unfinished_path(path: str | Path) -> Path:
    """Where the finished pieces of the cells of the cache file ``path`` that are not finished yet
    are kept: ``cells.jsonl`` → ``unfinished.cells.jsonl``."""
    path = Path(path)
    return path.with_name("unfinished." + path.name)


def planned_path(path: str | Path) -> Path:
    """Where the keys a run of the cache file ``path`` declared are kept: ``cells.jsonl`` →
    ``cells.planned.json``."""
    path = Path(path)
    return path.with_name(path.stem + ".planned.json")


class RowCache:
    """``cache(key, compute)``: the stored value of ``key``, else ``compute()``, stored and appended."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        self.rows: dict[str, Any] = {}
        self._seconds: dict[str, float | None] = {}  # of the entries read from the file
        self.found_seconds = 0.0
        """The seconds recorded for the entries served from the file (the work of earlier runs)."""
        self.planned: dict[str, Any] = {}
        self.adopted: dict[str, Any] = {}
        self._adopted_seconds: dict[str, float | None] = {}
        self.hits = 0
        self._pieces: dict[str, RowCache] = {}
        if self.path is not None and self.path.exists():
            lines = self.path.read_text().splitlines()
            for i, line in enumerate(lines):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    self.rows[_key(entry["key"])] = entry["value"]
                    self._seconds[_key(entry["key"])] = entry.get("seconds")
                except (ValueError, KeyError, TypeError):
                    if i == len(lines) - 1:
                        # A last line cut short by an interruption: drop it (the next entry then starts
                        # on a line of its own) and recompute that cell.
                        self.path.write_text("".join(line + "\n" for line in lines[:-1]))
                        break
                    raise InputError(f"{self.path}, line {i + 1}: not a cache entry; the file holds finished cells of an interrupted step: "
                                     f"delete line {i + 1} to recompute that cell alone, or the file to recompute the step") from None  # fmt: skip

    def adopt(self, path: str | Path) -> int:
        """Take the finished cells of another cache file as found here too (an earlier run's
        cells of the same keys: the same work). The file is only read, never repaired (a run may be
        appending to it: an unfinished last line is passed over); a cell found there is copied into
        this cache's own file when it is used. Returns the number of entries taken."""
        path = Path(path)
        if not path.exists():
            return 0
        before = len(self.adopted)
        for key, entry in _entries(path):  # a line being written, or not an entry, is passed over: that cell is computed here
            self.adopted.setdefault(key, entry["value"])
            self._adopted_seconds.setdefault(key, entry.get("seconds"))
        return len(self.adopted) - before

    def expect(self, keys: Iterable[Any]) -> None:
        """Declare the keys of the cells a loop is about to ask for (those already kept included).
        A run's declarations add up, and the first of a new run replaces an earlier run's, so
        ``cells.planned.json`` holds the grid of the run in progress (:func:`cell_seconds`)."""
        self.planned.update((_key(k), k) for k in keys)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            planned_path(self.path).write_text(json.dumps(list(self.planned.values())) + "\n")

    def pieces(self, key: Any) -> Callable[[Any, Callable[[], T]], T]:
        """``piece(part, compute)``: a cache, like this one, for the pieces of the cell ``key`` while
        the cell is computed (the cell's ``compute`` calls it for each piece). The pieces are kept
        in :func:`unfinished_path` under ``[key, part]``: a cell interrupted half-way computes only
        the pieces it has not finished, and its recorded time adds theirs. Once the cell is stored,
        its pieces are dropped. ``part`` must name what the piece depends on beyond ``key``."""
        store = RowCache(unfinished_path(self.path) if self.path is not None else None)
        self._pieces[k := _key(key)] = store
        cell = json.loads(k)
        return lambda part, compute: store([cell, part], compute)

    def _drop_pieces(self, k: str) -> None:
        """Forget the pieces of the cell of key ``k``, now stored."""
        store = self._pieces.pop(k, None)
        if store is None:
            return
        if store.path is not None and store.path.exists():
            left = [entry for _, entry in _entries(store.path) if _key(entry["key"][0]) != k]  # other cells' pieces
            if left:
                store.path.write_text("".join(json.dumps(entry) + "\n" for entry in left))
            else:
                store.path.unlink()

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, key: Any) -> bool:
        return _key(key) in self.rows

    def __call__(self, key: Any, compute: Callable[[], T]) -> T:
        k = _key(key)
        if k in self.rows:
            self.hits += 1
            self.found_seconds += self._seconds.get(k) or 0.0
            return self.rows[k]
        if k in self.adopted:
            self.hits += 1
            value, seconds = self.adopted[k], self._adopted_seconds[k]
        else:
            start = time.perf_counter()
            value = json.loads(json.dumps(compute()))  # what a resumed run reads back: tuples become lists
            earlier = self._pieces[k].found_seconds if k in self._pieces else 0.0  # pieces of this cell computed by earlier runs
            seconds = round(time.perf_counter() - start + earlier, 2)
        self.rows[k] = value
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(json.dumps({"key": json.loads(k), "value": value, **({"seconds": seconds} if seconds is not None else {})}) + "\n")
        self._drop_pieces(k)
        return value


class CellTime(NamedTuple):
    """What the cells of one or more cache files cost: ``n`` cells, ``timed`` of them with a
    recorded time, ``seconds`` their sum; ``planned``, the cells their last runs declared
    (:meth:`RowCache.expect`), and ``left``, those not finished yet (both None where a file has no
    declaration, as a file of a run from before cells were declared)."""

    n: int
    timed: int
    seconds: float
    planned: int | None = None
    left: int | None = None


def cell_files(folder: str | Path) -> list[Path]:
    """The cache files of a step's folder (``cells*.jsonl``), with those a run has declared cells
    of but not finished one yet."""
    folder = Path(folder)
    declared = {p.with_name(p.name.removesuffix(".planned.json") + ".jsonl") for p in folder.glob("cells*.planned.json")}
    return sorted(set(folder.glob("cells*.jsonl")) | declared)


def kept_files(folder: str | Path) -> list[Path]:
    """Every file of a step's folder that holds finished work: its cache files and the pieces of
    their unfinished cells (what a run whose grid changed carries over)."""
    folder = Path(folder)
    return sorted({*folder.glob("cells*.jsonl"), *folder.glob(unfinished_path("cells*.jsonl").name)})


def cell_seconds(paths: Iterable[str | Path]) -> CellTime:
    """The computing time recorded in the cache files ``paths`` (earlier runs' cells included) and
    how many declared cells remain. The files are only read (a run may be appending to them: a
    line being written is passed over)."""
    paths = list(paths)
    times, planned, left = [], (0 if paths else None), (0 if paths else None)
    for path in paths:
        found = {key: entry.get("seconds") for key, entry in _entries(path)}
        times += found.values()
        try:
            keys = {_key(k) for k in json.loads(planned_path(path).read_text())}
        except (OSError, ValueError, TypeError):  # not declared (or being written): unknown
            planned = left = None
        else:
            if planned is not None:
                planned, left = planned + len(keys), left + len(keys - found.keys())
    timed = [t for t in times if t is not None]
    return CellTime(len(times), len(timed), round(sum(timed), 1), planned, left)
