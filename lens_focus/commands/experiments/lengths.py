"""The contextual heads across prompt lengths: one task at several lengths, every head scored
at each, their top-k sets compared between lengths against chance (the paper's open question of
longer contexts). Each length is a cell: an interrupted run resumes at the next length."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lens_focus.analyses import lengths

from ...answers import answer_examples, skip_counts
from ...defaults import BATCH_SIZE, DISTRACTORS, LENGTHS_K, NQ, LENGTH_TASK, ROWS, TASK_LENGTHS, TASK_N, TASK_SEED
from ...errors import InputError
from ...model import model_info
from ...tasks import TASKS, build_task
from ..declare import Context, Experiment, Log, Sizes, Step, register, seconds_since, summary_of, write_summary
from .score import scored_from


def _prepare(args: dict, profile) -> dict:
    task = args["length_task"] or ("toy_qa" if profile.toy_vocabulary else "nq" if args["nq"] is not None else "long_qa")
    if task == "nq" and args["nq"] is None:
        raise InputError("nq: the nq task needs the NQ file (--nq), the lost-in-the-middle nq-open-oracle.jsonl.gz or a 20-document file")
    if (task == "toy_qa") != profile.toy_vocabulary:
        raise InputError(f"length_task: {task} is not written in this model's vocabulary; "
                         f"{'toy_qa' if profile.toy_vocabulary else 'nq (with --nq) or long_qa'} is")
    chosen = args["lengths"] or profile.task_lengths
    if too_long := [n for n in chosen if n >= profile.n_ctx]:
        raise InputError(f"lengths: {', '.join(map(str, too_long))} tokens do not fit the model's context of {profile.n_ctx}")
    return {**args, "length_task": task, "lengths": tuple(chosen)}


def _cell(ctx: Context, length: int) -> dict:
    """One length: its prompts answered and scored; the score table (relevant, sink and the most
    attended irrelevant document per head) and the counts the table needs."""
    a, task = ctx.args, TASKS[ctx.args["length_task"]]
    examples = build_task(task.name, ctx.model.tokenizer, lengths=[length], n=a["n"], seed=a["seed"], nq=a["nq"], distractors=a["distractors"])
    answered = answer_examples(ctx.model, examples, score=a["rows"], max_new_tokens=task.max_new_tokens, stop=task.stop, batch_size=a["batch_size"],
                               progress=False)  # fmt: skip
    scored = scored_from(answered)
    kept = scored.scores[scored.scores.span.isin(lengths.SPANS)]
    return {"scores": kept.to_dict(orient="list"), "n": len(answered), "scored": len(scored.kept), "em_sum": float(sum(x.em for x in answered)),
            "tokens": float(np.mean([x.sequence.n_prompt for x, _ in scored.kept])), "skipped": skip_counts(answered)}  # fmt: skip


def _work(ctx: Context) -> dict:
    a = ctx.args
    ctx.log(f"lengths {a['length_task']} at {', '.join(map(str, a['lengths']))} tokens, {a['n']} prompts each")
    ctx.cache.expect(["length", length] for length in a["lengths"])
    cells = {}
    for length in sorted(a["lengths"]):
        cells[length] = ctx.cache(["length", length], lambda: _cell(ctx, length))
        c = cells[length]
        ctx.log(f"   {length} tokens: {c['scored']} of {c['n']} scored, {c['tokens']:.0f} tokens on average, EM {c['em_sum'] / c['n']:.3f}")
    info = model_info(ctx.model)
    return {"cells": cells, "n_heads": info.n_total_heads, "model": info.name}


def _write(result: dict, out: Path, record: dict, log: Log) -> dict:
    cells = {int(L): pd.DataFrame(c["scores"]) for L, c in result["cells"].items()}
    stats = {int(L): c for L, c in result["cells"].items()}
    table, pairs = lengths.write(cells, stats, out, k=record["k"])
    summary = write_summary(out, {
        **summary_of(record), "task": record["length_task"], "n_heads": result["n_heads"],
        "skipped": {str(L): c["skipped"] for L, c in result["cells"].items()}, "seconds": seconds_since(record),
    })  # fmt: skip
    log(table[["length", "tokens", "em", "top_relevant", "top_sink", "all_sink"]].to_string(index=False))
    log(pairs.to_string(index=False))
    log(f"wrote  {out}/ (lengths.csv, overlap.csv, heads_by_length.csv, lengths.html/png, summary.json) in {summary['seconds']}s")
    return summary


LENGTHS = register(Experiment(
    "lengths", "The contextual heads across prompt lengths: one task at several lengths, the top-k heads of each, their overlap "
    "between lengths against chance, and the sink's share as the prompt grows.",
    work=_work, write=_write, prepare=_prepare, split=False, default_out="runs/lengths",
    params=(LENGTH_TASK, TASK_LENGTHS, TASK_N, TASK_SEED, NQ, DISTRACTORS, LENGTHS_K, ROWS, BATCH_SIZE),
    steps=(Step("lengths", "the contextual heads across prompt lengths", optional_section=True,
                section_title="Contextual heads across prompt lengths (the paper's open question of longer contexts)", section=lengths.section,
                sizes=Sizes(full={"lengths": (1000, 2000), "n": 20, "batch_size": 4}, quick={"lengths": (500, 1000), "n": 4},
                            toy={"lengths": (80, 160), "n": 20, "batch_size": 16}, toy_quick={"n": 6})),),
))  # fmt: skip
