"""Focus directions on long-context tasks: scores per task, category and setting, and the top
heads' sink score per task (paper Tables 2, 5-13)."""
from __future__ import annotations

from pathlib import Path

from lens_focus.analyses import task_tables

from ...defaults import BATCH_SIZE, DISTRACTORS, HELMET, HELMET_DEMOS, KV, NQ, ROWS, SETTINGS, SHOTS, SINK_K, TASK_LENGTHS, TASK_N, TASK_SEED, TASKS
from ...errors import InputError
from ...evaluation import concat_evaluation, evaluation_cells, evaluation_tables, group_by_length, parse_settings, split_record, split_sets
from ...tasks import TASKS as TASK_TABLE
from ...tasks import build_task, helmet_task
from ..declare import Context, Experiment, Log, Sizes, Step, register, seconds_since, summary_of, write_summary


def _check(args: dict) -> None:
    parse_settings(list(args["settings"]))
    if len(args["helmet_demos"] or ()) > len(args["helmet"] or ()):
        raise InputError(f"helmet_demos: {len(args['helmet_demos'])} demo files for {len(args['helmet'] or ())} --helmet files")
    if args["tasks"] is not None and (unknown := [t for t in args["tasks"] if t not in TASK_TABLE]):
        raise InputError(f"tasks: unknown tasks {', '.join(unknown)}; choose from {', '.join(sorted(TASK_TABLE))}")


def _prepare(args: dict, profile) -> dict:
    return {**args, "tasks": args["tasks"] or tuple(profile.tasks(nq=args["nq"])), "lengths": args["lengths"] or profile.task_lengths}


def _sets(ctx: Context) -> list:
    a, tokenizer = ctx.args, ctx.model.tokenizer
    sets = [s for name in a["tasks"] for s in group_by_length(TASK_TABLE[name], build_task(
        name, tokenizer, lengths=a["lengths"], n=a["n"], seed=a["seed"], nq=a["nq"], kv=a["kv"], distractors=a["distractors"]))]  # fmt: skip
    demos = list(a["helmet_demos"] or ())
    for i, path in enumerate(a["helmet"] or ()):
        task, examples = helmet_task(path, limit=a["n"], demos=demos[i] if i < len(demos) else None, shots=a["shots"])
        sets += group_by_length(task, examples, tokenizer)
    return sets


def _work(ctx: Context) -> list[dict]:
    a = ctx.args
    sets = _sets(ctx)
    settings = parse_settings(list(a["settings"]))
    ctx.log(f"tasks  {', '.join(dict.fromkeys(s.task.name for s in sets))} at {sorted({s.length for s in sets})} tokens, "
            f"{sum(len(s.examples) for s in sets)} prompts; settings {', '.join(s.name for s in settings)}")  # fmt: skip
    ctx.split_record, mine = split_record(sets, ctx.part), split_sets(sets, ctx.part)
    ctx.question_ids = [f"{ts.task.name}@{ts.length}/{e.question_id}" for ts in mine for e in ts.examples]
    return evaluation_cells(ctx.model, mine, settings=settings, directions=ctx.directions, ranked=ctx.heads,
                            sink_k=a["sink_k"], batch_size=a["batch_size"], rows=a["rows"], cache=ctx.cache)  # fmt: skip


def _write(cells: list[dict], out: Path, record: dict, log: Log) -> dict:
    task_scores, sink_scores, answers = evaluation_tables(cells)
    task_tables.write(task_scores, sink_scores, out, answers=answers, sink_k=record["sink_k"])
    answers.to_csv(out / "answers.csv", index=False)
    summary = write_summary(out, {**summary_of(record), "seconds": seconds_since(record)})
    table = task_tables.wide(task_scores.assign(col=task_scores.task + "@" + task_scores.length.astype(str)), index="setting", columns="col", values="score")
    log(table.to_string(index=False))
    log(f"wrote  {out}/ (task_scores, category_scores, changes, sink_scores .csv/.md, scores_vs_length.html/png, answers.csv, summary.json) in {summary['seconds']}s")
    return summary


EVALUATE = register(Experiment(
    "evaluate", "Focus directions on long-context tasks: scores per task, category and setting, and the top heads' sink score per task "
    "(paper Tables 2, 5-13). --directions is needed by every setting but the baseline.",
    work=_work, write=_write, join=concat_evaluation, check=_check, prepare=_prepare, inputs=("heads", "directions"), optional_inputs=("directions",),
    params=(TASKS, TASK_LENGTHS, SETTINGS, TASK_N, TASK_SEED, NQ, KV, DISTRACTORS, HELMET, HELMET_DEMOS, SHOTS, SINK_K, ROWS, BATCH_SIZE),
    default_out="runs/evaluate", command_defaults={"batch_size": 4},
    steps=(Step("evaluation", "long-context tasks", needs=("heads", "directions"), section_title="Long-context tasks (Table 2 shape, Tables 12–13)", section=task_tables.section,
                sizes=Sizes(
        full={"tasks": ("mk_needle", "mk_uuid", "mv", "json_kv", "rerank", "icl", "long_qa", "long_qa_mc"), "lengths": (1000,), "n": 6, "batch_size": 4},
        quick={"lengths": (500,), "n": 3, "settings": ("baseline", "20_0.2")},
        toy={"tasks": ("toy_needle", "toy_qa"), "lengths": (80, 160), "n": 20, "batch_size": 16},
        toy_quick={"lengths": (80,), "n": 5, "settings": ("baseline", "20_0.2")},
    )),),
))  # fmt: skip
