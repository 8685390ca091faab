"""Plotly figures shared by the command line, ``analyses/`` and notebooks, and writing them.

Pages work offline: each loads plotly.js from a file ``plotly-<version>.min.js`` in its own
folder or the nearest folder above that has one (a run's folder, where ``reproduce`` writes it
once), never from a network; without such a file one is written beside the page. Keep a page
with the folder that holds its plotly.js when moving it.
"""
from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs, get_plotlyjs_version

PLOTLY_JS = f"plotly-{get_plotlyjs_version()}.min.js"
"""The name of the plotly.js file pages load (versioned, so a page never loads another version)."""

_png_warned = False


def head_heatmap(grid: np.ndarray, *, title: str, colorbar: str = "score") -> go.Figure:
    """A layer × head heatmap (layers on the y axis, layer 0 at the bottom), as in paper Figure 2."""
    grid = np.asarray(grid, dtype=float)
    if grid.ndim != 2:
        raise ValueError(f"expected a (layers, heads) grid, got shape {grid.shape}")
    fig = go.Figure(
        go.Heatmap(
            z=grid,
            x=list(range(grid.shape[1])),
            y=list(range(grid.shape[0])),
            colorscale="Blues",
            colorbar=dict(title=colorbar),
            hovertemplate="layer %{y}, head %{x}: %{z:.4f}<extra></extra>",
        )
    )
    fig.update_layout(title=title, xaxis_title="head", yaxis_title="layer", template="plotly_white")
    return fig


def plotlyjs_for(folder: str | Path) -> str:
    """The relative URL from ``folder`` to the plotly.js its pages load: :data:`PLOTLY_JS` in
    ``folder`` or the nearest folder above it, else a copy written into ``folder``."""
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    for at in (folder, *folder.parents):
        if (at / PLOTLY_JS).is_file():
            return os.path.relpath(at / PLOTLY_JS, folder).replace(os.sep, "/")
    (folder / PLOTLY_JS).write_text(get_plotlyjs(), encoding="utf-8")
    return PLOTLY_JS


EXPORTER_LOGGERS = ("choreographer", "kaleido", "logistro")
"""The loggers of plotly's PNG exporter (kaleido drives a Chromium through choreographer)."""
EXPORT_LOG = "png-export.log"
"""Where a folder keeps what the PNG exporter said while its figures were written (only when it said something)."""


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}" + (f" ({error!r})" if error is not None else ""))


@contextmanager
def _exporter_kept_quiet() -> Iterator[_Collect]:
    """The exporter's log records collected instead of printed while the block runs."""
    import logistro  # noqa: F401  (kaleido's logging; it sets the class of the loggers below, so it comes first)

    collect = _Collect()
    loggers = [logging.getLogger(name) for name in EXPORTER_LOGGERS]
    saved = [(lg.handlers[:], lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.handlers, lg.propagate = [collect], False
    try:
        yield collect
    finally:
        for lg, (handlers, propagate) in zip(loggers, saved):
            lg.handlers, lg.propagate = handlers, propagate


def write_figure(fig: go.Figure, stem: str | Path) -> list[Path]:
    """Write ``stem.html`` always (loading plotly.js from :func:`plotlyjs_for` its folder) and
    ``stem.png`` when a Chromium is available for kaleido (otherwise say so once on stderr and go
    on). What the exporter logs on the way (its retries under load) stays off the terminal, kept
    in the folder's :data:`EXPORT_LOG`. Returns the paths written."""
    global _png_warned
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = [stem.with_suffix(".html")]
    fig.write_html(written[0], include_plotlyjs=plotlyjs_for(stem.parent))
    with _exporter_kept_quiet() as said:
        try:
            fig.write_image(stem.with_suffix(".png"), width=900, height=600, scale=1)
            written.append(stem.with_suffix(".png"))
        except Exception as e:  # kaleido raises its own error types when no browser is found
            if not _png_warned:
                print(f"note: PNG export skipped, HTML written ({type(e).__name__}: {str(e).splitlines()[0][:120]})", file=sys.stderr)
                _png_warned = True
    if said.lines:
        with open(stem.parent / EXPORT_LOG, "a") as f:
            f.writelines(f"{stem.with_suffix('.png').name}: {line}\n" for line in said.lines)
    return written
