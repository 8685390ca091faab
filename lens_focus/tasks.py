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
``rerank``      re_rank   documents with IDs, one query: rank them            NDCG@10
``icl``         icl       many labelled facts (shuffled number labels), one   label accuracy
                          more to label
``long_qa``     long_qa   a story of facts, a free-form question              ROUGE-L F1
``long_qa_mc``  long_qa   the same with four options A-D                      choice accuracy
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

from .data.base import Distractors, Selection
from .data.helmet import helmet_examples
from .generate import StopAt
from .labels import Example, LabeledSequence, label
from .metrics import best_subspan_em, choice_accuracy, label_accuracy, ndcg_at_k, parse_ranking, rouge_l_f1, substring_recall
from .sources import Request, build
from .errors import InputError
from .defaults import N_SINK, STOP

Metric = Callable[[str, Sequence[str], dict], float]
"""``metric(response, answers, meta)``: a score in [0, 1] (``meta``: the example's)."""


def _ndcg10(response: str, answers: Sequence[str], meta: dict) -> float:
    if "qrels" not in meta:
        raise InputError("NDCG@10 needs the documents' relevance grades (meta['qrels']); this example has none")
    return ndcg_at_k(parse_ranking(response), {str(k): int(v) for k, v in meta["qrels"].items()}, 10)


METRICS: dict[str, Metric] = {
    "recall": lambda r, a, m: substring_recall(r, a),
    "em": lambda r, a, m: best_subspan_em(r, a),
    "ndcg@10": _ndcg10,
    "label": lambda r, a, m: label_accuracy(r, a),
    "rouge_f1": lambda r, a, m: rouge_l_f1(r, a),
    "choice": lambda r, a, m: choice_accuracy(r, a),
}
PROPORTIONS = frozenset({"em", "label", "choice"})
"""The metrics that score a response 0 or 1, whose mean over prompts is a proportion (the others
are graded: a share of the values recalled, NDCG, ROUGE)."""


@dataclass(frozen=True)
class Task:
    name: str
    category: str
    metric: str
    """A key of :data:`METRICS`: ``recall`` (:func:`~lens_focus.metrics.substring_recall`), ``em``
    (:func:`~lens_focus.metrics.best_subspan_em`), ``ndcg@10``
    (:func:`~lens_focus.metrics.ndcg_at_k`), ``label``
    (:func:`~lens_focus.metrics.label_accuracy`), ``rouge_f1``
    (:func:`~lens_focus.metrics.rouge_l_f1`) or ``choice``
    (:func:`~lens_focus.metrics.choice_accuracy`)."""
    max_new_tokens: int
    stop: StopAt = STOP.default
    file: str | None = None
    """The data file it is built from: ``nq`` (required) or ``kv`` (optional), else None."""
    source: str = ""
    """Its builder in :data:`lens_focus.sources.SOURCES` (default: the task's name)."""
    reference: str = "first"
    """A key of :data:`REFERENCES`: how a prompt's answers read as a response (training sequences)."""

    def grade(self, response: str, answers: Sequence[str], meta: dict | None = None) -> float:
        return METRICS[self.metric](response, answers, meta or {})

    def sequence(self, example: Example, tokenizer, *, n_sink: int = N_SINK.default) -> LabeledSequence:
        """``example``'s prompt followed by its reference response (a space, then
        :data:`REFERENCES`' text of its answers), labelled: a training sequence of focus
        directions for this task (docs/method.md §9)."""
        return label(example, tokenizer, " " + REFERENCES[self.reference](example.answers), n_sink=n_sink)


REFERENCES: dict[str, Callable[[Sequence[str]], str]] = {
    "first": lambda answers: answers[0],
    "all": lambda answers: ", ".join(answers),  # mv: every value asked for
    "top10": lambda answers: " > ".join(answers[0].split(" > ")[:10]),  # rerank: the ranking as far as NDCG@10 reads it
}
"""A task's reference response from its answers."""


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("mk_needle", "recall", "recall", 16),
        Task("mk_uuid", "recall", "recall", 40),
        Task("mv", "recall", "recall", 64, stop="eos", reference="all"),
        Task("json_kv", "recall", "em", 40, file="kv"),
        Task("nq", "rag", "em", 20, file="nq", source="nq_rag"),
        Task("toy_needle", "recall", "em", 1, stop="eos"),
        Task("toy_qa", "rag", "em", 1, stop="eos"),
        Task("rerank", "re_rank", "ndcg@10", 60, reference="top10"),
        Task("icl", "icl", "label", 4),
        Task("long_qa", "long_qa", "rouge_f1", 20),
        Task("long_qa_mc", "long_qa", "choice", 4),
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
    distractors: Distractors = "random",
) -> list[Example]:
    """``n`` prompts per length of task ``name`` (see the table above). ``nq``: the NQ file
    (lost-in-the-middle oracle or 20-document file), needed by ``nq``, whose passages beside the
    gold one are drawn as ``distractors`` says (``random`` or ``bm25``); ``kv``: a
    lost-in-the-middle key-value file for ``json_kv`` (generated pairs without one)."""

    if name not in TASKS:
        raise InputError(f"unknown task {name!r}; choose from {sorted(TASKS)}")
    task = TASKS[name]
    path = {"nq": nq, "kv": kv}.get(task.file or "")
    missing = f"task {name} needs the NQ file (--nq): the lost-in-the-middle nq-open-oracle.jsonl.gz or a 20-document file"
    request = Request(path=path, selection=Selection(seed=seed, distractors=distractors), tokenizer=tokenizer, lengths=lengths, n=n)
    return build(task.source or name, request, missing=missing)


def helmet_task(path: str | Path, *, limit: int | None = None, demos: str | Path | None = None, shots: int = 0) -> tuple[Task, list[Example]]:
    """A HELMET data file as a task: named after the file, category and metric from its format
    (:mod:`lens_focus.data.helmet`), answers up to 50 tokens (200 for a ranking), each prompt with
    ``shots`` demonstrations (JSON KV: its own; RAG and re-ranking: drawn from the file ``demos``)."""

    examples = helmet_examples(path, limit=limit, demos=demos, shots=shots)
    meta = examples[0].meta
    return Task(meta["task"], meta["category"], meta["metric"], 200 if meta["kind"] == "rerank" else 50, stop="line"), examples
