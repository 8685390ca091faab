"""Paper Figure 2: where contextual heads sit (relevant score per layer and head), and how sparse
they are (how many heads score above 0.2, 0.1 and 0.05)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lens_focus.plots import head_heatmap, write_figure
from lens_focus.scoring import score_grid
from lens_focus.stats import em_text

from . import top_k
from .index import PAPER_SETTING, ROWS_NOTE, Folders, heads_text, row, setting_text

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


PAPER = {
    "sparsity": "2 (0.3%) > 0.2, 37 (5.5%) > 0.1, 113 (16.8%) > 0.05 of 672 heads",
    "locations": "most heads > 0.1 in layers 8–18 of 0–27",
    "top5": "(13,23) (12,1) (15,18) (15,22) (14,2)",
    "em": {"long": 0.594, "gold": 0.847, "negative": 0.276},
}
"""The paper's numbers for Figure 2, Table 1 and EM by position (docs/method.md §2)."""


def table1_checks(t1: pd.DataFrame) -> list[tuple[str, int, int]]:
    """Table 1's three findings over the top heads: ``(finding, heads that show it, heads with the numbers)``."""
    return [
        ("R > IR max on correct answers", int((t1.correct_R > t1.correct_IR_max).sum()), int(t1.correct_R.notna().sum())),
        ("R < IR max on wrong answers", int((t1.wrong_R < t1.wrong_IR_max).sum()), int(t1.wrong_R.notna().sum())),
        ("sink higher on gold-only than on long prompts", int((t1.gold_sink > t1.long_sink).sum()), int(t1.gold_sink.notna().sum())),
    ]


def section(f: Folders) -> tuple[str, list[dict]]:
    """The index section of a score step: sparsity, where the top heads sit, Table 1's findings, EM by position."""
    summary = json.loads((f.step / "summary.json").read_text())
    n_total = summary["model"]["n_layers"] * summary["model"]["n_heads"]
    spars = ", ".join(f"{r['n_heads']} ({100 * r['fraction']:.1f}%) > {r['threshold']:g}" for r in summary["sparsity"])
    k = top_k(n_total)
    top = summary["top_heads"][:k]
    layers = sorted(int(l) for l, _ in top)
    rows = [
        row("heads by relevant score (long prompts)", f"{spars} of {n_total} heads", PAPER["sparsity"]),
        row(f"where the top {k} sit", f"layers {layers[0]}–{layers[-1]} of 0–{summary['model']['n_layers'] - 1}, median {int(np.median(layers))}", PAPER["locations"]),
        row("top 5", heads_text(top[:5]), PAPER["top5"]),
    ]  # fmt: skip
    rows += [row(f"Table 1: {what}", f"{shown} of {n} top heads", "5 of 5") for what, shown, n in table1_checks(pd.read_csv(f.step / "table1.csv"))]
    em = pd.read_csv(f.step / "em.csv")
    by = {(r.variant, str(r.gold_position)): (r.em, r.n) for r in em.itertuples()}
    positions = [(p, v) for (var, p), v in by.items() if var == "long" and p != "all"]
    curve = " / ".join(f"{float(p):g}: {e:.2f}" for p, (e, _) in sorted(positions, key=lambda x: float(x[0])))
    for variant, label in (("long", "long prompts"), ("gold", "gold only"), ("negative", "negative (no relevant document)")):
        key = (variant, "all") if variant == "long" else next((k for k in by if k[0] == variant), None)
        if key in by:
            e, n = by[key]
            rows.append(row(f"EM, {label}", em_text(e, int(n)), f"{PAPER['em'][variant]:.3f}"))
    rows.append(row("EM by position of the relevant document", curve, "U-shaped (lost in the middle)"))
    names = ("head_locations.png", "head_locations.html", "sparsity.csv", "table1.md", "em_by_position.png", "em.csv", "scores.csv", "heads.json")
    text = (f"Figure 2, Table 1 and EM by position: {summary['examples']} prompts, {summary['scored']} scored, "
            f"skipped {sum(summary['skipped'].values())}. The paper: {PAPER_SETTING}; here: {setting_text(summary)}. "
            f"{ROWS_NOTE[summary.get('rows', 'generation')]} EM with a 95% Wilson interval and its n. "
            f"Files: {f.links(*(f.step / n for n in names))}.\n\n{f.image(f.step / 'head_locations.png', 'head locations')}\n\n"
            f"{f.image(f.step / 'em_by_position.png', 'EM by position')}")  # fmt: skip
    return text, rows
