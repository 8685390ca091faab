"""Retrieval heads from a needle-in-a-haystack test (Wu et al. 2024; paper §5), and Figure 9:
contextual heads against retrieval heads."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from lens_focus.analyses import figure9, top_k

from ...defaults import BATCH_SIZE, FILLER, NEEDLE_DEPTHS, NEEDLE_LENGTHS, NEEDLE_NEW_TOKENS, RETRIEVAL_SPAN
from ...errors import InputError
from ...heads import Head, save_heads
from ...profile import profile_of
from ...retrieval import retrieval_frame, retrieval_samples
from ..declare import Context, Experiment, Log, Sizes, Step, register, seconds_since, summary_of, write_summary
from .score import heads_line


def _prepare(args: dict, profile) -> dict:
    if profile.toy_vocabulary and args["filler"] is not None:
        raise InputError("filler: does not apply to a toy-vocabulary model: its haystack is made of toy facts")
    return {**args, "lengths": args["lengths"] or profile.needle_lengths}


def _work(ctx: Context) -> list:
    a = ctx.args
    profile = profile_of(ctx.model)
    needles = profile.needles(ctx.model.tokenizer, lengths=a["lengths"], depths=a["depths"], filler=a["filler"])
    ctx.log(f"data   {len(needles)} needle prompts: lengths {list(a['lengths'])}, depths {list(a['depths'])}, filler {a['filler'] or 'built-in'}"
            + (" (toy vocabulary)" if profile.toy_vocabulary else ""))  # fmt: skip
    ctx.split_record, mine = ctx.part.record(needles), ctx.part.take(needles)
    ctx.question_ids = list(dict.fromkeys(e.question_id for e in mine))
    return retrieval_samples(ctx.model, mine, span=a["span"], max_new_tokens=a["max_new_tokens"], batch_size=a["batch_size"])


def _write(samples: list, out: Path, record: dict, log: Log) -> dict:
    frame, counts = retrieval_frame(samples, record["model"]["n_layers"], record["model"]["n_heads"])
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "retrieval_scores.csv", index=False)
    ranked = [Head(int(r.layer), int(r.head)) for r in frame.itertuples()] if counts["counted"] else []
    save_heads(ranked, out / "retrieval_heads.json")
    summary = write_summary(out, {
        **summary_of(record), **counts, "retrieval_heads": int((frame.score > 0.1).sum()), "top_heads": [list(h) for h in ranked[:20]],
        "seconds": seconds_since(record),
    })  # fmt: skip
    log(f"counted {counts['counted']} of {counts['samples']} samples (those whose response recalls the {record['span']}'s words)")
    if counts["counted"]:
        log(f"heads with retrieval score > 0.1: {summary['retrieval_heads']} of {len(frame)}")
        log("top-5  " + heads_line(ranked))
    else:
        log("no response recalled the needle: no retrieval scores (retrieval_scores.csv holds NaN)")
    log(f"wrote  {out}/ (retrieval_scores.csv, retrieval_heads.json, summary.json) in {summary['seconds']}s")
    return summary


RETRIEVAL = register(Experiment(
    "retrieval", "Rank heads by retrieval score on a needle-in-a-haystack test (Wu et al. 2024; paper §5, Figure 9). "
    "For a toy-vocabulary model the needles, filler and question are in the toy vocabulary.",
    work=_work, write=_write, prepare=_prepare,
    params=(NEEDLE_LENGTHS, NEEDLE_DEPTHS, FILLER, RETRIEVAL_SPAN, NEEDLE_NEW_TOKENS, BATCH_SIZE),
    default_out="runs/retrieval", command_defaults={"batch_size": 4},
    steps=(Step("retrieval_heads", "retrieval heads from the needle test", sizes=Sizes(
        full={"lengths": (1000, 2000), "batch_size": 4},
        quick={"lengths": (500,), "depths": (0, 50, 100)},
        toy={"lengths": (80, 160, 300), "max_new_tokens": 4, "batch_size": 16},
        toy_quick={"lengths": (80, 160), "depths": (0, 50, 100)},
    )),),
))  # fmt: skip


def _figure9(ctx: Context) -> dict:
    retrieval = pd.read_csv(ctx.folders["retrieval_heads"] / "retrieval_scores.csv")
    why = ("no needle was recalled, so no head has a retrieval score" if retrieval.score.isna().all()
           else "no head has a positive retrieval score, so the retrieval ranking is arbitrary" if retrieval.score.max() <= 0 else None)  # fmt: skip
    if why:
        ctx.log(f"figure9: {why}; skipped")
        return {"skipped": why}
    scores = pd.read_csv(ctx.folders["score"] / "scores.csv")
    k = min(top_k(len(retrieval)), int((retrieval.score > 0).sum()))  # heads tied at 0 have no order
    figure9.write(scores, retrieval, ctx.out, k=k)
    ctx.log(f"wrote  {ctx.out}/ (figure9.csv, figure9.json, figure9.html/png)")
    return {}


def _write_figure9(result: dict, out: Path, record: dict, log: Log) -> dict:
    if "skipped" in result:
        out.mkdir(parents=True, exist_ok=True)
        (out / "figure9.json").write_text(json.dumps(result) + "\n")
    return result


FIGURE9 = register(Experiment(
    "figure9", "Contextual heads against retrieval heads (paper Figure 9).", work=_figure9, write=_write_figure9,
    split=False, uses_model=False, command=False,
    steps=(Step("figure9", "contextual vs retrieval heads", needs=("score", "retrieval_heads"), section_title="Retrieval heads (Figure 9)", section=figure9.section),),
))  # fmt: skip
