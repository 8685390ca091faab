"""Key-value retrieval from the lost-in-the-middle files: find a UUID's value in a JSON object.

Each key-value pair is a "document"; the relevant one is the gold pair. ``n_docs`` pairs are kept
(the gold pair and the first ``n_docs - 1`` others in file order) and the gold pair is moved to
each requested position. :func:`json_kv_examples` builds the ``json_kv`` task of the evaluation
suite (docs/method.md §7) from the same file or from generated UUIDs, its length set by the number of pairs.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Sequence

from ..labels import Example, Segment, Variant
from .base import DataError, Selection, Split, assemble, place_relevant, random_uuid, read_jsonl, require, split_indices

INSTRUCTION = "Extract the value corresponding to the specified key in the JSON object below."


def format_pair(key: str, value: str) -> str:
    return f"{json.dumps(key)}: {json.dumps(value)}"


def _records(path: str | Path) -> list[tuple[int, str, str, list[tuple[str, str]]]]:
    """``(line, key, value, the other pairs in file order)`` per record, checked."""
    records = []
    for lineno, obj in read_jsonl(path):
        where = f"{path}:{lineno}"
        pairs = require(obj, "ordered_kv_records", list, where)
        key, value = require(obj, "key", str, where), require(obj, "value", str, where)
        if not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise DataError(f"{where}: 'ordered_kv_records' must be a list of [key, value] pairs")
        others = [tuple(p) for p in pairs if p[0] != key]
        if len(others) == len(pairs):
            raise DataError(f"{where}: the key {key!r} is not among 'ordered_kv_records'")
        records.append((lineno, key, value, others))
    return records


def kv_examples(
    path: str | Path,
    selection: Selection = Selection(),
) -> list[Example]:
    """The pairs of each selected record as documents, the asked pair the relevant one."""
    n_docs = selection.n_docs
    records = _records(path)
    short = [r for r in records if len(r[3]) < n_docs - 1]
    if short:
        raise DataError(f"{path}:{short[0][0]}: {len(short[0][3]) + 1} pairs, n_docs={n_docs} needs {n_docs}")
    records = [(lineno, key, value, others[: n_docs - 1]) for lineno, key, value, others in records]

    chosen = split_indices(len(records), selection.split, selection.seed)[: selection.limit]
    examples = []
    for qi in chosen:
        lineno, key, value, others = records[qi]
        qid = f"kv-{lineno}"

        def build(pairs: list[tuple[str, str]], relevant: int | None, variant: Variant, suffix: str) -> Example:
            return assemble(
                example_id=f"{qid}-{suffix}",
                head=[Segment(INSTRUCTION, "instruction"), Segment("\n\nJSON data:\n{")],
                documents=[format_pair(k, v) for k, v in pairs],
                sep=",\n ",
                tail=[Segment("}\n\n"), Segment(f"Key: {json.dumps(key)}", "question"), Segment("\nCorresponding value:")],
                relevant_index=relevant,
                answers=[value],
                variant=variant,
                meta={"question_id": qid, "task": "kv", "line": lineno},
            )

        examples += selection.prompts(
            lambda p: build([*others[: p - 1], (key, value), *others[p - 1 :]], p, "long", f"p{p}"),
            lambda: build([(key, value)], 1, "gold", "gold"),
            lambda: build(list(others), None, "negative", "neg"),
        )
    return examples


def json_kv_examples(
    tokenizer, *, lengths: Sequence[int] = (1000,), n: int = 10, seed: int = 0, path: str | Path | None = None, split: Split = "test"
) -> list[Example]:
    """The ``json_kv`` task (docs/method.md §7): ``n`` prompts per length, each a JSON object of as many
    key-value pairs as fill about ``length`` tokens, asking for one key's value; the reply
    starts ``Corresponding value:``. Pairs come from a lost-in-the-middle key-value ``path``
    (records ``seed·n … seed·n + n - 1`` of the ``split``, split as with seed 0, so that seeds
    never share a record: each record's key and as many of its pairs as fit; at most the file's
    75) or, without one, are generated UUIDs. The asked pair sits at ``n`` evenly
    spaced positions over a length's samples."""
    records = _records(path) if path is not None else None
    pooled = split_indices(len(records), split, 0) if records is not None else []
    chosen = pooled[seed * n : (seed + 1) * n]
    if records is not None and len(chosen) < n:
        raise DataError(f"{path}: the {split} split has {len(pooled)} records; seed {seed} with n={n} needs {(seed + 1) * n}")
    out = []
    for length in lengths:
        for i in range(n):
            if records is not None:
                lineno, key, value, others = records[chosen[i]]
                source = f"{path}:{lineno}"
            else:
                rng = random.Random(f"json_kv-{seed}-{length}-{i}")
                key, value = random_uuid(rng), random_uuid(rng)
                others = [(random_uuid(rng), random_uuid(rng)) for _ in range(int(length) // 40 + 2)]
                source = "generated"
            docs, relevant, depth = place_relevant(tokenizer, format_pair(key, value), [format_pair(*p) for p in others], int(length),
                                                   i=i, n=n, sep=",\n ", where=f"json_kv at {length} tokens ({source})")  # fmt: skip
            out.append(assemble(
                example_id=f"json_kv-L{length}-{i}",
                head=[Segment(INSTRUCTION, "instruction"), Segment("\n\nJSON data:\n{")],
                documents=docs,
                sep=",\n ",
                tail=[Segment("}\n\n"), Segment(f"Key: {json.dumps(key)}", "question")],
                relevant_index=relevant,
                answers=[value],
                variant="long",
                meta={"task": "json_kv", "question_id": f"json_kv-L{length}-{i}", "length": int(length), "source": source,
                      "depth": depth},
                reply_start="Corresponding value:",
            ))  # fmt: skip
    return out
