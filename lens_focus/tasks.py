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

HELMET's own files (:mod:`lens_focus.data.helmet`) become tasks too (:func:`helmet_task`).
Every task's examples name their relevant documents, so sink and relevant scores are
available per task.

>>> examples = build_task("mk_needle", model.tokenizer, lengths=[1000, 2000], n=10)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .generate import StopAt
from .labels import Example
from .metrics import best_subspan_em, substring_recall

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
    needs: str | None = None
    """The data file the task is built from (``nq``, or ``kv`` when given), else None."""

    def grade(self, response: str, answers: Sequence[str]) -> float:
        return METRICS[self.metric](response, answers)


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("mk_needle", "recall", "recall", 16),
        Task("mk_uuid", "recall", "recall", 40),
        Task("mv", "recall", "recall", 64, stop="eos"),
        Task("json_kv", "recall", "em", 40),
        Task("nq", "rag", "em", 20, needs="nq"),
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
    from .data.kv_retrieval import json_kv_examples
    from .data.lost_in_the_middle import rag_examples
    from .data.recall import multikey_examples, multivalue_examples
    from .toy.task import toy_task_examples

    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose from {sorted(TASKS)}")
    if n < 1 or not lengths:
        raise ValueError(f"task {name}: need n >= 1 and at least one length (got n={n}, lengths={list(lengths)})")
    kw = dict(lengths=[int(x) for x in lengths], n=n, seed=seed)
    if name == "mk_needle":
        return multikey_examples(tokenizer, kind="number", **kw)
    if name == "mk_uuid":
        return multikey_examples(tokenizer, kind="uuid", **kw)
    if name == "mv":
        return multivalue_examples(tokenizer, **kw)
    if name == "json_kv":
        return json_kv_examples(tokenizer, path=kv, **kw)
    if name == "nq":
        if nq is None:
            raise ValueError("task nq needs the NQ file (--nq): the lost-in-the-middle nq-open-oracle.jsonl.gz or a 20-document file")
        return rag_examples(nq, tokenizer, **kw)
    return toy_task_examples(name, tokenizer, **kw)


def helmet_task(path: str | Path, *, limit: int | None = None) -> tuple[Task, list[Example]]:
    """A HELMET data file as a task: named after the file, category and metric from its format
    (:mod:`lens_focus.data.helmet`), answers up to 50 tokens."""
    from .data.helmet import helmet_examples

    examples = helmet_examples(path, limit=limit)
    meta = examples[0].meta
    return Task(meta["task"], meta["category"], meta["metric"], 50, stop="line"), examples
