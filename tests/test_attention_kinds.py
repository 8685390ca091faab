"""Hybrid layers, learned sinks and the decoders lens_focus refuses, beyond what the conformance
matrix (tests/test_families.py) checks for every family: the tables a researcher reads list a
hybrid's layers without attention as such, a learned sink's share is its own span and moves as
docs/method.md §3 says under compensation, and a configuration that cannot work is refused before
its weights load, with the reason."""
import json

import numpy as np
import pytest
import torch

from lens_focus import label, load_model
from lens_focus.directions import train_directions
from lens_focus.errors import InputError
from lens_focus.heads import Head, random_heads, top_heads
from lens_focus.interventions import compensation_intervention, focus_intervention
from lens_focus.model import check_config, layer_kinds, model_info
from lens_focus.scoring import LEARNED_SINK, score_grid, score_heads, span_sums
from lens_focus.tiny import FAMILIES, tiny_model

from test_families import DOCS, RESPONSES
from test_labels import make_example


def _seqs(model, n=4):
    examples = [make_example(DOCS[i % 3 :] + DOCS[: i % 3], relevant=1 + i % 3, qid=f"q{i}") for i in range(n)]
    return [label(e, model.tokenizer, RESPONSES[i % 2]) for i, e in enumerate(examples)]


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory):
    path = tiny_model("qwen3_5", tmp_path_factory.mktemp("qwen3_5"), seed=2)
    return load_model(str(path), device="cpu", attention="eager")


@pytest.fixture(scope="module")
def sinks(tmp_path_factory):
    from lens_focus.model import hf_attention

    path = tiny_model("gpt_oss", tmp_path_factory.mktemp("gpt_oss"), seed=3)
    model = load_model(str(path), device="cpu", attention="eager")
    with torch.no_grad():  # sinks of a trained model's size (random ones take under 1 % of a row)
        for layer in model_info(model).attn_layers:
            hf_attention(model, layer).sinks.copy_(torch.linspace(1.0, 3.0, model_info(model).n_heads))
    return model


def test_a_hybrid_lists_its_layers_without_attention_and_never_scores_them(hybrid):
    info = model_info(hybrid)
    assert info.attn_layers == (1, 3) and info.hybrid and info.n_total_heads == 2 * info.n_heads
    assert layer_kinds(hybrid) == ["linear_attention", "attention", "linear_attention", "attention"]
    assert "2 with attention: 1, 3" in str(info)
    scores = score_heads(hybrid, _seqs(hybrid), progress=False)
    assert set(scores.layer) == {1, 3}  # no row for a layer without attention, not a row of 0
    grid = score_grid(scores, n_layers=info.n_layers)
    assert np.isnan(grid[[0, 2]]).all() and not np.isnan(grid[[1, 3]]).any()
    assert {h.layer for h in top_heads(scores, 8)} == {1, 3}
    drawn = random_heads(info.n_layers, info.n_heads, 8, seed=0, layers=info.attn_layers)
    assert {h.layer for h in drawn} == {1, 3} and len(set(drawn)) == 8


def test_a_head_on_a_layer_without_attention_is_refused(hybrid):
    with pytest.raises(InputError, match=r"layer 0 has no attention \(the layers with attention: 1, 3\)"):
        compensation_intervention(hybrid, [Head(0, 1)], tau=0.3)
    directions = train_directions(hybrid, _seqs(hybrid, 2), epochs=1, progress=False)
    assert not directions.q[[0, 2]].any() and not directions.k[[0, 2]].any()  # nothing trained where there is no attention
    with pytest.raises(InputError, match="layer 2 has no attention"):
        focus_intervention(hybrid, directions, [Head(2, 0)], alpha=1.0)


def test_the_learned_sink_is_its_own_span_and_compensation_takes_from_it_as_the_formula_says(sinks):
    """docs/method.md §3: with π the row's mass on the relevant span and σ the sink's share, the
    sink's share becomes σ · (1 − π^τ) / (1 − π). Per row, on the first attention layer (nothing
    upstream changes), for every compensated head."""
    from lens_focus.scoring import head_pattern

    seq = _seqs(sinks, 1)[0]
    plain = next(span_sums(sinks, [seq], progress=False))
    assert LEARNED_SINK in plain and (plain[LEARNED_SINK] > 0.01).all() and (plain[LEARNED_SINK] < 1).all()
    tau, heads = 0.3, [Head(0, h) for h in range(model_info(sinks).n_heads)]
    span = np.zeros(len(seq), dtype=bool)
    for a, b in seq.token_spans["relevant"]:
        span[a:b] = True
    for h in range(model_info(sinks).n_heads):
        before = head_pattern(sinks, seq, 0, h).astype(np.float64)
        after = head_pattern(sinks, seq, 0, h, intervention=compensation_intervention(sinks, heads, tau=tau)).astype(np.float64)
        pi, sigma = before[:, span].sum(-1), 1 - before.sum(-1)
        np.testing.assert_allclose(1 - after.sum(-1), sigma * (1 - pi**tau) / (1 - pi), atol=1e-5)
    moved = next(span_sums(sinks, [seq], intervention=compensation_intervention(sinks, heads, tau=tau), progress=False))
    assert (moved[LEARNED_SINK][0] < plain[LEARNED_SINK][0]).all() and (moved["relevant"][0] > plain["relevant"][0]).all()


def test_directions_trained_with_the_sink_in_the_softmax_raise_the_relevant_span(sinks):
    seqs = _seqs(sinks)
    trained = train_directions(sinks, seqs, epochs=5, lr=0.05, seed=1, progress=False)
    assert trained.meta["relevant_score_trained"] > trained.meta["relevant_score_at_init"]
    heads = [Head(0, h) for h in range(model_info(sinks).n_heads)]
    plain = list(span_sums(sinks, seqs, progress=False))
    moved = list(span_sums(sinks, seqs, intervention=focus_intervention(sinks, trained, heads, alpha=1.0), progress=False))
    gain = np.mean([m["relevant"][0] - p["relevant"][0] for p, m in zip(plain, moved)])
    assert gain > 0


def test_score_tables_carry_the_learned_sink(sinks):
    scores = score_heads(sinks, _seqs(sinks, 2), progress=False)
    learned = scores[scores.span == LEARNED_SINK]
    assert len(learned) == model_info(sinks).n_total_heads and learned.score.between(0, 1).all()


def _config(tmp_path, kind, **fields):
    import transformers as tf

    tf.AutoConfig.for_model(kind, **fields).save_pretrained(tmp_path)
    return tf.AutoConfig.from_pretrained(tmp_path)


def test_refused_before_loading_with_the_reason(tmp_path):
    with pytest.raises(InputError, match="nemotron_h is not supported: the bridge wraps every layer"):
        check_config(_config(tmp_path / "n", "nemotron_h"), "n")
    with pytest.raises(InputError, match="zamba2 is not supported: TransformerLens' Zamba2 adapter wraps only its Mamba-2 layers"):
        check_config(_config(tmp_path / "z", "zamba2"), "z")
    bad = _config(tmp_path / "d", "deepseek_v3", num_attention_heads=4, num_key_value_heads=2, kv_lora_rank=16)
    with pytest.raises(InputError, match="latent attention .* num_key_value_heads=2 and num_attention_heads=4"):
        check_config(bad, "d")
    assert check_config(_config(tmp_path / "g", "granitemoehybrid")) == {"position_embedding_type": "nope"}
    assert check_config(_config(tmp_path / "r", "granitemoehybrid", position_embedding_type="rope")) == {}
    assert check_config(_config(tmp_path / "l", "llama")) == {}


def test_load_model_refuses_before_reading_weights(tmp_path):
    path = tiny_model("deepseek_v3", tmp_path / "m", seed=1)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps(config | {"num_key_value_heads": 2}))
    (path / "model.safetensors").write_bytes(b"not weights")  # never read
    with pytest.raises(InputError, match="latent attention"):
        load_model(str(path), device="cpu")
