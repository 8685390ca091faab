"""Focus directions replicated over seeds: for each seed the questions are split afresh, heads are
ranked and directions trained on the seed's training questions (on long prompts and on gold-only
prompts), and the unmodified model and each set of directions answer the seed's held-out
questions. Every effect is a paired difference from the unmodified model on the same prompts,
per seed and pooled, with its 95% interval (questions resampled; a question of one seed is its own
unit: the built-in sources draw their questions from the seed, and NQ re-splits per seed).

``answers`` (one row per prompt and setting) has columns ``seed``, ``setting``, ``id``,
``question_id``, ``gold_position``, ``response``, ``em``, ``relevant``, ``sink`` (the last two:
mean score of the seed's top heads on the prompt)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lens_focus.plots import write_figure
from lens_focus.stats import difference_text, em_interval, paired_difference

from . import markdown_table, require_columns
from .index import Folders, row

ANSWER_COLUMNS = ["seed", "setting", "id", "question_id", "gold_position", "response", "em", "relevant", "sink"]
BASELINE = "baseline"
METRICS = {"em": "exact match", "relevant": "relevant score (top heads)", "sink": "sink score (top heads)"}
COLUMNS = ["seed", "setting", "metric", "n", "questions", "before", "after", "before_low", "before_high", "after_low", "after_high",
           "diff", "diff_low", "diff_high", "measurable"]  # fmt: skip


def compute(answers: pd.DataFrame) -> pd.DataFrame:
    """Per seed (and ``all`` seeds pooled), setting and metric: the mean before and after, the
    paired difference and its interval, ``measurable`` when the interval excludes zero. EM rows
    carry Wilson intervals of both means."""
    require_columns(answers, ANSWER_COLUMNS, "seeds answers")
    rows = []
    groups = [(str(s), g) for s, g in answers.groupby("seed", sort=True)] + ([("all", answers)] if answers.seed.nunique() > 1 else [])
    for seed, g in groups:
        base = g[g.setting == BASELINE].set_index(["seed", "id"])
        if base.empty:
            raise ValueError(f"seed {seed}: no baseline answers to compare with")
        for setting, s in g[g.setting != BASELINE].groupby("setting", sort=False):
            s = s.set_index(["seed", "id"])
            if set(s.index) != set(base.index):
                raise ValueError(f"seed {seed}, setting {setting}: not answered on the baseline's prompts")
            b = base.loc[s.index]
            for metric in METRICS:
                d = paired_difference(b[metric], s[metric], [f"{i[0]}/{q}" for i, q in zip(s.index, s.question_id)])
                row = {"seed": seed, "setting": setting, "metric": metric, "n": d.n, "questions": d.clusters, "before": d.before, "after": d.after,
                       "diff": d.mean, "diff_low": d.low, "diff_high": d.high, "measurable": d.measurable}  # fmt: skip
                if metric == "em":
                    (row["before_low"], row["before_high"]), (row["after_low"], row["after_high"]) = em_interval(d.before, d.n), em_interval(d.after, d.n)
                rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def text(row) -> str:
    """One effect in words: ``+0.111 [+0.05, +0.17] (n 150, 50 questions)`` or, when the interval
    includes zero, the same followed by "no measurable effect"."""
    return difference_text(row.diff, row.diff_low, row.diff_high, n=row.n, clusters=row.questions)


def markdown(table: pd.DataFrame) -> str:
    """The EM rows (before and after with Wilson intervals, paired difference) and the attention
    rows (paired differences) as Markdown."""
    em = table[table.metric == "em"]
    em_rows = pd.DataFrame({
        "seed": em.seed, "setting": em.setting,
        "EM before": [f"{r.before:.3f} [{r.before_low:.3f}, {r.before_high:.3f}]" for r in em.itertuples()],
        "EM after": [f"{r.after:.3f} [{r.after_low:.3f}, {r.after_high:.3f}]" for r in em.itertuples()],
        "paired difference": [text(r) for r in em.itertuples()],
    })  # fmt: skip
    att = table[table.metric != "em"]
    att_rows = pd.DataFrame({"seed": att.seed, "setting": att.setting, "metric": att.metric,
                             "before": att.before, "after": att.after, "paired difference": [text(r) for r in att.itertuples()]})  # fmt: skip
    return ("### Exact match (95% Wilson intervals; difference: 95% bootstrap over questions)\n\n" + markdown_table(em_rows)
            + "\n### Attention of the top heads\n\n" + markdown_table(att_rows, floatfmt=".4f"))  # fmt: skip


def figure(table: pd.DataFrame, *, title: str = "Focus directions over seeds: paired differences from the unmodified model") -> go.Figure:
    """One panel per metric: each setting's difference per seed and pooled, with its 95% interval."""
    require_columns(table, COLUMNS, "seeds table")
    fig = make_subplots(rows=1, cols=len(METRICS), subplot_titles=[f"Δ {v}" for v in METRICS.values()])
    for col, metric in enumerate(METRICS, start=1):
        t = table[table.metric == metric]
        for i, (setting, g) in enumerate(t.groupby("setting", sort=False)):
            fig.add_scatter(x=[f"seed {s}" for s in g.seed], y=g["diff"], mode="markers", name=setting, legendgroup=setting,
                            showlegend=col == 1, marker=dict(size=9, color=["#1f77b4", "#d62728", "#2ca02c", "#9467bd"][i % 4]),
                            error_y=dict(type="data", symmetric=False, array=g.diff_high - g["diff"], arrayminus=g["diff"] - g.diff_low),
                            row=1, col=col)  # fmt: skip
        fig.add_hline(y=0, line=dict(dash="dot", color="gray"), row=1, col=col)
    fig.update_layout(title=title, template="plotly_white", height=420, width=1100)
    return fig


def write(answers: pd.DataFrame, out_dir: str | Path) -> pd.DataFrame:
    """``answers.csv``, ``seeds.csv``, ``seeds.md``, ``seeds.html``/``.png``; returns the table."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    answers.to_csv(out / "answers.csv", index=False)
    table = compute(answers)
    table.to_csv(out / "seeds.csv", index=False)
    (out / "seeds.md").write_text("## Focus directions over seeds\n\n" + markdown(table))
    write_figure(figure(table), out / "seeds")
    return table


PAPER = "EM 0.594 → 0.671 (Llama-3.2-3B-Instruct, NQ, k = 20, α = 0.3, one run, no interval)"


def section(f: Folders) -> tuple[str, list[dict]]:
    """The index section of the seeds step: per seed and pooled, each metric before and after, and the paired difference."""
    t = pd.read_csv(f.step / "seeds.csv", dtype={"seed": str})
    s = json.loads((f.step / "summary.json").read_text())
    rows = []
    for r in t.itertuples():
        if r.metric == "em":
            ours = f"{r.before:.3f} [{r.before_low:.3f}, {r.before_high:.3f}] → {r.after:.3f} [{r.after_low:.3f}, {r.after_high:.3f}]"
        else:
            ours = f"{r.before:.4f} → {r.after:.4f}"
        ours += "; paired difference " + difference_text(r.diff, r.diff_low, r.diff_high, n=r.n, clusters=r.questions)
        rows.append(row(f"seed {r.seed}, {r.setting}: {r.metric}", ours, PAPER if r.metric == "em" else "—"))
    text = (f"Seeds {', '.join(map(str, s['seeds']))}: per seed the questions are drawn afresh, the heads ranked on {s['heads_limit']} "
            f"training questions, directions trained on {s['train_limit']} training questions, one sequence each ({' and '.join(s['prompts'])} prompts "
            f"+ gold responses; `long`: one long prompt per question, the relevant document's position rotating, as the reference code trains; "
            f"`gold`: the gold-only prompt, as the paper's §3.1 describes), and α = {s['alpha']:g} on the "
            f"top {s['k']} heads judged on {s['test_limit']} held-out questions per seed. Relevant and sink: mean over each seed's top {s['top']} heads. "
            "Differences are paired (same prompts) with a 95% bootstrap interval over questions; EM with 95% Wilson intervals. "
            f"Files: {f.links(*(f.step / n for n in ('seeds.md', 'seeds.csv', 'answers.csv', 'seeds.html')))}.\n\n{f.image(f.step / 'seeds.png', 'seeds')}")  # fmt: skip
    return text, rows
