"""Datasets as lists of :class:`~lens_focus.labels.Example`, one builder per source.

:func:`load_examples` is the single entry point the command line uses: it reads a path (task
inferred from the file, or named with ``task``) or builds a generated task, and applies the
shared options.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Sequence

from ..defaults import GOLD_POSITIONS, N_DOCS
from ..labels import Example, Variant
from .base import DataError, Split, assemble, check_positions, read_jsonl, require, split_indices

__all__ = ["load_examples", "DataError", "Split", "Task", "assemble", "check_positions", "read_jsonl", "require", "split_indices"]
Task = Literal["nq", "kv"]


def load_examples(
    data: str | Path,
    *,
    task: Task | None = None,
    n_docs: int = N_DOCS,
    gold_positions: Sequence[int] = GOLD_POSITIONS,
    split: Split = "test",
    seed: int = 0,
    limit: int | None = None,
    variants: Sequence[Variant] = ("long", "gold"),
) -> list[Example]:
    """Build examples from a data file, or from a built-in task: ``data="toy"`` (the toy model's
    synthetic task) or ``data="facts"`` (made-up facts about people in English); ``limit`` counts
    questions (each yields several prompts)."""
    from ..toy.task import toy_examples
    from .facts import facts_examples
    from .kv_retrieval import kv_examples
    from .lost_in_the_middle import nq_examples

    generated = {"toy": toy_examples, "facts": facts_examples}
    if str(data) in generated:
        return generated[str(data)](
            n_docs=n_docs, gold_positions=gold_positions, split=split, seed=seed, limit=limit, variants=variants
        )
    if task is None:
        _, first = next(read_jsonl(data), (0, {}))
        task = "kv" if "ordered_kv_records" in first else "nq"
    builders = {"nq": nq_examples, "kv": kv_examples}
    if task not in builders:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(builders)}")
    examples = builders[task](
        data, n_docs=n_docs, gold_positions=gold_positions, split=split, seed=seed, limit=limit, variants=variants
    )
    if not examples:
        raise DataError(f"{data}: the selection is empty (split={split!r}, limit={limit})")
    return examples
