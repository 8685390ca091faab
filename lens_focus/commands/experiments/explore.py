"""The explorer page of a run (``explore.html`` in the run's folder): heads, examples,
compensation and focus directions side by side."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ...defaults import BATCH_SIZE, EXPLORE_ALPHA, EXPLORE_COMPENSATION_K, EXPLORE_FOCUS_K, EXPLORE_LIMIT, EXPLORE_TAU, MAX_NEW_TOKENS, ROWS, STOP
from ...explorer import explore
from ..declare import Context, Experiment, Log, Sizes, Step, register

PAGE = "explore.html"
"""The explorer page's name in the run's folder."""


def _work(ctx: Context) -> Path:
    a = ctx.args
    page = explore(ctx.model, ctx.examples, scores=pd.read_csv(ctx.folders["score"] / "scores.csv"), ranked=ctx.heads, directions=ctx.directions,
                   tau=a["tau"], compensation_k=a["compensation_k"], alpha=a["alpha"], focus_k=a["focus_k"], rows=a["rows"],
                   title=f"{ctx.record['model']['name']}: contextual heads, compensation and focus directions",
                   sample=f"{a['limit']} of the held-out test questions, gold at {', '.join(map(str, a['gold_positions']))}", **ctx.answer_kw())  # fmt: skip
    path = page.save(ctx.folders["run"] / PAGE)
    ctx.log(f"wrote  {path} ({path.stat().st_size / 2**20:.1f} MB, {len(ctx.examples)} examples)")
    return path


def _write(path: Path, out: Path, record: dict, log: Log) -> Path:
    return path


EXPLORE = register(Experiment(
    "explore", "The explorer page: heads, examples, compensation and focus directions side by side.",
    work=_work, write=_write, questions=("long",), inputs=("heads", "directions"), split=False, command=False,
    params=(EXPLORE_LIMIT, EXPLORE_TAU, EXPLORE_COMPENSATION_K, EXPLORE_ALPHA, EXPLORE_FOCUS_K, ROWS, MAX_NEW_TOKENS, STOP, BATCH_SIZE),
    steps=(Step("explore", "the explorer page: heads, examples, compensation and focus directions side by side", needs=("score", "heads", "directions"),
                sizes=Sizes(full={"gold_positions": (1, 10, 20)}, quick={"gold_positions": (1, 20)}, toy={"alpha": 0.3},
                            toy_quick={"gold_positions": (1, 20)})),),
))  # fmt: skip
