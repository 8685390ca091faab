"""Answer metrics (docs/method.md §5)."""
from __future__ import annotations

import re
import string
from functools import cache
from typing import Sequence

from .errors import InputError

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
        raise InputError("no gold values to recall")
    pred = prediction.lower()
    return sum(a.lower() in pred for a in answers) / len(answers)


@cache
def _rouge(kind: str):
    from rouge_score import rouge_scorer  # imported on first use: only ROUGE-graded tasks need it (and nltk, slow to import)

    return rouge_scorer.RougeScorer([kind], use_stemmer=True)


def rouge_l_f1(prediction: str, answers: Sequence[str]) -> float:
    """ROUGE-L F1 against the best of ``answers``, as HELMET scores long QA: the ``rouge-score``
    library, with Porter stemming (so *lives* and *live* match)."""
    if not answers:
        raise InputError("no gold answers to compare with")
    return max(_rouge("rougeL").score(answer, prediction)["rougeL"].fmeasure for answer in answers)


def parse_after(prediction: str, prefix: str) -> str:
    """The first line of ``prediction`` with a leading ``prefix`` (such as ``label:``) removed,
    however it is cased."""
    line = next((line for line in prediction.strip().splitlines() if line.strip()), "")
    line = line.strip()
    return line[len(prefix):].strip() if line.lower().startswith(prefix.lower()) else line


def label_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when the answer's first line (``label:`` removed) is, normalised, one of ``answers``
    (HELMET's in-context-learning metric: exact match of the label)."""
    got = normalize_answer(parse_after(prediction, "label:"))
    return float(any(got == normalize_answer(a) for a in answers))


def choice_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """Multiple choice: ``answers`` is ``[letter, "letter. option"]``. 1.0 when the answer's first
    line (``Answer:`` removed) starts with the letter as a word, or the answer holds the lettered
    option (HELMET's multiple-choice metric)."""
    letter, option = answers[0], answers[1] if len(answers) > 1 else answers[0]
    first = parse_after(prediction, "answer:")
    return float(re.match(rf"\(?{re.escape(letter)}\b", first, flags=re.I) is not None or option.lower() in prediction.lower())


def parse_ranking(prediction: str) -> list[str]:
    """Document ids in the order a ranking names them (``[ID: 3] > 1 > ID7`` gives 3, 1, 7): the
    longest run of integers joined by ``>``, each id kept at its first place."""
    text = re.sub(r"[\[\]:]", "", prediction).lower().replace("id", "")
    runs = [m.group(0) for m in re.finditer(r"\d+(?:\s*>\s*\d+)*", text)]
    if not runs:
        return []
    return list(dict.fromkeys(x.strip() for x in max(runs, key=len).split(">")))


def ndcg_at_k(ranking: Sequence[str], qrels: dict[str, int], k: int = 10) -> float:
    """NDCG@k of a ranking of document ids against graded relevance ``qrels`` (id: grade), by
    trec_eval's ``ndcg_cut`` through ``pytrec_eval``, as HELMET scores re-ranking: the ranking's
    first id gets the highest run score. Ids the ranking leaves out count as not retrieved; 0.0
    when no document is relevant or nothing is ranked."""
    import pytrec_eval  # imported on first use: only the re-ranking task needs it

    if not ranking or not any(g > 0 for g in qrels.values()):
        return 0.0
    run = {"q": {doc: float(len(ranking) - i) for i, doc in enumerate(ranking)}}
    evaluator = pytrec_eval.RelevanceEvaluator({"q": {doc: int(g) for doc, g in qrels.items()}}, {f"ndcg_cut.{k}"})
    return float(evaluator.evaluate(run)["q"][f"ndcg_cut_{k}"])
