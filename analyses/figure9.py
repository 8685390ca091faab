"""Paper Figure 9: contextual heads against retrieval heads. Where the top-k of each family sit
(heads per layer, side by side), how many heads the two top-k share, and each head's contextual
score against its retrieval score.

Inputs are the frames the toolkit writes: ``scores.csv`` of ``lens-focus score`` (relevant score
of long prompts) and ``retrieval_scores.csv`` of ``lens-focus retrieval``.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lens_focus.plots import write_figure
from lens_focus.stats import overlap_chance

from .index import Folders, heads_text, row


def compute(scores: pd.DataFrame, retrieval: pd.DataFrame, *, k: int = 20, condition: str = "long") -> tuple[pd.DataFrame, dict, go.Figure]:
    """Per head ``layer, head, contextual, retrieval, top_contextual, top_retrieval``, the overlap
    summary (``k``, ``overlap``, ``shared`` heads, ``n_heads``, the overlap two random top-k sets
    would have (``chance``, ``k² / n_heads``) and the probability of one at least as large
    (``p_value``, exact permutation test), layers of each top-k), and the figure."""
    ctx = scores[(scores.condition == condition) & (scores.span == "relevant")][["layer", "head", "score"]]
    if ctx.empty:
        raise ValueError(f"no relevant scores for condition {condition!r} in the contextual scores")
    if retrieval.score.isna().all():
        raise ValueError("the retrieval scores are empty (no response recalled a needle)")
    table = ctx.rename(columns={"score": "contextual"}).merge(
        retrieval[["layer", "head", "score"]].rename(columns={"score": "retrieval"}), on=["layer", "head"], how="outer", validate="one_to_one"
    )
    if table[["contextual", "retrieval"]].isna().any().any():
        raise ValueError("contextual and retrieval scores cover different heads (are they from the same model?)")
    table["top_contextual"] = table.contextual.rank(ascending=False, method="first") <= k
    table["top_retrieval"] = table.retrieval.rank(ascending=False, method="first") <= k
    table = table.sort_values(["layer", "head"], ignore_index=True)
    shared = table[table.top_contextual & table.top_retrieval]
    chance = overlap_chance(len(shared), k, len(table))
    summary = {
        "k": k,
        "overlap": len(shared),
        "shared": [[int(r.layer), int(r.head)] for r in shared.itertuples()],
        "n_heads": len(table),
        "chance": chance.chance,
        "p_value": chance.p_value,
        "contextual_layers": sorted(int(x) for x in table[table.top_contextual].layer),
        "retrieval_layers": sorted(int(x) for x in table[table.top_retrieval].layer),
    }
    layers = list(range(int(table.layer.max()) + 1))
    per_layer = lambda col: [int(table[table[col] & (table.layer == l)].shape[0]) for l in layers]  # noqa: E731
    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"top-{k} heads per layer", "contextual vs retrieval score"))
    fig.add_trace(go.Bar(y=layers, x=per_layer("top_contextual"), orientation="h", name="contextual"), 1, 1)
    fig.add_trace(go.Bar(y=layers, x=per_layer("top_retrieval"), orientation="h", name="retrieval"), 1, 1)
    kind = table.top_contextual.map({True: "C", False: ""}) + table.top_retrieval.map({True: "R", False: ""})
    colors = kind.map({"CR": "crimson", "C": "royalblue", "R": "darkorange", "": "lightgray"})
    fig.add_trace(
        go.Scatter(
            x=table.contextual, y=table.retrieval, mode="markers", marker=dict(color=colors, size=7), showlegend=False,
            text=[f"({r.layer}, {r.head})" for r in table.itertuples()],
            hovertemplate="head %{text}<br>contextual %{x:.3f}<br>retrieval %{y:.3f}<extra></extra>",
        ),  # fmt: skip
        1,
        2,
    )
    fig.update_xaxes(title_text="heads in the top k", row=1, col=1)
    fig.update_yaxes(title_text="layer", row=1, col=1)
    fig.update_xaxes(title_text="contextual score (relevant, long prompts)", row=1, col=2)
    fig.update_yaxes(title_text="retrieval score", row=1, col=2)
    fig.update_layout(
        title=f"Contextual vs retrieval heads: {len(shared)} of the top {k} shared (chance {chance.chance:.1f}, p = {chance.p_value:.1g})",
        barmode="group", template="plotly_white",
    )  # fmt: skip
    return table, summary, fig


def write(scores: pd.DataFrame, retrieval: pd.DataFrame, out_dir: str | Path, *, k: int = 20) -> list[Path]:
    """``figure9.csv``, ``figure9.json`` (the overlap) and ``figure9.html/.png`` in ``out_dir``."""
    import json

    table, summary, fig = compute(scores, retrieval, k=k)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "figure9.csv", index=False)
    (out_dir / "figure9.json").write_text(json.dumps(summary, indent=2) + "\n")
    return [*write_figure(fig, out_dir / "figure9"), out_dir / "figure9.csv", out_dir / "figure9.json"]


PAPER = {
    "retrieval": "3–6% of heads score > 0.1 (Wu et al., on their models)",
    "figure9": "5 of the top 20 shared; retrieval heads in every layer, contextual heads in middle and late layers",
}
"""Wu et al.'s count and the paper's Figure 9 (docs/method.md §6)."""


def section(f: Folders) -> tuple[str, list[dict]]:
    """The index section of Figure 9: how many needles counted, the retrieval heads, and the top
    sets shared against chance."""
    s = json.loads((f.of("retrieval_heads") / "summary.json").read_text())
    n_total = s["model"]["n_layers"] * s["model"]["n_heads"]
    rows = [
        row("needle prompts recalled (counted)", f"{s['counted']} of {s['samples']}", "—"),
        row("retrieval heads (score > 0.1)", f"{s['retrieval_heads']} of {n_total} ({100 * s['retrieval_heads'] / n_total:.1f}%)", PAPER["retrieval"]),
        row("top 5 retrieval heads", heads_text(s["top_heads"][:5]) if s["retrieval_heads"] else "none (no head scores > 0.1)", "—"),
    ]
    j = json.loads((f.step / "figure9.json").read_text()) if (f.step / "figure9.json").exists() else {}
    if "skipped" in j:
        rows.append(row("Figure 9", f"not drawn: {j['skipped']}", PAPER["figure9"]))
    if "overlap" in j:
        span = lambda ls: f"layers {min(ls)}–{max(ls)}" if ls else "—"  # noqa: E731
        chance = overlap_chance(j["overlap"], j["k"], n_total)
        rows.append(row(f"Figure 9: top {j['k']} shared", f"{j['overlap']} of {j['k']} (two random top-{j['k']} sets of {n_total} heads share "
                        f"{chance.chance:.1f}; p = {chance.p_value:.1g}); contextual {span(j['contextual_layers'])}, "
                        f"retrieval {span(j['retrieval_layers'])}", PAPER["figure9"] + " (of 672 heads: chance 0.6)"))  # fmt: skip
    drawn = tuple(f.step / n for n in ("figure9.png", "figure9.html", "figure9.csv")) if "overlap" in j else ()
    links = f.links(f.of("retrieval_heads") / "retrieval_scores.csv", f.of("retrieval_heads") / "retrieval_heads.json", *drawn, f.step / "figure9.json")
    image = f"\n\n{f.image(f.step / 'figure9.png', 'figure 9')}" if drawn else ""
    span = s.get("span", "answer")  # runs before the span was recorded counted copies into the short answer
    how = ("Wu et al.'s retrieval score: copies into the clause of the needle its question asks for" if span == "needle"
           else "copies into the needle's short answer (lens_focus's earlier score, not Wu et al.'s clause)")  # fmt: skip
    return f"Retrieval heads ({how}; docs/method.md §6) and Figure 9. Files: {links}.{image}", rows
