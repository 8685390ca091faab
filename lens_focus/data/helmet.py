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

- **In-context learning** (TREC, Banking77, Clinc150, NLU: HELMET reads them from their datasets;
  here one record per line): ``text`` and one label field (``label``, ``intent``, ``coarse_label``
  or ``fine_label``). The demonstrations are the documents, ``<text>\nlabel: <n>`` joined by blank
  lines, drawn from the demo file (the training split) balanced over the labels (one of each label
  per round, shuffled within the round, HELMET's ``balance``); every label is mapped to a number
  shuffled per prompt (HELMET's default labels). The demonstrations of the asked label are the
  relevant documents. Graded by label accuracy (``metric: label``).
- **Long QA** (NarrativeQA, InfiniteBench ``longbook_qa_eng``): ``context`` and ``input`` (an
  InfiniteBench record) or ``question``, with ``answer`` a list; or NarrativeQA's own record
  (``document.text``, ``question.text``, ``answers[].text``). Graded by ROUGE-L F1
  (``metric: rouge_f1``).
- **Long QA, multiple choice** (InfiniteBench ``longbook_choice_eng``): the same with ``options``
  (four strings) and ``answer`` (the right option's text); rendered ``A. … D.``, answers
  ``[letter, "letter. option"]``, graded by choice accuracy (``metric: choice``).

  A story is split into documents at its blank lines; the paragraphs that hold a gold answer
  (for multiple choice, the right option's text) verbatim are the relevant documents, and when
  none does (abstractive answers) the example has none, so its relevant score is undefined while
  its sink score stands.

Demonstrations are kept as HELMET renders them, as a span ``demos`` between the instruction and
the context: JSON KV records carry their own (``demos``: key-value pairs); RAG and re-ranking take
them from a demo file of the same format (``demos=``, HELMET's ``demo_path``), ``shots`` per
prompt, drawn per question as HELMET does (seeded by a hash of the question, never the question
itself); long QA takes them from the demo file or, without one, from the file's other records
(InfiniteBench's way), rendered ``[story text]\nQuestion: …\nAnswer: …``. In-context learning
needs ``shots`` > 0 and a demo file: its demonstrations are its context.
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

Kind = Literal["ruler", "json_kv", "rag", "rerank", "icl", "long_qa", "long_qa_mc"]
CATEGORY = {"ruler": "recall", "json_kv": "recall", "rag": "rag", "rerank": "re_rank", "icl": "icl", "long_qa": "long_qa", "long_qa_mc": "long_qa"}
METRIC = {"ruler": "recall", "json_kv": "em", "rag": "em", "rerank": "ndcg@10", "icl": "label", "long_qa": "rouge_f1", "long_qa_mc": "choice"}
LABEL_FIELDS = ("label", "intent", "coarse_label", "fine_label")
ICL_INSTRUCTION = 'Use the provided mapping from the text to label to assign a label to the text. Only output "label: {label}" and nothing else.'
QA_INSTRUCTION = ("You are given a story and a question. Answer the question as concisely as you can, using a single "
                  "phrase if possible.")  # fmt: skip
NARRATIVE_INSTRUCTION = ("You are given a story, which can be either a novel or a movie script, and a question. Answer the "
                         "question as concisely as you can, using a single phrase if possible.")  # fmt: skip
MC_INSTRUCTION = ("You are given a story and a question with multiple choices. Choose the best answer from the options "
                  "provided. Only one of the following options is correct, output the answer using one single letter "
                  "(A, B, C, or D). Don't say anything else.")  # fmt: skip
LETTERS = "ABCD"
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
    if "context" in obj and "options" in obj:
        return "long_qa_mc"
    if isinstance(obj.get("document"), dict) or ("context" in obj and ("input" in obj or isinstance(obj.get("answer"), list))):
        return "long_qa"
    if "context" in obj and ("query" in obj or "outputs" in obj or "type_needle_v" in obj):
        return "ruler"
    if "context" in obj and "question" in obj and "answer" in obj:
        return "json_kv"
    if "text" in obj and any(f in obj for f in LABEL_FIELDS):
        return "icl"
    raise DataError(f"{where}: not a HELMET record: expected 'ctxs' (RAG, re-ranking), 'context' + 'query'/'outputs' "
                    f"(RULER), 'context' + 'question' + 'answer' (JSON KV), 'context' + 'input' or 'options' (long QA), "
                    f"or 'text' + a label (in-context learning); found fields {sorted(obj)}")  # fmt: skip


def helmet_examples(
    path: str | Path, *, limit: int | None = None, task: str | None = None, demos: str | Path | None = None, shots: int = 0
) -> list[Example]:
    """The records of one HELMET file as Examples (``meta``: ``task`` (default: the file's name
    without suffixes), ``category``, ``metric``, ``kind``, ``line``), each with ``shots``
    demonstrations (its own, for JSON KV; from the file ``demos``, for RAG and re-ranking)."""
    path = Path(path)
    name = task or path.name.split(".")[0]
    records = list(read_jsonl(path))
    pool = [obj for _, obj in read_jsonl(demos)] if demos is not None else []
    out: list[Example] = []
    stories: list[dict] | None = None  # long QA's demonstration pool, read once
    for lineno, obj in records:
        if limit is not None and len(out) >= limit:
            break
        where = f"{path}:{lineno}"
        kind = file_kind(obj, where)
        if (shots and kind in ("rag", "rerank") or kind == "icl") and not pool:
            raise DataError(f"{where}: {shots or 'no'} demonstrations asked for, but no demo file (demos=) to draw them from"
                            + ("; in-context learning needs shots > 0 and a demo file" if kind == "icl" else ""))  # fmt: skip
        meta = {"task": name, "category": CATEGORY[kind], "metric": METRIC[kind], "kind": kind, "line": lineno, "question_id": f"{name}-{lineno}"}
        if kind == "icl":
            out.append(_icl(obj, where, f"{name}-{lineno}", meta, pool, shots))
            continue
        if kind in ("long_qa", "long_qa_mc"):
            obj = _story_record(obj, where)
            if shots and stories is None:
                stories = [_story_record(d, f"{demos or path}:{i}") for i, d in (read_jsonl(demos) if demos is not None else records)]
            shown = _story_demos(obj, stories or [], shots, where)
        else:
            shown = _demos(kind, obj, pool, shots, where)
        build = {"ruler": _ruler, "json_kv": _json_kv, "rag": _rag, "rerank": _rerank, "long_qa": _long_qa, "long_qa_mc": _long_qa}[kind]
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


def _icl(obj: dict, where: str, example_id: str, meta: dict, pool: list[dict], shots: int) -> Example:
    """An in-context-learning record: ``shots`` labelled demonstrations from ``pool`` as the
    documents, then the text to label (see the module docstring)."""
    field = _label_field(obj, where)
    text = require(obj, "text", str, where)
    others = [d for d in pool if d.get("text") != text]
    for i, d in enumerate(others, start=1):
        if not isinstance(d.get("text"), str) or field not in d:
            raise DataError(f"{where}: demonstration {i} of the demo file needs 'text' and {field!r}")
    if len(others) < shots:
        raise DataError(f"{where}: {shots} demonstrations asked for, the demo file has {len(others)} other texts")
    labels = sorted({str(d[field]) for d in others} | {str(obj[field])})
    rng = random.Random(int(hashlib.sha256(text.encode()).hexdigest(), 16) % 2**31)  # the same prompt every time
    number = dict(zip(labels, rng.sample(range(len(labels)), len(labels))))
    by_label: dict[str, list[dict]] = {}
    for d in others:
        by_label.setdefault(str(d[field]), []).append(d)
    picked: list[dict] = []
    while len(picked) < shots:  # balanced: one of every label per round, in a shuffled order
        picked += [rng.choice(by_label[k]) for k in rng.sample(sorted(by_label), len(by_label))]
    picked = picked[:shots]
    asked = str(obj[field])
    return assemble(
        example_id=example_id, head=[Segment(ICL_INSTRUCTION, "instruction"), Segment("\n\n")],
        documents=[f"{d['text']}\nlabel: {number[str(d[field])]}" for d in picked], sep="\n\n",
        tail=[Segment("\n\n"), Segment(text, "question")],
        relevant_index=[i for i, d in enumerate(picked, start=1) if str(d[field]) == asked] or None,
        answers=[str(number[asked])], variant="long", meta={**meta, "labels": len(labels), "n_docs": shots}, reply_start="label:",
    )  # fmt: skip


def _label_field(obj: dict, where: str) -> str:
    found = [f for f in LABEL_FIELDS if f in obj]
    if len(found) != 1:
        raise DataError(f"{where}: an in-context-learning record needs exactly one label field of {LABEL_FIELDS}; found {found} "
                        "(TREC has two: keep coarse_label or fine_label)")  # fmt: skip
    return found[0]


def _story_record(obj: dict, where: str) -> dict:
    """A long-QA record in one form: ``context``, ``question``, ``answers`` (list), ``options``
    (multiple choice only), ``id``, ``narrative`` (NarrativeQA's own record)."""
    if isinstance(obj.get("document"), dict):
        try:
            return {"context": obj["document"]["text"], "question": obj["question"]["text"], "answers": [a["text"] for a in obj["answers"]],
                    "id": str(obj.get("document", {}).get("id", "")) + obj["question"]["text"], "narrative": True}  # fmt: skip
        except (KeyError, TypeError) as e:
            raise DataError(f"{where}: a NarrativeQA record needs document.text, question.text and answers[].text") from e
    context = require(obj, "context", str, where)
    question = obj.get("input", obj.get("question"))
    if not isinstance(question, str):
        raise DataError(f"{where}: missing field 'input' or 'question'")
    answers = _answers(obj, where, "answer", "answers")
    out = {"context": context, "question": question, "answers": answers, "id": str(obj.get("id", question)), "narrative": False}
    if "options" in obj:
        options = obj["options"]
        if not isinstance(options, list) or len(options) != len(LETTERS) or not all(isinstance(o, str) for o in options):
            raise DataError(f"{where}: 'options' should be {len(LETTERS)} strings")
        if answers[0] not in options:
            raise DataError(f"{where}: the answer {answers[0]!r} is not one of the options")
        out["options"] = options
    return out


def _options(record: dict) -> tuple[str, list[str]]:
    """The options as HELMET prints them, and the answers ``[letter, "letter. option"]``."""
    letter = LETTERS[record["options"].index(record["answers"][0])]
    shown = "\n".join(f"{L}. {o}" for L, o in zip(LETTERS, record["options"]))
    return shown, [letter, f"{letter}. {record['answers'][0]}"]


def _story_demos(record: dict, pool: list[dict], shots: int, where: str) -> str:
    if not shots:
        return ""
    others = [d for d in pool if d["id"] != record["id"]]
    if len(others) < shots:
        raise DataError(f"{where}: {shots} demonstrations asked for, there are {len(others)} other questions")
    rng = random.Random(int(hashlib.sha256(record["id"].encode()).hexdigest(), 16) % 2**31)
    shown = []
    for d in rng.sample(others, shots):
        if "options" in record:
            options, answers = _options(d)
            shown.append(f"[story text]\nQuestion: {d['question']}\nOptions:\n{options}\nAnswer: {answers[0]}")
        else:
            shown.append(f"[story text]\nQuestion: {d['question']}\nAnswer: {d['answers'][0]}")
    return "For example:\n\n" + "\n\n".join(shown) + "\n\nNow, read the following story:\n\n"


def _long_qa(record: dict, where: str, example_id: str, meta: dict, demos: str = "") -> Example:
    question = f"Question: {record['question']}"
    answers = record["answers"]
    instruction = NARRATIVE_INSTRUCTION if record["narrative"] else QA_INSTRUCTION
    if "options" in record:
        options, answers = _options(record)
        question += f"\nOptions:\n{options}"
        instruction = MC_INSTRUCTION
    docs = [p.strip() for p in record["context"].split("\n\n") if p.strip()]
    if not docs:
        raise DataError(f"{where}: 'context' is empty")
    golds = [a.lower() for a in (record["answers"][:1] if "options" in record else record["answers"])]
    relevant = [i for i, d in enumerate(docs, start=1) if any(g and g in d.lower() for g in golds)]
    return assemble(
        example_id=example_id, head=_head(instruction, demos), documents=docs, sep="\n\n",
        tail=[Segment("\n\n"), Segment(question, "question")], relevant_index=relevant or None, answers=answers,
        variant="long", meta={**meta, "n_docs": len(docs)}, reply_start="Answer:",
    )  # fmt: skip
