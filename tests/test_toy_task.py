import pytest
import torch

from lens_focus import label, load_examples
from lens_focus.toy import task
from lens_focus.toy.train import Recipe, drill_batch, encode, make_tokenizer, training_batch


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
    ids, tgt = training_batch(random.Random(1), Recipe(batch=16, queries=3, unanswerable=0.0), 5, index)
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


def test_training_prompts_shuffle_or_drop_the_instruction(word_tokenizer):
    import random

    index = word_tokenizer.get_vocab()
    words = task.INSTRUCTION.split()
    ids, _ = training_batch(random.Random(3), Recipe(batch=64, queries=1, drop_instruction=0.5), 4, index)
    starts = [tuple(word_tokenizer.convert_ids_to_tokens(row[:3])) for row in ids.tolist()]
    dropped = sum(s == ("<bos>", "doc", "1") for s in starts)
    assert 16 < dropped < 48 and all(s[1] in words for s in starts if s[1] != "doc")
    orders = set()
    for shuffle in (True, False):
        ids, _ = training_batch(random.Random(3), Recipe(batch=16, queries=1, shuffle_instruction=shuffle, drop_instruction=0.0), 4, index)
        for row in ids.tolist():
            head = word_tokenizer.convert_ids_to_tokens(row[: len(words) + 1])
            assert head[0] == "<bos>" and head[-1] == "." and sorted(head[1:]) == sorted(words)
            if shuffle:
                orders.add(tuple(head))
            else:
                assert head[1:] == words
    assert len(orders) > 8


def test_drills_repeat_a_random_sequence_of_varying_length(word_tokenizer):
    import random

    index = word_tokenizer.get_vocab()
    rng, recipe = random.Random(4), Recipe(batch=4)
    lengths = set()
    for _ in range(6):
        ids, tgt = drill_batch(rng, recipe, index)
        length = (ids.shape[1] - 1) // 2
        lengths.add(length)
        assert (ids[:, 0] == index["<bos>"]).all()
        assert torch.equal(ids[:, 1 : length + 1], ids[:, length + 1 :])
        supervised = (tgt != -100).nonzero()[:, 1].unique().tolist()
        assert supervised == list(range(length + 2, 2 * length + 1))  # the repeat, from its second token
        assert torch.equal(tgt[:, length + 2 :], ids[:, length + 2 :])
    assert len(lengths) > 1 and all(recipe.drill_length[0] <= n <= recipe.drill_length[1] for n in lengths)


def test_unanswerable_questions_ask_about_absent_pairs(word_tokenizer):
    import random

    index = word_tokenizer.get_vocab()
    ids, tgt = training_batch(random.Random(5), Recipe(batch=32, queries=40, unanswerable=0.5), 6, index)
    n_none = n_answered = 0
    for row, t in zip(ids.tolist(), tgt.tolist()):
        words = word_tokenizer.convert_ids_to_tokens(row)
        stated = {(words[i + 3], words[i + 4]) for i, w in enumerate(words) if w == "doc"}  # doc N : attribute entity
        answers = [i for i, x in enumerate(t) if x != -100][::2]
        assert words[answers[0]] != task.NONE  # the prompt's own question is always answerable
        for a in answers:
            if words[a] == task.NONE:
                n_none += 1
                assert tuple(words[a - 2 : a]) not in stated
            else:
                n_answered += 1
                assert tuple(words[a - 2 : a]) in stated
    assert n_none > 0 and n_answered > 0


def test_absent_pair_is_never_stated_and_mostly_near():
    import random

    rng = random.Random(0)
    near = 0
    for _ in range(200):
        gold, distractors = task.draw_facts(rng, 5, "train")
        facts = [gold, *distractors]
        e, a = task.absent_pair(rng, facts)
        assert (e, a) not in {(f[0], f[1]) for f in facts}
        near += e in {f[0] for f in facts} and a in {f[1] for f in facts}
    assert near > 50  # a good share are near misses


def test_rest_cost_is_the_attention_off_bos_on_the_charged_rows():
    """``off_bos`` against a loop over sequences, heads and rows; the ``sqrt`` penalty charges a
    read shared by several heads more than the same read done by one."""
    from lens_focus.toy.train import off_bos, rest_penalty

    g = torch.Generator().manual_seed(0)
    attentions = [torch.randn(3, 2, 7, 7, generator=g).tril().masked_fill(torch.ones(7, 7).triu(1).bool(), -1e9).softmax(-1) for _ in range(2)]
    rows = torch.rand(3, 7, generator=g) > 0.4
    rows[0, 3] = True
    got = off_bos(attentions, rows)
    assert got.shape == (2, 2)
    for layer in range(2):
        for head in range(2):
            picked = [1 - float(attentions[layer][b, head, i, 0]) for b in range(3) for i in range(1, 7) if rows[b, i]]
            assert abs(float(got[layer, head]) - sum(picked) / len(picked)) < 1e-6
    shared, alone = torch.tensor([[0.4, 0.4]]), torch.tensor([[0.8, 0.0]])
    assert float(rest_penalty(shared, "linear")) == pytest.approx(float(rest_penalty(alone, "linear")))
    assert float(rest_penalty(shared, "sqrt")) > float(rest_penalty(alone, "sqrt"))
    assert float(rest_penalty(torch.zeros(2, 2), "sqrt")) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="rest_shape"):
        rest_penalty(shared, "cube")
    for field in ("rest_rows", "rest_shape"):
        with pytest.raises(ValueError, match=field):
            Recipe(**{field: "some"})
