"""The fast attention path (SDPA, scores from post-rotary queries and keys) against the bridge's eager one."""
import numpy as np
import pytest
import torch

import lens_focus.fast as fast_module
from lens_focus import answer_examples, label, load_examples, model_info
from lens_focus.directions import FocusDirections, cache_qk
from lens_focus.fast import attention_of, attention_path, fast_hooks, fast_model, set_attention
from lens_focus.forward import run
from lens_focus.generate import generate_batches
from lens_focus.heads import Head
from lens_focus.model import attention_layers
from lens_focus.interventions import Placement, compensation_intervention, focus, focus_intervention, placement_span, split_softmax
from lens_focus.scoring import span_sums

ROTARY = ["llama", "qwen2", "mistral"]


@pytest.fixture(scope="module")
def examples(nq_path):
    return load_examples(nq_path, limit=2, n_docs=3, gold_positions=[1, 3])


def directions(model, site, seed=0, scale=2.0):
    info = model_info(model)
    n_k = info.n_kv_heads if site == "pre_rotary" else info.n_heads
    g = torch.Generator().manual_seed(seed)
    return FocusDirections(q=torch.randn(info.n_layers, info.n_heads, info.d_head, generator=g) * scale,
                           k=torch.randn(info.n_layers, n_k, info.d_head, generator=g) * scale, site=site)  # fmt: skip


def on_both(model, fn):
    out = {}
    for path in ("eager", "fast"):
        with attention_path(model, path) as used:
            assert used == path
            out[path] = fn()
    return out["eager"], out["fast"]


@pytest.mark.parametrize("arch", ROTARY)
def test_fast_model_shares_parameters_and_equals_the_bridge(arch, models, examples):
    model = models[arch]
    twin = fast_model(model)
    assert fast_model(model) is twin  # built once
    bridge_ptrs = {p.data_ptr() for p in model.parameters()}
    assert {p.data_ptr() for p in twin.parameters()} <= bridge_ptrs  # shared, not copied
    assert twin.config._attn_implementation == fast_module.IMPLEMENTATION
    # left-padded batch with a mask and position ids, then one cached step
    prompts = [label(e, model.tokenizer).input_ids for e in examples]
    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + list(p) for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    assert mask.min() == 0  # padding is exercised

    def two_steps():
        with torch.no_grad():
            first, cache = run(model, ids, attention_mask=mask, position_ids=pos)
            nxt = first.argmax(-1, keepdim=True)
            second, _ = run(model, nxt, attention_mask=torch.cat([mask, mask[:, -1:]], 1), position_ids=pos[:, -1:] + 1, cache=cache)
        return torch.stack([first, second])

    seen = []
    remove = fast_module.add_fast_hooks(model, observe={0: lambda call: seen.append(type(call.mask).__name__)})
    try:
        eager, fast = on_both(model, two_steps)
    finally:
        remove[0]()
    assert (eager - fast).abs().max() < 1e-4
    # the padded prompt's mask is kept as its padding, a window as its length (no batch × T × T tensor); the cached step's is a (batch, 1, 1, T) tensor
    assert seen == ["PaddedCausal", "Tensor"]


def test_padding_mask_stands_for_the_mask_transformers_builds():
    from transformers.masking_utils import causal_mask_function, sdpa_mask, sliding_window_causal_mask_function

    keep = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]]).bool()
    compact = fast_module._mask(3, 5, 5, mask_function=causal_mask_function, attention_mask=keep)
    assert isinstance(compact, fast_module.PaddedCausal) and compact.starts == [2, 0, 4]
    built = sdpa_mask(batch_size=3, q_length=5, kv_length=5, attention_mask=keep, allow_is_causal_skip=False)
    assert torch.equal(compact.rows(torch.arange(5)), built)
    assert torch.equal(compact.rows(torch.tensor([1, 4])), built[:, :, [1, 4]])
    # a sliding window, with padding or without: the window's length, each row's keys as transformers would mask them
    for mask in (keep, torch.ones(3, 5).bool(), None):
        compact = fast_module._mask(3, 5, 5, mask_function=sliding_window_causal_mask_function(3), attention_mask=mask, local_size=3)
        built = sdpa_mask(batch_size=3, q_length=5, kv_length=5, attention_mask=mask, mask_function=sliding_window_causal_mask_function(3),
                          local_size=3, allow_is_causal_skip=False)  # fmt: skip
        assert isinstance(compact, fast_module.PaddedCausal) and compact.window == 3
        assert torch.equal(compact.rows(torch.arange(5)), built.expand(3, -1, -1, -1))
    # what it does not stand for is built as before: right padding, cached steps, no padding and no window
    right = keep.flip(1)
    for kw in (dict(attention_mask=right), dict(attention_mask=torch.ones(3, 5).bool())):
        assert not isinstance(fast_module._mask(3, 5, 5, mask_function=causal_mask_function, **kw), fast_module.PaddedCausal)
    assert not isinstance(fast_module._mask(3, 1, 5, q_offset=4, mask_function=causal_mask_function, attention_mask=keep), fast_module.PaddedCausal)


def test_other_architectures_fall_back_with_a_message(models):
    gpt2 = models["gpt2"]
    with pytest.warns(UserWarning, match="GPT2LMHeadModel: its query, key and value come from one fused projection"):
        assert set_attention(gpt2, "fast") == "eager"
    assert set_attention(gpt2, "auto") == "eager"
    with pytest.raises(ValueError, match="no fast attention path"):
        fast_model(gpt2)
    with pytest.raises(ValueError, match="attention must be one of"):
        set_attention(models["llama"], "flash")
    assert attention_of(models["llama"]) == "fast"  # "auto" at load: fast where it applies
    assert not [name for name in vars(models["llama"]) if "lens" in name]  # nothing of lens_focus' is kept on the bridge


@pytest.mark.parametrize("arch", ROTARY)
def test_interventions_give_the_same_answers_scores_and_logits(arch, models, examples):
    model = models[arch]
    heads = [Head(0, 1), Head(1, 0), Head(1, 3)]
    kw = dict(max_new_tokens=4, stop="eos", score="generation", batch_size=4, progress=False)
    for make in (compensation_intervention(model, heads, tau=0.1), focus_intervention(model, directions(model, "post_rotary"), heads, alpha=1.0),
                 focus_intervention(model, directions(model, "pre_rotary"), heads, alpha=1.0)):  # fmt: skip
        eager, fast = on_both(model, lambda: answer_examples(model, examples, intervention=make, **kw))
        plain = answer_examples(model, examples, **kw)
        assert [a.response for a in eager] == [a.response for a in fast]
        moved = False
        for a, b, c in zip(eager, fast, plain):
            for span in a.scores:
                np.testing.assert_allclose(a.scores[span], b.scores[span], rtol=0, atol=1e-5, err_msg=span)
            moved |= not np.allclose(a.scores["relevant"], c.scores["relevant"], atol=1e-4)
        assert moved  # the intervention acts
        # the response rows' logits of a teacher-forced pass under the intervention
        seq = fast[0].sequence
        ids = torch.tensor([list(seq.input_ids)])
        with torch.no_grad():
            with make(Placement([seq], [0])):
                e, f = on_both(model, lambda: run(model, ids)[0])
        assert (e - f).abs().max() < 1e-4
    assert not fast_hooks(model)


def test_split_softmax_logits_and_patterns_in_chunks(llama, examples, monkeypatch):
    """Explicit rows are computed in chunks within PATTERN_CELLS: one row at a time gives the same numbers."""
    seq = label(examples[0], llama.tokenizer, " Wilhelm Röntgen of Lennep")
    mask, first = placement_span(Placement([seq], [0]))
    heads = [Head(0, 0), Head(0, 2), Head(1, 1)]
    ids = torch.tensor([list(seq.input_ids)])

    def logits_and_scores():
        with torch.no_grad(), split_softmax(llama, heads, span=mask, first_row=first, tau=0.2):
            return run(llama, ids)[0], next(span_sums(llama, [seq], progress=False))

    (e_logits, e_scores), (f_logits, f_scores) = on_both(llama, logits_and_scores)
    sizes = []
    pattern = fast_module.AttnCall.pattern

    def spy(self, rows):
        sizes.append(len(rows))
        return pattern(self, rows)

    monkeypatch.setattr(fast_module, "PATTERN_CELLS", len(seq) * llama.cfg.n_heads)  # one row per chunk
    monkeypatch.setattr(fast_module.AttnCall, "pattern", spy)
    with attention_path(llama, "fast"):
        c_logits, c_scores = logits_and_scores()
    assert sizes and max(sizes) == 1 and len(sizes) > len(list(seq.rows()))
    for got_logits, got_scores in ((f_logits, f_scores), (c_logits, c_scores)):
        assert (got_logits - e_logits).abs().max() < 1e-4
        for span in e_scores:
            np.testing.assert_allclose(got_scores[span], e_scores[span], rtol=0, atol=1e-5, err_msg=span)


def test_fast_hooks_never_leak(llama, examples):
    seq = label(examples[0], llama.tokenizer, " Paris")
    mask, first = placement_span(Placement([seq], [0]))
    with attention_path(llama, "fast"):
        for make in (lambda: split_softmax(llama, [Head(0, 0)], span=mask, first_row=first, tau=0.5),
                     lambda: focus(llama, directions(llama, "pre_rotary"), [Head(1, 2)], alpha=1.0)):  # fmt: skip
            with pytest.raises(RuntimeError, match="boom"):
                with make():
                    assert fast_hooks(llama)
                    raise RuntimeError("boom")
            assert not fast_hooks(llama)
        with pytest.raises(RuntimeError, match="boom"):  # an error inside a scoring pass
            list(span_sums(llama, [seq], intervention=lambda p: _boom(), progress=False))
    assert not fast_hooks(llama)
    assert all(not p.fwd_hooks for p in llama.hook_dict.values())


def _boom():
    raise RuntimeError("boom")


@pytest.mark.parametrize("site", ["post_rotary", "pre_rotary"])
def test_cached_queries_and_keys_are_the_same_on_both_paths(llama, examples, site):
    seqs = [label(e, llama.tokenizer, " Paris") for e in examples]
    eager, fast = on_both(llama, lambda: cache_qk(llama, seqs, site=site, progress=False))
    for a, b in zip(eager, fast):
        for name in ("q", "k", "cos", "sin"):
            x, y = getattr(a, name), getattr(b, name)
            assert (x is None) == (y is None) == (name in ("cos", "sin") and site == "post_rotary")
            if x is not None:
                torch.testing.assert_close(x, y, rtol=0, atol=1e-5)


def test_plain_transformers_generation_with_directions_attached(llama, examples):
    """``fast_model(model)`` is a plain transformers model: ``generate`` runs with lens_focus
    interventions while they are active, and unmodified after."""
    d = directions(llama, "post_rotary", seed=4, scale=30.0)
    heads = [Head(layer, head) for layer in range(2) for head in range(4)]
    prompt = torch.tensor([list(label(examples[0], llama.tokenizer).input_ids)])
    hf = fast_model(llama)
    kw = dict(max_new_tokens=6, do_sample=False, attention_mask=torch.ones_like(prompt), pad_token_id=llama.tokenizer.pad_token_id)
    with torch.no_grad():
        before = hf.generate(prompt, **kw)[0, prompt.shape[1]:].tolist()
        with focus(llama, d, heads, alpha=1.0):
            steered = hf.generate(prompt, **kw)[0, prompt.shape[1]:].tolist()
        after = hf.generate(prompt, **kw)[0, prompt.shape[1]:].tolist()
    with attention_path(llama, "eager"):
        batch = next(generate_batches(llama, prompt.tolist(), max_new_tokens=6, stop="eos", progress=False,
                                      during=lambda b: focus(llama, d, heads, alpha=1.0)))  # fmt: skip
    ours = list(batch.generations[0].ids)
    assert before == after != steered
    assert steered[: len(ours)] == ours
