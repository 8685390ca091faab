import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lens_focus.labels import Example, LabelError, Segment, label
from lens_focus.tiny import train_tokenizer


@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    """A byte-level BPE tokenizer trained here, loaded the way users load theirs."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    corpus = ["the quick brown fox jumps over the lazy dog Document Title Question Answer 1901 Röntgen"] * 50
    tok = PreTrainedTokenizerFast(
        tokenizer_object=train_tokenizer(corpus, vocab_size=400, specials=["<s>", "</s>"]), bos_token="<s>", eos_token="</s>"
    )
    path = tmp_path_factory.mktemp("bpe")
    tok.save_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


def make_example(docs, relevant=1, qid="ex"):
    segs = [Segment("Answer from the documents.", "instruction"), Segment("\n\n")]
    for i, d in enumerate(docs, start=1):
        if i > 1:
            segs.append(Segment("\n"))
        segs.append(Segment(d, f"doc_{i}"))
    segs += [Segment("\n\n"), Segment("Question: who?", "question"), Segment("\nAnswer:")]
    return Example(id=qid, segments=tuple(segs), relevant=f"doc_{relevant}" if relevant else None, answers=("x",))


words = st.text(alphabet=string.ascii_letters + string.digits + "äöü.,()[]-'", min_size=1, max_size=12)
document = st.lists(words, min_size=1, max_size=12).map(" ".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(document, min_size=1, max_size=6), data=st.data())
def test_token_spans_cover_exactly_their_characters(bpe, docs, data):
    relevant = data.draw(st.integers(1, len(docs)))
    response = data.draw(st.sampled_from([" Paris", " the quick fox", " 1901."]))
    seq = label(make_example(docs, relevant), bpe, response)
    offsets = bpe(seq.text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    assert list(seq.input_ids) == bpe(seq.text, add_special_tokens=False)["input_ids"]
    for name, spans in seq.char_spans.items():
        if name == "sink":
            continue
        for (cs, ce), (ts, te) in zip(spans, seq.token_spans[name]):
            inside = set(range(ts, te))
            for i, (s, e) in enumerate(offsets):
                overlaps = s < ce and e > cs
                assert overlaps == (i in inside), (name, i, (s, e), (cs, ce))
    doc_spans = sorted(seq.token_spans[f"doc_{i}"][0] for i in range(1, len(docs) + 1))
    for (s1, e1), (s2, e2) in zip(doc_spans, doc_spans[1:]):
        assert e1 <= s2
    for i, d in enumerate(docs, start=1):
        (cs, ce), = seq.char_spans[f"doc_{i}"]
        assert seq.text[cs:ce] == d
    assert seq.char_spans["relevant"] == seq.char_spans[f"doc_{relevant}"]
    assert len(seq.char_spans.get("irrelevant", [])) == len(docs) - 1
    assert seq.text[seq.char_spans["response"][0][0]:] == response
    assert seq.token_spans["sink"] == [(0, 1)] and seq.input_ids[0] == bpe.bos_token_id


def test_rows(bpe):
    seq = label(make_example(["a b c", "d e f"]), bpe, " the quick fox")
    n, t = seq.n_prompt, len(seq)
    assert seq.n_response == t - n > 1
    assert seq.rows("generation") == range(n - 1, t - 1)
    assert seq.rows("response") == range(n, t)
    with pytest.raises((ValueError, TypeError)):  # TypeError from the type-checking import hook in tests
        seq.rows("all")


def test_chat_template_spans(models):
    tok = models["qwen2"].tokenizer
    ex = make_example(["alpha beta", "gamma delta"], relevant=2)
    seq = label(ex, tok, "Paris")
    assert seq.prompt.startswith("<|im_start|>user\n") and seq.prompt.endswith("<|im_start|>assistant\n")
    (cs, ce), = seq.char_spans["doc_2"]
    assert seq.text[cs:ce] == "gamma delta"
    assert tok.convert_ids_to_tokens(seq.input_ids[0]) == "<|im_start|>"  # no BOS: the sink is the first token
    ids = tok.apply_chat_template([{"role": "user", "content": ex.text}], tokenize=True, add_generation_prompt=True)
    ids = ids if isinstance(ids, list) else ids["input_ids"]
    assert list(seq.input_ids[: seq.n_prompt]) == list(ids)


def test_straddling_response_is_an_error(bpe):
    ex = Example(id="s1", segments=(Segment("the lazy dog", "doc_1"), Segment(" qu")), relevant="doc_1", answers=())
    with pytest.raises(LabelError, match="s1: token .* straddles"):
        label(ex, bpe, "ick fox")  # " qu" + "ick" is the one token " quick"


def test_untrustworthy_offsets_are_an_error(bpe):
    class ZeroOffsets:
        def __getattr__(self, name):
            return getattr(bpe, name)

        def __call__(self, text, **kw):
            enc = dict(bpe(text, **kw))
            enc["offset_mapping"] = [(0, 0)] * len(enc["input_ids"])
            return enc

    with pytest.raises(LabelError, match="offset"):
        label(make_example(["a b"]), ZeroOffsets())


def test_bad_examples(bpe):
    with pytest.raises(LabelError, match="relevant document 'doc_3'"):
        make_example(["a", "b"], relevant=3)
    with pytest.raises(LabelError, match="n_sink"):
        label(make_example(["a"]), bpe, n_sink=0)
    empty = Example(id="e1", segments=(Segment("hi", "instruction"), Segment("", "doc_1")), relevant=None, answers=())
    with pytest.raises(LabelError, match="e1.*'doc_1'.*empty"):
        label(empty, bpe)


def test_the_format_stamp_follows_what_a_model_is_shown(bpe, models):
    """The same tokenizer gives the same stamp; another BOS text, a chat template or another
    template's wording gives another (``lens-focus reproduce`` redoes its steps then)."""
    import copy

    from lens_focus.labels import format_stamp

    assert format_stamp(bpe) == format_stamp(copy.deepcopy(bpe)) and len(format_stamp(bpe)) == 16
    other_bos = copy.deepcopy(bpe)
    other_bos.bos_token = "</s>"
    chat = copy.deepcopy(bpe)
    chat.chat_template = "{% for m in messages %}<s>User: {{ m['content'] }}\n{% endfor %}Assistant:"
    reworded = copy.deepcopy(chat)
    reworded.chat_template = chat.chat_template.replace("Assistant:", "Answer:")
    stamps = [format_stamp(t) for t in (bpe, other_bos, chat, reworded, models["llama"].tokenizer)]
    assert len(set(stamps)) == len(stamps), stamps
