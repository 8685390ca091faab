import warnings

import numpy as np
import pytest
import torch

from lens_focus import label, load_examples, score_heads
from lens_focus.fast import attention_path, fast_unsupported
from lens_focus.scoring import last_rows, span_sums


def naive_scores(hf_model, seq, rows):
    """Eq. 1 straight from a plain Hugging Face forward pass with output_attentions=True: per span
    (layer, head), NaN on the layers of a hybrid model that have no ``self_attn`` (Hugging Face
    returns attentions for the others only, in order), and with learned sinks (a ``sinks``
    parameter) the share 1 − Σ_j W[i, j] each row leaves to them."""
    with torch.no_grad():
        att = hf_model(torch.tensor([seq.input_ids]), output_attentions=True).attentions
    blocks = hf_model.model.layers if hasattr(hf_model, "model") and hasattr(hf_model.model, "layers") else None
    layers = [i for i, b in enumerate(blocks) if getattr(b, "self_attn", None) is not None] if blocks is not None else list(range(len(att)))
    assert len(layers) == len(att), (layers, len(att))
    n_layers = len(blocks) if blocks is not None else len(att)
    rs = list(seq.rows(rows))

    def grid(per_head):
        out = np.full((n_layers, att[0].shape[1]), np.nan)
        for layer, a in zip(layers, att):
            out[layer] = [per_head(a[0, h][rs]) for h in range(a.shape[1])]
        return out

    out = {name: grid(lambda w, cols=seq.tokens_of(name): float(w[:, cols].sum(-1).mean())) for name in seq.token_spans}
    docs = seq.example.irrelevant_names
    if docs:
        out["irrelevant_max"] = np.max([out[d] for d in docs], axis=0)
    if any(getattr(b.self_attn, "sinks", None) is not None for i, b in enumerate(blocks or []) if i in layers):
        out["learned_sink"] = grid(lambda w: float((1 - w.sum(-1)).mean()))
    return out


@pytest.fixture(scope="module")
def sequences(nq_path, models):
    exs = load_examples(nq_path, limit=2, n_docs=4, gold_positions=[1, 4])
    responses = [" Wilhelm Röntgen", " 1901", " the first prize", " Paris"]
    return {
        arch: [label(e, m.tokenizer, responses[i % 4]) for i, e in enumerate(exs)] for arch, m in models.items()
    }


@pytest.mark.parametrize("arch, path", [(a, p) for a in ("llama", "qwen2", "mistral") for p in ("eager", "fast")] + [("gpt2", "eager")])
@pytest.mark.parametrize("rows", ["generation", "response"])
def test_hook_scores_equal_hf_attentions(arch, rows, path, tiny_dirs, models, sequences):
    from transformers import AutoModelForCausalLM
    hf = AutoModelForCausalLM.from_pretrained(tiny_dirs[arch], attn_implementation="eager").eval()
    seqs = sequences[arch]
    assert len({len(s) for s in seqs}) > 1  # batches mix lengths
    with attention_path(models[arch], path) as used:
        assert used == path
        whole = list(span_sums(models[arch], seqs, rows=rows, batch_size=3, chunk=100_000, progress=False))
        chunked = list(span_sums(models[arch], seqs, rows=rows, batch_size=3, chunk=37, progress=False))
    for seq, ours, ours_chunked in zip(seqs, whole, chunked):
        ref = naive_scores(hf, seq, rows)
        assert set(ours) == set(ref) == set(ours_chunked)
        for name in ref:
            np.testing.assert_allclose(ours[name], ref[name], rtol=0, atol=1e-5, err_msg=f"{arch} {seq.example.id} {name}")
            np.testing.assert_allclose(ours_chunked[name], ref[name], rtol=0, atol=1e-5, err_msg=f"chunked {name}")
    # the rows really differ between the two options, so the test can tell them apart
    assert len(seqs[0].rows("generation")) == len(seqs[0].rows("response"))
    assert seqs[0].rows("generation").start == seqs[0].rows("response").start - 1


def test_score_table_averages_per_condition(llama, sequences):
    seqs = sequences["llama"]
    conds = [[s.example.variant] + (["correct"] if i == 0 else []) for i, s in enumerate(seqs)]
    table = score_heads(llama, seqs, conditions=conds, progress=False)
    assert list(table.columns) == ["layer", "head", "condition", "span", "score", "n"]
    per_seq = list(span_sums(llama, seqs, progress=False))
    long = [p for p, s in zip(per_seq, seqs) if s.example.variant == "long"]
    sel = table[(table.condition == "long") & (table.span == "relevant")].sort_values(["layer", "head"])
    np.testing.assert_allclose(sel.score.to_numpy(), np.mean([p["relevant"] for p in long], axis=0).ravel(), atol=1e-7)
    assert set(sel.n) == {len(long)}
    assert set(table[table.condition == "correct"].n) == {1}
    gold = table[table.condition == "gold"]
    assert "irrelevant" not in set(gold.span) and {"relevant", "sink", "response"} <= set(gold.span)
    # a row's attention sums to one: spans that tile the sequence add up to 1
    assert table.score.between(0, 1 + 1e-6).all()


def test_scoring_leaves_no_hooks_and_keeps_the_users(llama, sequences):
    from lens_focus.fast import fast_hooks

    seen = []
    point = llama.hook_dict["blocks.1.attn.hook_pattern"]
    handle = point.add_hook(lambda t, *, hook: seen.append(t.shape))
    try:
        with attention_path(llama, "eager"):  # the bridge's hooks fire on the eager path only
            list(span_sums(llama, sequences["llama"][:1], progress=False))
        assert seen  # the user's hook stayed in place and fired
        assert len(point.fwd_hooks) == 1
        list(span_sums(llama, sequences["llama"][:1], progress=False))
        assert len(point.fwd_hooks) == 1
    finally:
        handle.hook.remove()
        point.fwd_hooks.remove(handle)
    assert all(not p.fwd_hooks for p in llama.hook_dict.values())
    assert not fast_hooks(llama)


def test_empty_rows_are_an_error(llama, nq_path):
    ex = load_examples(nq_path, limit=1, n_docs=2, gold_positions=[1])[0]
    seq = label(ex, llama.tokenizer)  # no response: no generation rows beyond... none at all
    with pytest.raises(ValueError, match=f"{ex.id}: no rows"):
        list(span_sums(llama, [seq], rows="response", progress=False))


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2"])
@pytest.mark.parametrize("rows", ["generation", "response"])
def test_scores_on_the_way_equal_a_separate_teacher_forced_pass(arch, rows, models, nq_path):
    from lens_focus import answer_examples

    model = models[arch]
    exs = load_examples(nq_path, limit=6, n_docs=3, gold_positions=[1, 3])  # enough prompts that some answer ends early
    answered = answer_examples(model, exs, max_new_tokens=5, stop="eos", batch_size=3, score=rows, progress=False)
    scored = [a for a in answered if a.sequence is not None]
    assert len(scored) >= 4
    if arch != "qwen2":  # answers of several lengths share a batch
        assert len({a.sequence.n_response for a in scored}) > 1
    ref = list(span_sums(model, [a.sequence for a in scored], rows=rows, progress=False))
    for a, r in zip(scored, ref):
        assert set(a.scores) == set(r)
        for name in r:
            np.testing.assert_allclose(a.scores[name], r[name], rtol=0, atol=1e-5, err_msg=f"{a.example.id} {name}")
    assert all(a.scores is None for a in answered if a.sequence is None)


def test_rows_that_cannot_reuse_the_cache_are_scored_separately(llama, nq_path):
    from lens_focus.generate import generate_batches
    from lens_focus.scoring import last_rows, score_after_generation

    exs = load_examples(nq_path, limit=1, n_docs=3, gold_positions=[1, 2, 3], variants=("long",))
    prompts = [label(e, llama.tokenizer).input_ids for e in exs]
    store = {}
    batch = next(generate_batches(llama, prompts, max_new_tokens=4, stop="eos", prefill=last_rows(llama, store), progress=False))
    seqs = [label(exs[i], llama.tokenizer, g.text) for i, g in zip(batch.indices, batch.generations)]
    batch.prompts[1] = batch.prompts[1][:-1] + [0]  # as if the prompt had tokenized differently
    got = score_after_generation(llama, batch, seqs, store)
    ref = list(span_sums(llama, seqs, progress=False))
    for g, r in zip(got, ref):
        for name in r:
            np.testing.assert_allclose(g[name], r[name], rtol=0, atol=1e-5)
    # a skipped row (None) in the middle of a batch: the others still reuse the cache
    store.clear()
    batch = next(generate_batches(llama, prompts, max_new_tokens=4, stop="eos", prefill=last_rows(llama, store), progress=False))
    got = score_after_generation(llama, batch, [seqs[0], None, seqs[2]], store)
    assert got[1] is None
    for g, r in zip([got[0], got[2]], [ref[0], ref[2]]):
        for name in r:
            np.testing.assert_allclose(g[name], r[name], rtol=0, atol=1e-5)


@pytest.mark.parametrize("path", ["eager", "fast"])
def test_the_kept_prompt_row_does_not_hold_the_whole_pattern(llama, path):
    """Scoring during generation keeps one row per layer; holding a view of it would keep every
    layer's (batch, heads, T, T) pattern alive until the batch is scored (gigabytes at 3k tokens)."""
    from types import SimpleNamespace

    from lens_focus.forward import run
    from lens_focus.hooks import hooked

    batch, heads, t = 2, llama.cfg.n_heads, 50
    ids = torch.randint(0, 300, (batch, t))
    full = {}
    with attention_path(llama, "eager"), hooked(llama, [("blocks.0.attn.hook_pattern", lambda p, hook: full.setdefault(0, p.clone()))]):
        run(llama, ids)
    store = {}
    with torch.no_grad(), attention_path(llama, path), last_rows(llama, store)(SimpleNamespace(width=t)):
        run(llama, ids)
    row = store[0]
    torch.testing.assert_close(row, full[0][:, :, -1, :], rtol=0, atol=1e-6)
    assert row.untyped_storage().nbytes() == batch * heads * t * 4


@pytest.mark.parametrize("path", ["eager", "fast"])
def test_head_pattern_equals_hf_attentions_and_sums_to_the_scores(path, tiny_dirs, models, sequences):
    from transformers import AutoModelForCausalLM

    from lens_focus.analyses import attention_view
    from lens_focus.scoring import head_pattern

    hf = AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"], attn_implementation="eager").eval()
    model, seq = models["llama"], sequences["llama"][1]
    with torch.no_grad():
        att = hf(torch.tensor([seq.input_ids]), output_attentions=True).attentions
    with attention_path(model, path):
        for layer, head in [(0, 0), (1, 3)]:
            for rows in ("generation", "response"):
                ours = head_pattern(model, seq, layer, head, rows=rows)
                np.testing.assert_allclose(ours, att[layer][0, head][list(seq.rows(rows))].numpy(), atol=1e-5)
        view = attention_view.compute(model, seq, 1, 3)
        scores = next(span_sums(model, [seq], progress=False))
    totals = view.groupby("part").attention.sum()
    for part in ("sink", "relevant", "question"):  # parts that no earlier part overlaps
        assert totals[part] == pytest.approx(scores[part][1, 3], abs=1e-5)
    assert view.attention.sum() == pytest.approx(1.0, abs=1e-5) and len(view) == len(seq)
    with pytest.raises(ValueError, match=rf"no head \({model.cfg.n_layers}, 0\)"):
        head_pattern(model, seq, model.cfg.n_layers, 0)


@pytest.fixture(scope="module", params=["mistral", "gemma3"])
def sliding(request, tmp_path_factory):
    """A window of 16 tokens: on every layer (Mistral), or on every other layer, with query/key
    norms and Gemma's own query scaling (Gemma 3)."""
    from lens_focus import load_model
    from lens_focus.tiny import tiny_model

    path = tiny_model(request.param, tmp_path_factory.mktemp(request.param), seed=3, config={"sliding_window": 16})
    return path, load_model(str(path), device="cpu")


@pytest.mark.parametrize("path", ["eager", "fast"])
def test_answers_past_a_sliding_window_are_scored_against_the_generations_cache(path, sliding, nq_path):
    """Generation that scores its answers keeps every position of its sliding-window layers
    (tests/test_decoding_window.py shows the cache a plain generation keeps, which could not be cut
    back): the answers are scored against it, with no second pass, and equal a plain HF forward."""
    from transformers import AutoModelForCausalLM

    from lens_focus import answer_examples
    from lens_focus.answers import second_pass_counts

    where, model = sliding
    exs = load_examples(nq_path, limit=1, n_docs=2, gold_positions=[1, 2])
    with warnings.catch_warnings(record=True) as caught, attention_path(model, path) as ran:
        warnings.simplefilter("always")
        answered = answer_examples(model, exs, max_new_tokens=4, stop="eos", batch_size=3, score="generation", progress=False)
    if fast_unsupported(model):  # Gemma 3 runs eager, and asking for fast says so
        assert ran == "eager" and (path == "eager") == (not any("fast attention not available" in str(w.message) for w in caught))
    else:
        assert ran == path
    scored = [a for a in answered if a.sequence is not None]
    assert scored and all(len(a.sequence) > 16 for a in scored)  # every prompt is longer than the window
    assert second_pass_counts(answered) == {} and all(a.second_pass is None for a in answered)
    hf = AutoModelForCausalLM.from_pretrained(where, attn_implementation="eager").eval()
    for a in scored:
        ref = naive_scores(hf, a.sequence, "generation")
        for name in ref:
            np.testing.assert_allclose(a.scores[name], ref[name], rtol=0, atol=1e-5, err_msg=f"{path} {a.example.id} {name}")
        # the window is honoured: the first key is out of reach of the scored rows of every sliding layer
        windowed = [t == "sliding_attention" for t in getattr(hf.config, "layer_types", None) or ["sliding_attention"] * len(ref["sink"])]
        assert a.sequence.rows("generation").start > 16 and np.allclose(ref["sink"][windowed], 0) and any(windowed)


def test_answers_within_reach_of_the_cache_are_not_scored_twice(llama, nq_path):
    from lens_focus import answer_examples
    from lens_focus.answers import second_pass_counts

    exs = load_examples(nq_path, limit=1, n_docs=2, gold_positions=[1])
    answered = answer_examples(llama, exs, max_new_tokens=4, stop="eos", score="generation", progress=False)
    assert any(a.sequence is not None for a in answered)
    assert second_pass_counts(answered) == {} and all(a.second_pass is None for a in answered)
