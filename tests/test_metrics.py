import pytest

from lens_focus.metrics import best_subspan_em, normalize_answer


def test_normalize():
    assert normalize_answer("The  Röntgen, Wilhelm!") == "röntgen wilhelm"
    assert normalize_answer("an apple a day") == "apple day"


def test_best_subspan_em():
    assert best_subspan_em("It was Wilhelm Conrad Röntgen.", ["Wilhelm Conrad Röntgen"]) == 1.0
    assert best_subspan_em("the Beatles", ["Beatles", "x"]) == 1.0
    assert best_subspan_em("Röntgen", ["Wilhelm Conrad Röntgen"]) == 0.0
    assert best_subspan_em("anything", ["the"]) == 0.0  # an answer that normalises to nothing never matches


def _lcs_f1(prediction: str, answer: str) -> float:
    """ROUGE-L F1 written out: the longest common subsequence of lower-cased word tokens."""
    import re

    p, g = re.findall(r"[a-z0-9]+", prediction.lower()), re.findall(r"[a-z0-9]+", answer.lower())
    table = [[0] * (len(g) + 1) for _ in range(len(p) + 1)]
    for i, x in enumerate(p, 1):
        for j, y in enumerate(g, 1):
            table[i][j] = table[i - 1][j - 1] + 1 if x == y else max(table[i - 1][j], table[i][j - 1])
    lcs = table[-1][-1]
    return 0.0 if not lcs else 2 * lcs / (len(p) + len(g))


def test_rouge_l_is_helmets_and_the_plain_lcs_where_no_stem_differs():
    """ROUGE-L F1 comes from rouge-score with stemming, as HELMET scores long QA: equal to the LCS
    written out here where no word needs its stem, and above it where one does (lives / live)."""
    from lens_focus.metrics import rouge_l_f1

    for prediction, answer in [("Ines moved to Quito in spring", "Ines Varga moved to Quito"), ("nothing alike", "Quito"),
                               ("Quito, a city in Ecuador", "quito")]:  # fmt: skip
        assert rouge_l_f1(prediction, [answer]) == pytest.approx(_lcs_f1(prediction, answer), abs=1e-12)
    assert rouge_l_f1("She lives in Quito", ["she live in quito"]) == 1.0 > _lcs_f1("She lives in Quito", "she live in quito")
    assert rouge_l_f1("Quito", ["Lima", "Quito"]) == 1.0  # the best of several answers


def test_ndcg_is_trec_evals_and_the_textbook_formula():
    """NDCG@10 through pytrec_eval (trec_eval's ndcg_cut) equals the formula written out: the grade
    as gain, discounted by log2(rank + 1), over the ideal ordering; ids left out are not retrieved."""
    import math
    import random

    from lens_focus.metrics import ndcg_at_k

    def by_hand(ranking, qrels, k=10):
        dcg = sum(qrels.get(d, 0) / math.log2(r + 1) for r, d in enumerate(ranking[:k], 1))
        ideal = sorted((g for g in qrels.values() if g > 0), reverse=True)[:k]
        return dcg / sum(g / math.log2(r + 1) for r, g in enumerate(ideal, 1))

    rng = random.Random(0)
    for _ in range(50):
        docs = [str(i) for i in rng.sample(range(1000), 30)]
        qrels = {d: rng.choice([0, 0, 1, 2]) for d in docs}
        qrels[docs[0]] = 2
        ranking = rng.sample(docs, rng.randint(1, 30))
        assert ndcg_at_k(ranking, qrels) == pytest.approx(by_hand(ranking, qrels), abs=1e-9)
    assert ndcg_at_k([], {"1": 2}) == 0.0 and ndcg_at_k(["1"], {"1": 0}) == 0.0
