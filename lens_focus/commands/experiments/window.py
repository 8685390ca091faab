"""Sliding-window layers (models that have them): EM and the heads' scores with the relevant
document inside and beyond the window."""
from __future__ import annotations

import json
from pathlib import Path

from lens_focus.analyses import window

from ...answers import second_pass_counts, skip_counts
from ...defaults import BATCH_SIZE, MAX_NEW_TOKENS, ROWS, STOP
from ...model import attention_layers, model_info
from ..declare import Context, Experiment, Log, Sizes, Step, register
from .score import score_answers, write_scored


def _work(ctx: Context) -> dict:
    windows = [layer.window for layer in attention_layers(ctx.model)]
    if not any(windows) or all(windows):
        why = "no layer has a sliding window" if not any(windows) else "every layer has a sliding window: no full layers to compare"
        ctx.log(f"window: {why}; skipped")
        return {"skipped": why}
    a = ctx.args
    scored = score_answers(ctx.model, ctx.questions(), rows=a["rows"], **ctx.answer_kw())
    write_scored(scored, ctx.out, model_name=model_info(ctx.model).name)
    table = window.write(scored.answered, windows, ctx.out)
    ctx.log(f"wrote  {ctx.out}/ (window.csv: EM {', '.join(f'{e:.2f}' for e in table.em)} at positions {list(table.gold_position)})")
    return {"data": str(a["data"]), "n_docs": a["n_docs"], "positions": list(a["gold_positions"]), "limit": a["limit"], "windows": windows,
            "second_pass": second_pass_counts(scored.answered), "skipped_answers": skip_counts(scored.answered)}  # fmt: skip


def _write(result: dict, out: Path, record: dict, log: Log) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    (out / "window.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


WINDOW = register(Experiment(
    "window", "Sliding-window layers and a relevant document beyond their window.",
    work=_work, write=_write, questions=("long",), reads_own=True, split=False, command=False, params=(ROWS, MAX_NEW_TOKENS, STOP, BATCH_SIZE),
    steps=(Step("window", "sliding-window layers and a relevant document beyond their window", optional_section=True,
                section_title="Sliding-window layers: the relevant document inside and beyond the window", section=window.section, sizes=Sizes(
        full={"n_docs": 60, "limit": 30, "gold_positions": (1, 15, 30, 45, 60)},
    )),),
))  # fmt: skip
