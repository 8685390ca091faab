"""Paper Table 3: contextual scores of the top heads under focus directions of strength α, and
their change against α = 0 (attention moves to the relevant document mainly from the sink)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from lens_focus.experiments import TABLE3_COLUMNS

from . import markdown_table, require_columns

SPANS = ["relevant", "irrelevant", "irrelevant_max", "sink", "gold_relevant", "gold_sink"]
LABELS = {"relevant": "R", "irrelevant": "IR", "irrelevant_max": "IR max", "sink": "sink", "gold_relevant": "gold R", "gold_sink": "gold sink"}


def wide(table: pd.DataFrame) -> pd.DataFrame:
    """One row per ``alpha, layer, head``; one column per span, ``score (±delta)`` as text."""
    require_columns(table, TABLE3_COLUMNS, "table 3")
    cell = table.assign(text=[f"{s:.3f}" if a == 0 else f"{s:.3f} ({d:+.3f})" for a, s, d in zip(table.alpha, table.score, table.delta)])
    out = cell.pivot_table(index=["alpha", "layer", "head"], columns="span", values="text", aggfunc="first").reset_index()
    spans = [s for s in SPANS if s in out.columns]
    return out[["alpha", "layer", "head", *spans]].rename(columns=LABELS)


def halves(table: pd.DataFrame) -> list[tuple[int, pd.DataFrame]]:
    """The table split by how many heads were intervened on: the paper's left half intervenes on
    the heads it reports, its right half on the top 20."""
    require_columns(table, TABLE3_COLUMNS, "table 3")
    return [(int(k), g) for k, g in table.groupby("intervened", sort=True)]


def write(table: pd.DataFrame, out_dir: str | Path, *, note: str = "") -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "table3.csv", index=False)
    n_reported = table.groupby(["layer", "head"]).ngroups
    parts = [f"### α·d on the top {k} heads{' (the heads reported)' if k == n_reported else f', the top {n_reported} reported'}\n\n" + markdown_table(wide(g))
             for k, g in halves(table)]  # fmt: skip
    md = "## Top heads under focus directions (paper Table 3)\n\n" + (note + "\n\n" if note else "") + "\n".join(parts)
    (out / "table3.md").write_text(md)
    return [out / "table3.csv", out / "table3.md"]
