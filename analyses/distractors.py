"""Random against on-topic distractors: the same NQ questions at the same gold positions, once with
the other documents drawn at random from other questions' gold passages and once with those BM25
ranks highest against the question (docs/method.md, Data). EM by position under each, the paired
change (bm25 − random, the same question and position), and whether the contextual heads and their
scores stay the same.

Files: ``em.csv`` (distractors, gold_position, em, n, em_low, em_high), ``paired.csv`` (gold_position
or ``all``, n, questions, random, bm25, diff, diff_low, diff_high), ``heads.csv`` (distractors, k, the
top-k heads' mean relevant, sink and irrelevant_max scores, every head's mean sink), ``overlap.csv``
(the top-k shared against chance, and the rank correlation of every head's relevant score),
``scores_random.csv`` / ``scores_bm25.csv`` (every head's scores), ``answers.csv``,
``distractors.html``/``.png``.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from scipy import stats

from lens_focus.plots import write_figure
from lens_focus.stats import em_interval, overlap_chance, paired_difference

from . import em_error_bars, require_columns
from .index import Folders, row
from .lengths import ranked

KINDS = ("random", "bm25")
ANSWER_COLUMNS = ["distractors", "id", "question_id", "gold_position", "em", "response"]


def em_table(answers: pd.DataFrame) -> pd.DataFrame:
    """EM per kind of distractors and gold position (and ``all``), with 95% Wilson intervals."""
    require_columns(answers, ANSWER_COLUMNS, "answers")
    rows = []
    for kind, g in answers.groupby("distractors", sort=False):
        parts = [(str(p), h) for p, h in g.groupby("gold_position", sort=True)] + [("all", g)]
        for position, h in parts:
            lo, hi = em_interval(h.em.mean(), len(h))
            rows.append({"distractors": kind, "gold_position": position, "em": h.em.mean(), "n": len(h), "em_low": lo, "em_high": hi})
    return pd.DataFrame(rows)


def paired(answers: pd.DataFrame) -> pd.DataFrame:
    """bm25 − random EM on the same question and gold position, per position and over all (questions
    resampled whole: a question's positions move together)."""
    require_columns(answers, ANSWER_COLUMNS, "answers")
    wide = answers.pivot_table(index=["question_id", "gold_position"], columns="distractors", values="em").dropna().reset_index()
    rows = []
    for position, g in [(str(p), h) for p, h in wide.groupby("gold_position", sort=True)] + [("all", wide)]:
        d = paired_difference(g["random"], g["bm25"], g.question_id)
        rows.append({"gold_position": position, "n": d.n, "questions": d.clusters, "random": d.before, "bm25": d.after,
                     "diff": d.mean, "diff_low": d.low, "diff_high": d.high})  # fmt: skip
    return pd.DataFrame(rows)


def heads(scores: dict[str, pd.DataFrame], *, k: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per kind, the top-``k`` heads by relevant score and their mean scores; and the two top-``k``
    sets compared (shared against chance, hypergeometric p) with the Spearman correlation of every
    head's relevant score."""
    tables = {kind: ranked(s) for kind, s in scores.items()}
    rows = []
    for kind, t in tables.items():
        top = t[t["rank"] <= k]
        rows.append({"distractors": kind, "k": k, "top_relevant": top.relevant.mean(), "top_sink": top.sink.mean(),
                     "top_irrelevant_max": top.irrelevant_max.mean(), "all_sink": t.sink.mean(),
                     "top": " ".join(f"({r.layer},{r.head})" for r in top.head(5).itertuples())})  # fmt: skip
    a, b = (tables[kind] for kind in KINDS)
    sets = [set(zip(t.layer[t["rank"] <= k], t["head"][t["rank"] <= k])) for t in (a, b)]
    o = overlap_chance(len(sets[0] & sets[1]), k, len(a))
    joined = a.merge(b, on=["layer", "head"], suffixes=("_random", "_bm25"))
    rho = stats.spearmanr(joined.relevant_random, joined.relevant_bm25).statistic
    overlap = pd.DataFrame([{"k": k, "n_heads": len(a), "shared": o.shared, "chance": o.chance, "p_value": o.p_value, "spearman_relevant": float(rho)}])
    return pd.DataFrame(rows), overlap


def figure(em: pd.DataFrame, scores: dict[str, pd.DataFrame]) -> go.Figure:
    """EM by position under each kind of distractors (95% Wilson bars), and every head's relevant
    score under one against the other."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("EM by position of the relevant document", "every head's relevant score"))
    colors = {"random": "#1f77b4", "bm25": "#d62728"}
    for kind in KINDS:
        g = em[(em.distractors == kind) & (em.gold_position != "all")]
        g = g.assign(gold_position=g.gold_position.astype(float).astype(int)).sort_values("gold_position")
        fig.add_scatter(x=g.gold_position, y=g.em, mode="lines+markers", name=f"{kind} distractors", error_y=em_error_bars(g.em, g.n),
                        line=dict(color=colors[kind]), row=1, col=1)  # fmt: skip
    a, b = (ranked(scores[kind]) for kind in KINDS)
    j = a.merge(b, on=["layer", "head"], suffixes=("_random", "_bm25"))
    fig.add_scatter(x=j.relevant_random, y=j.relevant_bm25, mode="markers", name="heads", marker=dict(size=5, color="gray"),
                    text=[f"({r.layer},{r.head})" for r in j.itertuples()], row=1, col=2)  # fmt: skip
    top = float(max(j.relevant_random.max(), j.relevant_bm25.max()))
    fig.add_scatter(x=[0, top], y=[0, top], mode="lines", line=dict(dash="dot", color="black"), showlegend=False, row=1, col=2)
    fig.update_xaxes(title_text="position of the relevant document", row=1, col=1)
    fig.update_yaxes(title_text="exact match", range=[0, 1.05], row=1, col=1)
    fig.update_xaxes(title_text="relevant score, random distractors", row=1, col=2)
    fig.update_yaxes(title_text="relevant score, BM25 distractors", row=1, col=2)
    fig.update_layout(template="plotly_white", height=450, width=1000, title="Random against on-topic (BM25) distractors")
    return fig


def write(answers: pd.DataFrame, scores: dict[str, pd.DataFrame], out_dir: str | Path, *, k: int) -> dict[str, pd.DataFrame]:
    """Every file of the module docstring into ``out_dir``; returns the tables by name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = {"em": em_table(answers), "paired": paired(answers)}
    tables["heads"], tables["overlap"] = heads(scores, k=k)
    for name, t in tables.items():
        t.to_csv(out / f"{name}.csv", index=False)
    for kind, s in scores.items():
        s.to_csv(out / f"scores_{kind}.csv", index=False)
    answers.to_csv(out / "answers.csv", index=False)
    write_figure(figure(tables["em"], scores), out / "distractors")
    return tables


def section(f: Folders) -> tuple[str, list[dict]]:
    """The index section: EM under each kind and the paired change per position; the heads compared."""
    j = json.loads((f.step / "summary.json").read_text())
    if j.get("not_run"):
        return f"Not run: {j['not_run']}.", []
    em, pair, hd, ov = (pd.read_csv(f.step / f"{n}.csv", dtype={"gold_position": str}) for n in ("em", "paired", "heads", "overlap"))
    o = ov.iloc[0]
    text = (f"The same {j['limit'] or 'held-out'} NQ questions ({j['split']} split) at gold positions {', '.join(map(str, j['gold_positions']))} among "
            f"{j['n_docs']} documents, the others drawn at random from other questions' gold passages or ranked by BM25 against the question "
            f"(docs/method.md, Data); rows `{j['rows']}`. Files: "
            f"{f.links(*(f.step / n for n in ('em.csv', 'paired.csv', 'heads.csv', 'overlap.csv', 'answers.csv', 'distractors.html')))}."
            f"\n\n{f.image(f.step / 'distractors.png', 'distractors')}")  # fmt: skip
    rows = []
    for r in pair.itertuples():
        where = "all positions" if r.gold_position == "all" else f"position {r.gold_position}"
        rows.append(row(f"EM, {where}: random → BM25 ({r.n} prompts, {r.questions} questions)",
                        f"{r.random:.3f} → {r.bm25:.3f}, {r.diff:+.3f} [{r.diff_low:+.3f}, {r.diff_high:+.3f}]", "—"))  # fmt: skip
    for r in hd.itertuples():
        rows.append(row(f"top {r.k} heads, {r.distractors} distractors", f"relevant {r.top_relevant:.3f}, sink {r.top_sink:.3f}, irrelevant max "
                        f"{r.top_irrelevant_max:.3f}; every head's sink {r.all_sink:.3f}; top 5 {r.top}", "—"))  # fmt: skip
    rows.append(row(f"top {int(o.k)} shared between the two", f"{int(o.shared)} of {int(o.k)} (chance {o.chance:.1f}, p = {o.p_value:.1g}); "
                    f"Spearman ρ of every head's relevant score {o.spearman_relevant:.2f}", "—"))  # fmt: skip
    return text, rows
