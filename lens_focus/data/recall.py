"""Synthetic recall tasks in the manner of RULER as HELMET runs them (docs/method.md §7), built offline
for any tokenizer:

- ``mk_needle`` (multi-key needle): the whole context is needles, ``One of the special magic
  numbers for quiet-lantern is: 4812093.``, each with its own key; the question asks for one
  key's number.
- ``mk_uuid``: the same with UUID keys and UUID values.
- ``mv`` (multi-value): plain filler text (:func:`~lens_focus.data.needle.builtin_filler`) holding
  four needles of one key, each with another number; the answer is all four.

``length`` is the context's size in tokens of the model's tokenizer (instruction and question
come on top); it sets the number of needles (``mk_*``) or of filler sentences (``mv``). The asked
needle (``mk_*``) or the four (``mv``) are the relevant documents, and the asked needle sits at
``n`` evenly spaced depths over a length's ``n`` samples. The reply starts with the answer's
lead-in, so a model answers with the value. Grade with
:func:`~lens_focus.metrics.substring_recall` (the share of gold values in the response).
"""
from __future__ import annotations

import random
from typing import Literal, Sequence

from ..labels import Example, Segment
from .base import DataError, assemble, fit_count, random_uuid, spread
from .needle import builtin_filler, cut_at_sentence, insert_at_depths

Kind = Literal["number", "uuid"]
_INSTRUCTION = "Some special magic {kinds} are hidden in the text below. Memorize them: you will be asked about them afterwards.\n\n"
_ADJECTIVES = ("quiet", "golden", "hollow", "brisk", "silent", "rusty", "gentle", "crooked", "amber", "frozen",
               "hidden", "little", "narrow", "patient", "velvet", "wooden", "bitter", "clever", "distant", "eager",
               "faded", "humble", "lively", "misty", "noble", "polite", "rapid", "sturdy", "tender", "windy",
               "yellow", "zealous")  # fmt: skip
_NOUNS = ("lantern", "harbor", "meadow", "violin", "compass", "falcon", "orchard", "teapot", "glacier", "ribbon",
          "cabinet", "pebble", "thistle", "anchor", "bucket", "canyon", "dolphin", "engine", "feather", "garden",
          "hammer", "island", "jacket", "kettle", "ladder", "mirror", "needle", "otter", "pillow", "quarry",
          "saddle", "tunnel")  # fmt: skip
MV_VALUES = 4


def _value(rng: random.Random, kind: Kind) -> str:
    return random_uuid(rng) if kind == "uuid" else str(rng.randint(1_000_000, 9_999_999))


def _keys(rng: random.Random, kind: Kind, count: int) -> list[str]:
    """``count`` distinct keys: two words joined by a hyphen, or UUIDs."""
    if kind == "uuid":
        return [_value(rng, "uuid") for _ in range(count)]
    words = [f"{a}-{n}" for a in _ADJECTIVES for n in _NOUNS]
    if count > len(words):
        raise DataError(f"mk_needle has {len(words)} distinct keys; this length needs {count} (use mk_uuid for longer contexts)")
    return rng.sample(words, count)


def _needle(key: str, value: str, kind: Kind) -> str:
    return f"One of the special magic {kind}s for {key} is: {value}."


def _example(task: str, length: int, i: int, documents: Sequence[str], relevant, key: str, answers: Sequence[str],
             kind: Kind, several: bool, meta: dict) -> Example:  # fmt: skip
    if several:
        question = f"What are all the special magic {kind}s for {key} mentioned in the text above?"
        reply = f"The special magic {kind}s for {key} mentioned in the text above are"
    else:
        question = f"What is the special magic {kind} for {key} mentioned in the text above?"
        reply = f"The special magic {kind} for {key} mentioned in the text above is"
    return assemble(
        example_id=f"{task}-L{length}-{i}",
        head=[Segment(_INSTRUCTION.format(kinds=f"{kind}s"), "instruction")],
        documents=documents,
        sep=" ",
        tail=[Segment("\n\n"), Segment(question, "question")],
        relevant_index=relevant,
        answers=answers,
        variant="long",
        meta={"task": task, "question_id": f"{task}-L{length}-{i}", "length": int(length), **meta},
        reply_start=reply,
    )


def multikey_examples(tokenizer, *, kind: Kind = "number", lengths: Sequence[int] = (1000,), n: int = 10, seed: int = 0) -> list[Example]:
    """``mk_needle`` (``kind="number"``) or ``mk_uuid`` (``kind="uuid"``): ``n`` prompts per
    length, each a context of distinct-key needles filling ``length`` tokens, asking for one."""
    task = "mk_needle" if kind == "number" else "mk_uuid"
    out = []
    for length in lengths:
        per_needle = len(tokenizer(_needle(_keys(random.Random(0), kind, 1)[0], _value(random.Random(0), kind), kind),
                                   add_special_tokens=False).input_ids)  # fmt: skip
        for i in range(n):
            rng = random.Random(f"{task}-{seed}-{length}-{i}")
            keys = _keys(rng, kind, int(length) // max(per_needle - 4, 1) + 2)
            needles = [_needle(k, _value(rng, kind), kind) for k in keys]
            count = fit_count(tokenizer, needles, int(length), sep=" ", where=f"{task} at {length} tokens")
            gold = spread(i, n, count)
            value = needles[gold].rsplit(" ", 1)[1].rstrip(".")
            out.append(_example(task, length, i, needles[:count], gold + 1, keys[gold], [value], kind, False,
                                {"n_docs": count, "depth": round(100 * gold / max(count - 1, 1))}))  # fmt: skip
    return out


def multivalue_examples(tokenizer, *, lengths: Sequence[int] = (1000,), n: int = 10, seed: int = 0, n_values: int = MV_VALUES) -> list[Example]:
    """``mv``: ``n`` prompts per length, each filler text of about ``length`` tokens holding
    ``n_values`` needles of one key at seeded depths; the answers are all their numbers."""
    filler = builtin_filler(seed=seed)
    out = []
    for length in lengths:
        for i in range(n):
            rng = random.Random(f"mv-{seed}-{length}-{i}")
            key = _keys(rng, "number", 1)[0]
            values = []
            while len(values) < n_values:
                v = _value(rng, "number")
                values += [v] if v not in values else []
            needles = [_needle(key, v, "number") for v in values]
            room = int(length) - sum(len(tokenizer(s, add_special_tokens=False).input_ids) for s in needles)
            context = cut_at_sentence(filler, tokenizer, room)
            depths = sorted(rng.uniform(0, 100) for _ in needles)
            parts, where = insert_at_depths(context, list(zip(depths, needles)))
            out.append(_example("mv", length, i, parts, tuple(where), key, values, "number", True,
                                {"n_docs": len(parts), "depths": [round(d) for d in depths]}))  # fmt: skip
    return out
