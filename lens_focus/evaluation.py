"""Focus directions on the long-context task suite (paper §4, Tables 2, 5–13).

:func:`evaluate_tasks` answers every task at every length under every setting (the unmodified
model, or ``α · d`` on the top-k contextual heads) and grades each answer with its task's metric;
under the baseline it also scores the top contextual heads' attention while the model answers,
so that the sink score per task (Tables 12–13) comes from the same answers. Its work
(:func:`evaluation_cells`) and its tables (:func:`evaluation_tables`) are apart, so that the
parts of a run split across processes (:func:`split_sets`, :func:`concat_evaluation`) join into
the tables one process makes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .answers import answer_batches, answer_examples
from .cache import RowCache
from .defaults import N_SINK, ROWS, SETTINGS, SINK_K
from .errors import InputError
from .heads import Head
from .interventions import focus_intervention
from .labels import Example, RowsKind, label
from .parts import Part
from .stats import mean_interval
from .tasks import PROPORTIONS, Task
TASK_COLUMNS = ["task", "category", "length", "setting", "score", "low", "high", "n"]
SINK_COLUMNS = ["task", "category", "length", "sink", "relevant", "n", "skipped"]
ANSWER_COLUMNS = ["task", "length", "setting", "id", "depth", "response", "answers", "score"]


@dataclass(frozen=True)
class Setting:
    """``α · d`` on the top-``k`` heads; ``k=None`` is the unmodified model. ``directions`` names
    which focus directions ``d`` are (a key of the ``named`` directions :func:`evaluation_cells`
    is given, e.g. a task category); None: the run's one set of directions."""

    k: int | None = None
    alpha: float = 0.0
    directions: str | None = None

    @property
    def name(self) -> str:
        if self.k is None:
            return "baseline"
        return f"{self.k}_{self.alpha:g}" + (f"@{self.directions}" if self.directions else "")


def parse_settings(settings: str | Sequence[str]) -> list[Setting]:
    """``"baseline,10_0.2,20_-0.2,20_0.2@rag"`` (or a list of such names) as :class:`Setting` s
    (``@name``: the directions named so); an :class:`~lens_focus.errors.InputError` for a name of
    another form, a k below 1, an α that is not a finite number, or a setting named twice."""
    names = [s.strip() for s in (settings.split(",") if isinstance(settings, str) else settings) if s.strip()]
    if not names:
        raise InputError("settings: no settings given")
    if repeated := sorted({n for n in names if names.count(n) > 1}):
        raise InputError(f"settings: {', '.join(repeated)} given more than once")
    out = []
    for name in names:
        if name == "baseline":
            out.append(Setting())
            continue
        strength, at, directions = name.partition("@")
        k, _, alpha = strength.partition("_")
        try:
            setting = Setting(int(k), float(alpha), directions or None)
        except ValueError:
            raise InputError(f"settings: {name!r} is not 'baseline' or '<k>_<alpha>[@<directions>]', e.g. 10_0.2, 20_-0.2 or 20_0.2@rag") from None
        if setting.k < 1 or not math.isfinite(setting.alpha) or (at and not directions):
            raise InputError(f"settings: {name!r} needs a whole k >= 1, a finite α and, after an @, a name")
        out.append(setting)
    return out


@dataclass(frozen=True)
class TaskSet:
    """The examples of one task at one context length."""

    task: Task
    length: int
    examples: list[Example]


def group_by_length(task: Task, examples: Sequence[Example], tokenizer=None) -> list[TaskSet]:
    """A task's examples split by their ``meta["length"]``. Examples without one (HELMET's
    files, one length per file) form one set, its length the median prompt length in tokens
    of ``tokenizer``, to the nearest hundred."""
    if not examples:
        raise InputError(f"task {task.name}: no examples")
    if any("length" not in e.meta for e in examples):
        if tokenizer is None:
            raise InputError(f"task {task.name}: examples without a length need a tokenizer to measure them")
        measured = np.median([len(label(e, tokenizer)) for e in examples])
        return [TaskSet(task, int(round(measured, -2)), list(examples))]
    lengths = sorted({int(e.meta["length"]) for e in examples})
    return [TaskSet(task, length, [e for e in examples if int(e.meta["length"]) == length]) for length in lengths]


def _prompts(sets: Sequence[TaskSet]) -> tuple[list[tuple[int, Example]], list[tuple[int, str]]]:
    """Every set's prompts in order, each with its set's index, and their question keys (set, question)."""
    flat = [(i, e) for i, ts in enumerate(sets) for e in ts.examples]
    return flat, [(i, e.question_id) for i, e in flat]


def split_sets(sets: Sequence[TaskSet], part: Part) -> list[TaskSet]:
    """Every task set with this ``part``'s prompts of it (:mod:`lens_focus.parts`: blocks of whole
    questions over all the sets' prompts in order; a set may keep none)."""
    flat, keys = _prompts(sets)
    kept: list[list[Example]] = [[] for _ in sets]
    for j in part.indices([e for _, e in flat], keys=keys):
        i, e = flat[j]
        kept[i].append(e)
    return [replace(ts, examples=k) for ts, k in zip(sets, kept)]


def split_record(sets: Sequence[TaskSet], part: Part) -> dict:
    """The split of :func:`split_sets` as ``summary.json`` records it."""
    flat, keys = _prompts(sets)
    return part.record([e for _, e in flat], keys=keys)


def evaluate_tasks(
    model,
    sets: Sequence[TaskSet],
    *,
    settings: Sequence[Setting] = tuple(parse_settings(SETTINGS.default)),
    directions=None,
    named: Mapping[str, Any] | None = None,
    ranked: Sequence[Head] = (),
    sink_k: int = SINK_K.default,
    batch_size: int = 4,
    n_sink: int = N_SINK.default,
    rows: RowsKind = ROWS.default,
    progress: bool = True,
    cache: RowCache | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Score every task set under every setting.

    Returns ``(task_scores, sink_scores, answers)``:

    - ``task_scores``: ``task, category, length, setting, score, low, high, n`` (the mean of
      the task's metric over its ``n`` prompts, with its 95% interval
      :func:`~lens_focus.stats.mean_interval`, Wilson's for a metric of 0 or 1; Tables 5–8);
    - ``sink_scores``: per task and length, the mean over answers of the ``sink`` and
      ``relevant`` contextual scores averaged over the top ``sink_k`` heads of ``ranked``, under
      the baseline (Tables 12–13), on the rows ``rows``; ``n`` answers scored, ``skipped`` the
      others (empty answers);
    - ``answers``: every response with its score.

    Settings other than the baseline need ``directions`` (a setting ``k_α@name``: ``named[name]``)
    and at least ``k`` heads in ``ranked``.
    With a ``cache``, the (task, length, setting) cells already in it are not run again. The
    work and its tables are also there apart: :func:`evaluation_cells`, :func:`evaluation_tables`.
    """
    cells = evaluation_cells(model, sets, settings=settings, directions=directions, named=named, ranked=ranked, sink_k=sink_k,
                             batch_size=batch_size, n_sink=n_sink, rows=rows, progress=progress, cache=cache)  # fmt: skip
    return evaluation_tables(cells)


def evaluation_cells(
    model,
    sets: Sequence[TaskSet],
    *,
    settings: Sequence[Setting] = tuple(parse_settings(SETTINGS.default)),
    directions=None,
    named: Mapping[str, Any] | None = None,
    ranked: Sequence[Head] = (),
    sink_k: int = SINK_K.default,
    batch_size: int = 4,
    n_sink: int = N_SINK.default,
    rows: RowsKind = ROWS.default,
    progress: bool = True,
    cache: RowCache | None = None,
) -> list[dict]:
    """The work of :func:`evaluate_tasks`, a cell per setting and task set (in that order): its
    ``answers`` with their grades, ``heads`` (baseline only: per scored answer, the top ``sink_k``
    heads' ``sink`` and ``relevant`` scores) and ``skipped``. A set without prompts (a part of a
    split run may hold none of a set's) gives an empty cell."""
    cache = cache if cache is not None else RowCache()
    named = dict(named or {})
    steered = [s for s in settings if s.k is not None]
    if missing := [s.name for s in steered if s.directions is None and directions is None]:
        raise InputError(f"settings {missing} need focus directions")
    if unknown := [s.name for s in steered if s.directions is not None and s.directions not in named]:
        raise InputError(f"settings {unknown} name directions that were not given (given: {', '.join(sorted(named)) or 'none'})")
    too_many = [s.name for s in steered if s.k > len(ranked)]
    if too_many:
        raise InputError(f"settings {too_many} need more heads than the {len(ranked)} ranked")
    if len(ranked) < sink_k:
        raise InputError(f"the sink table averages the top {sink_k} heads; {len(ranked)} ranked")
    sink_heads = list(ranked[:sink_k])
    grid = [(s, ts) for s in settings for ts in sets]  # the order of the cells returned
    order = sorted(range(len(grid)), key=lambda i: grid[i][1].length)  # shorter prompts first: each length completes before the next

    def key(setting: Setting, ts: TaskSet) -> list:
        heads = [list(h) for h in (sink_heads if setting.k is None else ranked[: setting.k])]
        scored = [rows] if rows != "generation" and setting.k is None else []
        return [ts.task.name, ts.length, setting.name, heads, [e.id for e in ts.examples], *scored, "per answer"]

    cache.expect(key(setting, ts) for setting, ts in grid if ts.examples)
    cells: list[dict] = [{} for _ in grid]
    for i in tqdm(order, desc="evaluate", disable=not progress):
        setting, ts = grid[i]
        chosen = directions if setting.directions is None else named[setting.directions]
        k = key(setting, ts)
        compute = lambda: _cell(model, ts, setting, chosen, ranked, sink_heads, batch_size, n_sink, rows, piece=cache.pieces(k))  # noqa: E731
        cell = cache(k, compute) if ts.examples else {"answers": [], "heads": [] if setting.k is None else None, "skipped": 0}
        cells[i] = {"task": ts.task.name, "category": ts.task.category, "metric": ts.task.metric, "length": ts.length, "setting": setting.name, **cell,
                    "answers": graded(ts, cell["answers"])}  # fmt: skip
    return cells


def graded(ts: TaskSet, answers: Sequence[dict]) -> list[dict]:
    """Each answer of a cell graded by its task's metric as it stands now (a cell kept from an
    earlier run of a resumed step may have been graded by an earlier version of the metric)."""
    by_id = {e.id: e for e in ts.examples}
    return [{**a, "score": ts.task.grade(a["response"], by_id[a["id"]].answers, by_id[a["id"]].meta)} for a in answers]


def concat_evaluation(parts: Sequence[list[dict]]) -> list[dict]:
    """The cells of several parts of one run (each on its own questions) as one run's."""
    first = parts[0]
    where = ["task", "length", "setting"]
    for i, other in enumerate(parts[1:], start=1):
        if [[c[w] for w in where] for c in other] != [[c[w] for w in where] for c in first]:
            raise InputError(f"part {i} ran other cells than part 0; not parts of one run")
    return [
        {**cell, "answers": [a for p in parts for a in p[j]["answers"]], "skipped": sum(p[j]["skipped"] for p in parts),
         "heads": None if cell["heads"] is None else [h for p in parts for h in p[j]["heads"]]}
        for j, cell in enumerate(first)
    ]  # fmt: skip


def _mean(heads: Sequence[dict[str, list[float]]], span: str) -> float:
    """The mean over answers and heads of one span's score (NaN when no answer has it)."""
    values = [h[span] for h in heads if span in h]
    return float(np.mean(values)) if values else float("nan")


def evaluation_tables(cells: Sequence[dict]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(task_scores, sink_scores, answers)`` of :func:`evaluate_tasks` from its cells."""
    scores, sinks, answers = [], [], []
    for c in cells:
        where = {"task": c["task"], "category": c["category"], "length": c["length"]}
        graded = [a["score"] for a in c["answers"]]
        low, high = mean_interval(graded, proportion=c["metric"] in PROPORTIONS) if graded else (np.nan, np.nan)
        scores.append({**where, "setting": c["setting"], "score": float(np.mean(graded)), "low": low, "high": high, "n": len(graded)})
        answers += c["answers"]
        if c["heads"] is not None:
            sinks.append({**where, "sink": _mean(c["heads"], "sink"), "relevant": _mean(c["heads"], "relevant"), "n": len(c["heads"]), "skipped": c["skipped"]})
    return (
        pd.DataFrame(scores, columns=TASK_COLUMNS),
        pd.DataFrame(sinks, columns=SINK_COLUMNS),
        pd.DataFrame(answers, columns=ANSWER_COLUMNS),
    )


def _cell(model, ts: TaskSet, setting: Setting, directions, ranked, sink_heads, batch_size: int, n_sink: int, rows: RowsKind, piece) -> dict:
    """One task set under one setting: its answers with their grades, (baseline) the sink heads'
    scores of every scored answer and the answers skipped. It is computed a batch of prompts at
    a time, each batch a ``piece`` of the cell (:meth:`~lens_focus.cache.RowCache.pieces`)."""
    task = ts.task
    batches = answer_batches(model, ts.examples, max_new_tokens=task.max_new_tokens, batch_size=batch_size, n_sink=n_sink)
    found: dict[int, dict] = {}
    for batch in batches:
        examples = [ts.examples[i] for i in batch]
        records = piece([e.id for e in examples], lambda: _answer_records(model, ts, examples, setting, directions, ranked, sink_heads, batch_size, n_sink, rows))
        found.update(zip(batch, records))
    records = [found[i] for i in range(len(ts.examples))]
    baseline = setting.k is None
    return {"answers": [r["answer"] for r in records], "heads": [r["heads"] for r in records if r["heads"] is not None] if baseline else None,
            "skipped": sum(r["skipped"] for r in records) if baseline else 0}  # fmt: skip


def _answer_records(model, ts: TaskSet, examples: Sequence[Example], setting: Setting, directions, ranked, sink_heads, batch_size: int, n_sink: int,
                    rows: RowsKind) -> list[dict]:  # fmt: skip
    """Each of ``examples`` answered under ``setting``: its ``answer`` (graded), the sink heads'
    ``heads`` scores (baseline, a scored answer; else None) and whether it was ``skipped``."""
    task = ts.task
    baseline = setting.k is None
    answered = answer_examples(
        model, examples, max_new_tokens=task.max_new_tokens, stop=task.stop, batch_size=batch_size, n_sink=n_sink,
        score=rows if baseline else None,
        intervention=None if baseline else focus_intervention(model, directions, list(ranked[: setting.k]), alpha=setting.alpha),
        progress=False,
    )  # fmt: skip
    return [
        {"answer": {"task": task.name, "length": ts.length, "setting": setting.name, "id": a.example.id, "depth": a.example.meta.get("depth"),
                    "response": a.response, "answers": " | ".join(a.example.answers), "score": task.grade(a.response, a.example.answers, a.example.meta)},
         "heads": {span: [float(a.scores[span][h]) for h in sink_heads] for span in ("sink", "relevant") if span in a.scores} if baseline and a.scores else None,
         "skipped": baseline and a.skipped is not None}
        for a in answered
    ]  # fmt: skip
