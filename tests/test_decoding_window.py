"""Hooks that read or edit attention while a model decodes see every key at its position in the
sequence, also on sliding-window layers past their window: generation under hooks keeps every
position in its cache. Checked against one teacher-forced pass over prompt + response."""

import numpy as np
import pytest
import torch

from lens_focus import load_examples
from lens_focus.answers import label_prompts
from lens_focus.data.needle import NEEDLES, needle_examples
from lens_focus.fast import attention_path, fast_unsupported
from lens_focus.forward import input_device
from lens_focus.generate import generate_batches
from lens_focus.heads import Head
from lens_focus.hooks import hooked, last_row_from, pattern_rows
from lens_focus.interventions import Placement, compensation_intervention, placement_span, split_softmax
from lens_focus.retrieval import copy_credits, retrieval_samples
from lens_focus.scoring import second_pass_reason

WINDOW = 64


@pytest.fixture(scope="module", params=["mistral", "gemma3"])
def windowed(request, tmp_path_factory):
    """A window of 64 tokens on every layer (Mistral) or on every other layer (Gemma 3): it reaches
    the end of the last document from the response rows, not the beginning of the prompt."""
    from lens_focus import load_model
    from lens_focus.tiny import tiny_model

    path = tiny_model(request.param, tmp_path_factory.mktemp(request.param), seed=5, config={"sliding_window": WINDOW})
    return path, load_model(str(path), device="cpu")


def paths(model):
    return ["eager"] if fast_unsupported(model) else ["eager", "fast"]


def teacher_forced(model, ids: list[int]) -> torch.Tensor:
    """Every position's logits of one pass over ``ids`` (no cache): (pos, vocab)."""
    with torch.no_grad():
        return model(torch.tensor([ids], device=input_device(model)), return_type="logits")[0].float()


def test_compensated_decoding_past_the_window_equals_a_teacher_forced_pass(windowed, nq_path):
    """Greedy answers under compensation of every head are the argmax of each response row of one
    compensated pass over prompt + response: the decoding steps are patched at the span's keys,
    on sliding-window layers too (before, their cache held only the window and they went unpatched)."""
    _, model = windowed
    heads = [Head(layer, head) for layer in range(model.cfg.n_layers) for head in range(model.cfg.n_heads)]
    prompts = label_prompts(model, load_examples(nq_path, limit=1, n_docs=2, gold_positions=[2]), max_new_tokens=6)
    assert all(len(p) > 4 * WINDOW for p in prompts)
    make = compensation_intervention(model, heads, tau=0.1)
    plain = list(generate_batches(model, [p.input_ids for p in prompts], max_new_tokens=6, stop="eos", progress=False))
    for path in paths(model):
        with attention_path(model, path):
            batches = list(generate_batches(model, [p.input_ids for p in prompts], max_new_tokens=6, stop="eos", batch_size=2,
                                            during=lambda b: make(Placement([prompts[i] for i in b.indices], [b.pad(j) for j in range(len(b.indices))])),
                                            progress=False))  # fmt: skip
            checked = 0
            for batch in batches:
                for b, (i, gen) in enumerate(zip(batch.indices, batch.generations)):
                    seq = prompts[i]
                    mask, first = placement_span(Placement([seq], [0]))
                    with split_softmax(model, heads, span=mask, first_row=first, tau=0.1):
                        logits = teacher_forced(model, list(seq.input_ids) + list(gen.ids[:-1]))
                    rows = logits[len(seq) - 1 :].argmax(-1).tolist()
                    assert rows == list(gen.ids), f"{path}: example {seq.example.id}"
                    checked += 1
            assert checked == len(prompts)
        # and the compensation does change the answers of this model (the check above could fail)
        assert [g.ids for bt in plain for g in bt.generations] != [g.ids for bt in batches for g in bt.generations]


def test_retrieval_reads_each_decoding_steps_top_key_past_the_window(windowed):
    """Copy credits equal those of the top-1 keys of one teacher-forced pass, read from a plain
    transformers forward with ``output_attentions``; on Gemma 3 (a window on some layers only)
    this used to fail, its sliding layers seeing one decoding row and its full layers every one."""
    from transformers import AutoModelForCausalLM

    where, model = windowed
    examples = needle_examples(model.tokenizer, lengths=[300], depths=[30, 70], needles=NEEDLES[:1])
    prompts = label_prompts(model, examples, max_new_tokens=8)
    assert all(len(p) > 3 * WINDOW for p in prompts)
    hf = AutoModelForCausalLM.from_pretrained(where, attn_implementation="eager").eval()
    for path in paths(model):
        with attention_path(model, path):
            samples = retrieval_samples(model, examples, max_new_tokens=8, batch_size=2, gate=-1.0, progress=False)
            answers = [g for bt in generate_batches(model, [p.input_ids for p in prompts], max_new_tokens=8, stop="line", batch_size=2,
                                                    progress=False) for g in bt.generations]  # fmt: skip
        for seq, gen, got in zip(prompts, answers, samples):
            ids = list(seq.input_ids) + list(gen.ids[:-1])
            with torch.no_grad():
                att = hf(torch.tensor([ids]), output_attentions=True).attentions  # per layer (1, head, q, k)
            top = torch.stack([a[0, :, len(seq) - 1 :].argmax(-1).T for a in att], dim=1)  # (step, layer, head)
            (s, e) = seq.token_spans["needle"][0]
            expected = copy_credits(top, gen.ids, seq.input_ids, (s, e)) / (e - s)
            np.testing.assert_allclose(got, expected, err_msg=f"{path}: example {seq.example.id}")
            windowed_layers = [i for i, a in enumerate(att) if a[0, :, -1, : len(ids) - WINDOW].sum() == 0]
            assert windowed_layers and len(gen.ids) > 1  # the window hides keys from the decoding rows


def test_each_decoding_row_a_hook_reads_is_the_teacher_forced_row(windowed, nq_path):
    """Every layer's attention row at the prompt's last position and at each decoding step, as
    :func:`~lens_focus.hooks.pattern_rows` shows it during generation, equals that row of a plain
    transformers forward over prompt + response with ``output_attentions``, key by key."""
    from transformers import AutoModelForCausalLM

    where, model = windowed
    prompts = label_prompts(model, load_examples(nq_path, limit=1, n_docs=2, gold_positions=[2]), max_new_tokens=5)
    hf = AutoModelForCausalLM.from_pretrained(where, attn_implementation="eager").eval()
    for path in paths(model):
        rows: dict = {}

        def watch(batch):
            rows.clear()
            keep = lambda layer, positions, pattern: rows.setdefault(layer, []).append(pattern[:, :, -1].clone())  # noqa: E731
            hooks, fast = pattern_rows(model, last_row_from(batch.width), keep)
            return hooked(model, hooks, **fast)

        with attention_path(model, path):
            for batch in generate_batches(model, [p.input_ids for p in prompts], max_new_tokens=5, stop="eos", batch_size=2,
                                          during=watch, progress=False):  # fmt: skip
                for b, (i, gen) in enumerate(zip(batch.indices, batch.generations)):
                    ids, pad = list(prompts[i].input_ids) + list(gen.ids[:-1]), batch.pad(b)
                    with torch.no_grad():
                        att = hf(torch.tensor([ids]), output_attentions=True).attentions
                    for layer, seen in rows.items():
                        assert len(seen) >= len(gen.ids)
                        for step in range(len(gen.ids)):
                            n_keys = len(prompts[i]) + step
                            want, got = att[layer][0, :, n_keys - 1, :n_keys], seen[step][b, :, pad:]
                            torch.testing.assert_close(got, want, rtol=0, atol=1e-5, msg=f"{path} layer {layer} step {step}")
                            assert not got[:, :-WINDOW].any() or layer % 2  # Gemma 3's odd layers see every key


def test_generation_without_hooks_keeps_only_the_window(windowed, nq_path):
    """Plain generation keeps the sliding layers' window only (what transformers keeps); a cache
    past its window cannot be cut back to the prompt, and scoring against it is refused."""
    _, model = windowed
    prompts = label_prompts(model, load_examples(nq_path, limit=1, n_docs=3, gold_positions=[1]), max_new_tokens=4)
    (batch,) = list(generate_batches(model, [p.input_ids for p in prompts], max_new_tokens=4, stop="eos", progress=False))
    assert second_pass_reason(batch, 0, prompts[batch.indices[0]]) == "sliding-window cache past its window"
    watched = list(generate_batches(model, [p.input_ids for p in prompts], max_new_tokens=4, stop="eos", progress=False,
                                    during=lambda b: hooked(model, [])))  # fmt: skip
    assert second_pass_reason(watched[0], 0, prompts[watched[0].indices[0]]) is None
    assert watched[0].generations == batch.generations
