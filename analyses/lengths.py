"""Do the contextual heads move with length? The same task at several prompt lengths, every
head scored at each: the top-k heads and their scores per length, the overlap of the top-k sets
between lengths against the overlap two random k-sets would have, and the sink's share as the
prompt grows (the paper's second open question: longer contexts).

Files: ``heads_by_length.csv`` (length, layer, head, relevant, sink, irrelevant_max, rank: one row
per head and length), ``overlap.csv`` (every pair of lengths: shared top-k heads, chance,
hypergeometric p), ``lengths.csv`` (per length: prompts, tokens, EM, the top-k heads' mean
relevant and sink scores, every head's mean sink score), ``lengths.html``/``.png``. The method:
docs/method.md §8.
"""
from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lens_focus.plots import write_figure
from lens_focus.stats import overlap_chance, wilson

from .index import Folders, row

SPANS = ("relevant", "sink", "irrelevant_max")


def ranked(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per head of a score table (condition ``long``), best first: its ``relevant``,
    ``sink`` and ``irrelevant_max`` scores and its ``rank`` by relevant score (1 = top)."""
    wide = scores[(scores.condition == "long") & scores.span.isin(SPANS)].pivot_table(index=["layer", "head"], columns="span", values="score")
    wide = wide.reset_index().sort_values(["relevant", "layer", "head"], ascending=[False, True, True])
    return wide.assign(rank=np.arange(1, len(wide) + 1)).reset_index(drop=True)


def heads_by_length(cells: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """One row per head and length from each length's score table (:func:`ranked`)."""
    frames = [ranked(scores).assign(length=int(length)) for length, scores in sorted(cells.items())]
    return pd.concat(frames, ignore_index=True)[["length", "layer", "head", *SPANS, "rank"]]


def top_set(table: pd.DataFrame, length: int, k: int) -> set[tuple[int, int]]:
    t = table[(table.length == length) & (table["rank"] <= k)]
    return set(zip(t.layer.astype(int), t["head"].astype(int)))


def overlaps(table: pd.DataFrame, k: int) -> pd.DataFrame:
    """Every pair of lengths: how many of their top-``k`` heads they share, the expected number for
    two random ``k``-sets of the scored heads, and the probability of at least as many by chance."""
    n_heads = int(table.groupby("length").size().iloc[0])
    rows = []
    for a, b in combinations(sorted(int(x) for x in table.length.unique()), 2):
        shared = len(top_set(table, a, k) & top_set(table, b, k))
        chance = overlap_chance(shared, k, n_heads)
        rows.append({"length_a": int(a), "length_b": int(b), "k": k, "shared": shared, "chance": chance.chance, "p_value": chance.p_value})
    return pd.DataFrame(rows, columns=["length_a", "length_b", "k", "shared", "chance", "p_value"])


def per_length(table: pd.DataFrame, stats: dict[int, dict], k: int) -> pd.DataFrame:
    """Per length: prompts, mean prompt tokens, EM with its 95% Wilson interval, the top-``k``
    heads' mean relevant and sink scores and every head's mean sink score."""
    rows = []
    for length, t in table.groupby("length"):
        s, top = stats[int(length)], t[t["rank"] <= k]
        low, high = wilson(s["em_sum"], s["n"])
        rows.append({"length": int(length), "n": s["n"], "scored": s["scored"], "tokens": s["tokens"], "em": s["em_sum"] / s["n"], "em_low": low,
                     "em_high": high, "top_relevant": float(top.relevant.mean()), "top_sink": float(top.sink.mean()),
                     "all_sink": float(t.sink.mean()), "all_relevant": float(t.relevant.mean())})  # fmt: skip
    return pd.DataFrame(rows)


def figure(lengths: pd.DataFrame, pairs: pd.DataFrame, k: int) -> go.Figure:
    first = int(lengths.length.min())
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=(f"Scores: top {k} at each length, and every head", f"Top {k} shared with the top {k} at {first} tokens"))  # fmt: skip
    for col, name, dash in [("top_relevant", f"relevant, top {k}", "solid"), ("top_sink", f"sink, top {k}", "solid"),
                            ("all_relevant", "relevant, every head", "dot"), ("all_sink", "sink, every head", "dot")]:  # fmt: skip
        fig.add_scatter(x=lengths.length, y=lengths[col], mode="lines+markers", name=name, line=dict(dash=dash), row=1, col=1)
    with_first = pairs[pairs.length_a == first]
    fig.add_scatter(x=with_first.length_b, y=with_first.shared, mode="lines+markers", name=f"shared with {first} tokens", marker=dict(size=9), row=1, col=2)
    fig.add_scatter(x=with_first.length_b, y=with_first.chance, mode="lines+markers", name="two random sets (chance)", line=dict(dash="dash"),
                    marker=dict(symbol="x", size=9), row=1, col=2)  # fmt: skip
    fig.update_xaxes(title_text="prompt length (tokens)", type="log", tickvals=list(lengths.length))
    fig.update_yaxes(range=[0, k + 0.5], row=1, col=2)
    fig.update_layout(title="Contextual heads across prompt lengths", height=440, width=1100)
    return fig


def write(cells: dict[int, pd.DataFrame], stats: dict[int, dict], out: str | Path, *, k: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The files of the module docstring in ``out``; returns the per-length and the overlap tables."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = heads_by_length(cells)
    pairs, lengths = overlaps(table, k), per_length(table, stats, k)
    table.to_csv(out / "heads_by_length.csv", index=False)
    pairs.to_csv(out / "overlap.csv", index=False)
    lengths.to_csv(out / "lengths.csv", index=False)
    write_figure(figure(lengths, pairs, k), out / "lengths")
    return lengths, pairs


def section(f: Folders) -> tuple[str, list[dict]]:
    """The index section: the task and lengths, then per length its EM and scores, per pair of
    lengths the shared top-k heads against chance."""
    j = json.loads((f.step / "summary.json").read_text())
    lengths, pairs, table = (pd.read_csv(f.step / n) for n in ("lengths.csv", "overlap.csv", "heads_by_length.csv"))
    k = int(j["k"])
    tops = "; ".join(f"{int(L)}: " + " ".join(f"({r.layer},{r.head})" for r in table[(table.length == L) & (table["rank"] <= 5)].itertuples())
                     for L in lengths.length)  # fmt: skip
    drawn = f" ({j['distractors']} distractors)" if j["task"] == "nq" else ""
    text = (f"The {j['task']} task{drawn} at {', '.join(map(str, lengths.length))} tokens, {j['n']} prompts per length; "
            f"every head scored on the answer rows ({j['rows']}), ranked by relevant score at each length. Top 5 per length: {tops}. "
            f"Overlap: how many of two lengths' top-{k} heads are the same, against two random {k}-sets of {j['n_heads']} heads (chance, "
            f"hypergeometric p). Files: {f.links(*(f.step / n for n in ('lengths.csv', 'overlap.csv', 'heads_by_length.csv', 'lengths.html')))}."
            f"\n\n{f.image(f.step / 'lengths.png', 'lengths')}")  # fmt: skip
    rows = [row(f"{r.length} tokens ({r.tokens:.0f} on average, {r.scored} of {r.n} scored)",
                f"EM {r.em:.3f} [{r.em_low:.2f}, {r.em_high:.2f}]; top {k}: relevant {r.top_relevant:.3f}, sink {r.top_sink:.3f}; "
                f"every head: relevant {r.all_relevant:.4f}, sink {r.all_sink:.3f}", "—") for r in lengths.itertuples()]  # fmt: skip
    rows += [row(f"top {k} shared, {r.length_a} and {r.length_b} tokens", f"{r.shared} of {k} (chance {r.chance:.1f}, p = {r.p_value:.1g})", "—")
             for r in pairs.itertuples()]  # fmt: skip
    return text, rows
