import numpy as np
import pytest
import torch

from lens_focus import label, load_examples
from lens_focus.directions import FocusDirections, cache_qk, relevant_scores, train_directions, zero_directions
from lens_focus.heads import Head
from lens_focus.interventions import focus_intervention
from lens_focus.model import model_info
from lens_focus.scoring import span_sums


@pytest.fixture(scope="module")
def seqs(nq_path, llama):
    exs = load_examples(nq_path, limit=3, n_docs=3, gold_positions=[1, 3], variants=("long",))
    return [label(e, llama.tokenizer, r) for e, r in zip(exs, [" Wilhelm Röntgen", " 1901", " Paris", " the prize", " 12", " no"])]


@pytest.mark.parametrize("site", ["post_rotary", "pre_rotary"])
def test_cached_scores_equal_the_models_patterns(llama, seqs, site):
    """Eq. 4 from the cache at d = 0 is the model's own relevant score, and with directions on
    layer 0 it is the score of the model run under `focus` (layer 0 sees no upstream change)."""
    info = model_info(llama)
    cache = cache_qk(llama, seqs[:2], site=site, progress=False)
    zero = zero_directions(llama, site)
    g = torch.Generator().manual_seed(0)
    d = FocusDirections(q=torch.randn(zero.q.shape, generator=g), k=torch.randn(zero.k.shape, generator=g), site=site)
    layer0 = [Head(0, h) for h in range(info.n_heads)]
    for c, seq in zip(cache, seqs):
        ref = next(span_sums(llama, [seq], progress=False))["relevant"]
        ours = relevant_scores(c, zero.q, zero.k, site=site, group=info.group_size)
        np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5)
        moved = next(span_sums(llama, [seq], intervention=focus_intervention(llama, d, layer0, alpha=1.0), progress=False))["relevant"]
        ours = relevant_scores(c, d.q, d.k, site=site, group=info.group_size)
        np.testing.assert_allclose(ours[0].numpy(), moved[0], atol=1e-5)
        assert np.abs(moved[0] - ref[0]).max() > 1e-3


def test_post_rotary_key_gradient_is_exactly_zero(llama, seqs):
    cache = cache_qk(llama, seqs[:1], progress=False)[0]
    info = model_info(llama)
    g = torch.Generator().manual_seed(1)
    dq = torch.randn(info.n_layers, info.n_heads, info.d_head, generator=g).requires_grad_()
    dk = torch.randn(info.n_layers, info.n_heads, info.d_head, generator=g).requires_grad_()
    relevant_scores(cache, dq, dk, site="post_rotary", group=info.group_size).mean().backward()
    assert dq.grad.abs().max() > 1e-4
    assert dk.grad.abs().max() < 1e-7


def test_training_raises_the_relevant_score_and_is_seeded(llama, seqs):
    a = train_directions(llama, seqs, epochs=4, lr=0.1, seed=4, progress=False)
    b = train_directions(llama, seqs, epochs=4, lr=0.1, seed=4, progress=False)
    assert torch.equal(a.q, b.q) and a.meta["losses"] == b.meta["losses"]
    assert a.meta["relevant_score_trained"] > a.meta["relevant_score_at_init"] + 1e-3
    assert a.meta["losses"][-1] < a.meta["losses"][0]
    assert "inert" in a.meta["note"]
    with pytest.raises(ValueError, match="empty"):
        train_directions(llama, [], progress=False)


def test_save_load_and_shape_checks(llama, models, seqs, tmp_path):
    d = train_directions(llama, seqs[:2], epochs=1, site="pre_rotary", progress=False)
    assert d.k.shape[1] == model_info(llama).n_kv_heads
    path = d.save(tmp_path / "d.safetensors")
    back = FocusDirections.load(path, model=llama)
    assert torch.equal(back.q, d.q) and torch.equal(back.k, d.k) and back.site == "pre_rotary"
    assert back.meta["losses"] == d.meta["losses"] and back.meta["n_kv_heads"] == 2
    with pytest.raises(ValueError, match="made for .*llama.*gpt2 needs q"):  # the shapes differ (4 key-value heads)
        FocusDirections.load(path, model=models["gpt2"])
    with pytest.raises(ValueError, match="trained on .*llama.*, not on .*gpt2"):
        FocusDirections.load(path, model=models["gpt2"], strict=True)
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(ValueError, match="not a focus-directions"):
        FocusDirections.load(tmp_path / "junk.safetensors")
    with pytest.raises(FileNotFoundError):
        FocusDirections.load(tmp_path / "missing.safetensors")


def test_training_sequences_on_long_or_gold_only_prompts(llama, nq_path):
    from lens_focus.answers import gold_response_sequences

    exs = load_examples(nq_path, limit=2, n_docs=3, gold_positions=[1, 3], variants=("long", "gold"))
    long, _ = gold_response_sequences(llama, exs, max_new_tokens=3, progress=False)
    gold, _ = gold_response_sequences(llama, exs, prompts="gold", max_new_tokens=3, progress=False)
    assert [s.example.variant for s in long] == ["long"] * 4 and [s.example.variant for s in gold] == ["gold"] * 2
    for g in gold:  # the gold prompt alone, its one document relevant, followed by the same gold response
        twins = [s for s in long if s.example.question_id == g.example.question_id]
        assert len(g.token_spans["relevant"]) == 1 and not g.token_spans.get("irrelevant")
        assert all(t.response == g.response for t in twins) and len(g) < min(len(t) for t in twins)
    with pytest.raises((ValueError, TypeError), match="prompts"):  # TypeError from the type-checking import hook in tests
        gold_response_sequences(llama, exs, prompts="short", progress=False)



def test_directions_transfer_to_a_model_of_the_same_shape_with_a_warning(llama, seqs, tmp_path):
    # the paper's base-model rows: a base model steered with its instruct model's directions
    import warnings

    from lens_focus.answers import answer_examples
    from lens_focus.directions import TransferWarning

    own = train_directions(llama, seqs[:2], epochs=1, progress=False)
    own.q.mul_(50)  # strong enough to change answers
    other = FocusDirections(q=own.q, k=own.k, site=own.site, meta={**own.meta, "model": "HuggingFaceTB/SmolLM2-135M-Instruct"})
    path = other.save(tmp_path / "instruct.safetensors")
    with pytest.warns(TransferWarning, match=r"trained on 'HuggingFaceTB/SmolLM2-135M-Instruct', applied to '.*llama"):
        back = FocusDirections.load(path, model=llama)
    examples = [s.example for s in seqs[:2]]
    heads = [Head(layer, head) for layer in range(2) for head in range(4)]
    kw = dict(max_new_tokens=4, score="generation", progress=False)
    with pytest.warns(TransferWarning):
        moved = answer_examples(llama, examples, intervention=focus_intervention(llama, back, heads, alpha=1.0), **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TransferWarning)  # its own model's name: no warning
        same = answer_examples(llama, examples, intervention=focus_intervention(llama, own, heads, alpha=1.0), **kw)
    plain = answer_examples(llama, examples, **kw)
    for m, s, p in zip(moved, same, plain):  # transferred directions act exactly as on their own model
        assert m.response == s.response and np.array_equal(m.scores["relevant"], s.scores["relevant"])
        assert m.response != p.response or np.abs(m.scores["relevant"] - p.scores["relevant"]).max() > 1e-3
    with pytest.raises(ValueError, match="strict: no transfer"):
        FocusDirections.load(path, model=llama, strict=True)
