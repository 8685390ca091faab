"""Plotly figures shared by the command line, ``analyses/`` and notebooks, and writing them."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

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


def write_figure(fig: go.Figure, stem: str | Path) -> list[Path]:
    """Write ``stem.html`` always and ``stem.png`` when a Chromium is available for kaleido
    (otherwise say so once on stderr and go on). Returns the paths written."""
    global _png_warned
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = [stem.with_suffix(".html")]
    fig.write_html(written[0], include_plotlyjs="cdn")
    try:
        fig.write_image(stem.with_suffix(".png"), width=900, height=600, scale=1)
        written.append(stem.with_suffix(".png"))
    except Exception as e:  # kaleido raises its own error types when no browser is found
        if not _png_warned:
            print(f"note: PNG export skipped, HTML written ({type(e).__name__}: {str(e).splitlines()[0][:120]})", file=sys.stderr)
            _png_warned = True
    return written
