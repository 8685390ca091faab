"""Where one head looks on one prompt: its attention from the rows that produce the answer, token
by token, coloured by the part of the prompt each token belongs to (the interactive view of the
first notebook). Hovering a bar shows the token and its position."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lens_focus.labels import LabeledSequence, RowsKind
from lens_focus.plots import write_figure
from lens_focus.scoring import head_pattern
from lens_focus.defaults import ROWS

PARTS = ("sink", "instruction", "relevant", "irrelevant", "question", "reply_start", "response")
"""A token's part is the first of these spans that holds it (``other``: none of them)."""
COLOURS = {"sink": "#d62728", "instruction": "#7f7f7f", "relevant": "#2ca02c", "irrelevant": "#aec7e8",
           "question": "#9467bd", "reply_start": "#8c564b", "response": "#ff7f0e", "other": "#c7c7c7"}  # fmt: skip


def parts(seq: LabeledSequence) -> list[str]:
    """The part of the prompt (or response) each token of ``seq`` belongs to."""
    out = ["other"] * len(seq)
    for name in reversed(PARTS):
        for i in seq.tokens_of(name):
            out[i] = name
    return out


def compute(model, seq: LabeledSequence, layer: int, head: int, *, rows: RowsKind = ROWS.default) -> pd.DataFrame:
    """One row per token of ``seq``: ``position, token, part, attention`` (the head's attention on
    that token averaged over the answer rows; per part, the sum is the sequence's contextual score
    of the part) and ``last_row`` (the attention of the prompt's last row alone)."""
    pattern = head_pattern(model, seq, layer, head, rows=rows)
    tokens = model.tokenizer.convert_ids_to_tokens(list(seq.input_ids))
    return pd.DataFrame(
        {
            "position": np.arange(len(seq)),
            "token": [str(t) for t in tokens],
            "part": parts(seq),
            "attention": pattern.mean(0),
            "last_row": pattern[0],
        }
    )


def figure(table: pd.DataFrame, *, layer: int, head: int, title: str = "") -> go.Figure:
    """Bars of attention per token, one colour per part; the legend gives each part's total."""
    fig = go.Figure()
    totals = table.groupby("part").attention.sum()
    for part in (*PARTS, "other"):
        sel = table[table.part == part]
        if sel.empty:
            continue
        fig.add_bar(
            x=sel.position, y=sel.attention, name=f"{part} ({totals[part]:.2f})", marker_color=COLOURS[part],
            customdata=sel.token, hovertemplate="%{x}: %{customdata}<br>attention %{y:.3f}<extra>" + part + "</extra>",
        )  # fmt: skip
    fig.update_layout(
        title=title or f"Head ({layer}, {head}): attention from the answer rows, per token",
        xaxis_title="token position", yaxis_title="attention (mean over answer rows)", bargap=0, template="plotly_white",
        legend_title="part (total)",
    )  # fmt: skip
    return fig


def write(model, seq: LabeledSequence, layer: int, head: int, out_dir: str | Path) -> list[Path]:
    table = compute(model, seq, layer, head)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"attention_L{layer}H{head}"
    table.to_csv(stem.with_suffix(".csv"), index=False)
    return [*write_figure(figure(table, layer=layer, head=head), stem), stem.with_suffix(".csv")]
