"""Paper Figure 2: where contextual heads sit (relevant score per layer and head), and how sparse
they are (how many heads score above 0.2, 0.1 and 0.05)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd
import plotly.graph_objects as go

from lens_focus.plots import head_heatmap, write_figure
from lens_focus.scoring import score_grid

THRESHOLDS = (0.2, 0.1, 0.05)


def sparsity(scores: pd.DataFrame, *, condition: str = "long", thresholds: Sequence[float] = THRESHOLDS) -> pd.DataFrame:
    """Heads whose relevant score exceeds each threshold: ``threshold, n_heads, fraction``."""
    grid = score_grid(scores, condition=condition, span="relevant")
    return pd.DataFrame(
        {
            "threshold": list(thresholds),
            "n_heads": [int((grid > t).sum()) for t in thresholds],
            "fraction": [float((grid > t).mean()) for t in thresholds],
        }
    )


def sparsity_line(table: pd.DataFrame) -> str:
    """``heads with relevant score > 0.2: 2 (0.3%), > 0.1: ...``"""
    parts = [f"> {r.threshold:g}: {r.n_heads} ({100 * r.fraction:.1f}%)" for r in table.itertuples()]
    return "heads with relevant score " + ", ".join(parts)


def compute(scores: pd.DataFrame, *, condition: str = "long", model_name: str = "") -> tuple[pd.DataFrame, go.Figure]:
    grid = score_grid(scores, condition=condition, span="relevant")
    table = sparsity(scores, condition=condition)
    title = f"Contextual heads{' of ' + model_name if model_name else ''}: relevant score ({condition})"
    fig = head_heatmap(grid, title=f"{title}<br><sup>{sparsity_line(table)}</sup>", colorbar="relevant")
    return table, fig


def write(scores: pd.DataFrame, out_dir: str | Path, *, condition: str = "long", model_name: str = "") -> list[Path]:
    table, fig = compute(scores, condition=condition, model_name=model_name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "sparsity.csv", index=False)
    return [*write_figure(fig, out_dir / "head_locations"), out_dir / "sparsity.csv"]
