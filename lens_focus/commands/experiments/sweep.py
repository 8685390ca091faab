"""EM over focus strength α and head count k (paper Figure 4), and the top heads' scores under α
(Table 3: its left half steers the heads it reports, its right half the top ``intervene_k``)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from lens_focus.analyses import sweep as fig4
from lens_focus.analyses import table3

from ...defaults import ALPHAS, BATCH_SIZE, INTERVENE_K, MAX_NEW_TOKENS, ROWS, STOP, SWEEP_KS, TABLE_ALPHAS, TABLE_K
from ...directions import INERT_NOTE
from ...experiments import concat_cells, focus_records, focus_table, sweep_cells, sweep_table
from ..declare import Context, Experiment, Log, Sizes, Step, register, seconds_since, summary_of, write_summary


def _work(ctx: Context) -> tuple:
    a, heads = ctx.args, ctx.heads
    ctx.record["site"] = ctx.directions.site
    cells = sweep_cells(ctx.model, ctx.examples, ctx.directions, heads, alphas=a["alphas"], ks=a["ks"], cache=ctx.cache, **ctx.answer_kw())
    halves = sorted({a["table_k"], min(a["intervene_k"], len(heads))})
    records = [r for k in halves for r in focus_records(ctx.model, ctx.examples, ctx.directions, heads[: a["table_k"]], intervene=heads[:k],
                                                        alphas=a["table_alphas"], rows=a["rows"], cache=ctx.cache, **ctx.answer_kw())]  # fmt: skip
    return cells, records


def _join(parts: Sequence[tuple]) -> tuple:
    """The sweep's cells and Table 3 records of every part, as one run's."""
    return concat_cells([cells for cells, _ in parts]), [r for _, records in parts for r in records]


def _write(work: tuple, out: Path, record: dict, log: Log) -> tuple[pd.DataFrame, pd.DataFrame]:
    cells, records = work
    table, answers = sweep_table(cells)
    fig4.write(table, out)
    pd.DataFrame(answers).to_csv(out / "answers.csv", index=False)
    scores = focus_table(records)
    inert = record["site"] == "post_rotary"
    table3.write(scores, out, note=f"Directions at site {record['site']}" + (f"; {INERT_NOTE}." if inert else "."))
    write_summary(out, {**summary_of(record), "seconds": seconds_since(record)})
    log(table.pivot(index="alpha", columns="k", values="em").to_string())
    log(f"site   {record['site']}" + (f" ({INERT_NOTE})" if inert else ""))
    log(f"wrote  {out}/ (sweep.csv, sweep.html/png, answers.csv, table3.csv, table3.md, summary.json)")
    return table, scores


SWEEP = register(Experiment(
    "sweep", "EM over focus strength α and head count k (paper Figure 4) and the top heads' scores under α (Table 3).",
    work=_work, write=_write, join=_join, questions=("long", "gold"), inputs=("heads", "directions"),
    params=(ALPHAS, SWEEP_KS, TABLE_ALPHAS, TABLE_K, INTERVENE_K, ROWS, MAX_NEW_TOKENS, STOP, BATCH_SIZE),
    default_out="runs/sweep",
    steps=(Step("sweep", "focus strength and head count", needs=("heads", "directions"), section_title="Focus directions (Figure 4, Table 3)", section=fig4.section,
                sizes=Sizes(
        full={"limit": 24, "gold_positions": (1, 10, 20)},  # the paper's grids: Figure 4's α × k and both halves of Table 3 (their defaults)
        quick={"limit": 6, "gold_positions": (1, 20), "alphas": (0.3,), "ks": (20,), "table_alphas": (0.3,)},
        toy={"limit": 50},
        toy_quick={"limit": 10, "gold_positions": (1, 20), "alphas": (-0.2, 0.3, 1.0), "ks": (5, 20), "table_alphas": (0.3,)},
    )),),
))  # fmt: skip
