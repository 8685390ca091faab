"""Paper Figure 4: exact match with focus directions added to the top-k contextual heads, over
the strength α and the number of heads k (α = 0 is the unmodified model)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from lens_focus.experiments import SWEEP_COLUMNS

from . import em_error_bars, require_columns, write_with_figure


def figure(table: pd.DataFrame, *, title: str = "Focus directions: EM over α and k (paper Figure 4)") -> go.Figure:
    require_columns(table, SWEEP_COLUMNS[:4], "sweep table")
    fig = go.Figure()
    for k, g in table.groupby("k"):
        g = g.sort_values("alpha")
        fig.add_scatter(x=g.alpha, y=g.em, mode="lines+markers", name=f"top-{k}", error_y=em_error_bars(g.em, g.n))
    base = table[table.alpha == 0]
    if not base.empty:
        fig.add_hline(y=float(base.em.iloc[0]), line=dict(dash="dot", color="black"), annotation_text="no intervention")
    fig.update_layout(title=title, xaxis_title="α", yaxis_title="exact match (bars: 95% interval)", template="plotly_white")
    return fig


def write(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    return write_with_figure(table, figure(table), out_dir, "sweep")
