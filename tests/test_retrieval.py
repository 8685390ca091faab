import pytest
import torch

from lens_focus import label
from lens_focus.data.needle import NEEDLES, needle_examples
from lens_focus.fast import attention_path
from lens_focus.hooks import attn_hook_name, hooked
from lens_focus.retrieval import copy_credits, recall, retrieval_scores


def test_copy_credits_count_top1_keys_in_the_span_that_hold_the_generated_token():
    prompt = [5, 6, 7, 8, 9, 7]
    top = torch.tensor([[[2, 5]], [[3, 3]], [[4, 1]], [[2, 2]]])  # (step, layer=1, head=2)
    generated = [7, 8, 1, 7]  # step 2: top-1 in span but the token differs; head 1 step 0: token 7 at 5, outside [2, 5)
    assert copy_credits(top, generated, prompt, (2, 5)).tolist() == [[3, 2]]
    assert copy_credits(top, generated[:2], prompt, (2, 5)).tolist() == [[2, 1]]  # steps beyond the response ignored


def test_recall_is_rouge1_recall_with_stemming_as_the_detector_computes_it():
    from rouge_score import rouge_scorer

    reference = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)
    for response, target in [("It is a spoonful of cardamom.", "a spoonful of cardamom"), ("Cardamom, I think", "a spoonful of cardamom"),
                             ("two spoonfuls of Cardamom", "a spoonful of cardamom"), ("", "a spoonful of cardamom")]:  # fmt: skip
        assert recall(response, target) == reference.score(target, response)["rouge1"].recall
    assert recall("It is a spoonful of cardamom.", "a spoonful of cardamom") == 1.0
    assert recall("Cardamom, I think", "a spoonful of cardamom") == pytest.approx(1 / 4)
    assert recall("two spoonfuls of Cardamom", "a spoonful of cardamom") == pytest.approx(3 / 4)  # spoonfuls → spoonful


@pytest.mark.parametrize("span", ["needle", "answer"])
def test_a_head_made_to_copy_the_span_is_the_top_retrieval_head(llama, span):
    """Head (1, 2) is patched to put all its attention on the span's token the model emits next,
    and the logits are patched to emit it: that head, and only that head, copies every token of
    the span (the needle's clause, Wu et al.'s score, or the short answer inside it)."""
    tok = llama.tokenizer
    newline = tok("\n", add_special_tokens=False).input_ids[-1]
    examples = needle_examples(tok, lengths=[150], depths=[30, 80], needles=NEEDLES[:2])
    seqs = [label(e, tok) for e in examples]
    state = {}

    def point_at_answer(pattern, *, hook):
        seq = state["seq"]
        (s, e), t = seq.token_spans[span][0], pattern.shape[-1] - len(seq)
        state["target"] = seq.input_ids[s + t] if t < e - s else newline
        if t < e - s:
            pattern = pattern.clone()
            pattern[:, 2, -1] = 0.0
            pattern[:, 2, -1, s + t] = 1.0
        return pattern

    def emit(logits, *, hook):
        logits = logits.clone()
        logits[:, -1] = -1e4
        logits[:, -1, state["target"]] = 1e4
        return logits

    frames = []
    with attention_path(llama, "eager"), hooked(llama, [(attn_hook_name(1, "hook_pattern"), point_at_answer), ("unembed.hook_out", emit)]):
        for ex, seq in zip(examples, seqs):
            state["seq"] = seq
            frame, counts = retrieval_scores(llama, [ex], span=span, max_new_tokens=80, batch_size=1, progress=False)
            assert counts == {"samples": 1, "counted": 1}
            frames.append(frame.set_index(["layer", "head"]).score)
    mean = sum(frames) / len(frames)
    assert mean.idxmax() == (1, 2) and mean[(1, 2)] == 1.0
    assert mean.drop((1, 2)).max() < 0.5
    # without the patch the model does not recall the span: no sample counts
    frame, counts = retrieval_scores(llama, examples, span=span, max_new_tokens=8, progress=False)
    assert counts["counted"] == 0 and frame.score.isna().all()
