import pytest

from lens_focus.data import DataError, Selection
from lens_focus.data.fact_tasks import icl_examples, longqa_examples, rerank_examples
from lens_focus.data.facts import facts_examples
from lens_focus.data.helmet import helmet_examples
from lens_focus.data.kv_retrieval import json_kv_examples, kv_examples
from lens_focus.data.lost_in_the_middle import nq_examples, rag_examples
from lens_focus.data.needle import needle_examples
from lens_focus.data.recall import multikey_examples, multivalue_examples
from lens_focus.sources import SOURCES, Request, build, load_examples
from lens_focus.tasks import TASKS
from lens_focus.toy.task import toy_examples, toy_needle_examples, toy_task_examples

SELECTION = Selection(n_docs=3, gold_positions=(1, 3), limit=2, seed=4, split="train", variants=("long", "gold", "negative"))
LENGTHS = dict(lengths=(400,), n=2, seed=4)


def direct(name, tok, nq, kv):
    """Each source built by calling its builder by hand, with the same settings as :func:`requests`."""
    return {
        "nq": lambda: nq_examples(nq, SELECTION),
        "kv": lambda: kv_examples(kv, SELECTION),
        "facts": lambda: facts_examples(SELECTION),
        "toy": lambda: toy_examples(SELECTION),
        "mk_needle": lambda: multikey_examples(tok, kind="number", **LENGTHS),
        "mk_uuid": lambda: multikey_examples(tok, kind="uuid", **LENGTHS),
        "mv": lambda: multivalue_examples(tok, **LENGTHS),
        "json_kv": lambda: json_kv_examples(tok, path=kv, **LENGTHS),
        "nq_rag": lambda: rag_examples(nq, tok, lengths=(3000,), n=2, seed=4),
        "rerank": lambda: rerank_examples(tok, **LENGTHS),
        "icl": lambda: icl_examples(tok, **LENGTHS),
        "long_qa": lambda: longqa_examples(tok, **LENGTHS),
        "long_qa_mc": lambda: longqa_examples(tok, choices=True, **LENGTHS),
        "toy_needle": lambda: toy_task_examples("toy_needle", tok, **LENGTHS),
        "toy_qa": lambda: toy_task_examples("toy_qa", tok, lengths=(80,), n=2, seed=4),
        "haystack": lambda: needle_examples(tok, lengths=(400,), depths=(0, 50)),  # needles take no seed
        "toy_haystack": lambda: toy_needle_examples(tok, lengths=(400,), depths=(0, 50)),
    }[name]()


def request(name, tok, nq, kv) -> Request:
    files = {"nq": nq, "kv": kv, "json_kv": kv, "nq_rag": nq}
    if name in ("nq", "kv", "facts", "toy"):
        return Request(path=files.get(name), selection=SELECTION)
    if name in ("haystack", "toy_haystack"):
        return Request(tokenizer=tok, lengths=(400,), depths=(0, 50))
    lengths = {"nq_rag": (3000,), "toy_qa": (80,)}.get(name, (400,))
    return Request(path=files.get(name), selection=Selection(seed=4), tokenizer=tok, lengths=lengths, n=2)


@pytest.mark.parametrize("name", sorted(set(SOURCES) - {"helmet"}))
def test_every_source_builds_what_its_builder_builds(name, models, nq_path, kv_path):
    tok = models["llama"].tokenizer
    got = build(name, request(name, tok, nq_path, kv_path))
    want = direct(name, tok, nq_path, kv_path)
    assert got == want and len(got) >= 2  # same ids, segments, relevant documents and answers, in order


def test_helmet_source_reads_the_file(tmp_path):
    path = tmp_path / "json_kv.jsonl"
    record = '{"context": "{\\"k1\\": \\"v1\\", \\"k2\\": \\"v2\\"}", "question": "\\"k2\\"", "answer": "v2"}\n'
    path.write_text(record * 3)
    got = build("helmet", Request(path=path, selection=Selection(limit=2)))
    assert got == helmet_examples(path, limit=2) and len(got) == 2 and got[0].answers == ("v2",)


def test_files_are_asked_for_and_refused_by_what_each_source_reads(nq_path):
    with pytest.raises(ValueError, match="nq needs a data file"):
        build("nq", Request())
    with pytest.raises(ValueError, match="the NQ file"):
        build("nq_rag", Request(tokenizer=object(), lengths=(10,)), missing="task nq needs the NQ file")
    with pytest.raises(ValueError, match="facts reads no file"):
        build("facts", Request(path=nq_path))
    with pytest.raises(ValueError, match="unknown source 'hotpot'"):
        build("hotpot", Request())
    with pytest.raises(ValueError, match="tokenizer, n >= 1 and at least one length"):
        build("mk_needle", Request(lengths=(400,)))


def test_an_empty_selection_names_the_file(nq_path):
    with pytest.raises(DataError, match=f"{nq_path.name}: the selection is empty"):
        build("nq", Request(path=nq_path, selection=Selection(limit=1, variants=())))


def test_load_examples_reads_the_kind_from_the_file(nq_path, kv_path):
    kv = load_examples(kv_path, n_docs=3, gold_positions=(1, 3), limit=2)
    assert kv == kv_examples(kv_path, Selection(n_docs=3, gold_positions=(1, 3), limit=2))
    nq = load_examples(nq_path, Selection(n_docs=3, gold_positions=(1,), limit=2), gold_positions=(2,))  # fields by name replace the selection's
    assert nq == nq_examples(nq_path, Selection(n_docs=3, gold_positions=(2,), limit=2)) and len(nq) == 4


def test_a_selection_checks_its_positions_and_orders_the_prompts():
    with pytest.raises(ValueError, match=r"gold positions \[4\] must be non-empty and lie in 1..3"):
        Selection(n_docs=3, gold_positions=[4])
    s = Selection(n_docs=3, gold_positions=[3, 1], variants=["negative", "long", "gold"])
    assert s.gold_positions == (3, 1) and s.prompts(lambda p: f"p{p}", lambda: "gold", lambda: "neg") == ["p3", "p1", "gold", "neg"]
    assert Selection(variants=("gold",)).prompts(lambda p: 1 / 0, lambda: "gold", lambda: 1 / 0) == ["gold"]


def test_every_task_has_a_registered_source():
    assert {t.source or t.name for t in TASKS.values()} <= set(SOURCES)
    assert all(s.about and s.name == key for key, s in SOURCES.items())
