"""Random against on-topic distractors: the same questions under both kinds, EM by position and
its paired change, the heads compared, each number against an independent computation."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lens_focus.analyses import distractors as analysis
from lens_focus.answers import answer_examples
import lens_focus.commands.experiments  # noqa: F401  (registers every experiment)
from lens_focus.commands.declare import run_declared
from lens_focus.sources import load_examples

NQ = Path(__file__).resolve().parent / "data" / "nq-synthetic.jsonl.gz"
SELECTION = dict(limit=4, gold_positions=[1, 5], n_docs=5)


@pytest.fixture(scope="module")
def compared(llama, tmp_path_factory):
    out = tmp_path_factory.mktemp("distractors")
    summary = run_declared("compare-distractors", llama, out, nq=NQ, k=5, max_new_tokens=4, batch_size=8, log=lambda s: None, **SELECTION)
    return out, summary


def test_each_kind_answers_the_questions_its_selection_names(llama, compared):
    out, _ = compared
    answers = pd.read_csv(out / "answers.csv", keep_default_na=False)
    for kind in ("random", "bm25"):
        examples = load_examples(NQ, distractors=kind, variants=("long",), **SELECTION)
        expected = answer_examples(llama, examples, max_new_tokens=4, batch_size=8, progress=False)
        mine = answers[answers.distractors == kind]
        assert list(mine.id) == [a.example.id for a in expected] and list(mine.em) == [a.em for a in expected]
        assert list(mine.response) == [a.response for a in expected]
    random_docs = {s.text for e in load_examples(NQ, distractors="random", **SELECTION) for s in e.segments if s.name and s.name.startswith("doc_")}
    bm25_docs = {s.text for e in load_examples(NQ, distractors="bm25", **SELECTION) for s in e.segments if s.name and s.name.startswith("doc_")}
    assert random_docs != bm25_docs  # the two kinds put other documents beside the gold one


def test_em_and_its_paired_change_recompute_from_the_answers(compared):
    out, _ = compared
    answers = pd.read_csv(out / "answers.csv", keep_default_na=False)
    em = pd.read_csv(out / "em.csv", dtype={"gold_position": str})
    for r in em.itertuples():
        g = answers[answers.distractors == r.distractors]
        g = g if r.gold_position == "all" else g[g.gold_position.astype(str) == r.gold_position]
        assert r.em == pytest.approx(g.em.mean()) and r.n == len(g) and r.em_low <= r.em <= r.em_high
    paired = pd.read_csv(out / "paired.csv", dtype={"gold_position": str}).set_index("gold_position")
    by = {k: answers[answers.distractors == k].set_index(["question_id", "gold_position"]).em for k in ("random", "bm25")}
    diff = (by["bm25"] - by["random"]).dropna()
    assert paired.loc["all", "diff"] == pytest.approx(diff.mean()) and paired.loc["all", "n"] == len(diff) == 8
    assert paired.loc["all", "questions"] == 4
    for position in ("1", "5"):
        d = diff[diff.index.get_level_values(1).astype(str) == position]
        assert paired.loc[position, "diff"] == pytest.approx(d.mean())


def test_the_heads_compared_recompute_from_the_score_files(compared):
    out, summary = compared
    tables = {k: pd.read_csv(out / f"scores_{k}.csv") for k in ("random", "bm25")}
    wide = {k: t[(t.condition == "long") & (t.span == "relevant")].set_index(["layer", "head"]).score for k, t in tables.items()}
    tops = {k: set(s.sort_values(ascending=False).index[:5]) for k, s in wide.items()}
    overlap = pd.read_csv(out / "overlap.csv").iloc[0]
    assert overlap.shared == len(tops["random"] & tops["bm25"]) and overlap.n_heads == len(wide["random"])
    rho = stats.spearmanr(wide["random"].sort_index(), wide["bm25"].sort_index()).statistic
    assert overlap.spearman_relevant == pytest.approx(rho)
    heads = pd.read_csv(out / "heads.csv").set_index("distractors")
    for k, s in wide.items():
        assert heads.loc[k, "top_relevant"] == pytest.approx(s.loc[list(tops[k])].mean())
    assert summary["skipped"].keys() == {"random", "bm25"}


def test_without_an_nq_file_the_step_says_it_did_not_run(llama, tmp_path):
    summary = run_declared("compare-distractors", llama, tmp_path, log=lambda s: None, **SELECTION)
    assert summary["not_run"] == "no NQ file given (nq)" and not (tmp_path / "em.csv").exists()


def test_the_readme_paragraph_reads_its_numbers_from_the_files(compared, tmp_path):
    import shutil

    from lens_focus.analyses.findings import distractor_kinds

    out, _ = compared
    step = tmp_path / "distractor_kinds"
    shutil.copytree(out, step)
    assert distractor_kinds(tmp_path) is None  # not a finished reproduce step
    (step / "done.json").write_text("{}")
    text = distractor_kinds(tmp_path)
    a = pd.read_csv(out / "paired.csv", dtype={"gold_position": str}).set_index("gold_position").loc["all"]
    o = pd.read_csv(out / "overlap.csv").iloc[0]
    assert f"EM {a.random:.3f} with random distractors, {a.bm25:.3f} with BM25's, {a['diff']:+.3f}" in text
    assert f"share {int(o.shared)} of 5" in text and "The same 4 NQ questions at gold positions 1, 5 among 5 documents" in text
