"""Sliding-window layers and a relevant document beyond their window (models whose layers see only
their last ``window`` positions, such as Gemma 2 and 3): per position of the relevant document,
where it lies against the window of the first answer row, exact match with a 95% interval, and the
relevant and sink scores of the windowed and the full layers' heads (mean and best head)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lens_focus.plots import write_figure
from lens_focus.stats import wilson

from .index import Folders, row

COLUMNS = ["gold_position", "n", "scored", "tokens", "inside", "partly", "outside", "em", "em_low", "em_high",
           "relevant_windowed_mean", "relevant_windowed_max", "relevant_full_mean", "relevant_full_max",
           "sink_windowed_mean", "sink_full_mean"]  # fmt: skip


def reach(seq, window: int) -> str:
    """Where the relevant document lies against the window of the first answer row (the last
    prompt token): ``inside`` (all of it within the last ``window`` positions), ``outside`` (none
    of it), or ``partly``."""
    row = seq.n_prompt - 1
    spans = seq.token_spans["relevant"]
    first, last = min(a for a, _ in spans), max(b for _, b in spans) - 1
    return "inside" if row - first < window else "outside" if row - last >= window else "partly"


def compute(answered: Sequence, windows: Sequence[int | None]) -> pd.DataFrame:
    """One row per gold position of the scored long answers (:class:`lens_focus.answers.Answered`,
    ``scores`` per head); ``windows`` gives each layer's window (None = full attention)."""
    windowed = np.array([w is not None for w in windows])
    if not windowed.any() or windowed.all():
        raise ValueError("the window table needs both windowed and full-attention layers")
    window = min(w for w in windows if w is not None)
    rows = []
    long = [a for a in answered if a.example.variant == "long"]
    for position in sorted({a.example.meta["gold_position"] for a in long}):
        everyone = [a for a in long if a.example.meta["gold_position"] == position]  # EM counts every answer
        group = [a for a in everyone if a.scores is not None]  # scores: the answers that were scored
        if not group:
            raise ValueError(f"no scored answer with the relevant document at position {position}")
        where = pd.Series([reach(a.sequence, window) for a in group]).value_counts()
        rel = np.stack([a.scores["relevant"] for a in group]).mean(0)  # (layer, head)
        sink = np.stack([a.scores["sink"] for a in group]).mean(0)
        k = int(sum(a.em for a in everyone))
        low, high = wilson(k, len(everyone))
        rows.append({
            "gold_position": int(position), "n": len(everyone), "scored": len(group), "tokens": int(np.mean([a.sequence.n_prompt for a in group])),
            "inside": int(where.get("inside", 0)), "partly": int(where.get("partly", 0)), "outside": int(where.get("outside", 0)),
            "em": k / len(everyone), "em_low": low, "em_high": high,
            "relevant_windowed_mean": float(rel[windowed].mean()), "relevant_windowed_max": float(rel[windowed].max()),
            "relevant_full_mean": float(rel[~windowed].mean()), "relevant_full_max": float(rel[~windowed].max()),
            "sink_windowed_mean": float(sink[windowed].mean()), "sink_full_mean": float(sink[~windowed].mean()),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def figure(table: pd.DataFrame, *, window: int) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Exact match (95% interval)", "Relevant score by layer kind"))
    fig.add_scatter(x=table.gold_position, y=table.em, mode="lines+markers", name="EM", row=1, col=1,
                    error_y=dict(type="data", symmetric=False, array=table.em_high - table.em, arrayminus=table.em - table.em_low))  # fmt: skip
    for col, name, dash in [("relevant_windowed_max", "windowed layers, best head", "solid"), ("relevant_full_max", "full layers, best head", "solid"),
                            ("relevant_windowed_mean", "windowed layers, mean", "dot"), ("relevant_full_mean", "full layers, mean", "dot")]:  # fmt: skip
        fig.add_scatter(x=table.gold_position, y=table[col], mode="lines+markers", name=name, line=dict(dash=dash), row=1, col=2)
    fig.update_xaxes(title_text="position of the relevant document")
    fig.update_layout(title=f"Relevant document and a {window}-token sliding window", height=420, width=1000)
    return fig


def write(answered: Sequence, windows: Sequence[int | None], out: str | Path) -> pd.DataFrame:
    """``window.csv`` and ``window.html``/``.png`` in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = compute(answered, windows)
    table.to_csv(out / "window.csv", index=False)
    write_figure(figure(table, window=min(w for w in windows if w is not None)), out / "window")
    return table


def section(f: Folders) -> tuple[str, list[dict]]:
    """The index section of the window step: per position, how many relevant documents lie inside
    the window, EM, and the windowed and full layers' scores."""
    j = json.loads((f.step / "window.json").read_text())
    if "windows" not in j:  # the step's reason for not drawing it
        return f"Not drawn: {j['skipped']}.", []
    t = pd.read_csv(f.step / "window.csv")
    window = min(w for w in j["windows"] if w)
    kinds = f"{sum(1 for w in j['windows'] if w)} windowed and {sum(1 for w in j['windows'] if not w)} full-attention layers"
    lengths = sorted(set(t.tokens))
    text = (f"The relevant document at positions {', '.join(map(str, t.gold_position))} of {j['n_docs']} documents "
            f"(prompts of {'/'.join(map(str, lengths))} tokens on average per position; the model has {kinds}, window {window}). "
            "*inside* / *outside*: all / none of the relevant document within the window of the first answer row. "
            "Scores: mean over the kind's heads, and its best head. EM with a 95% Wilson interval. "
            f"Files: {f.links(*(f.step / n for n in ('window.csv', 'window.html', 'window.json', 'em.csv', 'scores.csv')))}."
            f"\n\n{f.image(f.step / 'window.png', 'window')}")  # fmt: skip
    rows = [
        row(f"position {r.gold_position} (inside {r.inside}, partly {r.partly}, outside {r.outside} of {r.scored})",
            f"EM {r.em:.3f} [{r.em_low:.2f}, {r.em_high:.2f}] (n = {r.n}); relevant: windowed {r.relevant_windowed_mean:.4f} / best {r.relevant_windowed_max:.3f}, "
            f"full {r.relevant_full_mean:.4f} / best {r.relevant_full_max:.3f}; sink: windowed {r.sink_windowed_mean:.3f}, full {r.sink_full_mean:.3f}", "—")
        for r in t.itertuples()
    ]  # fmt: skip
    return text, rows
