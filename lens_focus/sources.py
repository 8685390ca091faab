"""Every source of examples in one registry, each built through one protocol.

A source is a name and a builder that takes a :class:`Request` and returns examples. Sources come
in three shapes, and a request carries the fields of all three; each builder reads its own:

- **multi-document QA at gold positions** (Figures 2–4, Table 1), the prompts of a
  :class:`~lens_focus.data.base.Selection`: ``nq`` and ``kv`` (lost-in-the-middle files),
  ``facts`` and ``toy`` (built in);
- **a long-context task at token lengths** (Tables 2, 5–13): ``n`` prompts per length of
  ``lengths`` tokens of ``tokenizer``: ``mk_needle``, ``mk_uuid``, ``mv``, ``json_kv``,
  ``nq_rag``, ``rerank``, ``icl``, ``long_qa``, ``long_qa_mc``, ``toy_needle``, ``toy_qa``;
- **a needle at depths** (Figure 9): ``haystack`` (English needles in filler, ``path`` a text file
  to cut it from) and ``toy_haystack`` (toy facts in toy filler), at each of ``depths`` percent.

Files are read from ``path``; ``helmet`` reads a HELMET data file. Adding a source is one entry
in :data:`SOURCES` (see CONTRIBUTING.md).

>>> examples = build("facts", Request(selection=Selection(limit=10)))
>>> examples = build("mk_needle", Request(tokenizer=model.tokenizer, lengths=(1000, 2000), n=10))
>>> examples = load_examples("nq-open-oracle.jsonl.gz", limit=10)   # the kind read from the file
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from .data.base import DataError, Selection, read_jsonl
from .data.fact_tasks import icl_examples, longqa_examples, rerank_examples
from .data.facts import facts_examples
from .data.helmet import helmet_examples
from .data.kv_retrieval import json_kv_examples, kv_examples
from .data.lost_in_the_middle import nq_examples, rag_examples
from .data.needle import needle_examples
from .data.recall import multikey_examples, multivalue_examples
from .defaults import NEEDLE_DEPTHS
from .labels import Example
from .toy.task import toy_examples, toy_needle_examples, toy_task_examples
from .errors import InputError

__all__ = ["Request", "Source", "SOURCES", "build", "load_examples"]


@dataclass(frozen=True)
class Request:
    """What to build; each source reads the fields of its shape (see the module docstring)."""

    path: str | Path | None = None
    """The data file (for ``haystack``, the text file to cut the filler from)."""
    selection: Selection = Selection()
    """Questions and gold positions of a multi-document QA source; its ``seed`` seeds every
    source, its ``limit`` also counts a HELMET file's examples."""
    tokenizer: Any = None
    lengths: Sequence[int] = ()
    """Context lengths in tokens of ``tokenizer`` (a task, a haystack)."""
    n: int = 10
    """Prompts per length (a task)."""
    depths: Sequence[int | float] = NEEDLE_DEPTHS.default
    """Needle depths in percent (a haystack)."""

    def at_lengths(self) -> dict:
        """The keyword arguments of a task builder."""
        if self.tokenizer is None or self.n < 1 or not self.lengths:
            raise InputError(f"a task needs a tokenizer, n >= 1 and at least one length (got n={self.n}, lengths={list(self.lengths)})")
        return dict(lengths=[int(x) for x in self.lengths], n=self.n, seed=self.selection.seed)


Builder = Callable[[Request], list[Example]]


@dataclass(frozen=True)
class Source:
    name: str
    build: Builder
    about: str
    file: Literal["required", "optional", None] = None
    """Whether ``Request.path`` is needed, may be given, or is not read."""


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source("nq", lambda r: nq_examples(r.path, r.selection),
               "lost-in-the-middle NQ file: the gold passage among retrieved distractors", "required"),
        Source("kv", lambda r: kv_examples(r.path, r.selection),
               "lost-in-the-middle key-value file: the asked pair among others", "required"),
        Source("facts", lambda r: facts_examples(r.selection), "made-up facts about people, in English"),
        Source("toy", lambda r: toy_examples(r.selection), "the toy model's synthetic multi-document QA"),
        Source("mk_needle", lambda r: multikey_examples(r.tokenizer, kind="number", **r.at_lengths()),
               "needles with word keys, one asked"),
        Source("mk_uuid", lambda r: multikey_examples(r.tokenizer, kind="uuid", **r.at_lengths()),
               "needles with UUID keys and values, one asked"),
        Source("mv", lambda r: multivalue_examples(r.tokenizer, **r.at_lengths()), "four values of one key in filler text"),
        Source("json_kv", lambda r: json_kv_examples(r.tokenizer, path=r.path, **r.at_lengths()),
               "a JSON object of pairs (from a key-value file, or generated UUIDs), one key asked", "optional"),
        Source("nq_rag", lambda r: rag_examples(r.path, r.tokenizer, distractors=r.selection.distractors, **r.at_lengths()),
               "NQ passages filling a length, one gold", "required"),
        Source("rerank", lambda r: rerank_examples(r.tokenizer, **r.at_lengths()), "made-up facts with document IDs, one query: rank them"),
        Source("icl", lambda r: icl_examples(r.tokenizer, **r.at_lengths()), "many labelled made-up facts, one more to label"),
        Source("long_qa", lambda r: longqa_examples(r.tokenizer, **r.at_lengths()), "a story of made-up facts, a free-form question"),
        Source("long_qa_mc", lambda r: longqa_examples(r.tokenizer, choices=True, **r.at_lengths()),
               "a story of made-up facts, a question with four options"),
        Source("toy_needle", lambda r: toy_task_examples("toy_needle", r.tokenizer, **r.at_lengths()),
               "toy vocabulary: one fact among filler facts"),
        Source("toy_qa", lambda r: toy_task_examples("toy_qa", r.tokenizer, **r.at_lengths()),
               "toy vocabulary: the toy's multi-document QA filling a length"),
        Source("haystack", lambda r: needle_examples(r.tokenizer, lengths=r.lengths, depths=r.depths, filler=r.path),
               "English needles at depths of a filler text (built in, or the text file given)", "optional"),
        Source("toy_haystack", lambda r: toy_needle_examples(r.tokenizer, lengths=r.lengths, depths=r.depths),
               "toy needles at depths of toy filler facts"),
        Source("helmet", lambda r: helmet_examples(r.path, limit=r.selection.limit), "a HELMET data file (recall, RULER or RAG)", "required"),
    )
}  # fmt: skip


def build(name: str, request: Request = Request(), *, missing: str | None = None) -> list[Example]:
    """The examples of source ``name`` for ``request``. ``missing``: the error when a required
    file is not given, worded for the caller (for example naming the option that gives it). An
    empty result is a :class:`DataError`."""
    if name not in SOURCES:
        raise InputError(f"unknown source {name!r}; choose one of {sorted(SOURCES)}")
    source = SOURCES[name]
    if source.file == "required" and request.path is None:
        raise InputError(missing or f"{name} needs a data file")
    if source.file is None and request.path is not None:
        raise InputError(f"{name} reads no file, got {request.path}")
    examples = source.build(request)
    if not examples:
        where = request.path if request.path is not None else name
        raise DataError(f"{where}: the selection is empty ({request.selection})")
    return examples


def file_kind(path: str | Path) -> Literal["nq", "kv"]:
    """Which lost-in-the-middle file ``path`` is, from its first record."""
    _, first = next(read_jsonl(path), (0, {}))
    return "kv" if "ordered_kv_records" in first else "nq"


def load_examples(data: str | Path, selection: Selection | None = None, *, task: Literal["nq", "kv"] | None = None, **fields) -> list[Example]:
    """Multi-document QA examples at gold positions: ``data`` is a built-in source (``"toy"``,
    ``"facts"``) or a lost-in-the-middle file, read as ``task`` (``nq`` or ``kv``; by default
    from the file's first record). ``selection``, or its ``fields`` given by name
    (:class:`~lens_focus.data.base.Selection`: ``n_docs``, ``gold_positions``, ``split``,
    ``seed``, ``limit``, ``variants``, ``distractors``), says which prompts.

    >>> load_examples("toy", limit=4, gold_positions=[1, 10, 20])
    """
    selection = replace(selection or Selection(), **fields)
    kind = str(data) if str(data) in ("toy", "facts") else task or file_kind(data)
    if selection.distractors != "random" and kind != "nq":
        raise InputError(f"{selection.distractors} distractors are drawn for NQ files only; {data} is {kind} data")
    return build(kind, Request(path=None if kind in ("toy", "facts") else data, selection=selection))
