"""Key-value retrieval from the lost-in-the-middle files: find a UUID's value in a JSON object.

Each key-value pair is a "document"; the relevant one is the gold pair. ``n_docs`` pairs are kept
(the gold pair and the first ``n_docs - 1`` others in file order) and the gold pair is moved to
each requested position.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from ..labels import Example, Segment, Variant
from .base import DataError, Split, assemble, check_positions, read_jsonl, require, split_indices

INSTRUCTION = "Extract the value corresponding to the specified key in the JSON object below."


def format_pair(key: str, value: str) -> str:
    return f"{json.dumps(key)}: {json.dumps(value)}"


def kv_examples(
    path: str | Path,
    *,
    n_docs: int = 20,
    gold_positions: Sequence[int] = (1, 5, 10, 15, 20),
    split: Split = "test",
    seed: int = 0,
    limit: int | None = None,
    variants: Sequence[Variant] = ("long", "gold"),
) -> list[Example]:
    positions = check_positions(gold_positions, n_docs)
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
        if len(others) < n_docs - 1:
            raise DataError(f"{where}: {len(pairs)} pairs, n_docs={n_docs} needs {n_docs}")
        records.append((lineno, key, value, others[: n_docs - 1]))

    chosen = split_indices(len(records), split, seed)
    if limit is not None:
        chosen = chosen[:limit]
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

        if "long" in variants:
            for p in positions:
                pairs = list(others)
                pairs.insert(p - 1, (key, value))
                examples.append(build(pairs, p, "long", f"p{p}"))
        if "gold" in variants:
            examples.append(build([(key, value)], 1, "gold", "gold"))
        if "negative" in variants:
            examples.append(build(list(others), None, "negative", "neg"))
    return examples
