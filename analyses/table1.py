"""Paper Table 1: the top contextual heads' scores on the relevant document (R), all irrelevant
documents (IR), the largest irrelevant document (IR max) and the sink, under the long, correct and
wrong conditions, and R and sink on gold-only prompts."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from lens_focus.heads import top_heads

from . import write_table
from .head_locations import PAPER
from .index import Folders, heads_text, row

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


def _checks_text(t1: pd.DataFrame) -> str:
    return (f"R > IR max on correct {(t1.correct_R > t1.correct_IR_max).sum()} of {t1.correct_R.notna().sum()}, "
            f"R < IR max on wrong {(t1.wrong_R < t1.wrong_IR_max).sum()} of {t1.wrong_R.notna().sum()}, "
            f"gold sink > long sink {(t1.gold_sink > t1.long_sink).sum()} of {t1.gold_sink.notna().sum()}")  # fmt: skip


def rows_section(f: Folders) -> tuple[str, list[dict]]:
    """The index section of the rows step: the score step's prompts and answers under both row
    conventions side by side (sparsity, top 5, Table 1's findings, the top 20 they share)."""
    runs = {}
    for folder in (f.of("score"), f.step):
        if (folder / "summary.json").exists():
            summary = json.loads((folder / "summary.json").read_text())
            runs[summary["rows"]] = (summary, pd.read_csv(folder / "table1.csv"))
    rows = []
    for kind, (summary, t1) in sorted(runs.items(), key=lambda kv: kv[0] != "response"):
        n_total = summary["model"]["n_layers"] * summary["model"]["n_heads"]
        spars = ", ".join(f"{r['n_heads']} > {r['threshold']:g}" for r in summary["sparsity"])
        paper = kind == "response"
        rows += [row(f"`{kind}`: heads by relevant score", f"{spars} of {n_total}", PAPER["sparsity"] if paper else "—"),
                 row(f"`{kind}`: top 5", heads_text(summary["top_heads"][:5]), PAPER["top5"] if paper else "—"),
                 row(f"`{kind}`: Table 1 over the top heads", _checks_text(t1), "5 of 5 each" if paper else "—")]  # fmt: skip
    tops = [set(map(tuple, s["top_heads"][:20])) for s, _ in runs.values()]
    if len(tops) == 2:
        rows.append(row("top 20 shared by the two conventions", f"{len(tops[0] & tops[1])} of 20", "—"))
    files = f.links(f.of("score") / "table1.md", f.of("score") / "sparsity.csv", f.step / "table1.md", f.step / "sparsity.csv", f.step / "scores.csv")
    text = ("The same prompts and answers scored under both row conventions: `response` averages the answer's own rows (the paper's Eq. 1), "
            "`generation` the rows that produce the answer (the last prompt token to the second-to-last answer token). "
            f"Only the `response` rows compare with the paper's numbers. Files: {files}.")  # fmt: skip
    return text, rows
