import pytest

from lens_focus import label
from lens_focus.data import DataError
from lens_focus.data.needle import NEEDLES, Needle, needle_examples
from lens_focus.labels import Example, LabelError, Segment


def context_tokens(seq) -> int:
    return sum(end - start for d in seq.example.documents for start, end in seq.token_spans[d])


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_spans_lengths_and_depths_are_exact(arch, models):
    tok = models[arch].tokenizer
    examples = needle_examples(tok, lengths=[300, 600], depths=[0, 25, 50, 75, 100], needles=NEEDLES[:2])
    assert len(examples) == 2 * 2 * 5
    for needle_id in (0, 1):
        for length in (300, 600):
            group = [e for e in examples if e.meta["needle"] == needle_id and e.meta["length"] == length]
            starts = []
            for ex in group:
                seq = label(ex, tok)
                needle = NEEDLES[needle_id]
                assert seq.text[slice(*seq.char_spans["relevant"][0])] == needle.sentence
                assert seq.text[slice(*seq.char_spans["answer"][0])] == needle.answer
                (a, b), = seq.token_spans["answer"]
                assert needle.answer in tok.decode(seq.input_ids[a:b]) and (a, b) != seq.token_spans["relevant"][0]
                assert 0.8 * length <= context_tokens(seq) <= length + 4, context_tokens(seq)
                before = seq.text[: seq.char_spans["relevant"][0][0]].rstrip()
                assert before.endswith((".", "!", "?")) or before.endswith(ex.segments[0].text.rstrip())
                starts.append(seq.char_spans["relevant"][0][0])
            assert starts == sorted(starts) and len(set(starts)) == len(starts)  # deeper = later
            first, last = (label(group[i], tok) for i in (0, -1))
            assert first.example.relevant == "doc_1" and last.example.documents[-1] == last.example.relevant
    assert needle_examples(tok, lengths=[300], depths=[50]) == needle_examples(tok, lengths=[300], depths=[50])


def test_filler_from_a_file(llama, tmp_path):
    path = tmp_path / "filler.txt"
    path.write_text("Bees visit the clover field every June.\nThe ferry leaves at noon!\n\nIs the harbour open? " * 40)
    ex = needle_examples(llama.tokenizer, lengths=[200], depths=[40], filler=path, needles=NEEDLES[2:])[0]
    seq = label(ex, llama.tokenizer)
    assert "clover" in ex.text and "village" not in ex.text and "\n\n" not in ex.segments[1].text
    assert seq.text[slice(*seq.char_spans["answer"][0])] == "silver heron forty two"
    assert seq.text[slice(*seq.char_spans["needle"][0])] == NEEDLES[2].clause == ex.meta["clause"]  # the clause the question asks for, holding the answer


def test_bad_input_is_named(llama, tmp_path):
    with pytest.raises(ValueError, match="depths"):
        needle_examples(llama.tokenizer, depths=[120])
    with pytest.raises(ValueError, match="needle 0: its answer 'dog' must lie in its clause"):
        needle_examples(llama.tokenizer, needles=[Needle("The cat sleeps.", "dog", "Who sleeps?")])
    with pytest.raises(FileNotFoundError, match="filler file not found"):
        needle_examples(llama.tokenizer, filler=tmp_path / "missing.txt")
    (tmp_path / "flat.txt").write_text("no sentence ends here at all")
    with pytest.raises(DataError, match="at least one sentence"):
        needle_examples(llama.tokenizer, filler=tmp_path / "flat.txt")
    with pytest.raises(LabelError, match="inner span 'answer'"):
        Example(id="x", segments=(Segment("abc", "doc_1"),), relevant="doc_1", answers=("b",), inner=(("answer", "doc_1", 2, 9),))
