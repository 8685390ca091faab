"""Synthetic multi-document QA with the structure and labeled spans of the real task.

    answer the question with the value from the documents .
    doc 1 : color kalo mizuri .
    doc 2 : ...
    question : color kalo
    → mizuri

The question repeats the attribute–entity prefix of its document, as a cloze: the answer is the
token that follows that prefix in the relevant document (a two-token induction match: the entity
right before the value, the attribute before it), and a hard distractor shares one of the two.

Facts are made-up entity–attribute–value triples drawn fresh for every prompt, so no fact can be
memorised: the answer must come from the prompt. Irrelevant documents include hard ones (the same
entity with another attribute, the same attribute of another entity). Questions are split by
(entity, attribute) pair: ``train`` and ``test`` ask about disjoint pairs.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import replace
from itertools import product
from typing import Sequence

from ..data.base import Selection, Split, assemble, spread
from ..data.needle import Needle, needle_examples
from ..defaults import NEEDLE_DEPTHS
from ..labels import Example, Segment, Variant
from ..errors import InputError

_ONSETS = "b d f g k l m n p r s t v z".split()
_VOWELS = "a e i o u".split()
_SYLLABLES = [c + v for c, v in product(_ONSETS, _VOWELS)]  # 70

ATTRIBUTES = ("color", "city", "pet", "job", "food", "sport", "tool", "song")
ENTITIES = tuple(a + b for a, b in product(_SYLLABLES[:4], _SYLLABLES[8:12]))  # 16 two-syllable names
VALUES = tuple(a + b + "n" for a, b in product(_SYLLABLES[16:32], _SYLLABLES[32:40]))  # 128
STRUCTURE = tuple("answer the question with value from documents . doc :".split())
NUMBERS = tuple(str(i) for i in range(1, 41))
NONE = "none"
"""The answer to a question no document answers (taught in training, never a gold answer)."""
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
INSTRUCTION = "answer the question with the value from the documents ."
MAX_DOCS = len(NUMBERS)


def vocabulary() -> list[str]:
    """Every token, specials first (ids 0..3), in a fixed order."""
    words = list(SPECIALS)
    for w in (*STRUCTURE, NONE, *NUMBERS, *ATTRIBUTES, *ENTITIES, *VALUES):
        if w not in words:
            words.append(w)
    return words


def pair_split(entity: str, attribute: str) -> str:
    """``train`` or ``test``: a fixed, balanced assignment of (entity, attribute) question pairs."""
    digest = hashlib.sha256(f"{entity}/{attribute}".encode()).digest()
    return "train" if digest[0] % 2 == 0 else "test"


_PAIRS = {s: [(e, a) for e in ENTITIES for a in ATTRIBUTES if pair_split(e, a) == s] for s in ("train", "test")}


def draw_facts(
    rng: random.Random, n_docs: int, split: Split, *, same_entity: float = 1 / 3, same_attribute: float = 1 / 3
) -> tuple[tuple[str, str, str], list[tuple[str, str, str]]]:
    """The gold fact and ``n_docs - 1`` distractor facts (distinct pairs, values unlike the gold's).

    A share ``same_entity`` of the distractors is drawn with the gold entity, ``same_attribute``
    with the gold attribute (a third each by default), the rest at random."""
    pool = _PAIRS["train"] + _PAIRS["test"] if split == "all" else _PAIRS[split]
    entity, attribute = rng.choice(pool)
    value = rng.choice(VALUES)
    pairs = {(entity, attribute)}
    distractors = []
    while len(distractors) < n_docs - 1:
        kind = rng.random()
        e = entity if kind < same_entity else rng.choice(ENTITIES)
        a = attribute if same_entity <= kind < same_entity + same_attribute else rng.choice(ATTRIBUTES)
        if (e, a) in pairs or (e == entity and len({p for p in pairs if p[0] == entity}) >= len(ATTRIBUTES)):
            continue
        pairs.add((e, a))
        distractors.append((e, a, rng.choice([v for v in VALUES if v != value])))
    return (entity, attribute, value), distractors


def absent_pair(rng: random.Random, facts: Sequence[tuple[str, str, str]]) -> tuple[str, str]:
    """An (entity, attribute) pair no fact states, mostly made of an entity and an attribute that
    the facts do mention (a question the documents nearly answer)."""
    stated = {(e, a) for e, a, _ in facts}
    while True:
        e = rng.choice([f[0] for f in facts] if rng.random() < 0.75 else ENTITIES)
        a = rng.choice([f[1] for f in facts] if rng.random() < 0.75 else ATTRIBUTES)
        if (e, a) not in stated:
            return e, a


def document(index: int, fact: tuple[str, str, str]) -> str:
    entity, attribute, value = fact
    return f"doc {index} : {attribute} {entity} {value} ."


def question(fact: tuple[str, str, str]) -> str:
    return f"question : {fact[1]} {fact[0]}"


def build(
    gold: tuple[str, str, str],
    distractors: Sequence[tuple[str, str, str]],
    position: int | None,
    *,
    example_id: str,
    variant: Variant,
    meta: dict,
) -> Example:
    """An Example with the gold fact at 1-based ``position`` among the distractors (None: left out)."""
    facts = list(distractors)
    if position is not None:
        facts.insert(position - 1, gold)
    return assemble(
        example_id=example_id,
        head=[Segment(INSTRUCTION, "instruction"), Segment("\n")],
        documents=[document(i, f) for i, f in enumerate(facts, start=1)],
        sep="\n",
        tail=[Segment("\n"), Segment(question(gold), "question")],
        relevant_index=position,
        answers=[gold[2]],
        variant=variant,
        meta={**meta, "task": "toy"},
    )


def toy_examples(
    selection: Selection = Selection(),
) -> list[Example]:
    """Seeded toy examples of the ``selection`` (default 100 questions), the gold fact among
    distractor facts."""
    n_docs, split = selection.n_docs, selection.split
    if n_docs > MAX_DOCS:
        raise InputError(f"the toy task numbers at most {MAX_DOCS} documents, got n_docs={n_docs}")
    examples = []
    for q in range(100 if selection.limit is None else selection.limit):
        rng = random.Random(f"toy-{split}-{selection.seed}-{q}")
        gold, distractors = draw_facts(rng, n_docs, split)
        qid = f"toy-{split}-{q}"
        meta = {"question_id": qid}
        examples += selection.prompts(
            lambda p: build(gold, distractors, p, example_id=f"{qid}-p{p}", variant="long", meta=meta),
            lambda: build(gold, [], 1, example_id=f"{qid}-gold", variant="gold", meta=meta),
            lambda: build(gold, distractors, None, example_id=f"{qid}-neg", variant="negative", meta=meta),
        )
    return examples


def toy_needle_examples(tokenizer, *, lengths: Sequence[int] = (300,), depths: Sequence[int | float] | None = None, n_needles: int = 3, seed: int = 0) -> list[Example]:
    """Needle in a haystack in the toy vocabulary (:mod:`lens_focus.data.needle`): the haystack is
    made-up facts in the toy's document form (``doc 3 : color kalo mizuri .``, numbered 1 … 40 and
    round again), the needle one more fact no other states, the question its cloze
    (``question : pet bida``) and the answer its value."""
    rng = random.Random(seed)
    needles: list[Needle] = []
    taken: set[tuple[str, str]] = set()
    while len(needles) < n_needles:
        entity, attribute, value = rng.choice(ENTITIES), rng.choice(ATTRIBUTES), rng.choice(VALUES)
        if (entity, attribute) not in taken:
            taken.add((entity, attribute))
            needles.append(Needle(document(rng.choice(range(1, MAX_DOCS + 1)), (entity, attribute, value)), value, f"{attribute} {entity}"))
    facts = []
    while len(facts) < 600:
        entity, attribute = rng.choice(ENTITIES), rng.choice(ATTRIBUTES)
        if (entity, attribute) not in taken:
            facts.append(document(len(facts) % MAX_DOCS + 1, (entity, attribute, rng.choice(VALUES))))
    return needle_examples(
        tokenizer, lengths=lengths, depths=NEEDLE_DEPTHS.default if depths is None else depths, needles=needles,
        filler_text=" ".join(facts), instruction=INSTRUCTION + "\n", question_format="\nquestion : {}",
    )  # fmt: skip


def toy_task_examples(task: str, tokenizer, *, lengths: Sequence[int] = (80, 160), n: int = 10, seed: int = 0) -> list[Example]:
    """The toy-vocabulary tasks of the evaluation suite, ``n`` prompts per context length in
    tokens (relevant item at ``n`` evenly spaced depths):

    - ``toy_needle`` (recall): :func:`toy_needle_examples`, one needle fact among filler facts;
    - ``toy_qa`` (multi-document QA): :func:`toy_examples` with as many documents as fill the
      length (a document is 7 tokens and its line break 1; at most 40 documents).
    """
    out = []
    for length in lengths:
        if task == "toy_needle":
            for i in range(n):
                (ex,) = toy_needle_examples(tokenizer, lengths=[length], depths=[spread(i, n, 101)], n_needles=1, seed=seed * 1000 + i)
                out.append(replace(ex, id=f"toy_needle-L{length}-{i}", meta={**ex.meta, "task": "toy_needle", "question_id": f"toy_needle-L{length}-{i}"}))
        elif task == "toy_qa":
            n_docs = length // 8
            if not 1 <= n_docs <= MAX_DOCS:
                raise InputError(f"toy_qa: {length} tokens make {n_docs} documents; the toy task numbers 1..{MAX_DOCS} (lengths 8..{8 * MAX_DOCS})")
            positions = sorted({spread(i, n, n_docs) + 1 for i in range(n)})
            examples = toy_examples(Selection(n_docs=n_docs, gold_positions=positions, split="test", seed=seed, limit=n, variants=("long",)))
            for i in range(n):
                ex = next(e for e in examples if e.meta["question_id"].endswith(f"-{i}") and e.meta["gold_position"] == spread(i, n, n_docs) + 1)
                out.append(replace(ex, id=f"toy_qa-L{length}-{i}", meta={**ex.meta, "task": "toy_qa", "length": int(length), "question_id": f"toy_qa-L{length}-{i}"}))
        else:
            raise InputError(f"unknown toy task {task!r}; choose toy_needle or toy_qa")
    return out
