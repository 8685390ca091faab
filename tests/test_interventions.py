import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lens_focus import label, load_examples
from lens_focus.answers import answer_examples
from lens_focus.directions import FocusDirections, zero_directions
from lens_focus.generate import _decode_continuation
from lens_focus.heads import Head
from lens_focus.hooks import attn_hook_name, hooked
from lens_focus.interventions import Placement, compensation_intervention, focus, placement_span, split_softmax, split_softmax_pattern
from lens_focus.model import model_info
from lens_focus.scoring import span_sums


def naive_split_softmax(pattern, span, rows, tau):
    """docs/method.md §3 written out row by row in numpy."""
    out = pattern.copy()
    for b in range(pattern.shape[0]):
        for h in range(pattern.shape[1]):
            for i in range(pattern.shape[2]):
                if not rows[b, i]:
                    continue
                w = pattern[b, h, i]
                pi = w[span[b]].sum()
                if pi <= 0 or pi >= 1:
                    continue
                out[b, h, i] = np.where(span[b], w * pi**tau / pi, w * (1 - pi**tau) / (1 - pi))
    return out


def random_case(seed, b=3, h=2, q=5, k=9):
    g = torch.Generator().manual_seed(seed)
    pattern = torch.rand(b, h, q, k, generator=g, dtype=torch.float64).softmax(-1)
    span = torch.rand(b, k, generator=g) < 0.4
    span[0] = False  # π = 0 rows
    span[1] = True  # π = 1 rows
    rows = torch.rand(b, q, generator=g) < 0.7
    return pattern, span, rows


@pytest.mark.parametrize("tau", [0.1, 0.3, 1.0, 1.5, 1000.0])
def test_split_softmax_matches_naive_formula(tau):
    for seed in range(5):
        pattern, span, rows = random_case(seed)
        ours = split_softmax_pattern(pattern, span, rows, tau)
        np.testing.assert_allclose(ours.numpy(), naive_split_softmax(pattern.numpy(), span.numpy(), rows.numpy(), tau), atol=1e-12)
        torch.testing.assert_close(ours.sum(-1), torch.ones_like(ours.sum(-1)), atol=1e-12, rtol=0)
        assert torch.equal(ours[0], pattern[0]) and torch.equal(ours[1], pattern[1])  # π = 0 and π = 1
        assert torch.equal(ours[:, :, ~rows[2]][2], pattern[:, :, ~rows[2]][2])  # rows not chosen


def test_split_softmax_moves_mass_the_right_way():
    pattern, span, rows = random_case(7)
    rows[:] = True
    mass = lambda p: (p[2] * span[2]).sum(-1)  # noqa: E731
    base = mass(pattern)
    assert torch.equal(split_softmax_pattern(pattern, span, rows, 1.0), pattern)
    assert (mass(split_softmax_pattern(pattern, span, rows, 0.3)) > base).all()
    assert (mass(split_softmax_pattern(pattern, span, rows, 1.5)) < base).all()
    with pytest.raises(ValueError, match="tau"):
        split_softmax_pattern(pattern, span, rows, 0.0)


@pytest.fixture(scope="module")
def seqs(nq_path, llama):
    exs = load_examples(nq_path, limit=2, n_docs=4, gold_positions=[2, 4])
    return [label(e, llama.tokenizer, r) for e, r in zip(exs, [" Wilhelm Röntgen", " 1901", " Paris", " the prize"])]


def capture(model, layer, site, store):
    def keep(x, *, hook):
        store.append(x.detach().clone())

    return (attn_hook_name(layer, site), keep)


def test_split_softmax_in_a_forward_pass(llama, seqs):
    seq = seqs[0]
    ids = torch.tensor([list(seq.input_ids)])
    heads = [Head(0, 1), Head(0, 3), Head(1, 0)]
    mask, first = placement_span(Placement([seq], [0]), "relevant")
    base, patched = [], []
    with torch.no_grad():
        with hooked(llama, [capture(llama, 0, "hook_pattern", base)]):
            logits = llama(ids)
        with split_softmax(llama, heads, span=mask, first_row=first, tau=0.3):
            with hooked(llama, [capture(llama, 0, "hook_pattern", patched)]):
                changed = llama(ids)
        assert torch.equal(llama(ids), logits)
    rows = torch.zeros(1, len(seq), dtype=torch.bool)
    rows[0, seq.n_prompt - 1 :] = True
    want = base[0].clone()
    want[:, [1, 3]] = torch.from_numpy(naive_split_softmax(base[0][:, [1, 3]].double().numpy(), mask.numpy(), rows.numpy(), 0.3)).float()
    torch.testing.assert_close(patched[0], want, atol=1e-6, rtol=0)
    assert not torch.allclose(changed, logits)
    assert all(not p.fwd_hooks for p in llama.hook_dict.values())


def test_interventions_leave_no_hooks_on_error(llama, seqs):
    mask, first = placement_span(Placement([seqs[0]], [0]))
    with pytest.raises(RuntimeError, match="boom"):
        with split_softmax(llama, [Head(0, 0)], span=mask, first_row=first, tau=0.5):
            raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        with focus(llama, zero_directions(llama), [Head(1, 2)], alpha=1.0):
            raise RuntimeError("boom")
    assert all(not p.fwd_hooks for p in llama.hook_dict.values())
    with pytest.raises(ValueError, match="does not exist"):
        compensation_intervention(llama, [Head(5, 0)], tau=0.3)


def test_each_context_manager_has_its_intervention_and_the_pairs_agree(llama, seqs):
    """lf.compensation / lf.focus are context managers; lf.compensation_intervention /
    lf.focus_intervention the same for many batches: one sequence through either gives the same
    logits, and a context manager leaves no hook behind."""
    import lens_focus as lf

    heads, seq = [Head(0, 1), Head(1, 3)], seqs[0]
    ids = torch.tensor([list(seq.input_ids)])
    with torch.no_grad():
        plain = llama(ids)
        with lf.compensation(llama, seq, heads, tau=0.1):
            cm = llama(ids)
        with lf.compensation_intervention(llama, heads, tau=0.1)(Placement([seq], [0])):
            made = llama(ids)
        d = zero_directions(llama)
        d.q.normal_(generator=torch.Generator().manual_seed(0))
        with lf.focus(llama, d, heads, alpha=1.0):
            focused = llama(ids)
        with lf.focus_intervention(llama, d, heads, alpha=1.0)(Placement([seq], [0])):
            focused_made = llama(ids)
    assert torch.equal(cm, made) and not torch.allclose(cm, plain) and torch.equal(focused, focused_made) and not torch.allclose(focused, plain)
    assert all(not p.fwd_hooks for p in llama.hook_dict.values())
    assert len(lf.__all__) <= 25 and all(getattr(lf, name).__doc__ for name in lf.__all__)


def greedy_without_cache(model, prompt, n, make):
    """Greedy tokens by full teacher-forced forwards (no cache), intervention rebuilt each step."""
    ids = list(prompt)
    for _ in range(n):
        with torch.no_grad(), make(len(prompt)):
            logits = model(torch.tensor([ids]))
        ids.append(int(logits[0, -1].argmax()))
    return ids[len(prompt):]


def test_compensation_during_cached_generation_equals_full_passes(llama, nq_path):
    exs = load_examples(nq_path, limit=2, n_docs=2, gold_positions=[1, 2])
    heads = [Head(0, 1), Head(1, 0), Head(1, 3)]
    make = compensation_intervention(llama, heads, tau=0.1)
    kw = dict(max_new_tokens=4, stop="eos", score="generation", progress=False)
    patched = answer_examples(llama, exs, batch_size=4, intervention=make, **kw)
    assert len({len(label(e, llama.tokenizer)) for e in exs}) > 1  # left padding is exercised
    for a in patched:
        prompt = label(a.example, llama.tokenizer)
        mask, _ = placement_span(Placement([prompt], [0]))
        ref = greedy_without_cache(llama, prompt.input_ids, 4, lambda n: split_softmax(llama, heads, span=mask, first_row=n - 1, tau=0.1))
        assert a.response == _decode_continuation(llama.tokenizer, prompt.input_ids[-1], ref)
        # scores read during cached generation = a full teacher-forced pass under the same intervention
        full = next(span_sums(llama, [a.sequence], intervention=make, progress=False))
        for span in full:
            np.testing.assert_allclose(a.scores[span], full[span], atol=1e-5, err_msg=span)
        same = next(span_sums(llama, [a.sequence], progress=False))  # the same sequence, unpatched
        for layer, head in heads:  # every scored row has more mass on the relevant document
            assert a.scores["relevant"][layer, head] > same["relevant"][layer, head]
        untouched = np.ones_like(a.scores["relevant"], dtype=bool)
        untouched[1:] = False  # layer 0 heads other than (0, 1) see unpatched inputs
        untouched[0, 1] = False
        np.testing.assert_allclose(a.scores["relevant"][untouched], same["relevant"][untouched], atol=1e-6)


def test_focus_alpha_zero_is_exact_and_focus_acts(llama, seqs):
    ids = torch.tensor([list(seqs[0].input_ids)])
    info = model_info(llama)
    g = torch.Generator().manual_seed(0)
    d = FocusDirections(q=torch.randn(info.n_layers, info.n_heads, info.d_head, generator=g),
                        k=torch.randn(info.n_layers, info.n_heads, info.d_head, generator=g), site="post_rotary")  # fmt: skip
    heads = [Head(0, 1), Head(1, 2)]
    point = llama.hook_dict[attn_hook_name(0, "hook_rot_q")]
    seen = []
    user = point.add_hook(lambda t, *, hook: seen.append(t.shape))  # the user's own hook
    try:
        with torch.no_grad():
            base = llama(ids)
            with focus(llama, d, heads, alpha=0.0):
                assert torch.equal(llama(ids), base)
            with focus(llama, d, heads, alpha=1.0):
                assert not torch.allclose(llama(ids), base)
            assert torch.equal(llama(ids), base)
        assert point.fwd_hooks == [user] and len(seen) == 4
    finally:
        user.hook.remove()
        point.fwd_hooks.remove(user)


def patterns_under(model, ids, directions, heads, alpha):
    store = []
    hooks = [capture(model, layer, "hook_pattern", store) for layer in range(model.cfg.n_layers)]
    with torch.no_grad(), focus(model, directions, heads, alpha=alpha), hooked(model, hooks):
        model(ids)
    return torch.stack(store)  # (layer, batch, head, q, k)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "mistral"])
@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**16), scale=st.floats(0.5, 8.0))
def test_post_rotary_key_direction_is_inert(arch, models, nq_path, seed, scale):
    model = models[arch]
    ex = load_examples(nq_path, limit=1, n_docs=2, gold_positions=[2])[0]
    ids = torch.tensor([list(label(ex, model.tokenizer, " Paris").input_ids)])
    info = model_info(model)
    g = torch.Generator().manual_seed(seed)
    shape = (info.n_layers, info.n_heads, info.d_head)
    only_k = FocusDirections(q=torch.zeros(shape), k=torch.randn(shape, generator=g) * scale, site="post_rotary")
    only_q = FocusDirections(q=torch.randn(shape, generator=g) * 3, k=torch.zeros(shape), site="post_rotary")
    heads = [Head(l, h) for l in range(info.n_layers) for h in range(info.n_heads)]
    base = patterns_under(model, ids, zero_directions(model), heads, 1.0)
    assert (patterns_under(model, ids, only_k, heads, 1.0) - base).abs().max() < 1e-6
    assert (patterns_under(model, ids, only_q, heads, 1.0) - base).abs().max() > 1e-3
    # pre-rotary: both act
    kv = (info.n_layers, info.n_kv_heads, info.d_head)
    pre_k = FocusDirections(q=torch.zeros(shape), k=torch.randn(kv, generator=g) * 3, site="pre_rotary")
    pre_q = FocusDirections(q=torch.randn(shape, generator=g) * 3, k=torch.zeros(kv), site="pre_rotary")
    assert (patterns_under(model, ids, pre_k, heads, 1.0) - base).abs().max() > 1e-3
    assert (patterns_under(model, ids, pre_q, heads, 1.0) - base).abs().max() > 1e-3


def test_grouped_query_mapping_is_explicit(llama, seqs):
    info = model_info(llama)
    assert (info.n_heads, info.n_kv_heads) == (4, 2) and [info.kv_head(h) for h in range(4)] == [0, 0, 1, 1]
    ids = torch.tensor([list(seqs[1].input_ids)])
    g = torch.Generator().manual_seed(2)
    kv = torch.zeros(info.n_layers, info.n_kv_heads, info.d_head)
    kv[0] = torch.randn(info.n_kv_heads, info.d_head, generator=g) * 3
    pre_k = FocusDirections(q=torch.zeros(info.n_layers, info.n_heads, info.d_head), k=kv, site="pre_rotary")
    base = patterns_under(llama, ids, pre_k, [Head(0, 2)], 0.0)[0, 0]
    moved = patterns_under(llama, ids, pre_k, [Head(0, 2)], 1.0)[0, 0]
    diff = (moved - base).abs().amax(dim=(-1, -2))
    assert diff[2] > 1e-3 and diff[3] > 1e-3  # key-value head 1 serves query heads 2 and 3
    assert diff[0] == 0 and diff[1] == 0
    q = torch.zeros(info.n_layers, info.n_heads, info.d_head)
    q[0, 3] = torch.randn(info.d_head, generator=g) * 3
    post_q = FocusDirections(q=q, k=torch.zeros_like(q), site="post_rotary")
    diff = (patterns_under(llama, ids, post_q, [Head(0, 3)], 1.0)[0, 0] - base).abs().amax(dim=(-1, -2))
    assert diff[3] > 1e-3 and diff[:3].max() == 0


def test_focus_in_padded_batches_equals_one_at_a_time(llama, nq_path):
    exs = load_examples(nq_path, limit=3, n_docs=3, gold_positions=[1, 3])
    info = model_info(llama)
    g = torch.Generator().manual_seed(3)
    d = FocusDirections(q=torch.randn(info.n_layers, info.n_heads, info.d_head, generator=g) * 2,
                        k=torch.randn(info.n_layers, info.n_kv_heads, info.d_head, generator=g) * 2, site="pre_rotary")  # fmt: skip
    make = lambda placement: focus(llama, d, [Head(0, 0), Head(1, 3)], alpha=0.7)  # noqa: E731
    kw = dict(max_new_tokens=3, stop="eos", score="generation", intervention=make, progress=False)
    batched = answer_examples(llama, exs, batch_size=6, **kw)
    alone = answer_examples(llama, exs, batch_size=1, **kw)
    plain = answer_examples(llama, exs, batch_size=6, max_new_tokens=3, stop="eos", score="generation", progress=False)
    for a, b, c in zip(batched, alone, plain):
        assert a.response == b.response
        for span in a.scores:
            np.testing.assert_allclose(a.scores[span], b.scores[span], atol=1e-5)
    assert any(not np.allclose(a.scores["relevant"], c.scores["relevant"]) for a, c in zip(batched, plain))
    assert all(not p.fwd_hooks for p in llama.hook_dict.values())
