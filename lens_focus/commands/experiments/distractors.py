"""Random against on-topic distractors on the same NQ questions: EM by position and every head's
scores under each kind, side by side (:mod:`lens_focus.analyses.distractors`). Each kind is a cell:
an interrupted run resumes at the kind it had not finished."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from lens_focus.analyses import distractors

from ...answers import answer_examples, skip_counts
from ...defaults import BATCH_SIZE, LENGTHS_K, MAX_NEW_TOKENS, N_SINK, NQ, ROWS, STOP
from ...sources import file_kind
from ...errors import InputError
from ..declare import Context, Experiment, Log, Sizes, Step, register, seconds_since, summary_of, write_summary
from .score import scored_from


def _cell(ctx: Context, kind: str) -> dict:
    """One kind of distractors: every answer (with its question and position) and every head's scores."""
    a = ctx.args
    examples = ctx.questions(data=a["nq"], task="nq", distractors=kind)
    answered = answer_examples(ctx.model, examples, score=a["rows"], n_sink=a["n_sink"], progress=False, **ctx.answer_kw())
    scored = scored_from(answered)
    answers = [{"distractors": kind, "id": x.example.id, "question_id": x.example.question_id, "gold_position": x.example.meta.get("gold_position"),
                "em": x.em, "response": x.response} for x in answered]  # fmt: skip
    return {"answers": answers, "scores": scored.scores.to_dict(orient="list"), "skipped": skip_counts(answered)}


def _work(ctx: Context) -> dict | None:
    a = ctx.args
    if a["nq"] is None:
        ctx.log("   no NQ file (nq): nothing to compare")
        return None
    if file_kind(a["nq"]) != "nq":
        raise InputError(f"nq: {a['nq']} is not an NQ file")
    ctx.cache.expect(["distractors", kind] for kind in distractors.KINDS)
    cells = {}
    for kind in distractors.KINDS:
        cells[kind] = ctx.cache(["distractors", kind], lambda kind=kind: _cell(ctx, kind))
        em = pd.DataFrame(cells[kind]["answers"]).em.mean()
        ctx.log(f"   {kind}: {len(cells[kind]['answers'])} prompts, EM {em:.3f}, skipped {sum(cells[kind]['skipped'].values())}")
    return cells


def _write(cells: dict | None, out: Path, record: dict, log: Log) -> dict:
    if cells is None:
        return write_summary(out, {**summary_of(record), "not_run": "no NQ file given (nq)", "seconds": seconds_since(record)})
    answers = pd.DataFrame([x for c in cells.values() for x in c["answers"]], columns=distractors.ANSWER_COLUMNS)
    scores = {kind: pd.DataFrame(c["scores"]) for kind, c in cells.items()}
    tables = distractors.write(answers, scores, out, k=record["k"])
    summary = write_summary(out, {**summary_of(record), "skipped": {kind: c["skipped"] for kind, c in cells.items()}, "seconds": seconds_since(record)})
    log(tables["paired"].to_string(index=False))
    log(tables["heads"].to_string(index=False))
    log(tables["overlap"].to_string(index=False))
    log(f"wrote  {out}/ (em, paired, heads, overlap .csv, scores_random.csv, scores_bm25.csv, answers.csv, distractors.html/png, summary.json) "
        f"in {summary['seconds']}s")  # fmt: skip
    return summary


DISTRACTORS = register(Experiment(
    "compare-distractors", "Random against on-topic (BM25) distractors on the same NQ questions and gold positions: EM by position, the paired change, "
    "and the contextual heads under each.",
    work=_work, write=_write, questions=("long",), reads_own=True, unread=("data", "task", "distractors"), split=False,
    params=(NQ, LENGTHS_K, MAX_NEW_TOKENS, STOP, BATCH_SIZE, ROWS, N_SINK), default_out="runs/compare-distractors",
    steps=(Step("distractor_kinds", "random against on-topic distractors", optional_section=True, section=distractors.section,
                section_title="Random against on-topic (BM25) distractors",
                sizes=Sizes(full={"limit": 50, "gold_positions": (1, 10, 20)}, quick={"limit": 6}, toy={}, toy_quick={})),),
))  # fmt: skip
