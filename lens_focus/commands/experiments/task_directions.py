"""Focus directions for each task category (the paper's first open question): directions trained on
each category's own training prompts, every category's directions judged on every task's held-out
prompts beside the run's general directions (docs/method.md §9).

Training prompts and held-out prompts come from one task builder under two seeds whose questions
never meet (:func:`training_seed`); a training sequence is a prompt followed by the task's
reference response (:meth:`lens_focus.tasks.Task.sequence`), its relevant documents labelled as
for the multi-document questions. The held-out prompts are answered under the baseline and under
``α · d`` on the top-k heads for each set of directions; every answer is a cell of the run's cache
(each category's directions are kept in ``directions/``), so an interrupted run resumes. Cells
the evaluate step of the same run already holds (the baseline and the general directions on the
same prompts) are read from it, not answered again.
"""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from lens_focus.analyses import task_directions

from ...defaults import (BATCH_SIZE, DISTRACTORS, EPOCHS, KV, LR, MATRIX_LENGTH, MATRIX_SETTING, NQ, ROWS, SINK_K, SITE, TASK_N, TASK_SEED,
                         TASKS, TRAIN_N)  # fmt: skip
from ...directions import FocusDirections, train_directions
from ...errors import InputError
from ...evaluation import TaskSet, evaluation_cells, evaluation_tables, parse_settings
from ...labels import Example, LabelError
from ...provenance import versions
from ...tasks import TASKS as TASK_TABLE
from ...tasks import build_task
from ..declare import Context, Experiment, Log, Sizes, Step, register, seconds_since, summary_of, write_summary

GENERAL = task_directions.GENERAL


def training_seed(seed: int, n: int, train_n: int) -> int:
    """The seed of the training prompts: the first whose prompts follow the held-out ones. A task
    drawn from a question file takes questions ``s·n … s·n + n − 1`` of its split under seed ``s``,
    so this seed's ``train_n`` questions start after the held-out seed's last."""
    return math.ceil((seed + 1) * n / train_n)


def _check(args: dict) -> None:
    setting = parse_settings([args["setting"]])[0]
    if setting.k is None or setting.directions is not None:
        raise InputError(f"setting: {args['setting']!r} must be '<k>_<alpha>', e.g. 20_0.2 (each set of directions is applied so)")
    if args["tasks"] is not None and (unknown := [t for t in args["tasks"] if t not in TASK_TABLE]):
        raise InputError(f"tasks: unknown tasks {', '.join(unknown)}; choose from {', '.join(sorted(TASK_TABLE))}")


def _prepare(args: dict, profile) -> dict:
    tasks = args["tasks"]
    if tasks is None:  # one task of each category the model can do
        first: dict[str, str] = {}
        for name in profile.tasks(nq=args["nq"]):
            first.setdefault(TASK_TABLE[name].category, name)
        tasks = tuple(first.values())
    length = args["length"] or max(profile.task_lengths)
    if length >= profile.n_ctx:
        raise InputError(f"length: {length} tokens do not fit the model's context of {profile.n_ctx}")
    return {**args, "tasks": tuple(tasks), "length": length}


def _build(ctx: Context, name: str, *, n: int, seed: int) -> list[Example]:
    a = ctx.args
    return build_task(name, ctx.model.tokenizer, lengths=[a["length"]], n=n, seed=seed, nq=a["nq"], kv=a["kv"], distractors=a["distractors"])


def _question(e: Example) -> tuple:
    """What makes two prompts the same question: the question's text and its answers."""
    return (next((s.text for s in e.segments if s.name == "question"), e.id), e.answers)


def _train(ctx: Context, category: str, tasks: list[str], held_out: dict[str, list[Example]]) -> tuple[FocusDirections, dict]:
    """One category's directions, trained on its tasks' training prompts (or read back from a
    file an earlier run of the same training wrote); with the record of what they were trained on."""
    a = ctx.args
    seed = training_seed(a["seed"], a["n"], a["train_n"])
    seqs, skipped, ids = [], Counter(), []
    for name in tasks:
        asked = {_question(e) for e in held_out[name]}
        for e in _build(ctx, name, n=a["train_n"], seed=seed):
            if _question(e) in asked:  # a small vocabulary repeats questions: never train on a held-out one
                skipped["asks a held-out question"] += 1
                continue
            try:
                seqs.append(TASK_TABLE[name].sequence(e, ctx.model.tokenizer))
                ids.append(f"{name}/{e.id}")
            except LabelError:
                skipped["not separable from its prompt"] += 1
    if not seqs:
        raise InputError(f"category {category}: no training sequence (skipped: {dict(skipped)})")
    training = {"category": category, "tasks": tasks, "seed": seed, "length": a["length"], "prompts": ids, "site": a["site"],
                "epochs": a["epochs"], "lr": a["lr"], "rows": a["rows"]}  # fmt: skip
    path = Path(ctx.out) / "directions" / f"{category}.safetensors"
    if path.exists() and (kept := FocusDirections.load(path, model=ctx.model)).meta.get("training") == training:
        ctx.log(f"   {category}: directions read from {path}")
        return kept, kept.meta["record"]
    ctx.log(f"   {category}: training on {len(seqs)} sequences (one forward each, then {a['epochs']} epochs on their queries and keys)")
    d = train_directions(ctx.model, seqs, site=a["site"], rows=a["rows"], epochs=a["epochs"], lr=a["lr"], seed=a["seed"],
                         meta={"training": training, "versions": versions()})  # fmt: skip
    record = {"category": category, "tasks": ", ".join(tasks), "sequences": len(seqs), "skipped": sum(skipped.values()),
              "skipped_why": "; ".join(f"{why}: {k}" for why, k in skipped.items()),
              "relevant_at_init": d.meta["relevant_score_at_init"], "relevant_trained": d.meta["relevant_score_trained"]}  # fmt: skip
    d.meta["record"] = record
    d.save(path)
    ctx.log(f"   {category}: {len(seqs)} sequences, relevant score {record['relevant_at_init']:.4f} -> {record['relevant_trained']:.4f}; wrote {path}")
    return d, record


def _work(ctx: Context) -> dict:
    a = ctx.args
    held_out = {name: _build(ctx, name, n=a["n"], seed=a["seed"]) for name in a["tasks"]}
    categories: dict[str, list[str]] = {}
    for name in a["tasks"]:
        categories.setdefault(TASK_TABLE[name].category, []).append(name)
    ctx.log(f"tasks  {', '.join(a['tasks'])} at {a['length']} tokens: {a['n']} held-out prompts each (seed {a['seed']}), "
            f"{a['train_n']} training prompts (seed {training_seed(a['seed'], a['n'], a['train_n'])}); categories {', '.join(categories)}")  # fmt: skip
    named, training = {}, []
    for category, tasks in categories.items():
        named[category], record = _train(ctx, category, tasks, held_out)
        training.append(record)
    settings = ["baseline"] + ([a["setting"]] if ctx.directions is not None else []) + [f"{a['setting']}@{c}" for c in categories]
    evaluation = ctx.folders["run"] / "evaluation" if "run" in ctx.folders else None  # under reproduce: the run's evaluate step
    adopted = sum(ctx.cache.adopt(p) for p in sorted(evaluation.glob("cells*.jsonl"))) if evaluation is not None and evaluation.is_dir() else 0
    if adopted:
        ctx.log(f"   {adopted} cells of {evaluation} found: the same prompts under the same setting are read from there")
    sets = [TaskSet(TASK_TABLE[name], a["length"], held_out[name]) for name in a["tasks"]]
    cells = evaluation_cells(ctx.model, sets, settings=parse_settings(settings), directions=ctx.directions, named=named, ranked=ctx.heads,
                             sink_k=a["sink_k"], batch_size=a["batch_size"], rows=a["rows"], cache=ctx.cache)  # fmt: skip
    return {"cells": cells, "training": training}


def _write(result: dict, out: Path, record: dict, log: Log) -> dict:
    task_scores, _, answers = evaluation_tables(result["cells"])
    matrix, own = task_directions.write(answers, result["training"], out, setting=record["setting"])
    task_scores.to_csv(out / "task_scores.csv", index=False)
    answers.to_csv(out / "answers.csv", index=False)
    summary = write_summary(out, {**summary_of(record), "training": result["training"], "seconds": seconds_since(record)})
    log(task_directions.wide(matrix).to_string(index=False))
    if not own.empty:
        log(own.to_string(index=False))
    log(f"wrote  {out}/ (matrix.csv/.md/.html/.png, own_vs_general.csv, training.csv, task_scores.csv, answers.csv, directions/, summary.json) "
        f"in {summary['seconds']}s")  # fmt: skip
    return summary


TASK_DIRECTIONS = register(Experiment(
    "task-directions", "Focus directions for each task category: trained on each category's own training prompts, every category's "
    "directions judged on every task's held-out prompts beside the general directions (--directions), as paired differences from the "
    "baseline (docs/method.md §9).",
    work=_work, write=_write, check=_check, prepare=_prepare, split=False, inputs=("heads", "directions"), optional_inputs=("directions",),
    params=(TASKS, MATRIX_LENGTH, TASK_N, TRAIN_N, TASK_SEED, MATRIX_SETTING, NQ, KV, DISTRACTORS, SITE, EPOCHS, LR, SINK_K, ROWS, BATCH_SIZE),
    default_out="runs/task-directions", command_defaults={"batch_size": 4},
    # held-out prompts as the evaluation step's (length, n, seed), so that its cells are read, not answered again
    steps=(Step("task_directions", "focus directions for each task category", needs=("heads", "directions"), optional_section=True,
                section_title="Focus directions for each task category (the paper's first open question)", section=task_directions.section,
                sizes=Sizes(
        full={"tasks": ("mv", "rerank", "icl", "long_qa"), "length": 1000, "n": 30, "train_n": 30, "batch_size": 4},
        quick={"length": 500, "n": 4, "train_n": 4},
        toy={"tasks": ("toy_needle", "toy_qa"), "length": 160, "n": 20, "train_n": 40, "batch_size": 16},
        toy_quick={"length": 80, "n": 5, "train_n": 6},
    )),),
))  # fmt: skip
