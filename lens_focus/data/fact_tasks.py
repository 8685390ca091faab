"""The paper's other task categories, built offline from the made-up facts of
:mod:`lens_focus.data.facts` in the manner HELMET runs them (docs/method.md §7):

- ``rerank`` (re-ranking, MS MARCO in HELMET): documents ``[ID: 4821] Document: <fact>`` and a
  query about one person's attribute; the answer is a ranking ``Ranking: 4821 > 107 > ...``,
  graded by NDCG@10 against graded relevance: 2 for the fact that answers the query, 1 for the
  person's other facts, 0 for the rest.
- ``icl`` (in-context learning, Banking77 and the like in HELMET): many demonstrations
  ``<fact>\\nlabel: <n>`` whose label is the fact's attribute, mapped to a number shuffled per
  prompt (HELMET's non-natural labels), then one more fact to label; graded by label accuracy.
- ``long_qa`` (NarrativeQA in HELMET): a long account of many facts and a question about one,
  answered freely after ``Answer:``; graded by ROUGE-L F1 against the value.
- ``long_qa_mc`` (InfiniteBench multiple choice): the same with four options A-D; graded by
  multiple-choice accuracy.

``length`` is the context's size in tokens of the model's tokenizer. The relevant documents are
the answering fact (``rerank``, ``long_qa*``) or the demonstrations of the asked label (``icl``);
for ``rerank`` and ``long_qa*`` the answering fact sits at evenly spaced depths over a length's
``n`` prompts. Facts are drawn per prompt from the seed, so nothing is answered from memory.
"""
from __future__ import annotations

import random
from typing import Sequence

from ..labels import Example, Segment
from .base import assemble, fit_count, spread
from .facts import ATTRIBUTES, BY_NAME, PEOPLE, Fact, sentence
from .helmet import ICL_INSTRUCTION, LETTERS, MC_INSTRUCTION, QA_INSTRUCTION, RERANK_INSTRUCTION


def _facts(rng: random.Random, count: int, asked: Fact | None = None) -> list[Fact]:
    """``count`` facts with no (person, attribute) pair twice, none repeating ``asked``'s pair; a
    few about ``asked``'s person, so that some documents are near misses."""
    seen = set() if asked is None else {(asked[0], asked[1])}
    out: list[Fact] = []
    while len(out) < count:
        person = asked[0] if asked is not None and rng.random() < 0.05 else rng.choice(PEOPLE)
        attr = rng.choice(ATTRIBUTES)
        if (person, attr.name) in seen:
            if len(seen) >= len(PEOPLE) * len(ATTRIBUTES):
                break
            continue
        seen.add((person, attr.name))
        out.append((person, attr.name, rng.choice(attr.values)))
    return out


def _asked(rng: random.Random) -> Fact:
    attr = rng.choice(ATTRIBUTES)
    return (rng.choice(PEOPLE), attr.name, rng.choice(attr.values))


def _story(rng: random.Random, tokenizer, length: int, i: int, n: int, *, sep: str, where: str, render=lambda j, text: text):
    """The asked fact and as many others as fit ``length`` tokens, each rendered
    ``render(j, sentence)`` (``j`` 0 for the asked one), the asked one moved to sample ``i``'s
    :func:`spread` slot. Returns the asked fact, every fact drawn, the rendered documents in
    prompt order with the index of each in the draw, and the asked one's 0-based slot."""
    asked = _asked(rng)
    facts = [asked, *_facts(rng, int(length) // 8 + 8, asked)]
    docs = [render(j, sentence(f, rng)) for j, f in enumerate(facts)]
    count = fit_count(tokenizer, docs, int(length), sep=sep, where=where)
    gold = spread(i, n, count)
    order = list(range(1, count))
    order.insert(gold, 0)
    return asked, facts, [docs[j] for j in order], order, gold


def rerank_examples(tokenizer, *, lengths: Sequence[int] = (1000,), n: int = 10, seed: int = 0) -> list[Example]:
    """``rerank``: ``n`` prompts per length (see the module docstring); ``meta["qrels"]`` holds
    every document id's relevance grade."""
    out = []
    for length in lengths:
        for i in range(n):
            rng = random.Random(f"rerank-{seed}-{length}-{i}")
            ids = rng.sample(range(1, 10_000), int(length) // 8 + 9)
            asked, facts, docs, order, gold = _story(rng, tokenizer, length, i, n, sep="\n\n", where=f"rerank at {length} tokens",
                                                     render=lambda j, text: f"[ID: {ids[j]}] Document: {text}")  # fmt: skip
            count = len(order)
            grades = {str(ids[j]): 2 if j == 0 else int(facts[j][0] == asked[0]) for j in order}
            ranking = " > ".join(sorted(grades, key=lambda d: -grades[d]))
            question = BY_NAME[asked[1]].question.format(p=asked[0])
            out.append(assemble(
                example_id=f"rerank-L{length}-{i}", head=[Segment(RERANK_INSTRUCTION, "instruction"), Segment("\n\n")],
                documents=docs, sep="\n\n", tail=[Segment("\n\n"), Segment(f"Query: {question}", "question")],
                relevant_index=gold + 1, answers=[ranking], variant="long", reply_start="Ranking:",
                meta={"task": "rerank", "question_id": f"rerank-L{length}-{i}", "length": int(length), "n_docs": count,
                      "depth": round(100 * gold / max(count - 1, 1)), "qrels": grades},
            ))  # fmt: skip
    return out


def icl_examples(tokenizer, *, lengths: Sequence[int] = (1000,), n: int = 10, seed: int = 0) -> list[Example]:
    """``icl``: ``n`` prompts per length of labelled facts filling ``length`` tokens, then one fact
    to label (see the module docstring); the labels are balanced over the demonstrations."""
    out = []
    names = [a.name for a in ATTRIBUTES]
    for length in lengths:
        for i in range(n):
            rng = random.Random(f"icl-{seed}-{length}-{i}")
            mapping = dict(zip(names, rng.sample(range(len(names)), len(names))))
            demos = []
            while len(demos) < int(length) // 10 + len(names):
                for attr in rng.sample(names, len(names)):  # one of every label per round
                    demos.append(_facts_of(rng, attr))
            texts = [f"{sentence(f, rng)}\nlabel: {mapping[f[1]]}" for f in demos]
            count = fit_count(tokenizer, texts, int(length), sep="\n\n", where=f"icl at {length} tokens")
            asked = _asked(rng)
            relevant = [j + 1 for j in range(count) if demos[j][1] == asked[1]]
            out.append(assemble(
                example_id=f"icl-L{length}-{i}", head=[Segment(ICL_INSTRUCTION, "instruction"), Segment("\n\n")],
                documents=texts[:count], sep="\n\n", tail=[Segment("\n\n"), Segment(sentence(asked, rng), "question")],
                relevant_index=relevant or None, answers=[str(mapping[asked[1]])], variant="long", reply_start="label:",
                meta={"task": "icl", "question_id": f"icl-L{length}-{i}", "length": int(length), "n_docs": count, "labels": len(names)},
            ))  # fmt: skip
    return out


def _facts_of(rng: random.Random, attr: str) -> Fact:
    return (rng.choice(PEOPLE), attr, rng.choice(BY_NAME[attr].values))


def longqa_examples(tokenizer, *, lengths: Sequence[int] = (1000,), n: int = 10, seed: int = 0, choices: bool = False) -> list[Example]:
    """``long_qa`` (``choices=False``) or ``long_qa_mc``: ``n`` prompts per length of a story of
    facts filling ``length`` tokens and a question about one of them (see the module docstring).
    Multiple-choice answers are ``[letter, "letter. option"]``."""
    task = "long_qa_mc" if choices else "long_qa"
    out = []
    for length in lengths:
        for i in range(n):
            rng = random.Random(f"{task}-{seed}-{length}-{i}")
            asked, _, texts, order, gold = _story(rng, tokenizer, length, i, n, sep=" ", where=f"{task} at {length} tokens")
            count = len(order)
            attr = BY_NAME[asked[1]]
            question = f"Question: {attr.question.format(p=asked[0])}"
            answers = [asked[2]]
            if choices:
                options = [asked[2], *rng.sample([v for v in attr.values if v != asked[2]], 3)]
                rng.shuffle(options)
                letter = LETTERS[options.index(asked[2])]
                question += "\nOptions:\n" + "\n".join(f"{L}. {o}" for L, o in zip(LETTERS, options))
                answers = [letter, f"{letter}. {asked[2]}"]
            out.append(assemble(
                example_id=f"{task}-L{length}-{i}", head=[Segment(MC_INSTRUCTION if choices else QA_INSTRUCTION, "instruction"), Segment("\n\n")],
                documents=texts, sep=" ", tail=[Segment("\n\n"), Segment(question, "question")],
                relevant_index=gold + 1, answers=answers, variant="long", reply_start="Answer:",
                meta={"task": task, "question_id": f"{task}-L{length}-{i}", "length": int(length), "n_docs": count,
                      "depth": round(100 * gold / max(count - 1, 1))},
            ))  # fmt: skip
    return out
