"""Paper Table 1: the top contextual heads' scores on the relevant document (R), all irrelevant
documents (IR), the largest irrelevant document (IR max) and the sink, under the long, correct and
wrong conditions, and R and sink on gold-only prompts."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from lens_focus.heads import top_heads

from . import write_table

SPAN_LABELS = {"relevant": "R", "irrelevant": "IR", "irrelevant_max": "IR_max", "sink": "sink"}
LAYOUT = [("long", list(SPAN_LABELS)), ("correct", list(SPAN_LABELS)), ("wrong", list(SPAN_LABELS)), ("gold", ["relevant", "sink"])]


def compute(scores: pd.DataFrame, *, k: int = 5) -> pd.DataFrame:
    """One row per top-``k`` head (ranked by R under long): ``layer, head, long_R, ..., gold_sink``.
    Conditions with no sequences (e.g. no wrong answers) give empty cells, and ``n_<condition>``
    columns say how many sequences each average covers."""
    heads = top_heads(scores, k)
    index = scores.set_index(["condition", "span", "layer", "head"])["score"]
    counts = scores.groupby("condition")["n"].max()
    rows = []
    for layer, head in heads:
        row: dict = {"layer": layer, "head": head}
        for cond, spans in LAYOUT:
            for span in spans:
                row[f"{cond}_{SPAN_LABELS[span]}"] = float(index.get((cond, span, layer, head), float("nan")))
        rows.append(row)
    table = pd.DataFrame(rows)
    for cond, _ in LAYOUT:
        table[f"n_{cond}"] = int(counts.get(cond, 0))
    return table


def write(scores: pd.DataFrame, out_dir: str | Path, *, k: int = 5) -> list[Path]:
    return write_table(compute(scores, k=k), Path(out_dir) / "table1", title=f"Top-{k} contextual heads (paper Table 1)")
