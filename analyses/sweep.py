"""Paper Figure 4: exact match with focus directions added to the top-k contextual heads, over
the strength α and the number of heads k (α = 0 is the unmodified model)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lens_focus.directions import FocusDirections
from lens_focus.experiments import SWEEP_COLUMNS
from lens_focus.stats import em_text

from . import em_error_bars, require_columns, write_with_figure
from .index import Folders, diff_text, row


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


PAPER = {
    "sweep": "0.671 at k = 20, α = 0.3 (baseline 0.594); α = 1.0 gives 0.458; more than 20 heads always worse",
    "table3": "α = 0.2: R +0.11, sink −0.11; α = 0.5: R +0.26, sink −0.19 (mean of the top 5, the top 5 steered)",
}
"""The paper's Figure 4 and Table 3 (docs/method.md §4)."""


def _directions_meta(path: Path) -> dict:
    if not path.exists():
        return {}
    d = FocusDirections.load(path)
    return {**d.meta, "site": d.site}


def section(f: Folders) -> tuple[str, list[dict]]:
    """The index section of the sweep step: the baseline, the best setting, the strongest α, Table 3's
    mean changes per half, and what training did to the relevant score."""
    t = pd.read_csv(f.step / "sweep.csv")
    b = t[t.alpha == 0].iloc[0]
    steered = t[t.alpha != 0]
    best = steered.loc[steered.em.idxmax()]
    rows = [row("baseline (α = 0)", em_text(b.em, int(b.n)), "0.594"),
            row(f"best EM with focus directions: k = {int(best.k)}, α = {best.alpha:g}", em_text(best.em, int(best.n)) + diff_text(best), PAPER["sweep"])]  # fmt: skip
    strong = steered[steered.alpha == steered.alpha.max()]
    if not strong.empty and strong.alpha.iloc[0] >= 1:
        rows += [row(f"α = {r.alpha:g}, k = {int(r.k)}", em_text(r.em, int(r.n)) + diff_text(r), "0.458 (k = 20)" if r.k == 20 else "—") for r in strong.itertuples()]
    t3 = pd.read_csv(f.step / "table3.csv")
    if "intervened" not in t3.columns:  # tables written before the right half existed
        t3 = t3.assign(intervened=t3[["layer", "head"]].drop_duplicates().shape[0])
    for (k, alpha), g in t3[t3.alpha != 0].groupby(["intervened", "alpha"]):
        d = g.groupby("span").delta.mean()
        reported = g[["layer", "head"]].drop_duplicates().shape[0]
        paper = PAPER["table3"] if k == reported == 5 else "— (the paper gives its other half per head, no mean change)"
        rows.append(row(f"Table 3, α = {alpha:g} on the top {k}: mean change over the top {reported} (one run, no interval)",
                        f"R {d.get('relevant', np.nan):+.3f}, IR max {d.get('irrelevant_max', np.nan):+.3f}, sink {d.get('sink', np.nan):+.3f}", paper))  # fmt: skip
    meta = _directions_meta(f.of("directions") / "directions.safetensors")
    if meta:
        prompts = meta.get("prompts", "long")
        rows.append(row(f"directions: mean relevant score on training rows ({prompts} prompts + gold responses)",
                        f"{meta['relevant_score_at_init']:.3f} → {meta['relevant_score_trained']:.3f} (site {meta.get('site', '?')})",
                        "trained on the gold-only prompt (§3.1); the reference code trains on the long prompt"))  # fmt: skip
    links = f.links(f.step / "sweep.png", f.step / "sweep.html", f.step / "sweep.csv", f.step / "table3.md", f.of("directions") / "directions.safetensors",
                    optional=(f.step / "answers.csv",))  # fmt: skip
    return (f"Figure 4 and Table 3 (its left half intervenes on the heads it reports, its right half on more). EM with a 95% Wilson "
            f"interval and, where every answer was kept, the paired difference from α = 0. Files: {links}.\n\n{f.image(f.step / 'sweep.png', 'sweep')}"), rows  # fmt: skip
