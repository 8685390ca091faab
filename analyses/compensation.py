"""Paper Figure 3: exact match under split-softmax compensation of the relevant document, over the
number of top contextual heads patched and the exponent τ, with random heads as the control and
the no-intervention, gold-only and negative prompts as reference lines."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from lens_focus.experiments import COMPENSATION_COLUMNS
from lens_focus.stats import em_text

from . import em_error_bars, require_columns, write_with_figure
from .index import Folders, diff_text, row

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


PAPER = "0.916 at top-20, τ = 0.1 (baseline 0.594, NQ test half); τ = 1000 falls to 0.320"
"""The paper's Figure 3 (docs/method.md §3)."""


def section(f: Folders) -> tuple[str, list[dict]]:
    """The index section of the compensation step: the baseline, the best setting, each random
    control beside the contextual heads at its k and τ, and τ > 1."""
    t = pd.read_csv(f.step / "compensation.csv")
    ctx = t[t.method == "contextual"]
    best = ctx.loc[ctx.em.idxmax()]
    high = ctx[(ctx.tau > 1) & (ctx.k == best.k)]
    b = t[t.method == "baseline"].iloc[0]
    taus = ", ".join(f"{x:g}" for x in sorted(ctx.tau.unique()))
    ks = ", ".join(str(int(k)) for k in sorted(ctx.k.unique()))
    rows = [row("baseline (long prompts, no intervention)", em_text(b.em, int(b.n)), "0.594"),
            row(f"best EM under compensation: top-{int(best.k)}, τ = {best.tau:g}", em_text(best.em, int(best.n)) + diff_text(best), PAPER)]  # fmt: skip
    for r in t[t.method == "random"].itertuples():  # the control beside contextual heads at the same k and the same τ
        same = ctx[(ctx.k == r.k) & (ctx.tau == r.tau)]
        if not same.empty:
            c = same.iloc[0]
            rows.append(row(f"top-{int(c.k)} contextual heads, τ = {c.tau:g}", em_text(c.em, int(c.n)) + diff_text(c), "—"))
        rows.append(row(f"{int(r.k)} random heads, τ = {r.tau:g}", em_text(r.em, int(r.n)) + diff_text(r), "near the baseline"))
    if not high.empty:
        h = high.loc[high.tau.idxmax()]
        rows.append(row(f"top-{int(h.k)}, τ = {h.tau:g} (less attention on the relevant document)", em_text(h.em, int(h.n)) + diff_text(h),
                        f"0.320 at τ = 1000{'' if h.tau == 1000 else f' (here τ = {h.tau:g})'}"))  # fmt: skip
    files = f.links(f.step / "compensation.png", f.step / "compensation.html", f.step / "compensation.csv", optional=(f.step / "answers.csv",))
    text = (f"Figure 3 over τ ∈ {{{taus}}} and k ∈ {{{ks}}} (the paper: τ ∈ {{0.1, 0.3, 0.6, 1.5, 1000}}, k from 1 to 600). "
            "EM with a 95% Wilson interval; where every prompt's answer was kept (`answers.csv`), each setting's paired difference "
            f"from the baseline on the same prompts with a 95% bootstrap interval over questions. Files: {files}.\n\n"
            f"{f.image(f.step / 'compensation.png', 'compensation')}")  # fmt: skip
    return text, rows
