"""What every data source shares: reading jsonl files, checking fields, the seeded question split,
gold positions, and assembling an :class:`~lens_focus.labels.Example` from documents."""
from __future__ import annotations

import gzip
import json
import random
import uuid
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence, TypeVar, get_args

from ..errors import InputError
from ..defaults import GOLD_POSITIONS, N_DOCS, Distractors, Split
from ..labels import Example, Segment, Variant

T = TypeVar("T")


class DataError(InputError):
    """Bad input data; the message names the file and line or the example."""


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)`` from a ``.jsonl`` or ``.jsonl.gz`` file (1-based lines).
    A file with no object, or one that cannot be read as (gzipped) text, is a :class:`DataError`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    seen = False
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{lineno}: malformed JSON ({e.msg})") from None
                if not isinstance(obj, dict):
                    raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
                seen = True
                yield lineno, obj
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable {'gzipped ' if opener is gzip.open else ''}JSON-lines file ({e})") from None
    if not seen:
        raise DataError(f"{path}: the file is empty (no JSON object in it)")


def require(obj: dict, key: str, kind: type, where: str):
    """``obj[key]`` checked to be of ``kind``; a :class:`DataError` naming ``where`` otherwise."""
    if key not in obj:
        raise DataError(f"{where}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, kind):
        raise DataError(f"{where}: field {key!r} should be {kind.__name__}, got {type(value).__name__}")
    return value


def split_indices(n: int, split: Split, seed: int) -> list[int]:
    """A seeded 50/50 split of ``range(n)``: the same questions land in ``train`` whatever the limit."""
    if split == "all":
        return list(range(n))
    order = list(range(n))
    random.Random(seed).shuffle(order)
    half = set(order[: n // 2])
    if split == "train":
        return [i for i in range(n) if i in half]
    if split == "test":
        return [i for i in range(n) if i not in half]
    raise InputError(f"split must be 'train', 'test' or 'all', got {split!r}")


def check_positions(gold_positions: Sequence[int], n_docs: int) -> tuple[int, ...]:
    positions = tuple(int(p) for p in gold_positions)
    if n_docs < 1:
        raise InputError(f"n_docs must be at least 1, got {n_docs}")
    bad = [p for p in positions if not 1 <= p <= n_docs]
    if bad or not positions:
        raise InputError(f"gold positions {list(positions)} must be non-empty and lie in 1..{n_docs} (n_docs)")
    return positions


@dataclass(frozen=True)
class Selection:
    """Which prompts a multi-document QA source builds (Figures 2–4, Table 1): ``limit`` questions
    of ``split`` (split with ``seed``; None: the source's default count), each as the ``variants``
    asked for: ``long`` with the relevant document at each of ``gold_positions`` among ``n_docs``,
    ``gold`` (the relevant document alone), ``negative`` (the other documents alone). The positions
    are checked when a selection is made."""

    n_docs: int = N_DOCS.default
    gold_positions: Sequence[int] = GOLD_POSITIONS.default
    split: Split = "test"
    seed: int = 0
    limit: int | None = None
    variants: Sequence[Variant] = ("long", "gold")
    distractors: Distractors = "random"
    """NQ files without their own distractors: which other gold passages fill the prompt
    (:data:`Distractors`)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "gold_positions", check_positions(GOLD_POSITIONS.check(tuple(self.gold_positions)), N_DOCS.check(self.n_docs)))
        object.__setattr__(self, "variants", tuple(self.variants))
        if self.distractors not in get_args(Distractors):
            raise InputError(f"distractors must be one of {', '.join(get_args(Distractors))}, got {self.distractors!r}")

    def prompts(self, long: Callable[[int], T], gold: Callable[[], T], negative: Callable[[], T]) -> list[T]:
        """One question's prompts, in order: ``long(p)`` for each gold position ``p``, ``gold()``,
        ``negative()``, each only if its variant is selected."""
        out = [long(p) for p in self.gold_positions] if "long" in self.variants else []
        out += [gold()] if "gold" in self.variants else []
        return out + ([negative()] if "negative" in self.variants else [])


def assemble(
    *,
    example_id: str,
    head: Sequence[Segment],
    documents: Sequence[str],
    sep: str,
    tail: Sequence[Segment],
    relevant_index: int | Sequence[int] | None,
    answers: Sequence[str],
    variant: Variant,
    meta: dict,
    reply_start: str = "",
) -> Example:
    """An Example whose documents ``doc_1 … doc_N`` sit between ``head`` and ``tail`` segments;
    ``relevant_index`` is the 1-based relevant document, several of them, or None."""
    segments = list(head)
    for i, doc in enumerate(documents, start=1):
        if i > 1:
            segments.append(Segment(sep))
        segments.append(Segment(doc, f"doc_{i}"))
    segments.extend(tail)
    if relevant_index is None:
        relevant = None
    elif isinstance(relevant_index, int):
        relevant = f"doc_{relevant_index}"
    else:
        relevant = tuple(f"doc_{i}" for i in relevant_index)
    return Example(
        id=example_id,
        segments=tuple(segments),
        relevant=relevant,
        answers=tuple(answers),
        variant=variant,
        reply_start=reply_start,
        meta={**meta, "n_docs": len(documents), "gold_position": relevant_index},
    )


def fit_count(tokenizer, units: Sequence[str], n_tokens: int, *, sep: str = "\n", where: str = "data") -> int:
    """How many of ``units`` (in order) fit in about ``n_tokens`` tokens when joined by ``sep``
    (each unit counted as it appears: after the separator, but for the first). A
    :class:`DataError` when not even one fits, or when all do with room to spare (too few units
    for the length)."""
    total = 0
    for n, unit in enumerate(units):
        total += len(tokenizer(sep + unit if n else unit, add_special_tokens=False).input_ids)
        if total > n_tokens:
            if n == 0:
                raise DataError(f"{where}: a context of {n_tokens} tokens holds not even one item ({total} tokens)")
            return n
    if total < 0.9 * n_tokens:
        raise DataError(f"{where}: {len(units)} items make only {total} tokens, short of a context of {n_tokens}")
    return len(units)


def random_uuid(rng: random.Random) -> str:
    """A version-4 UUID string drawn from ``rng`` (seeded, unlike :func:`uuid.uuid4`)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def spread(i: int, n: int, count: int) -> int:
    """The 0-based slot of sample ``i`` of ``n`` when the samples spread evenly over ``count``
    slots (first and last included): where the relevant item of a task's sample goes."""
    return round(i * (count - 1) / (n - 1)) if n > 1 else (count - 1) // 2


def place_relevant(tokenizer, relevant: str, others: Sequence[str], n_tokens: int, *, i: int, n: int, sep: str, where: str) -> tuple[list[str], int, int]:
    """The documents of sample ``i`` of ``n``: as many of ``relevant`` and then ``others`` as fit
    about ``n_tokens`` (:func:`fit_count`), the relevant one moved to the :func:`spread` slot.
    Returns the documents, the relevant one's 1-based index and its depth in percent."""
    units = [relevant, *others]
    count = fit_count(tokenizer, units, n_tokens, sep=sep, where=where)
    gold = spread(i, n, count)
    docs = units[1:count]
    docs.insert(gold, relevant)
    return docs, gold + 1, round(100 * gold / max(count - 1, 1))
