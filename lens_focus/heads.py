"""Heads as ``(layer, head)`` pairs: ranking by contextual score, random controls, JSON files."""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import NamedTuple, Sequence

import pandas as pd
from .errors import InputError


class Head(NamedTuple):
    layer: int
    head: int

    def __str__(self) -> str:
        return f"L{self.layer}H{self.head}"


def rank_heads(scores: pd.DataFrame, *, condition: str = "long", span: str = "relevant") -> list[Head]:
    """All heads, highest score first (ties broken by layer, then head)."""
    sel = scores[(scores.condition == condition) & (scores.span == span)]
    if sel.empty:
        raise InputError(f"no scores for condition {condition!r}, span {span!r} to rank heads by")
    sel = sel.sort_values(["score", "layer", "head"], ascending=[False, True, True])
    return [Head(int(l), int(h)) for l, h in zip(sel["layer"], sel["head"])]


def top_heads(scores: pd.DataFrame, k: int, *, condition: str = "long", span: str = "relevant") -> list[Head]:
    """The ``k`` contextual heads: the highest ``span`` scores under ``condition``."""
    return rank_heads(scores, condition=condition, span=span)[:k]


def random_heads(n_layers: int, n_heads: int, k: int, *, seed: int, layers: Sequence[int] | None = None) -> list[Head]:
    """``k`` distinct heads drawn uniformly (seeded): the control for top-k experiments; from the
    ``layers`` with attention when given (a hybrid model's), else from every layer."""
    all_heads = [Head(l, h) for l in (range(n_layers) if layers is None else layers) for h in range(n_heads)]
    if not 0 <= k <= len(all_heads):
        raise InputError(f"cannot draw {k} heads from {len(all_heads)}")
    return random.Random(seed).sample(all_heads, k)


def save_heads(heads: Sequence[Head], path: str | Path) -> None:
    Path(path).write_text(json.dumps([[int(l), int(h)] for l, h in heads]) + "\n")


def load_heads(path: str | Path, *, n_layers: int | None = None, n_heads: int | None = None) -> list[Head]:
    """Read ``[[layer, head], ...]``: pairs of whole numbers, no head twice, each in the model's
    shape when given; anything else is an error naming the file and the entry."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"heads file not found: {path}")
    try:
        raw = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not JSON ({e}); a heads file is a JSON list of [layer, head] pairs") from None
    if not isinstance(raw, list) or not raw:
        raise InputError(f"{path}: expected a non-empty JSON list of [layer, head] pairs, got {type(raw).__name__}")
    heads: list[Head] = []
    for i, pair in enumerate(raw):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in pair)):
            raise InputError(f"{path}: entry {i} is {json.dumps(pair)}, not a [layer, head] pair of whole numbers")
        head = Head(*pair)
        if head in heads:
            raise InputError(f"{path}: head {list(head)} is listed twice (entries {heads.index(head)} and {i})")
        if min(head) < 0 or (n_layers is not None and head.layer >= n_layers) or (n_heads is not None and head.head >= n_heads):
            raise InputError(f"{path}: head {list(head)} does not exist in a model of {n_layers} layers × {n_heads} heads")
        heads.append(head)
    return heads
