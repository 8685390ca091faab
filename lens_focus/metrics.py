"""Answer metrics (docs/method.md §5)."""
from __future__ import annotations

import re
import string
from typing import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation, drop the articles a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def best_subspan_em(prediction: str, answers: Sequence[str]) -> float:
    """1.0 if any normalised gold answer is a substring of the normalised prediction, else 0.0."""
    pred = normalize_answer(prediction)
    for answer in answers:
        gold = normalize_answer(answer)
        if gold and gold in pred:
            return 1.0
    return 0.0


def substring_recall(prediction: str, answers: Sequence[str]) -> float:
    """The share of gold values that occur in the prediction, lower-cased, unnormalised (how
    HELMET grades RULER's recall tasks: every value of a multi-value question counts)."""
    if not answers:
        raise ValueError("no gold values to recall")
    pred = prediction.lower()
    return sum(a.lower() in pred for a in answers) / len(answers)
