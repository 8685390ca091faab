"""Contextual scores (paper §2.2, Figure 2, Table 1, EM by position): answer every prompt and score
every head by where its attention goes while the model answers.

Reproduce runs it three times: on held-out questions (``score``), the same under the other row
convention (``rows``), and on training questions, whose ranking every intervention uses (``heads``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from lens_focus.analyses import em_positions, head_locations, table1

from ...answers import Answered, answer_examples, conditions, second_pass_counts, skip_counts
from ...defaults import BATCH_SIZE, MAX_NEW_TOKENS, N_SINK, ROWS, STOP, VARIANTS
from ...errors import InputError
from ...heads import Head, rank_heads, save_heads
from ...labels import Example
from ...scoring import aggregate_scores
from ..declare import Context, Experiment, Log, Sizes, Step, register, seconds_since, summary_of, write_summary

OTHER_ROWS = {"generation": "response", "response": "generation"}


@dataclass(frozen=True)
class Scored:
    """Answers and head scores of one set of examples (:func:`score_answers`)."""

    answered: list[Answered]
    kept: list[tuple[Answered, list[str]]]
    """The answers that were scored, each with the conditions it counts in."""
    scores: pd.DataFrame
    ranked: list[Head]
    em: pd.DataFrame
    """One row per answer: ``variant``, ``gold_position``, ``em``."""


def score_answers(model, examples: Sequence[Example], *, rows: str = ROWS.default, **answer_kw) -> Scored:
    """Answer every example and score every head on the rows ``rows`` (paper §2.2); an error
    when every example was skipped."""
    return scored_from(answer_examples(model, examples, score=rows, **answer_kw))


def scored_from(answered: list[Answered]) -> Scored:
    """:class:`Scored` of answers given with their scores."""
    kept = [(a, c) for a, c in zip(answered, conditions(answered)) if a.sequence is not None]
    if not kept:
        raise InputError(f"every example was skipped ({skip_counts(answered)}); nothing to score")
    scores = aggregate_scores([a.scores for a, _ in kept], [c for _, c in kept])
    em = pd.DataFrame([{"variant": a.example.variant, "gold_position": a.example.meta.get("gold_position"), "em": a.em} for a in answered])
    return Scored(answered, kept, scores, rank_heads(scores), em)


def _example_record(a: Answered, conds: list[str]) -> dict:
    """One line of ``examples.jsonl``: the prompt, its spans (characters and tokens), the answer."""
    seq = a.sequence
    return {
        "id": a.example.id, "condition": a.example.variant, "conditions": conds,
        "gold_position": a.example.meta.get("gold_position"), "prompt": seq.prompt, "response": a.response,
        "answers": list(a.example.answers), "em": a.em, "input_ids": list(seq.input_ids),
        "spans": {k: [list(s) for s in v] for k, v in seq.char_spans.items()},
        "token_spans": {k: [list(s) for s in v] for k, v in seq.token_spans.items()},
    }  # fmt: skip


def write_scored(scored: Scored, out: Path, *, model_name: str) -> None:
    """``scores.csv``, ``heads.json``, ``examples.jsonl``, ``em.csv`` and the figures and table of
    :mod:`analyses.em_positions`, :mod:`analyses.head_locations` and :mod:`analyses.table1`."""
    out.mkdir(parents=True, exist_ok=True)
    scored.scores.to_csv(out / "scores.csv", index=False)
    save_heads(scored.ranked, out / "heads.json")
    with open(out / "examples.jsonl", "w") as f:
        f.writelines(json.dumps(_example_record(a, conds), ensure_ascii=False) + "\n" for a, conds in scored.kept)
    em_positions.write(scored.em, out)
    head_locations.write(scored.scores, out, model_name=model_name)
    table1.write(scored.scores, out)


def heads_line(ranked: Sequence[Head], k: int = 5) -> str:
    return " ".join(f"({h.layer},{h.head})" for h in ranked[:k])


def _check(args: dict) -> None:
    if "long" not in args["variants"]:
        raise InputError(f"variants: long is needed (heads are ranked on long prompts); got {', '.join(args['variants'])}")


def _work(ctx: Context) -> list[Answered]:
    a = ctx.args
    return answer_examples(ctx.model, ctx.examples, score=a["rows"], n_sink=a["n_sink"], **ctx.answer_kw())


def _write(answered: list[Answered], out: Path, record: dict, log: Log) -> dict:
    scored = scored_from(answered)
    write_scored(scored, out, model_name=record["model"]["name"])
    spars, skipped = head_locations.sparsity(scored.scores), skip_counts(answered)
    summary = write_summary(out, {
        **summary_of(record), "examples": len(answered), "scored": len(scored.kept), "skipped": skipped,
        "second_pass": second_pass_counts(answered), "skipped_ids": {a.example.id: a.skipped for a in answered if a.skipped},
        "em": {v: float(g.em.mean()) for v, g in scored.em.groupby("variant")},
        "sparsity": spars.to_dict(orient="records"), "top_heads": [list(h) for h in scored.ranked[:20]], "seconds": seconds_since(record),
    })  # fmt: skip
    log(f"scored {len(scored.kept)} sequences; skipped {sum(skipped.values())} {skipped if skipped else ''}".rstrip())
    if summary["second_pass"]:
        log(f"note   {sum(summary['second_pass'].values())} scored in a second teacher-forced pass: {summary['second_pass']}")
    log("EM     " + ", ".join(f"{k} {v:.3f}" for k, v in summary["em"].items()))
    log(head_locations.sparsity_line(spars))
    log("top-5  " + heads_line(scored.ranked))
    log(f"wrote  {out}/ (scores.csv, heads.json, examples.jsonl, em.csv, em_by_position, table1, head_locations) in {summary['seconds']}s")
    return summary


HELD_OUT = Sizes(
    full={"limit": 100, "variants": ("long", "gold", "negative")},
    quick={"limit": 12, "gold_positions": (1, 10, 20)},
    toy_quick={"limit": 20, "gold_positions": (1, 10, 20)},
)
SCORE = register(Experiment(
    "score", "Score every head by where its attention goes while the model answers (paper §2.2, Table 1, Figure 2).",
    work=_work, write=_write, check=_check, questions=("long", "gold"),
    params=(VARIANTS, MAX_NEW_TOKENS, STOP, BATCH_SIZE, ROWS, N_SINK),
    default_out="runs/score",
    steps=(
        Step("score", "contextual scores on held-out questions", sizes=HELD_OUT, section=head_locations.section,
             section_title="Contextual heads (Figure 2, Table 1, EM by position)"),
        Step("rows", "the same contextual scores under the other row convention", plan_of="score",
             fixed=lambda args: {"rows": OTHER_ROWS[args["rows"]]}, optional_section=True, section=table1.rows_section,
             section_title="Which rows a score averages: both conventions side by side"),
        Step("heads", "heads ranked on training questions", split="train",
             sizes=Sizes(full={"limit": 40, "gold_positions": (1, 10, 20)}, quick={"limit": 8}, toy={"limit": 100}, toy_quick={"limit": 20})),
    ),
))  # fmt: skip
