"""Paper Tables 2 and 5–13 from :func:`lens_focus.evaluation.evaluate_tasks`: per-task scores
per setting (Tables 5–8), category averages and the overall average (Tables 2, 9–11), the top
contextual heads' sink score per task with its spread across tasks (Tables 12–13), and a figure
of score against context length per setting."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lens_focus.evaluation import ANSWER_COLUMNS, SINK_COLUMNS, TASK_COLUMNS
from lens_focus.plots import write_figure
from lens_focus.stats import difference_text, paired_difference, verdict

from . import markdown_table, require_columns
from .index import Folders, row
from lens_focus.defaults import SINK_K

STD = "STD"
"""The row (CSV) or column (Markdown) of the sink scores' standard deviation across tasks."""
SPREAD = 1.04  # the figure's factor between neighbouring settings' x positions


def prompts_per_cell(n: pd.Series) -> str:
    """``30 prompts`` or ``20–30 prompts``: how many prompts the cells of a task table hold."""
    low, high = int(n.min()), int(n.max())
    return f"{low} prompts" if low == high else f"{low}–{high} prompts"


def _setting_order(names) -> list[str]:
    return sorted(set(names), key=lambda s: (s != "baseline", s))


def category_scores(task_scores: pd.DataFrame) -> pd.DataFrame:
    """``setting, length, category, score, n_tasks``: the mean score of each category's tasks,
    and the category ``overall``, the mean of the category means, as the paper averages (its
    Table 10: categories 89.75, 60.92, 32.71, 77.40 give 65.20). A category of many tasks counts
    as much as one of few."""
    require_columns(task_scores, ["setting", "length", "category", "score"], "task scores")
    keys = ["setting", "length"]
    by_cat = task_scores.groupby([*keys, "category"], sort=False).score.agg(["mean", "size"]).reset_index()
    overall = by_cat.groupby(keys, sort=False).agg(mean=("mean", "mean"), size=("size", "sum")).reset_index().assign(category="overall")
    table = pd.concat([by_cat, overall], ignore_index=True).rename(columns={"mean": "score", "size": "n_tasks"})
    return table[[*keys, "category", "score", "n_tasks"]].sort_values(keys, kind="stable").reset_index(drop=True)


def sink_with_std(sink_scores: pd.DataFrame) -> pd.DataFrame:
    """The sink rows with, per length, a row ``task = STD``: the sample standard deviation
    (ddof 1, as the paper's Table 13) of the sink score across tasks, the paper's measure of how
    consistently a model attends at one context length. STD rows already in ``sink_scores`` are
    replaced."""
    require_columns(sink_scores, SINK_COLUMNS, "sink scores")
    sink_scores = sink_scores[sink_scores.task != STD]  # a table read back from sink_scores.csv
    std = sink_scores.groupby("length").sink.std(ddof=1).reset_index().assign(task=STD, category="")
    return pd.concat([sink_scores, std], ignore_index=True)[SINK_COLUMNS]


def wide(table: pd.DataFrame, *, index: str, columns: str, values: str) -> pd.DataFrame:
    """A pivot with the index as its first column, columns in order of first appearance."""
    order = list(dict.fromkeys(table[columns]))
    out = table.pivot_table(index=index, columns=columns, values=values, aggfunc="first", sort=False, dropna=False)[order]
    return out.reset_index().rename_axis(columns=None)


def figure(task_scores: pd.DataFrame, *, title: str = "Task scores against context length per setting") -> go.Figure:
    """One panel per task and one for the overall average (the mean of the category means); a line
    per setting, with each task score's 95% interval as error bars where ``task_scores`` has
    ``low`` and ``high``. The settings' points at one length sit side by side (each setting shifted
    by a few percent of the length, so that their bars do not overlap); hovering shows the length."""
    require_columns(task_scores, TASK_COLUMNS, "task scores")
    tasks = list(dict.fromkeys(task_scores.task))
    cats = category_scores(task_scores)
    overall = cats[cats.category == "overall"].drop(columns="n_tasks").assign(task="overall")
    data = pd.concat([task_scores, overall], ignore_index=True)
    panels = [*tasks, "overall"]
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=panels, shared_yaxes=True)
    colors = ["black", "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
    settings = _setting_order(data.setting)
    for s, setting in enumerate(settings):
        shift = SPREAD ** (s - (len(settings) - 1) / 2)  # a factor on the log axis: the same gap at every length
        for p, task in enumerate(panels):
            g = data[(data.task == task) & (data.setting == setting)].sort_values("length")
            bars = dict(type="data", array=g.high - g.score, arrayminus=g.score - g.low, thickness=1) if "low" in g and g.low.notna().all() else None
            fig.add_scatter(x=g.length * shift, y=g.score, error_y=bars, mode="lines+markers", name=setting, legendgroup=setting, showlegend=p == 0,
                            customdata=g.length, hovertemplate=f"{setting}<br>%{{customdata}} tokens: %{{y:.3f}}<extra></extra>",
                            line=dict(color=colors[s % len(colors)], dash="dot" if setting == "baseline" else "solid"),
                            row=p // cols + 1, col=p % cols + 1)  # fmt: skip
    fig.update_xaxes(title_text="context length (tokens)", type="log", tickvals=sorted(data.length.unique()))
    fig.update_yaxes(range=[-0.05, 1.05])
    fig.update_layout(title=title, template="plotly_white", height=300 * rows + 100)
    return fig


def _interval_text(score: float, low: float, high: float) -> str:
    return f"{score:.3f} [{low:.3f}, {high:.3f}]"


def _change_text(d) -> str:
    """A paired change as a table cell, in bold where it is a rise or a fall (:func:`verdict`)."""
    text = f"{d.diff:+.3f} [{d.diff_low:+.3f}, {d.diff_high:+.3f}]"
    return text if verdict(d.diff_low, d.diff_high) == "no measurable effect" else f"**{text}**"


def _length_blocks(table: pd.DataFrame, *, columns: str, values: str, heading=lambda length, g: f"{length} tokens") -> list[str]:
    """One Markdown table per length of ``table``: a row per setting (the baseline first), a
    column per value of ``columns``."""
    blocks = []
    for length, g in table.groupby("length", sort=True):
        w = wide(g, index="setting", columns=columns, values=values)
        w = w.set_index("setting").loc[_setting_order(w.setting)].reset_index()
        blocks.append(f"### {heading(length, g)}\n\n" + markdown_table(w))
    return blocks


def changes_markdown(changes: pd.DataFrame) -> str:
    """:func:`paired_differences` as the paper's table shape: a block per length, a row per
    setting, a column per task and ``all`` (every prompt of the length)."""
    return "\n".join([
        "## Each setting's change from the baseline on the same prompts (paired, 95% bootstrap interval over prompts)\n\n"
        "In bold: a rise or a fall (the interval excludes 0); the rest: no measurable effect.\n",
        *_length_blocks(changes.assign(text=[_change_text(d) for d in changes.itertuples()]), columns="task", values="text",
                        heading=lambda length, g: f"{length} tokens ({int(g[g.task == 'all'].n.max())} prompts per setting)"),
    ])  # fmt: skip


def write(task_scores: pd.DataFrame, sink_scores: pd.DataFrame, out_dir: str | Path, *, answers: pd.DataFrame | None = None,
          sink_k: int = SINK_K.default, note: str = "") -> list[Path]:
    """``task_scores`` (with each cell's 95% interval), ``category_scores`` and ``sink_scores``
    as CSV (tidy) and Markdown (the paper's table shapes, one block per length); given the
    ``answers``, each setting's paired change from the baseline per task and length
    (``changes.csv``/``.md``, :func:`paired_differences`); and ``scores_vs_length.html``
    (+ ``.png``)."""
    require_columns(task_scores, TASK_COLUMNS, "task scores")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    categories = category_scores(task_scores)
    sinks = sink_with_std(sink_scores)
    shown = task_scores.assign(shown=[_interval_text(r.score, r.low, r.high) for r in task_scores.itertuples()])
    written = []
    for stem, tidy, md, title, columns in (
        ("task_scores", task_scores, shown, "Task scores per setting with 95% intervals over prompts (paper Tables 5–8)", "task"),
        ("category_scores", categories, categories.assign(shown=categories.score), "Category averages and overall (paper Tables 2, 9–11)", "category"),
    ):
        tidy.to_csv(out / f"{stem}.csv", index=False)
        blocks = [f"## {title}\n\n{note}".rstrip() + "\n", *_length_blocks(md, columns=columns, values="shown")]
        (out / f"{stem}.md").write_text("\n".join(blocks))
        written += [out / f"{stem}.csv", out / f"{stem}.md"]
    if answers is not None and (answers.setting != "baseline").any():
        changes = paired_differences(answers)
        changes.to_csv(out / "changes.csv", index=False)
        (out / "changes.md").write_text(changes_markdown(changes))
        written += [out / "changes.csv", out / "changes.md"]
    sinks.to_csv(out / "sink_scores.csv", index=False)
    sink_md = wide(sinks, index="length", columns="task", values="sink")
    (out / "sink_scores.md").write_text(
        f"## Sink score of the top-{sink_k} contextual heads per task (baseline), and its standard deviation across tasks "
        "(paper Tables 12–13)\n\n"
        + markdown_table(sink_md)
    )
    written += [out / "sink_scores.csv", out / "sink_scores.md"]
    return written + write_figure(figure(task_scores), out / "scores_vs_length")


PAPER = {
    "categories": "Table 2 (32k and 64k): some setting above the baseline in 33 of the 46 category cells it fills (its text says 34 of 48); no intervals",
    "sink_std": "4.4–9.3 percentage points across 16 tasks at 8k and 16k (Tables 12–13)",
}
"""The paper's task tables (docs/method.md §7)."""
DIFF_COLUMNS = ["length", "task", "setting", "n", "diff", "diff_low", "diff_high"]


def paired_differences(answers: pd.DataFrame) -> pd.DataFrame:
    """Each setting's change from the baseline on the same prompts (``answers.csv``), per task and
    length (tasks in the order the answers first name them) and over every prompt of a length
    (``task = all``): the mean difference of the task's metric with a 95% bootstrap interval over
    prompts (:func:`lens_focus.stats.paired_difference`)."""
    require_columns(answers, ANSWER_COLUMNS, "answers")
    base = answers[answers.setting == "baseline"].set_index(["task", "length", "id"]).score
    tasks = list(dict.fromkeys(answers.task))
    rows = []
    for setting in [s for s in dict.fromkeys(answers.setting) if s != "baseline"]:
        steered = answers[answers.setting == setting]
        before = base.loc[list(zip(steered.task, steered.length, steered.id))].to_numpy()
        paired = steered.assign(before=before)
        groups = sorted(((length, task, g) for (length, task), g in paired.groupby(["length", "task"], sort=False)),
                        key=lambda x: (x[0], tasks.index(x[1])))  # lengths in order, tasks as the answers first name them
        groups += [(length, "all", g) for length, g in paired.groupby("length", sort=True)]
        for length, task, g in groups:
            d = paired_difference(g.before, g.score, g.task + "/" + g.id.astype(str))
            rows.append({"length": length, "task": task, "setting": setting, "n": len(g), "diff": d.mean, "diff_low": d.low, "diff_high": d.high})
    return pd.DataFrame(rows, columns=DIFF_COLUMNS)


def section(f: Folders) -> tuple[str, list[dict]]:
    """The index section of the evaluation step: each setting's paired change over every prompt of
    a length, the overall score, and the spread of the sink score across tasks."""
    cat = pd.read_csv(f.step / "category_scores.csv")
    overall = cat[cat.category == "overall"].pivot_table(index="length", columns="setting", values="score")
    rows = []
    diffs = paired_differences(pd.read_csv(f.step / "answers.csv", keep_default_na=False, na_values=[""])) if (f.step / "answers.csv").exists() else None
    for length, r in overall.iterrows():
        rows.append(row(f"overall score at {length} tokens (mean of the category means)", f"baseline {r['baseline']:.3f}; "
                        + ", ".join(f"{s} {r[s]:.3f}" for s in overall.columns if s != "baseline"), "—"))  # fmt: skip
        if diffs is not None:
            for d in diffs[(diffs.length == length) & (diffs.task == "all")].itertuples():
                rows.append(row(f"{d.setting} at {length} tokens: paired change over its {d.n} prompts", difference_text(d.diff, d.diff_low, d.diff_high), "—"))
    if diffs is not None:
        cells = diffs[diffs.task != "all"]
        n_cells = cells.groupby(["length", "task"]).ngroups
        rising = cells[cells.diff_low > 0].groupby(["length", "task"]).ngroups
        falling = cells[cells.diff_high < 0].groupby(["length", "task"]).ngroups
        rows.insert(0, row("task × length cells where some setting rises (paired interval above 0)", f"{rising} of {n_cells}", PAPER["categories"]))
        rows.insert(1, row("task × length cells where some setting falls (paired interval below 0)", f"{falling} of {n_cells}", "—"))
    sink = pd.read_csv(f.step / "sink_scores.csv")
    std = sink[sink.task == STD]
    n_tasks = sink[sink.task != STD].groupby("length").task.nunique()
    if not std.empty:
        ours = ", ".join(f"{100 * r.sink:.1f} points across {n_tasks.get(r.length, 0)} tasks at {int(r.length)} tokens" for r in std.itertuples() if pd.notna(r.sink))
        rows.append(row("sink score of the top-5 heads: STD across tasks", ours or "one task: no spread", PAPER["sink_std"]))
    links = f.links(*(f.step / n for n in ("task_scores.md", "category_scores.md", "sink_scores.md", "scores_vs_length.png", "scores_vs_length.html", "answers.csv")),
                    optional=(f.step / "changes.md",))
    n = pd.read_csv(f.step / "task_scores.csv").n
    return (f"Tables 2, 5–13 ({prompts_per_cell(n)} per task, length and setting). Each task's score has its 95% "
            "interval over prompts (Wilson for a metric of 0 or 1 per prompt, else a bootstrap). The overall score is the mean of the "
            "category means, as the paper's; each setting's change is paired (the same prompts under the baseline), with a 95% bootstrap "
            "interval over prompts, and is a rise or a fall only where that interval excludes 0; the STD is the sample deviation (ddof 1) "
            f"across tasks. Files: {links}."), rows  # fmt: skip
