"""Exact match by the relevant document's position (the lost-in-the-middle curve): long prompts
per gold position, with the gold-only and negative prompts as reference lines."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from lens_focus.plots import write_figure
from lens_focus.stats import em_interval

from . import em_error_bars, require_columns

COLUMNS = ["variant", "gold_position", "em", "n"]
INTERVAL = ["em_low", "em_high"]
REFERENCES = {"gold": ("gold only", "green"), "negative": ("negative", "red")}


def compute(answers: pd.DataFrame) -> pd.DataFrame:
    """Per-answer rows (``variant, gold_position, em``) to ``variant, gold_position, em, n,
    em_low, em_high`` (a 95% Wilson interval); the ``long`` variant also gets an ``all`` row
    averaging its positions."""
    require_columns(answers, ["variant", "gold_position", "em"], "answers")
    table = answers.groupby(["variant", "gold_position"], dropna=False)["em"].agg(["mean", "count"]).reset_index()
    table.columns = COLUMNS
    long = answers[answers.variant == "long"]
    if not long.empty:
        overall = pd.DataFrame([{"variant": "long", "gold_position": "all", "em": long.em.mean(), "n": len(long)}])
        table = pd.concat([table.astype({"gold_position": object}), overall], ignore_index=True)
    bounds = [em_interval(e, int(n)) for e, n in zip(table.em, table.n)]
    return table.assign(em_low=[lo for lo, _ in bounds], em_high=[hi for _, hi in bounds])


def figure(table: pd.DataFrame, *, title: str = "Exact match by position of the relevant document") -> go.Figure:
    require_columns(table, COLUMNS, "EM table")
    long = table[(table.variant == "long") & (table.gold_position != "all")]
    long = long.assign(gold_position=long.gold_position.astype(float).astype(int)).sort_values("gold_position")  # "1.0" when read back
    fig = go.Figure()
    fig.add_scatter(x=long.gold_position, y=long.em, mode="lines+markers", name="all documents", error_y=em_error_bars(long.em, long.n),
                    customdata=long.n, hovertemplate="position %{x}: EM %{y:.3f} (n = %{customdata}; bars: 95% interval)<extra></extra>")  # fmt: skip
    for variant, (label, color) in REFERENCES.items():
        row = table[table.variant == variant]
        if not row.empty:
            fig.add_hline(y=float(row.em.iloc[0]), line=dict(dash="dot", color=color), annotation_text=label)
    fig.update_layout(title=title, xaxis_title="position of the relevant document", yaxis_title="exact match",
                      yaxis_range=[0, 1.05], template="plotly_white")  # fmt: skip
    return fig


def write(answers: pd.DataFrame, out_dir: str | Path) -> pd.DataFrame:
    """``em.csv`` and ``em_by_position.html/.png``; returns the table."""
    table = compute(answers)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "em.csv", index=False)
    write_figure(figure(table), out / "em_by_position")
    return table
