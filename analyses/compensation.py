"""Paper Figure 3: exact match under split-softmax compensation of the relevant document, over the
number of top contextual heads patched and the exponent τ, with random heads as the control and
the no-intervention, gold-only and negative prompts as reference lines."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from lens_focus.experiments import COMPENSATION_COLUMNS

from . import em_error_bars, require_columns, write_with_figure

BASELINES = {"baseline": ("no intervention", "black"), "gold": ("gold only", "green"), "negative": ("negative", "red")}


def figure(table: pd.DataFrame, *, title: str = "Split-softmax compensation (paper Figure 3)") -> go.Figure:
    require_columns(table, COMPENSATION_COLUMNS[:5], "compensation table")
    fig = go.Figure()
    ctx = table[table.method == "contextual"]
    for tau, g in ctx.groupby("tau"):
        g = g.sort_values("k")
        fig.add_scatter(x=g.k.astype(int), y=g.em, mode="lines+markers", name=f"top-k, τ = {tau:g}", error_y=em_error_bars(g.em, g.n))
    rnd = table[table.method == "random"].sort_values("k")
    if not rnd.empty:
        fig.add_scatter(x=rnd.k.astype(int), y=rnd.em, mode="lines+markers", line=dict(dash="dash", color="gray"), error_y=em_error_bars(rnd.em, rnd.n),
                        name=f"random k, τ = {rnd.tau.iloc[0]:g}")  # fmt: skip
    for method, (label, color) in BASELINES.items():
        row = table[table.method == method]
        if not row.empty:
            fig.add_hline(y=float(row.em.iloc[0]), line=dict(dash="dot", color=color), annotation_text=label)
    fig.update_layout(title=title, xaxis_title="heads patched (k)", yaxis_title="exact match (bars: 95% interval)", template="plotly_white")
    fig.update_xaxes(type="log", tickvals=sorted(table.k.dropna().astype(int).unique().tolist()))  # only the k that ran
    return fig


def write(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    return write_with_figure(table, figure(table), out_dir, "compensation")
