"""Focus directions for each task category (the paper's first open question: are focus
directions task-dependent?). Rows: the directions (each category's own, and the run's general
ones); columns: the tasks whose held-out prompts they were judged on; each cell the paired change
of the task's metric from the baseline on the same prompts, with its 95% bootstrap interval.
Beside it, per task, its own category's directions against the general ones, paired too.

Files: ``matrix.csv`` (directions, task, n, changed: the prompts whose response differs from the
baseline's, before, after, diff, diff_low, diff_high),
``matrix.md`` (the matrix, each cell ``diff [low, high]``), ``matrix.html``/``.png`` (a heatmap),
``own_vs_general.csv`` (task, category, n, general, own, diff, diff_low, diff_high: own − general),
``training.csv`` (per category: its tasks, sequences, skipped, relevant score before and after
training). The method: docs/method.md §9.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from lens_focus.evaluation import ANSWER_COLUMNS
from lens_focus.plots import write_figure
from lens_focus.stats import difference_text, paired_difference

from . import markdown_table, require_columns
from .index import Folders, row
from .task_tables import paired_differences

GENERAL = "general"
"""The row of the run's one set of directions (trained on its multi-document questions)."""
MATRIX_COLUMNS = ["directions", "task", "n", "changed", "before", "after", "diff", "diff_low", "diff_high"]
OWN_COLUMNS = ["task", "category", "n", "general", "own", "diff", "diff_low", "diff_high"]


def directions_of(setting: str, base: str) -> str | None:
    """The row a setting's answers belong to: ``base`` is the general directions, ``base@name``
    the directions ``name``; None for any other setting."""
    if setting == base:
        return GENERAL
    head, at, name = setting.partition("@")
    return name if at and head == base else None


def matrix(answers: pd.DataFrame, *, setting: str) -> pd.DataFrame:
    """The paired change from the baseline of every set of directions on every task (rows in the
    order the answers first name them, the general directions first)."""
    require_columns(answers, ANSWER_COLUMNS, "answers")
    diffs = paired_differences(answers)
    diffs = diffs[diffs.task != "all"]
    diffs = diffs.assign(directions=[directions_of(s, setting) for s in diffs.setting]).dropna(subset=["directions"])
    base = answers[answers.setting == "baseline"][["task", "length", "id", "score", "response"]]
    paired = answers.merge(base, on=["task", "length", "id"], suffixes=("", "_base"))
    paired = paired.assign(changed=paired.response.fillna("") != paired.response_base.fillna(""))  # an empty response read back from CSV is NaN
    per_cell = paired.groupby(["setting", "task"]).agg(before=("score_base", "mean"), after=("score", "mean"), changed=("changed", "sum"))
    out = diffs.join(per_cell, on=["setting", "task"]).astype({"changed": int})
    order = [GENERAL] + [d for d in dict.fromkeys(out.directions) if d != GENERAL]
    tasks = list(dict.fromkeys(answers.task))
    out = out.assign(r=[order.index(d) for d in out.directions], c=[tasks.index(t) for t in out.task]).sort_values(["r", "c"])
    return out[MATRIX_COLUMNS].reset_index(drop=True)


def own_vs_general(answers: pd.DataFrame, *, setting: str, categories: dict[str, str]) -> pd.DataFrame:
    """Per task (``categories``: task → its category), its own category's directions against the
    general ones on the same prompts: the mean of own − general with its 95% bootstrap interval.
    Empty when the answers hold no general directions."""
    require_columns(answers, ANSWER_COLUMNS, "answers")
    rows = []
    general = answers[answers.setting == setting].set_index(["task", "id"]).score
    for task, category in categories.items():
        own = answers[(answers.setting == f"{setting}@{category}") & (answers.task == task)]
        if general.empty or own.empty:
            continue
        before = general.loc[list(zip(own.task, own.id))].to_numpy()
        d = paired_difference(before, own.score.to_numpy())
        rows.append({"task": task, "category": category, "n": d.n, "general": d.before, "own": d.after, "diff": d.mean, "diff_low": d.low, "diff_high": d.high})
    return pd.DataFrame(rows, columns=OWN_COLUMNS)


def wide(table: pd.DataFrame) -> pd.DataFrame:
    """The matrix as text: a row per set of directions, a column per task, each cell ``diff [low, high]``."""
    text = table.assign(cell=[f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]" for d, lo, hi in zip(table["diff"], table.diff_low, table.diff_high)])
    out = text.pivot(index="directions", columns="task", values="cell")
    return out.loc[list(dict.fromkeys(table.directions)), list(dict.fromkeys(table.task))].reset_index().rename_axis(columns=None)


def figure(table: pd.DataFrame, *, title: str) -> go.Figure:
    """A heatmap of the paired changes (red: a fall, blue: a rise; a cell whose interval excludes 0 is marked *)."""
    rows, cols = list(dict.fromkeys(table.directions)), list(dict.fromkeys(table.task))
    cell = table.set_index(["directions", "task"])
    z = [[cell.loc[(r, c), "diff"] if (r, c) in cell.index else None for c in cols] for r in rows]
    marks = [[(f"{cell.loc[(r, c), 'diff']:+.3f}" + ("*" if cell.loc[(r, c), "diff_low"] > 0 or cell.loc[(r, c), "diff_high"] < 0 else ""))
              if (r, c) in cell.index else "" for c in cols] for r in rows]  # fmt: skip
    bound = max(0.05, float(table["diff"].abs().max())) if len(table) else 0.05
    fig = go.Figure(go.Heatmap(z=z, x=cols, y=rows, text=marks, texttemplate="%{text}", colorscale="RdBu", zmin=-bound, zmax=bound,
                               colorbar=dict(title="change")))  # fmt: skip
    fig.update_yaxes(autorange="reversed", title_text="directions trained on")
    fig.update_xaxes(title_text="held-out prompts of task")
    fig.update_layout(title=title, template="plotly_white", height=160 + 60 * len(rows), width=220 + 150 * len(cols))
    return fig


def write(answers: pd.DataFrame, training: list[dict], out_dir: str | Path, *, setting: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every file of the module docstring into ``out_dir``; returns the matrix and the own-against-general table."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = matrix(answers, setting=setting)
    categories = {t: r["category"] for r in training for t in r["tasks"].split(", ")}
    own = own_vs_general(answers, setting=setting, categories=categories)
    table.to_csv(out / "matrix.csv", index=False)
    own.to_csv(out / "own_vs_general.csv", index=False)
    pd.DataFrame(training).to_csv(out / "training.csv", index=False)
    n = "0" if not len(table) else str(int(table.n.min())) if table.n.min() == table.n.max() else f"{int(table.n.min())}–{int(table.n.max())}"
    (out / "matrix.md").write_text(f"## Paired change from the baseline, {setting} (α·d on the top-k heads), {n} held-out prompts per cell\n\n"
                                   + markdown_table(wide(table)))  # fmt: skip
    write_figure(figure(table, title=f"Directions of each category on every task's held-out prompts ({setting}; * interval excludes 0)"), out / "matrix")
    return table, own


def _responses(n: int) -> str:
    return f"{int(n)} response" + "s" * (n != 1)


def section(f: Folders) -> tuple[str, list[dict]]:
    """The index section: what was trained, then per task its own directions' change, the general
    directions' change and the two compared."""
    j = json.loads((f.step / "summary.json").read_text())
    table, own = pd.read_csv(f.step / "matrix.csv"), pd.read_csv(f.step / "own_vs_general.csv")
    trained = "; ".join(f"{t['category']}: {t['tasks']} ({t['sequences']} sequences, relevant score {t['relevant_at_init']:.3f} → "
                        f"{t['relevant_trained']:.3f})" for t in j["training"])  # fmt: skip
    text = (f"Directions trained per category at {j['length']} tokens, {j['train_n']} training prompts per task whose questions follow the "
            f"held-out ones ({trained}); each set applied as {j['setting']} (α·d on the top-k heads) to {j['n']} held-out prompts per task, "
            f"beside the run's general directions. Each change is paired (the same prompts under the baseline), with a 95% bootstrap interval, "
            f"a rise or a fall only where it excludes 0. Files: "
            f"{f.links(*(f.step / n for n in ('matrix.md', 'matrix.csv', 'own_vs_general.csv', 'training.csv', 'answers.csv', 'matrix.html')))}."
            f"\n\n{f.image(f.step / 'matrix.png', 'task directions')}")  # fmt: skip
    rows = []
    for task in dict.fromkeys(table.task):
        cells = table[table.task == task].set_index("directions")
        shown = "; ".join(f"{d}: {difference_text(r['diff'], r.diff_low, r.diff_high)} ({_responses(r.changed)} changed)" for d, r in cells.iterrows())
        rows.append(row(f"{task}: change from the baseline ({int(cells.n.iloc[0])} prompts, baseline {cells.before.iloc[0]:.3f})", shown, "—"))
    for r in own.itertuples():
        rows.append(row(f"{r.task}: its own ({r.category}) directions − the general ones", difference_text(r.diff, r.diff_low, r.diff_high), "—"))
    if len(own):
        beat = int((own.diff_low > 0).sum())
        rows.insert(0, row("tasks whose own category's directions beat the general ones (paired interval above 0)", f"{beat} of {len(own)}",
                           "open question (the paper's §5, Discussion: “focus directions may be task dependent”)"))  # fmt: skip
    return text, rows
