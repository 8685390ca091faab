"""Run the notebooks in place for one model: ``python notebooks/execute.py [MODEL] [NOTEBOOK ...]``.

The committed notebooks carry the outputs of ``python notebooks/execute.py smollm2``; the test suite
runs them on the toy (``execute(path, "toy")``) without writing them back.
"""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
NOTEBOOKS = sorted(HERE.glob("[0-9][0-9]_*.ipynb"))


def execute(path: str | Path, model: str, *, timeout: int = 3600, append: str | None = None) -> nbformat.NotebookNode:
    """The notebook at ``path`` run top to bottom with ``MODEL = model`` in its first code cell
    (and ``append`` as a last cell, for checks); a failing cell raises
    ``nbclient.exceptions.CellExecutionError`` naming it."""
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    source, n = re.subn(r'^MODEL = "[^"]*"', f'MODEL = "{model}"', first.source, count=1, flags=re.M)
    if not n:
        raise ValueError(f"{path}: the first code cell sets no MODEL")
    first.source = source
    if append:
        nb.cells.append(nbformat.v4.new_code_cell(append))
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    return nb


def main(argv: list[str]) -> None:
    model = argv[0] if argv else "smollm2"
    paths = [Path(p) for p in argv[1:]] or NOTEBOOKS
    for path in paths:
        start = time.time()
        nb = execute(path, model)
        nbformat.write(nb, path)
        print(f"{path.name}: {model}, {time.time() - start:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
