"""The long-context task suite (docs/method.md §7; paper Tables 2, 5–13): what each task builds, its
category, how it is graded and how long its answers may be. All build offline, at context
lengths given in tokens of the model's tokenizer.

==============  ========  ==================================================  ================
task            category  prompt                                              metric
==============  ========  ==================================================  ================
``mk_needle``   recall    needles with word keys, one asked                   substring recall
``mk_uuid``     recall    needles with UUID keys and values, one asked        substring recall
``mv``          recall    four values of one key in filler text               substring recall
``json_kv``     recall    a JSON object (the lost-in-the-middle file, or      substring EM
                          generated UUIDs), one key asked
``nq``          rag       NQ passages, one gold (needs the NQ file)           substring EM
``toy_needle``  recall    toy vocabulary: one fact among filler facts         substring EM
``toy_qa``      rag       toy vocabulary: the toy's multi-document QA         substring EM
==============  ========  ==================================================  ================

A task's prompts come from its source in :data:`lens_focus.sources.SOURCES` (the ``nq`` task's
from ``nq_rag``); this module adds how they are graded and how long answers may be.
HELMET's own files (:mod:`lens_focus.data.helmet`) become tasks too (:func:`helmet_task`).
Every task's examples name their relevant documents, so sink and relevant scores are
available per task.

>>> examples = build_task("mk_needle", model.tokenizer, lengths=[1000, 2000], n=10)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .data.base import Selection
from .generate import StopAt
from .labels import Example
from .metrics import best_subspan_em, substring_recall
from .sources import Request, build

Metric = Callable[[str, Sequence[str]], float]
METRICS: dict[str, Metric] = {"recall": substring_recall, "em": best_subspan_em}


@dataclass(frozen=True)
class Task:
    name: str
    category: str
    metric: str
    """``recall`` (:func:`~lens_focus.metrics.substring_recall`) or ``em``
    (:func:`~lens_focus.metrics.best_subspan_em`)."""
    max_new_tokens: int
    stop: StopAt = "line"
    file: str | None = None
    """The data file it is built from: ``nq`` (required) or ``kv`` (optional), else None."""
    source: str = ""
    """Its builder in :data:`lens_focus.sources.SOURCES` (default: the task's name)."""

    def grade(self, response: str, answers: Sequence[str]) -> float:
        return METRICS[self.metric](response, answers)


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("mk_needle", "recall", "recall", 16),
        Task("mk_uuid", "recall", "recall", 40),
        Task("mv", "recall", "recall", 64, stop="eos"),
        Task("json_kv", "recall", "em", 40, file="kv"),
        Task("nq", "rag", "em", 20, file="nq", source="nq_rag"),
        Task("toy_needle", "recall", "em", 1, stop="eos"),
        Task("toy_qa", "rag", "em", 1, stop="eos"),
    )
}
def build_task(
    name: str,
    tokenizer,
    *,
    lengths: Sequence[int],
    n: int = 10,
    seed: int = 0,
    nq: str | Path | None = None,
    kv: str | Path | None = None,
) -> list[Example]:
    """``n`` prompts per length of task ``name`` (see the table above). ``nq``: the NQ file
    (lost-in-the-middle oracle or 20-document file), needed by ``nq``; ``kv``: a
    lost-in-the-middle key-value file for ``json_kv`` (generated pairs without one)."""

    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose from {sorted(TASKS)}")
    task = TASKS[name]
    path = {"nq": nq, "kv": kv}.get(task.file or "")
    missing = f"task {name} needs the NQ file (--nq): the lost-in-the-middle nq-open-oracle.jsonl.gz or a 20-document file"
    request = Request(path=path, selection=Selection(seed=seed), tokenizer=tokenizer, lengths=lengths, n=n)
    return build(task.source or name, request, missing=missing)


def helmet_task(path: str | Path, *, limit: int | None = None) -> tuple[Task, list[Example]]:
    """A HELMET data file as a task: named after the file, category and metric from its format
    (:mod:`lens_focus.data.helmet`), answers up to 50 tokens."""

    examples = build("helmet", Request(path=path, selection=Selection(limit=limit)))
    meta = examples[0].meta
    return Task(meta["task"], meta["category"], meta["metric"], 50, stop="line"), examples
