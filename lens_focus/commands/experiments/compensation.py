"""Split-softmax compensation over τ and k on the top contextual heads, with random heads as the
control (paper §2.3, Figure 3)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from lens_focus.analyses import compensation as fig3

from ...defaults import BATCH_SIZE, COMPENSATION_KS, MAX_NEW_TOKENS, RANDOM_TAU, STOP, TAUS
from ...experiments import Cells, compensation_cells, compensation_table, concat_cells
from ..declare import Context, Experiment, Log, Sizes, Step, register, seconds_since, summary_of, write_summary


def _work(ctx: Context) -> Cells:
    a = ctx.args
    return compensation_cells(ctx.model, ctx.examples, ctx.heads, taus=a["taus"], ks=a["ks"], random_tau=a["random_tau"], seed=a["seed"],
                              cache=ctx.cache, **ctx.answer_kw())  # fmt: skip


def _write(cells: Cells, out: Path, record: dict, log: Log) -> pd.DataFrame:
    table, answers = compensation_table(cells)
    fig3.write(table, out)
    pd.DataFrame(answers).to_csv(out / "answers.csv", index=False)
    write_summary(out, {**summary_of(record), "prompts": sum(len(records) for _, records, paired in cells if not paired), "seconds": seconds_since(record)})
    log(table.to_string(index=False))
    log(f"wrote  {out}/ (compensation.csv, compensation.html/png, answers.csv, summary.json)")
    return table


COMPENSATE = register(Experiment(
    "compensate", "EM under split-softmax compensation on the top-k contextual heads over τ and k (paper Figure 3).",
    work=_work, write=_write, join=concat_cells, questions=("long", "gold", "negative"), inputs=("heads",),
    params=(TAUS, COMPENSATION_KS, RANDOM_TAU, MAX_NEW_TOKENS, STOP, BATCH_SIZE),
    default_out="runs/compensate",
    steps=(Step("compensation", "split-softmax compensation", needs=("heads",), section_title="Attention compensation (Figure 3)", section=fig3.section, sizes=Sizes(
        full={"limit": 24, "gold_positions": (1, 10, 20)},  # the paper's grid: every τ of Figure 3, k up to all heads (its defaults)
        quick={"limit": 6, "gold_positions": (1, 20), "taus": (0.1,), "ks": (20,)},
        toy={"limit": 50},
        toy_quick={"limit": 10, "gold_positions": (1, 20), "taus": (0.1, 1.5), "ks": (1, 5)},
    )),),
))  # fmt: skip
