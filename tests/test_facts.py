"""The facts task: English facts about made-up people, with a fixed start of the reply."""
import re

import pytest

from lens_focus import label, load_examples
from lens_focus.data import facts



def _pattern(template: str) -> re.Pattern:
    literal = re.escape(template).replace(re.escape("{p}"), "{p}").replace(re.escape("{v}"), "{v}")
    return re.compile(literal.format(p=r"(?P<p>[A-Z]\w+ [A-Z]\w+)", v=r"(?P<v>\w+)") + "$")


FACT = {a.name: [_pattern(t) for t in a.templates] for a in facts.ATTRIBUTES}


def parse(document: str) -> tuple[str, str, str]:
    """(person, attribute, value) read back from a document line, by its templates."""
    body = document.split(": ", 1)[1]
    found = [(m["p"], name, m["v"]) for name, pats in FACT.items() for pat in pats if (m := pat.match(body))]
    assert len(found) == 1, (document, found)
    return found[0]


def docs_of(example):
    return [s.text for s in example.segments if s.name and s.name.startswith("doc_")]


def test_prompts_state_one_matching_fact_and_hard_distractors():
    examples = load_examples("facts", limit=40, variants=("long", "gold", "negative"))
    same_person = same_attribute = 0
    for ex in examples:
        attr = ex.meta["attribute"]
        stated = [parse(d) for d in docs_of(ex)]
        asked = re.search(r"Question: (.*)$", ex.text)[1]
        attribute = facts.BY_NAME[attr]
        person = re.fullmatch(attribute.question.format(p="(.+)").replace("?", r"\?"), asked)[1]
        assert ex.reply_start == attribute.reply.format(p=person)
        matching = [i for i, (p, a, _) in enumerate(stated, start=1) if (p, a) == (person, attr)]
        value_docs = [i for i, (_, _, v) in enumerate(stated, start=1) if v == ex.answers[0]]
        if ex.variant == "negative":
            assert ex.relevant is None and not matching and not value_docs and len(stated) == 19
            continue
        pos = ex.meta["gold_position"]
        assert matching == value_docs == [pos] and ex.relevant == f"doc_{pos}"
        assert len(stated) == (1 if ex.variant == "gold" else 20)
        same_person += sum(p == person for p, _, _ in stated) - 1
        same_attribute += sum(a == attr for _, a, _ in stated) - 1
        assert len({(p, a) for p, a, _ in stated}) == len(stated)
    assert same_person > 100 and same_attribute > 100  # a third each over 200 long prompts × 19 others


def test_long_prompts_of_a_question_differ_only_in_where_the_gold_document_sits():
    examples = load_examples("facts", limit=3, gold_positions=(1, 7, 20))
    for qid in {e.question_id for e in examples}:
        longs = [e for e in examples if e.question_id == qid and e.variant == "long"]
        gold = docs_of([e for e in examples if e.question_id == qid and e.variant == "gold"][0])[0]
        bodies = []
        for e in longs:
            texts = [d.split(": ", 1)[1] for d in docs_of(e)]
            assert texts[e.meta["gold_position"] - 1] == gold.split(": ", 1)[1]
            bodies.append([t for t in texts if t != gold.split(": ", 1)[1]])
        assert bodies[0] == bodies[1] == bodies[2]


def test_split_is_disjoint_and_seeded():
    def asked(split, seed=0):
        return {(e.reply_start, e.meta["attribute"]) for e in load_examples("facts", split=split, seed=seed, limit=150, variants=("gold",))}

    train, test = asked("train"), asked("test")
    assert train and test and not train & test
    first = load_examples("facts", limit=5, seed=3)
    assert first == load_examples("facts", limit=5, seed=3)
    assert [e.text for e in first] == [e.text for e in load_examples("facts", limit=5, seed=3)]
    assert [e.text for e in first] != [e.text for e in load_examples("facts", limit=5, seed=4)]
    assert len(load_examples("facts")) == 200 * 6  # 200 questions by default, 5 positions + gold


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_reply_start_is_part_of_the_prompt_and_its_own_span(models, arch):
    tok = models[arch].tokenizer
    ex = load_examples("facts", limit=1, gold_positions=(3,))[0]
    seq = label(ex, tok, " Lima.")
    assert seq.prompt.endswith(ex.reply_start) and seq.response == " Lima."
    (start, end), = seq.token_spans["reply_start"]
    assert end == seq.n_prompt and seq.rows("generation").start == end - 1
    assert tok.decode(list(seq.input_ids[start:end])).strip() == ex.reply_start
    (cs, ce), = seq.char_spans["relevant"]
    assert seq.text[cs:ce] == docs_of(ex)[2]
    if arch == "qwen2":  # the reply start follows the template's generation prompt
        assert seq.prompt.endswith("<|im_start|>assistant\n" + ex.reply_start)
