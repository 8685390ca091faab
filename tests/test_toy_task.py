import pytest

from lens_focus import label, load_examples
from lens_focus.toy import task
from lens_focus.toy.train import Recipe, encode, make_tokenizer, training_batch


@pytest.fixture(scope="module")
def word_tokenizer(tmp_path_factory):
    return make_tokenizer(tmp_path_factory.mktemp("toytok"))


def test_toy_prompts_have_the_real_structure(word_tokenizer):
    exs = load_examples("toy", limit=3, n_docs=20, variants=("long", "gold", "negative"))
    assert len(exs) == 3 * 7
    e = exs[1]
    assert e.variant == "long" and e.relevant == "doc_5" and len(e.documents) == 20
    lines = e.text.split("\n")
    assert lines[0] == task.INSTRUCTION and lines[-1].startswith("question : ")
    attribute, entity, value = lines[5].split()[3:6]
    assert lines[5] == f"doc 5 : {attribute} {entity} {value} ."
    assert lines[-1] == f"question : {attribute} {entity}" and e.answers == (value,)  # a cloze of the document
    # the answer is in the relevant document only, and hard negatives surround it
    assert sum(value in l for l in lines) == 1
    others = [l.split() for i, l in enumerate(lines[1:21], start=1) if i != 5]
    assert any(w[4] == entity for w in others) and any(w[3] == attribute for w in others)
    assert len({(w[4], w[3]) for w in others} | {(entity, attribute)}) == 20
    neg = next(x for x in exs if x.variant == "negative" and x.question_id == e.question_id)
    assert value not in neg.text and len(neg.documents) == 19
    seq = label(e, word_tokenizer, f" {value}")
    (s, t), = seq.token_spans["relevant"]
    assert word_tokenizer.decode(seq.input_ids[s:t]) == lines[5]
    assert list(seq.input_ids[: seq.n_prompt]) == encode(e.text, word_tokenizer.get_vocab())


def test_toy_split_is_disjoint_and_seeded():
    train = {(e.text.split("\n")[-1]) for e in load_examples("toy", split="train", limit=200, variants=("gold",))}
    test = {(e.text.split("\n")[-1]) for e in load_examples("toy", split="test", limit=200, variants=("gold",))}
    assert not train & test
    a = load_examples("toy", limit=5, seed=3)
    assert [x.text for x in a] == [x.text for x in load_examples("toy", limit=5, seed=3)]
    assert [x.text for x in a] != [x.text for x in load_examples("toy", limit=5, seed=4)]
    with pytest.raises(ValueError, match="at most 40 documents"):
        load_examples("toy", n_docs=41, gold_positions=[1])


def test_training_batches_supervise_the_answer_and_end_token(word_tokenizer):
    import random

    index = word_tokenizer.get_vocab()
    ids, tgt = training_batch(random.Random(0), Recipe(batch=8, queries=1), 4, index)
    for row, t in zip(ids.tolist(), tgt.tolist()):
        supervised = [i for i, x in enumerate(t) if x != -100]
        assert len(supervised) == 2
        a, b = supervised
        assert row[a - 1] in {index[x] for x in task.ENTITIES} and t[a] == row[a]
        assert task.VALUES.count(word_tokenizer.convert_ids_to_tokens(row[a])) == 1
        assert t[b] == index["<eos>"] == row[b]


def test_several_questions_per_training_prompt(word_tokenizer):
    import random

    index = word_tokenizer.get_vocab()
    ids, tgt = training_batch(random.Random(1), Recipe(batch=16, queries=3), 5, index)
    counts = []
    for row, t in zip(ids.tolist(), tgt.tolist()):
        supervised = [i for i, x in enumerate(t) if x != -100]
        counts.append(len(supervised) // 2)
        words = word_tokenizer.convert_ids_to_tokens(row)
        for a, b in zip(supervised[::2], supervised[1::2]):
            assert words[a - 3 : a - 2] == [":"] and words[b] == "<eos>" and b == a + 1
            # the answer is the value of the document about the question just asked
            attribute, entity = words[a - 2], words[a - 1]
            docs = " ".join(words).split(" . ")
            assert any(d.endswith(f"{attribute} {entity} {words[a]}") for d in docs)
    assert max(counts) == 3 and min(counts) >= 1


def test_later_questions_are_drawn_with_replacement(word_tokenizer):
    """Asking each document once would let the last answers come by elimination."""
    import random

    index = word_tokenizer.get_vocab()
    ids, tgt = training_batch(random.Random(2), Recipe(batch=32, queries=40), 3, index)
    repeated = 0
    for row, t in zip(ids.tolist(), tgt.tolist()):
        words = word_tokenizer.convert_ids_to_tokens(row)
        n_docs = words.count("doc")
        asked = [tuple(words[a - 2 : a]) for a in [i for i, x in enumerate(t) if x != -100][::2]]
        assert len(asked) == n_docs + 1  # the prompt's own question, then one per document
        repeated += len(set(asked)) < len(asked)
    assert repeated > 0
