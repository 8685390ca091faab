"""Read HELMET's own data files (Yen et al. 2024) for users who have them, as labeled Examples.

One ``.jsonl`` (or ``.jsonl.gz``) file per task and length, as HELMET's data loaders read them;
the kind is recognised by its fields:

- **RULER recall** (``niah_mk_2``, ``niah_mk_3``, ``niah_mv``, ...): ``context`` (the haystack
  with its needles), ``query`` (the key asked about; ``question`` in some files), ``outputs`` or
  ``answer`` (the gold values, a list), optionally ``type_needle_v`` (``numbers``, ``uuids``, ...).
  The sentences of ``context`` that hold a gold value are the relevant documents; the text
  between them is split at those sentences into the other documents. Graded by recall of the
  gold values (``metric: recall``).
- **JSON KV**: ``context`` (the JSON object as text), ``question`` (the key, as HELMET prints it
  after ``Key:``), ``answer`` (the value), optionally ``num_kvs``. The ``"key": "value"`` pair in
  ``context`` is the relevant document, the text before and after it the others. Graded by
  substring exact match (``metric: em``).
- **RAG** (KILT NQ, TriviaQA, HotpotQA, PopQA): ``question``, ``answers`` (a list; ``answer``
  also read), ``ctxs`` (passages with ``title`` and ``text``; ``has_answer`` or ``isgold`` marks
  the relevant ones). Passages are rendered ``Document (Title: <title>): <text>``, joined by
  blank lines. Graded by substring exact match (``metric: em``).
- **Re-ranking** (MS MARCO): ``qid``, ``query``, ``ctxs`` (passages with ``id``, ``text``,
  optionally ``title``, and a relevance grade ``label``). Passages are rendered
  ``[ID: <id>] Document (Title: <title>): <text>``; the passages of the highest grade are the
  relevant documents. Graded by NDCG@10 of the parsed ranking (``metric: ndcg@10``; the grades
  are kept in ``meta["qrels"]``).

Demonstrations are kept as HELMET renders them, as a span ``demos`` between the instruction and
the context: JSON KV records carry their own (``demos``: key-value pairs); RAG and re-ranking take
them from a demo file of the same format (``demos=``, HELMET's ``demo_path``), ``shots`` per
prompt, drawn per question as HELMET does (seeded by a hash of the question, never the question
itself).
"""
from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Literal

from ..labels import Example, Segment
from .base import DataError, assemble, read_jsonl, require
from .kv_retrieval import INSTRUCTION as KV_INSTRUCTION
from .lost_in_the_middle import RAG_INSTRUCTION, format_passage
from .needle import sentence_ends

Kind = Literal["ruler", "json_kv", "rag", "rerank"]
CATEGORY = {"ruler": "recall", "json_kv": "recall", "rag": "rag", "rerank": "re_rank"}
METRIC = {"ruler": "recall", "json_kv": "em", "rag": "em", "rerank": "ndcg@10"}
RERANK_INSTRUCTION = ("You are provided with a list of documents, each indicated by their ID. Rank each document based on "
                      "their relevance to the question in descending order from most relevant to least relevant texts. "
                      "Include all documents in the rankings. Write your answer using the unique IDs, with the following "
                      "format:\nRanking: ID3 > ID1 > ID2")  # fmt: skip


def file_kind(obj: dict, where: str) -> Kind:
    """Which of HELMET's task formats a record is in (see the module docstring)."""
    if "ctxs" in obj and "query" in obj and "question" not in obj:
        return "rerank"
    if "ctxs" in obj:
        return "rag"
    if "context" in obj and ("query" in obj or "outputs" in obj or "type_needle_v" in obj):
        return "ruler"
    if "context" in obj and "question" in obj and "answer" in obj:
        return "json_kv"
    raise DataError(f"{where}: not a HELMET record: expected 'ctxs' (RAG), 'context' + 'query'/'outputs' (RULER) "
                    f"or 'context' + 'question' + 'answer' (JSON KV); found fields {sorted(obj)}")  # fmt: skip


def helmet_examples(
    path: str | Path, *, limit: int | None = None, task: str | None = None, demos: str | Path | None = None, shots: int = 0
) -> list[Example]:
    """The records of one HELMET file as Examples (``meta``: ``task`` (default: the file's name
    without suffixes), ``category``, ``metric``, ``kind``, ``line``), each with ``shots``
    demonstrations (its own, for JSON KV; from the file ``demos``, for RAG and re-ranking)."""
    path = Path(path)
    name = task or path.name.split(".")[0]
    pool = [obj for _, obj in read_jsonl(demos)] if demos is not None else []
    out: list[Example] = []
    for lineno, obj in read_jsonl(path):
        if limit is not None and len(out) >= limit:
            break
        where = f"{path}:{lineno}"
        kind = file_kind(obj, where)
        if shots and kind in ("rag", "rerank") and not pool:
            raise DataError(f"{where}: {shots} demonstrations asked for, but no demo file (demos=) to draw them from")
        build = {"ruler": _ruler, "json_kv": _json_kv, "rag": _rag, "rerank": _rerank}[kind]
        meta = {"task": name, "category": CATEGORY[kind], "metric": METRIC[kind], "kind": kind, "line": lineno, "question_id": f"{name}-{lineno}"}
        shown = _demos(kind, obj, pool, shots, where)
        out.append(build(obj, where, f"{name}-{lineno}", meta, shown))
    if not out:
        raise DataError(f"{path}: no records")
    return out


def _demos(kind: Kind, obj: dict, pool: list[dict], shots: int, where: str) -> str:
    """The demonstration text of one record, as HELMET renders it ("" for none)."""
    if not shots or kind == "ruler":
        return ""
    if kind == "json_kv":
        pairs = obj.get("demos") or []
        if len(pairs) < shots:
            raise DataError(f"{where}: {shots} demonstrations asked for, the record has {len(pairs)}")
        return "\n\n".join(f"Key: {json.dumps(k)}\nCorresponding value: {v}" for k, v in pairs[:shots]) + "\n\n"
    key = "qid" if kind == "rerank" else "question"
    own = str(obj.get(key, obj.get("query")))
    others = [d for d in pool if str(d.get(key, d.get("query"))) != own]
    if len(others) < shots:
        raise DataError(f"{where}: {shots} demonstrations asked for, the demo file has {len(others)} other questions")
    rng = random.Random(int(hashlib.sha256(own.encode()).hexdigest(), 16) % 2**31)  # the same demos for the same question
    picked = rng.sample(others, shots)
    if kind == "rerank":
        return "".join("\n\n".join(_rerank_passage(c) for c in d["ctxs"]) + f"\n\nQuery: {d['query']}\nRanking: {_ranking(d['ctxs'])}\n\n"
                       for d in picked)  # fmt: skip
    return "\n\n".join("\n\n".join(format_passage(str(c.get("title", "")), c["text"]) for c in d["ctxs"])
                         + f"\n\nQuestion: {d['question']}\nAnswer: {_answers(d, where, 'answers', 'answer')[0]}" for d in picked) + "\n\n"  # fmt: skip


def _head(instruction: str, demos: str) -> list[Segment]:
    return [Segment(instruction, "instruction"), Segment("\n\n"), *([Segment(demos, "demos")] if demos else [])]


def _answers(obj: dict, where: str, *keys: str) -> list[str]:
    for key in keys:
        if key in obj:
            value = obj[key]
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
                raise DataError(f"{where}: field {key!r} should be a string or a non-empty list of strings")
            return values
    raise DataError(f"{where}: missing field {' or '.join(map(repr, keys))}")


def _split_around(text: str, spans: list[tuple[int, int]], where: str) -> tuple[list[str], list[int]]:
    """``text`` cut into documents at the character ``spans`` (each a relevant document);
    returns the documents and the 1-based indices of the relevant ones."""
    docs, relevant, at = [], [], 0
    for start, end in sorted(set(spans)):
        if start < at:
            raise DataError(f"{where}: relevant passages overlap")
        if text[at:start].strip():
            docs.append(text[at:start].strip())
        docs.append(text[start:end].strip())
        relevant.append(len(docs))
        at = end
    if text[at:].strip():
        docs.append(text[at:].strip())
    return docs, relevant


def _ruler(obj: dict, where: str, example_id: str, meta: dict, demos: str = "") -> Example:
    context = require(obj, "context", str, where)
    query = obj.get("query", obj.get("question"))
    if not isinstance(query, str):
        raise DataError(f"{where}: missing field 'query' (the key asked about)")
    answers = _answers(obj, where, "outputs", "answer")
    ends = [0, *sentence_ends(context), len(context)]
    spans = []
    for value in answers:
        at = context.find(value)
        if at < 0:
            raise DataError(f"{where}: the gold value {value!r} is not in 'context'")
        spans.append((max(e for e in ends if e <= at), min(e for e in ends if e >= at + len(value))))
    docs, relevant = _split_around(context, spans, where)
    kind = obj.get("type_needle_v", "numbers")
    several = len(answers) > 1
    question = f"What {'are all the' if several else 'is the'} special magic {kind if several else kind.rstrip('s')} for {query} mentioned in the provided text?"
    reply = f"The special magic {kind if several else kind.rstrip('s')} for {query} mentioned in the provided text {'are' if several else 'is'}"
    return assemble(
        example_id=example_id,
        head=[Segment(f"Some special magic {kind} are hidden within the following text. Make sure to memorize them.\n", "instruction")],
        documents=docs, sep=" ", tail=[Segment("\n"), Segment(question, "question")],
        relevant_index=relevant, answers=answers, variant="long", meta=meta, reply_start=reply,
    )  # fmt: skip


def _json_kv(obj: dict, where: str, example_id: str, meta: dict, demos: str = "") -> Example:
    context = require(obj, "context", str, where)
    question = require(obj, "question", str, where)
    value = _answers(obj, where, "answer")[0]
    key = question.strip().strip('"')
    at = context.find(json.dumps(key))
    end = context.find(json.dumps(value), at) if at >= 0 else -1
    if at < 0 or end < 0:
        raise DataError(f"{where}: the pair of key {key!r} and its value is not in 'context'")
    docs, relevant = _split_around(context, [(at, end + len(json.dumps(value)))], where)
    return assemble(
        example_id=example_id, head=[Segment(KV_INSTRUCTION, "instruction"), Segment("\n\n")],
        documents=docs, sep=" ", tail=[Segment("\n\n"), *([Segment(demos, "demos")] if demos else []), Segment(f"Key: {question}", "question")],
        relevant_index=relevant, answers=[value], variant="long", meta=meta, reply_start="Corresponding value:",
    )  # fmt: skip


def _rag(obj: dict, where: str, example_id: str, meta: dict, demos: str = "") -> Example:
    question = require(obj, "question", str, where)
    answers = _answers(obj, where, "answers", "answer")
    ctxs = require(obj, "ctxs", list, where)
    if not ctxs:
        raise DataError(f"{where}: 'ctxs' is empty")
    docs, relevant = [], []
    for i, c in enumerate(ctxs, start=1):
        if not isinstance(c, dict) or not isinstance(c.get("text"), str):
            raise DataError(f"{where}: passage {i} needs a string 'text'")
        docs.append(format_passage(str(c.get("title", "")), c["text"]))
        if c.get("has_answer") or c.get("isgold"):
            relevant.append(i)
    return assemble(
        example_id=example_id, head=[Segment(RAG_INSTRUCTION, "instruction"), *([Segment(demos, "demos")] if demos else [])],
        documents=docs, sep="\n\n", tail=[Segment("\n\n"), Segment(f"Question: {question}", "question")],
        relevant_index=relevant or None, answers=answers, variant="long", meta=meta,
        reply_start="Answer:",
    )  # fmt: skip


def _rerank_passage(c: dict) -> str:
    title = f" (Title: {c['title']})" if c.get("title") else ""
    return f"[ID: {c['id']}] Document{title}: {c['text']}"


def _ranking(ctxs: list[dict]) -> str:
    return " > ".join(str(c["id"]) for c in sorted(ctxs, key=lambda c: -float(c["label"])))


def _rerank(obj: dict, where: str, example_id: str, meta: dict, demos: str = "") -> Example:
    query = require(obj, "query", str, where)
    ctxs = require(obj, "ctxs", list, where)
    if not ctxs:
        raise DataError(f"{where}: 'ctxs' is empty")
    for i, c in enumerate(ctxs, start=1):
        if not isinstance(c, dict) or not isinstance(c.get("text"), str) or "id" not in c or "label" not in c:
            raise DataError(f"{where}: passage {i} needs 'id', 'text' and a relevance 'label'")
    top = max(float(c["label"]) for c in ctxs)
    relevant = [i for i, c in enumerate(ctxs, start=1) if top > 0 and float(c["label"]) == top]
    qrels = {str(c["id"]): int(c["label"]) for c in ctxs}
    return assemble(
        example_id=example_id, head=_head(RERANK_INSTRUCTION, demos),
        documents=[_rerank_passage(c) for c in ctxs], sep="\n\n", tail=[Segment("\n\n"), Segment(f"Query: {query}", "question")],
        relevant_index=relevant or None, answers=[_ranking(ctxs)], variant="long", meta={**meta, "qrels": qrels, "qid": str(obj.get("qid", ""))},
        reply_start="Ranking:",
    )  # fmt: skip
