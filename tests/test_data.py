import gzip
import json

import pytest

from lens_focus.data import DataError, split_indices
from lens_focus.sources import load_examples
from lens_focus.data.lost_in_the_middle import INSTRUCTION
from lens_focus.metrics import normalize_answer


def test_nq_prompts_follow_the_template(nq_path):
    exs = load_examples(nq_path, limit=3, variants=("long", "gold", "negative"))
    assert len(exs) == 3 * (5 + 1 + 1)
    long = [e for e in exs if e.variant == "long"]
    assert [e.meta["gold_position"] for e in long[:5]] == [1, 5, 10, 15, 20]
    e = long[1]
    lines = e.text.split("\n")
    assert lines[0] == INSTRUCTION and lines[1] == ""
    assert all(lines[2 + i].startswith(f"Document [{i + 1}](Title: ") for i in range(20))
    assert lines[22] == "" and lines[23].startswith("Question: ") and lines[24] == "Answer:"
    assert e.relevant == "doc_5" and len(e.documents) == 20
    gold = next(x for x in exs if x.variant == "gold" and x.question_id == e.question_id)
    gold_doc = next(s.text for s in gold.segments if s.name == "doc_1").split(") ", 1)[1]
    assert next(s.text for s in e.segments if s.name == "doc_5").endswith(gold_doc)
    neg = next(x for x in exs if x.variant == "negative" and x.question_id == e.question_id)
    assert neg.relevant is None and len(neg.documents) == 19


def test_oracle_distractors_never_contain_an_answer(nq_path):
    for e in load_examples(nq_path, limit=15, gold_positions=[1]):
        if e.variant != "long":
            continue
        for seg in e.segments:
            if seg.name and seg.name.startswith("doc_") and seg.name != e.relevant:
                text = normalize_answer(seg.text)
                assert not any(normalize_answer(a) in text for a in e.answers), (e.id, seg.name)


def test_split_is_seeded_disjoint_and_independent_of_limit(nq_path):
    train, test = split_indices(2655, "train", 0), split_indices(2655, "test", 0)
    assert not set(train) & set(test) and len(train) + len(test) == 2655
    assert split_indices(2655, "test", 1) != test
    a = load_examples(nq_path, limit=2, split="train")
    b = load_examples(nq_path, limit=4, split="train")
    assert [e.id for e in a] == [e.id for e in b[: len(a)]]
    assert [e.text for e in a] == [e.text for e in b[: len(a)]]  # same distractors whatever the limit
    assert not {e.question_id for e in a} & {e.question_id for e in load_examples(nq_path, limit=50)}


def test_retrieved_distractor_files(tmp_path):
    path = tmp_path / "nq-20.jsonl.gz"
    ctxs = [{"title": f"T{i}", "text": f"text {i}", "hasanswer": False, "isgold": False} for i in range(19)]
    ctxs.insert(3, {"title": "Gold", "text": "the answer is Paris", "hasanswer": True, "isgold": True})
    with gzip.open(path, "wt") as f:
        for q in range(4):
            f.write(json.dumps({"question": f"q{q}?", "answers": ["Paris"], "ctxs": ctxs}) + "\n")
    exs = load_examples(path, split="all", gold_positions=[2], n_docs=5)
    e = exs[0]
    docs = [s.text for s in e.segments if s.name and s.name.startswith("doc_")]
    assert docs == ["Document [1](Title: T0) text 0", "Document [2](Title: Gold) the answer is Paris",
                    "Document [3](Title: T1) text 1", "Document [4](Title: T2) text 2", "Document [5](Title: T3) text 3"]


def test_kv_examples(kv_path):
    exs = load_examples(kv_path, limit=2, n_docs=10, gold_positions=[1, 10])
    e = next(x for x in exs if x.variant == "long" and x.meta["gold_position"] == 10)
    key = json.loads(e.text.split("Key: ")[1].split("\n")[0])
    gold = next(s.text for s in e.segments if s.name == "doc_10")
    assert gold.startswith(json.dumps(key)) and e.answers[0] in gold
    assert e.text.startswith("Extract the value corresponding to the specified key in the JSON object below.\n\nJSON data:\n{")
    assert e.text.endswith("\nCorresponding value:") and len(e.documents) == 10


def test_bad_input(tmp_path, nq_path):
    with pytest.raises(FileNotFoundError, match="data file not found: .*missing.jsonl"):
        load_examples(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answers": ["a"], "ctxs": [{"title": "t", "text": "x"}]}\n{not json\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: malformed JSON"):
        load_examples(bad)
    bad.write_text('{"question": "q", "ctxs": []}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:1: missing field 'answers'"):
        load_examples(bad)
    with pytest.raises(DataError, match="selection is empty"):
        load_examples(nq_path, limit=0)
    with pytest.raises(ValueError, match=r"gold positions \[25\] must .* 1..20"):
        load_examples(nq_path, gold_positions=[25])


def test_bm25_distractors_are_those_most_like_the_question(nq_path):
    """--distractors bm25: the documents beside the gold one are the pool's passages BM25 ranks
    highest against the question (computed here by hand with the same library), without the
    answer, most alike first; deterministic; only for NQ data."""
    import bm25s

    from lens_focus.data.lost_in_the_middle import _read

    records = _read(nq_path)
    pool = list(dict.fromkeys(r["gold"] for r in records))
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([f"{t} {x}" for t, x in pool], stopwords="en", show_progress=False), show_progress=False)
    kw = dict(limit=3, n_docs=4, gold_positions=[1], variants=("long",))
    ranked = load_examples(nq_path, distractors="bm25", **kw)
    assert ranked == load_examples(nq_path, distractors="bm25", **kw)  # deterministic
    randomly = load_examples(nq_path, **kw)
    assert [e.segments for e in ranked] != [e.segments for e in randomly]
    by_question = {r["question"]: r for r in records}
    for ex in ranked:
        question = next(s.text for s in ex.segments if s.name == "question").removeprefix("Question: ")
        rec = by_question[question]
        scores = retriever.get_scores(bm25s.tokenize([question], stopwords="en", return_ids=False, show_progress=False)[0])
        expected = [pool[i] for i in sorted(range(len(pool)), key=lambda i: (-scores[i], i))
                    if pool[i] != rec["gold"] and not any(normalize_answer(a) in normalize_answer(f"{pool[i][0]} {pool[i][1]}") for a in rec["answers"])][:3]  # fmt: skip
        docs = [s.text for s in ex.segments if (s.name or "").startswith("doc_")][1:]  # the gold document first (position 1)
        assert docs == [f"Document [{i}](Title: {t}) {x}" for i, (t, x) in enumerate(expected, start=2)]
    with pytest.raises(ValueError, match="bm25 distractors are drawn for NQ files only; toy is toy data"):
        load_examples("toy", distractors="bm25", limit=1)
