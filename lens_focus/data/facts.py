"""Made-up facts about people in plain English: a multi-document task small chat models can do.

    Answer the question using only the documents below. Some of them are irrelevant.

    Document [1]: Tomas Okafor earns a living as a florist.
    Document [2]: Ines Varga moved to Quito a few years ago and has lived there since.
    ...

    Question: Which city does Ines Varga live in?
    assistant: Ines Varga lives in│ Quito.

Every document states one fact (person, attribute, value) in one of several sentence templates;
the question asks for one attribute of one person, and the reply starts with a fixed prefix
(``reply_start``, part of the prompt, e.g. ``Ines Varga lives in``) so the answer is the next
word or two. Facts are drawn fresh for every prompt, so nothing can be answered from memory.
Irrelevant documents include hard ones: the same person with another attribute, and the same
attribute of another person. Questions are split by (person, attribute) pair: ``train`` and
``test`` ask about disjoint pairs.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from ..labels import Example, Segment, Variant
from .base import Selection, Split, assemble

INSTRUCTION = "Answer the question using only the documents below. Some of them are irrelevant."

FIRST = ("Amara Bruno Chidi Dalia Emil Farah Goran Hana Ilse Jonas Kaveh Lena Milo Nadia Oskar Priya "
         "Quentin Rosa Stefan Talia Umar Vera Wendel Yara Zoltan Anika Basil Cleo Dario Elin").split()  # fmt: skip
LAST = ("Okafor Varga Lindqvist Moreau Tanaka Petrov Alvarez Novak Haddad Brennan Sato Kowalski Duarte "
        "Nyberg Castillo Mensah Oyelaran Rossi Fischer Adeyemi Halvorsen Ibarra Janssen Kerr").split()  # fmt: skip


@dataclass(frozen=True)
class Attribute:
    name: str
    templates: tuple[str, ...]
    """Document sentences with ``{p}`` (person) and ``{v}`` (value)."""
    question: str
    reply: str
    """The start of the reply; the value follows it."""
    values: tuple[str, ...]


ATTRIBUTES = (
    Attribute(
        "city",
        ("{p} lives in {v}.", "{p} moved to {v} a few years ago and has lived there since.", "The city {p} calls home is {v}."),
        "Which city does {p} live in?", "{p} lives in",
        tuple("Lima Oslo Cairo Dublin Nairobi Hanoi Quito Lisbon Osaka Perth Tunis Bergen Porto Denver Leeds "
              "Turin Seville Geneva Bogota Manila Dakar Accra Riga Tallinn Zagreb Havana".split()),
    ),
    Attribute(
        "job",
        ("{p} works as a {v}.", "By profession, {p} is a {v}.", "{p} earns a living as a {v}."),
        "What is {p}'s job?", "{p} works as a",
        tuple("baker pilot nurse dentist plumber lawyer teacher chemist farmer jeweler librarian carpenter "
              "florist tailor surgeon barber journalist butcher mechanic potter sculptor translator geologist".split()),
    ),
    Attribute(
        "pet",
        ("{p} has a pet {v}.", "{p} owns a {v} and takes good care of it.", "At home, {p} keeps a pet {v}."),
        "What pet does {p} have?", "{p} has a pet",
        tuple("parrot hamster rabbit turtle goldfish ferret tortoise canary lizard gecko chinchilla "
              "snake frog pony goat duck hedgehog".split()),
    ),
    Attribute(
        "color",
        ("{p}'s favorite color is {v}.", "The color {p} likes most is {v}.", "The favorite color of {p} is {v}."),
        "What is {p}'s favorite color?", "{p}'s favorite color is",
        tuple("purple orange teal maroon yellow green silver crimson beige turquoise lavender indigo gold navy pink olive".split()),
    ),
    Attribute(
        "sport",
        ("{p} plays {v} every weekend.", "The sport {p} plays is {v}.", "In the evenings, {p} plays {v} with friends."),
        "Which sport does {p} play?", "{p} plays",
        tuple("tennis hockey rugby cricket volleyball badminton baseball golf handball squash polo lacrosse basketball softball".split()),
    ),
    Attribute(
        "language",
        ("{p} is learning {v}.", "{p} is learning {v} at night school.", "The language {p} is learning is {v}."),
        "Which language is {p} learning?", "{p} is learning",
        tuple("Swahili Finnish Korean Portuguese Turkish Greek Hindi Polish Dutch Arabic Icelandic Welsh Thai Hungarian Czech Tagalog".split()),
    ),
    Attribute(
        "food",
        ("{p}'s favorite food is {v}.", "The food {p} likes most is {v}.", "The favorite food of {p} is {v}."),
        "What is {p}'s favorite food?", "{p}'s favorite food is",
        tuple("lasagna sushi paella dumplings tacos curry risotto ramen falafel goulash pancakes burritos pierogi kebab".split()),
    ),
)
BY_NAME = {a.name: a for a in ATTRIBUTES}
PEOPLE = tuple(f"{f} {l}" for f in FIRST for l in LAST)

Fact = tuple[str, str, str]
"""(person, attribute name, value)."""


def pair_split(person: str, attribute: str) -> str:
    """``train`` or ``test``: a fixed assignment of (person, attribute) question pairs."""
    return "train" if hashlib.sha256(f"{person}/{attribute}".encode()).digest()[0] % 2 == 0 else "test"


_PAIRS = {s: [(p, a.name) for p in PEOPLE for a in ATTRIBUTES if pair_split(p, a.name) == s] for s in ("train", "test")}


def draw_facts(rng: random.Random, n_docs: int, split: Split) -> tuple[Fact, list[Fact]]:
    """The asked fact and ``n_docs - 1`` others: a third about the same person (another attribute,
    while any is left), a third about the same attribute (another person, another value), the rest
    at random; no (person, attribute) pair twice, no other document with the asked value."""
    pool = _PAIRS["train"] + _PAIRS["test"] if split == "all" else _PAIRS[split]
    person, attr = rng.choice(pool)
    value = rng.choice(BY_NAME[attr].values)
    pairs = {(person, attr)}
    others: list[Fact] = []
    while len(others) < n_docs - 1:
        kind = rng.random()
        p = person if kind < 1 / 3 else rng.choice(PEOPLE)
        a = attr if 1 / 3 <= kind < 2 / 3 else rng.choice(ATTRIBUTES).name
        if (p, a) in pairs:
            continue
        pairs.add((p, a))
        others.append((p, a, rng.choice([v for v in BY_NAME[a].values if v != value])))
    return (person, attr, value), others


def sentence(fact: Fact, rng: random.Random) -> str:
    person, attr, value = fact
    return rng.choice(BY_NAME[attr].templates).format(p=person, v=value)


def facts_examples(
    selection: Selection = Selection(),
) -> list[Example]:
    """Seeded examples of the ``selection`` (default 200 questions); the other documents keep
    their order and wording in every variant."""
    n_docs, split = selection.n_docs, selection.split
    examples: list[Example] = []
    for q in range(200 if selection.limit is None else selection.limit):
        rng = random.Random(f"facts-{split}-{selection.seed}-{q}")
        gold, others = draw_facts(rng, n_docs, split)
        gold_text, other_texts = sentence(gold, rng), [sentence(f, rng) for f in others]
        attr = BY_NAME[gold[1]]
        qid = f"facts-{split}-{q}"

        def build(texts: list[str], relevant: int | None, variant: Variant, suffix: str) -> Example:
            return assemble(
                example_id=f"{qid}-{suffix}",
                head=[Segment(INSTRUCTION, "instruction"), Segment("\n\n")],
                documents=[f"Document [{i}]: {t}" for i, t in enumerate(texts, start=1)],
                sep="\n",
                tail=[Segment("\n\n"), Segment("Question: " + attr.question.format(p=gold[0]), "question")],
                relevant_index=relevant,
                answers=[gold[2]],
                variant=variant,
                reply_start=attr.reply.format(p=gold[0]),
                meta={"question_id": qid, "task": "facts", "attribute": attr.name},
            )

        examples += selection.prompts(
            lambda p: build(other_texts[: p - 1] + [gold_text] + other_texts[p - 1 :], p, "long", f"p{p}"),
            lambda: build([gold_text], 1, "gold", "gold"),
            lambda: build(other_texts, None, "negative", "neg"),
        )
    return examples
