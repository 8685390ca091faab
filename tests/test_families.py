"""The conformance matrix: every decoder family lens_focus claims, on every attention path that
claims it, checked against plain ``transformers`` (README "Supported models" is this table).

One tiny random-weight model per family (:data:`lens_focus.tiny.FAMILIES`), with the feature that
makes the family different switched on: a sliding window shorter than the prompt (Mistral, Gemma 2,
Gemma 3), query/key norms (Qwen3, OLMo 2, Gemma 3), Gemma's own query scaling, attention logit
soft-capping (Gemma 2), a fused query-key-value projection (Phi-3, GPT-NeoX, GPT-2), partial rotary
and parallel attention (GPT-NeoX), experts (Mixtral).
"""
import warnings

import numpy as np
import pytest
import torch

from lens_focus import label, load_model
from lens_focus.answers import answer_examples
from lens_focus.directions import FocusDirections, cache_qk, relevant_scores, train_directions
from lens_focus.fast import attention_path, fast_hooks, fast_unsupported
from lens_focus.generate import generate
from lens_focus.heads import Head
from lens_focus.interventions import compensation_intervention, focus_intervention
from lens_focus.model import attention_layers, model_info
from lens_focus.scoring import head_pattern, span_sums
from lens_focus.tiny import FAMILIES, tiny_model

from test_generate import greedy_by_hand
from test_interventions import naive_split_softmax
from test_labels import make_example
from test_scoring import naive_scores

WINDOW = 16
FAST = ("llama", "mistral", "qwen2", "qwen3", "gemma3", "olmo2", "mixtral", "gemma4")
"""The families the fast path covers; the others run eager, saying why."""
CASES = [(f, p) for f in FAMILIES for p in ("eager", "fast") if p == "eager" or f in FAST]
RESPONSES = [" Wilhelm Röntgen", " 1901"]
DOCS = [
    "(Title: The first Nobel Prize) Wilhelm Conrad Röntgen was awarded the first prize in physics in 1901.",
    "(Title: United States) The river and the city were in the film album of the season series.",
    "(Title: World War) The team of the country was also in the song, and their century had been long.",
]


@pytest.fixture(scope="module")
def built():
    """The families built so far in this module, by name: two parametrizations share ``family`` and
    pytest orders the tests by function, so each family is built once here, not once per test."""
    return {}


@pytest.fixture
def family(request, tmp_path_factory, built):
    """One family's tiny model (bridge, eager path), its plain ``transformers`` twin and two labeled sequences."""
    name = request.param
    if name not in built:
        built[name] = _build(name, tmp_path_factory)
    return built[name]


def _build(name, tmp_path_factory):
    from transformers import AutoModelForCausalLM

    path = tiny_model(name, tmp_path_factory.mktemp(name), seed=5, config=FAMILIES[name].matrix)
    model = load_model(str(path), device="cpu", attention="eager")
    hf = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    examples = [make_example(DOCS, relevant=3, qid="last"), make_example(DOCS[::-1], relevant=1, qid="first")]
    seqs = [label(e, model.tokenizer, r) for e, r in zip(examples, RESPONSES)]
    assert min(len(s) for s in seqs) > 4 * WINDOW  # every window is shorter than the prompts
    return {"name": name, "path": path, "model": model, "hf": hf, "examples": examples, "seqs": seqs}


def no_hooks_left(model):
    assert all(not p.fwd_hooks for p in model.hook_dict.values()), "a TransformerLens hook was left behind"
    assert not fast_hooks(model), "a fast-path hook was left behind"


each_family = pytest.mark.parametrize("family", FAMILIES, indirect=True)
each_case = pytest.mark.parametrize("family, path", CASES, indirect=["family"])


@each_family
def test_the_fast_path_covers_its_families_and_says_why_not_for_the_others(family):
    model, name = family["model"], family["name"]
    reason = fast_unsupported(model)
    assert (reason is None) == (name in FAST), reason
    with warnings.catch_warnings(record=True) as caught, attention_path(model, "fast") as ran:
        warnings.simplefilter("always")
    said = [str(w.message) for w in caught if "fast attention not available" in str(w.message)]
    assert ran == ("fast" if name in FAST else "eager")
    assert len(said) == (0 if name in FAST else 1) and (not said or reason in said[0])


@each_family
def test_labels_cover_exactly_their_characters(family):
    tok = family["model"].tokenizer
    for seq in family["seqs"]:
        encoded = tok(seq.text, add_special_tokens=False, return_offsets_mapping=True)
        assert list(seq.input_ids) == encoded["input_ids"]
        for name, spans in seq.char_spans.items():
            if name == "sink":
                continue
            for (cs, ce), (ts, te) in zip(spans, seq.token_spans[name]):
                for i, (s, e) in enumerate(encoded["offset_mapping"]):
                    assert (s < ce and e > cs) == (ts <= i < te), (family["name"], name, i)
        assert seq.token_spans["sink"] == [(0, 1)]
        assert seq.char_spans["relevant"] == seq.char_spans[seq.example.relevant]
        assert seq.text[seq.char_spans["response"][0][0] :] in RESPONSES


@each_case
def test_scores_equal_hf_attentions(family, path):
    model = family["model"]
    with attention_path(model, path) as ran:
        assert ran == path
        for rows in ("generation", "response"):
            ours = list(span_sums(model, family["seqs"], rows=rows, batch_size=2, chunk=37, progress=False))
            for seq, got in zip(family["seqs"], ours):
                ref = naive_scores(family["hf"], seq, rows)
                assert set(got) == set(ref)
                for span in ref:
                    np.testing.assert_allclose(got[span], ref[span], rtol=0, atol=FAMILIES[family["name"]].chunked_atol,
                                               err_msg=f"{family['name']} {path} {rows} {span}")  # fmt: skip
    no_hooks_left(model)


@each_case
def test_generation_with_scores_equals_one_at_a_time_and_greedy_by_hand(family, path):
    """Batched answers with their scores = each prompt alone = greedy decoding by full forwards of
    plain ``transformers`` (tests/test_generate.py says why not HF ``generate``); the scores = HF's attentions."""
    model, hf = family["model"], family["hf"]
    with attention_path(model, path):
        batched = answer_examples(model, family["examples"], max_new_tokens=4, stop="eos", batch_size=2, score="generation", progress=False)
        alone = [answer_examples(model, [e], max_new_tokens=4, stop="eos", score="generation", progress=False)[0] for e in family["examples"]]
        prompts = [label(e, model.tokenizer).input_ids for e in family["examples"]]
        generated = generate(model, prompts, max_new_tokens=4, stop="eos", batch_size=2, progress=False)
    for a, b, prompt, gen in zip(batched, alone, prompts, generated):
        assert a.response == b.response and a.sequence is not None
        assert list(gen.ids) == greedy_by_hand(hf, prompt, len(gen.ids)) and len(gen.ids) > 0
        ref = naive_scores(hf, a.sequence, "generation")
        atol = FAMILIES[family["name"]].chunked_atol
        for span in ref:
            np.testing.assert_allclose(a.scores[span], ref[span], rtol=0, atol=atol, err_msg=f"{family['name']} {path} {span}")
            np.testing.assert_allclose(b.scores[span], ref[span], rtol=0, atol=atol)
    no_hooks_left(model)


@each_case
def test_split_softmax_changes_only_the_chosen_heads_and_keeps_rows_normalised(family, path):
    """The first attention layer sees nothing upstream change: its chosen heads' rows are the formula
    of docs/method.md §3 applied to the plain rows, its other heads are untouched, every row sums
    to 1 (with learned sinks, to what the formula leaves beside the sink, which counts as outside the span)."""
    model, seq = family["model"], family["seqs"][0]  # the relevant document is the last: within every window
    if FAMILIES[family["name"]].delegates and path == "eager":
        with pytest.raises(ValueError, match="discards edits of hook_pattern"):
            compensation_intervention(model, [Head(model_info(model).attn_layers[0], 0)], tau=0.3)
        return
    first, second = (model_info(model).attn_layers * 2)[:2]
    chosen = [Head(first, 1), Head(second, 0)]
    sinks = attention_layers(model)[first].learned_sink
    span = np.zeros(len(seq), dtype=bool)
    for a, b in seq.token_spans["relevant"]:
        span[a:b] = True
    with attention_path(model, path):
        for h in range(model.cfg.n_heads):
            plain = head_pattern(model, seq, first, h)
            patched = head_pattern(model, seq, first, h, intervention=compensation_intervention(model, chosen, tau=0.3))
            if not sinks:
                np.testing.assert_allclose(patched.sum(-1), 1.0, atol=1e-5)
            if Head(first, h) in chosen:
                want = naive_split_softmax(plain[None, None].astype(np.float64), span[None], np.ones((1, len(plain)), bool), 0.3)[0, 0]
                np.testing.assert_allclose(patched, want, atol=1e-5)
                sees = plain[:, span].sum(-1) > 0  # (a row in another attention chunk than the span sees none of it: Llama 4)
                assert sees.any() and (patched[sees][:, span].sum(-1) > plain[sees][:, span].sum(-1) + 1e-3).all()
                if sinks:  # the sink gave up its share in proportion: more of each row stays on the positions
                    assert (patched.sum(-1) > plain.sum(-1)).all() and (patched.sum(-1) < 1).all()
            else:
                np.testing.assert_array_equal(patched, plain)
        later = head_pattern(model, seq, second, 0, intervention=compensation_intervention(model, chosen, tau=0.3))
        if not sinks:
            np.testing.assert_allclose(later.sum(-1), 1.0, atol=1e-5)
    no_hooks_left(model)


@each_case
def test_directions_train_save_load_and_apply_as_trained(family, path, tmp_path):
    """Directions trained on the family's own attention geometry (scaling, window, soft-capping,
    partial rotary) do on layer 0, through hooks, exactly what training computed for them: at zero
    the model's own scores, at the trained values the moved ones; they survive a save and load.
    Every site the family takes; the one it cannot take is a clear error before any work."""
    model, seqs, name = family["model"], family["seqs"], family["name"]
    info = model_info(model)
    family_ = FAMILIES[name]
    sites = family_.fast_sites if path == "fast" and family_.fast_sites is not None else family_.sites
    first = info.attn_layers[0]
    at = info.attn_layers.index(first)  # the cache's rows are the attention layers'
    with attention_path(model, path):
        for other in {"post_rotary", "pre_rotary"} - set(sites):
            with pytest.raises(ValueError, match="hook_rot_q, which the bridge" if other == "post_rotary" else "pre_rotary directions (do not apply|need the model's rotation)"):
                train_directions(model, seqs, site=other, epochs=1, progress=False)
        for site in sites:
            trained = train_directions(model, seqs, site=site, epochs=3, lr=0.05, seed=1, progress=False)
            assert trained.meta["relevant_score_trained"] > trained.meta["relevant_score_at_init"], site
            loaded = FocusDirections.load(trained.save(tmp_path / f"{site}.safetensors"), model=model)
            assert torch.equal(loaded.q, trained.q) and torch.equal(loaded.k, trained.k) and loaded.site == site
            plain = list(span_sums(model, seqs, progress=False))
            cached = cache_qk(model, seqs, site=site, progress=False)
            atol = FAMILIES[name].chunked_atol
            for c, before in zip(cached, plain):
                at_zero = relevant_scores(c, 0 * loaded.q, 0 * loaded.k, site=site, group=info.group_size)
                np.testing.assert_allclose(before["relevant"][list(info.attn_layers)], at_zero.numpy(), atol=atol, err_msg=f"{name} {path} {site} at zero")
            # one layer at a time (the first and the last with attention: a layer without positions is one of them): nothing upstream moves
            for at, layer in {0: first, len(info.attn_layers) - 1: info.attn_layers[-1]}.items():
                heads = [Head(layer, h) for h in range(info.n_heads)]
                moved = list(span_sums(model, seqs, intervention=focus_intervention(model, loaded, heads, alpha=1.0), progress=False))
                shift = 0.0
                for c, before, after in zip(cached, plain, moved):
                    want = relevant_scores(c, loaded.q, loaded.k, site=site, group=info.group_size)
                    np.testing.assert_allclose(after["relevant"][layer], want[at].numpy(), atol=atol, err_msg=f"{name} {path} {site} layer {layer}")
                    shift = max(shift, np.abs(after["relevant"][layer] - before["relevant"][layer]).max())
                assert shift > 1e-4, (site, layer)  # (a document beyond every window of a layer cannot move: the other one does)
            assert not loaded.q[[l for l in range(info.n_layers) if l not in info.attn_layers]].any()  # no direction where there is no attention
    windows = [a.window for a in attention_layers(model) if a]
    assert any(windows) == ("sliding_window" in FAMILIES[name].matrix)
    assert [a is None for a in attention_layers(model)] == [l not in info.attn_layers for l in range(info.n_layers)]
    no_hooks_left(model)


def test_the_readme_table_is_written_from_this_matrix():
    """README "Supported models" is the families block docs.py writes (tests/test_readme.py checks the
    README holds it): one row per family, fast where the matrix runs it fast."""
    from lens_focus.commands.docs import families_table

    rows = families_table().splitlines()[2:]
    assert len(rows) == len(FAMILIES) >= 24
    for name, row in zip(FAMILIES, rows):
        assert row.startswith(f"| {FAMILIES[name].label} (`") and row.split("|")[3].strip().startswith("fast, eager") == (name in FAST), row
        assert ("not available" in row.split("|")[4]) == (FAMILIES[name].delegates and name not in FAST), row
