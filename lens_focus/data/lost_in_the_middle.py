"""Multi-document question answering from the lost-in-the-middle files (NaturalQuestions-Open).

Accepts the oracle file (one gold document per question; distractors are then other questions'
gold documents, never containing an answer: drawn at random, seeded, or the ones BM25 ranks
highest against the question, :data:`~lens_focus.data.base.Distractors`) and the 20-document
files (their own retrieved distractors, ``isgold`` marking the gold one). :func:`nq_examples` renders prompts as
the lost-in-the-middle study did; :func:`rag_examples` builds the ``nq`` task of the evaluation
suite as HELMET renders RAG (docs/method.md §7), its length set by the number of passages.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..labels import Example, Segment, Variant
from ..metrics import normalize_answer
from .base import DataError, Distractors, Selection, Split, assemble, place_relevant, read_jsonl, require, split_indices

INSTRUCTION = (
    "Write a high-quality answer for the given question using only the provided search results "
    "(some of which might be irrelevant)."
)


def format_document(index: int, title: str, text: str) -> str:
    return f"Document [{index}](Title: {title}) {text}"


def _read(path: str | Path) -> list[dict]:
    records = []
    for lineno, obj in read_jsonl(path):
        where = f"{path}:{lineno}"
        question = require(obj, "question", str, where)
        answers = require(obj, "answers", list, where)
        ctxs = require(obj, "ctxs", list, where)
        if not answers or not all(isinstance(a, str) for a in answers):
            raise DataError(f"{where}: 'answers' must be a non-empty list of strings")
        docs = []
        for c in ctxs:
            if not isinstance(c, dict) or not isinstance(c.get("text"), str) or not isinstance(c.get("title"), str):
                raise DataError(f"{where}: every context needs string 'title' and 'text'")
            docs.append((c["title"], c["text"], bool(c.get("isgold", len(ctxs) == 1))))
        gold = [d for d in docs if d[2]]
        if len(gold) != 1:
            raise DataError(f"{where}: expected exactly one gold context ('isgold'), found {len(gold)}")
        distractors = [(t, x) for t, x, g in docs if not g]
        records.append(dict(line=lineno, question=question, answers=answers, gold=gold[0][:2], distractors=distractors))
    return records


def _contains_answer(text: str, answers: Sequence[str]) -> bool:
    norm = normalize_answer(text)
    return any(normalize_answer(a) and normalize_answer(a) in norm for a in answers)


def nq_examples(
    path: str | Path,
    selection: Selection = Selection(),
) -> list[Example]:
    """The prompts of each selected question: the gold passage among its ``n_docs - 1``
    distractors (where a record has none of its own: other questions' gold passages without its
    answers, as ``selection.distractors`` says: ``random`` from its split's questions, or
    ``bm25``, the file's passages most like the question, most alike first)."""
    n_docs, seed = selection.n_docs, selection.seed
    records = _read(path)
    pooled = split_indices(len(records), selection.split, seed)
    chosen = pooled[: selection.limit]
    draw = _distractor_draw(records, pooled, selection.distractors)
    examples: list[Example] = []
    for qi in chosen:
        rec = records[qi]
        qid = f"nq-{rec['line']}"
        if rec["distractors"]:
            distractors = rec["distractors"][: n_docs - 1]
            if len(distractors) < n_docs - 1:
                raise DataError(f"{path}:{rec['line']}: {len(distractors)} distractors, {n_docs - 1} needed")
        else:
            distractors = draw(rec, n_docs - 1, random.Random(f"{seed}-{qi}"), f"{path}:{rec['line']}")

        def build(docs: list[tuple[str, str]], relevant: int | None, variant: Variant, suffix: str) -> Example:
            return assemble(
                example_id=f"{qid}-{suffix}",
                head=[Segment(INSTRUCTION, "instruction"), Segment("\n\n")],
                documents=[format_document(i, t, x) for i, (t, x) in enumerate(docs, start=1)],
                sep="\n",
                tail=[Segment("\n\n"), Segment(f"Question: {rec['question']}", "question"), Segment("\nAnswer:")],
                relevant_index=relevant,
                answers=rec["answers"],
                variant=variant,
                meta={"question_id": qid, "task": "nq", "line": rec["line"]},
            )

        examples += selection.prompts(
            lambda p: build([*distractors[: p - 1], rec["gold"], *distractors[p - 1 :]], p, "long", f"p{p}"),
            lambda: build([rec["gold"]], 1, "gold", "gold"),
            lambda: build(list(distractors), None, "negative", "neg"),
        )
    return examples


Draw = Callable[[dict, int, random.Random, str], list[tuple[str, str]]]
"""``draw(record, k, rng, where)``: ``k`` distractor documents for ``record``."""


def _distractor_draw(records: list[dict], pooled: list[int], how: Distractors) -> Draw:
    """How distractors are drawn for the questions of one file: ``random`` from the gold passages
    of the questions ``pooled`` (the split's), ``bm25`` by rank among every question's gold
    passage."""
    if how == "random":
        pool = [records[i]["gold"] for i in pooled]
        return lambda rec, k, rng, where: _first_without_answer(rec, pool, _shuffled(len(pool), rng), k, where)
    pool = list(dict.fromkeys(r["gold"] for r in records))
    rank = bm25_ranker([f"{title} {text}" for title, text in pool])
    return lambda rec, k, rng, where: _first_without_answer(rec, pool, rank(rec["question"]), k, where)


def bm25_ranker(passages: Sequence[str]) -> Callable[[str], list[int]]:
    """``rank(query)``: the indices of ``passages`` from the most to the least alike under BM25
    (the ``bm25s`` library: Lucene's variant, k1 = 1.5, b = 0.75, English stop words removed,
    no stemming; ties in passage order)."""
    import bm25s  # imported here: only the bm25 distractors need it

    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(list(passages), stopwords="en", show_progress=False), show_progress=False)

    def rank(query: str) -> list[int]:
        words = bm25s.tokenize([query], stopwords="en", return_ids=False, show_progress=False)[0]
        scores = retriever.get_scores(words) if words else np.zeros(len(passages))
        return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable").tolist()

    return rank


def _shuffled(n: int, rng: random.Random) -> list[int]:
    order = list(range(n))
    rng.shuffle(order)
    return order


def _first_without_answer(rec: dict, pool: list, order: Sequence[int], k: int, where: str) -> list[tuple[str, str]]:
    """The first ``k`` distinct documents of ``pool`` in ``order`` that are not ``rec``'s own
    (gold or distractor) and contain none of its answers."""
    chosen: list[tuple[str, str]] = []
    for i in order:
        doc = pool[i]
        if len(chosen) == k:
            break
        if doc == rec["gold"] or doc in chosen or doc in rec["distractors"] or _contains_answer(f"{doc[0]} {doc[1]}", rec["answers"]):
            continue
        chosen.append(doc)
    if len(chosen) < k:
        raise DataError(f"{where}: only {len(chosen)} distractor documents without the answer, {k} needed")
    return chosen


def format_passage(title: str, text: str) -> str:
    """A passage as HELMET renders RAG documents."""
    return f"Document (Title: {title}): {text}"


RAG_INSTRUCTION = "Use the documents below to answer the question. Give a short answer.\n\n"


def rag_examples(
    path: str | Path,
    tokenizer,
    *,
    lengths: Sequence[int] = (1000,),
    n: int = 10,
    seed: int = 0,
    split: Split = "test",
    split_seed: int = 0,
    distractors: Distractors = "random",
) -> list[Example]:
    """The ``nq`` task (docs/method.md §7): per length, ``n`` questions of ``split`` (split with
    ``split_seed``, as the other commands split with their ``--seed``; seed ``s`` takes the
    questions ``s·n … s·n + n - 1`` of it, so seeds never share a question and stay held out from
    directions trained on the ``train`` split),
    each with as many passages ``Document (Title: <title>): <text>`` (joined by blank lines) as
    fill about ``length`` tokens: the gold one, at ``n`` evenly spaced positions over the
    samples, among the question's own distractors and then other questions' gold passages
    without its answer (``distractors``: drawn at random or ranked by BM25, as for
    :func:`nq_examples`). The reply starts ``Answer:``."""
    records = _read(path)
    pooled = split_indices(len(records), split, split_seed)
    chosen = pooled[seed * n : (seed + 1) * n]
    if len(chosen) < n:
        raise DataError(f"{path}: the {split} split has {len(pooled)} questions; seed {seed} with n={n} needs {(seed + 1) * n}")
    draw = _distractor_draw(records, pooled, distractors)
    out = []
    for length in lengths:
        for i, qi in enumerate(chosen):
            rec = records[qi]
            where = f"{path}:{rec['line']}"
            want = int(length) // 40 + 2
            extra = max(want - len(rec["distractors"]), 0)
            others = rec["distractors"][:want] + draw(rec, extra, random.Random(f"{seed}-{qi}"), where)
            docs, relevant, depth = place_relevant(tokenizer, format_passage(*rec["gold"]), [format_passage(*d) for d in others],
                                                   int(length), i=i, n=n, sep="\n\n", where=f"nq at {length} tokens ({where})")  # fmt: skip
            out.append(assemble(
                example_id=f"nq-L{length}-{i}",
                head=[Segment(RAG_INSTRUCTION, "instruction")],
                documents=docs,
                sep="\n\n",
                tail=[Segment("\n\n"), Segment(f"Question: {rec['question']}", "question")],
                relevant_index=relevant,
                answers=rec["answers"],
                variant="long",
                meta={"task": "nq", "question_id": f"nq-{rec['line']}", "line": rec["line"], "length": int(length),
                      "depth": depth},
                reply_start="Answer:",
            ))  # fmt: skip
    return out
