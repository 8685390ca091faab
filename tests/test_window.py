"""The sliding-window table (analyses/window.py) and its reproduce step, on a tiny Gemma 3 whose
windowed layers see 16 positions: a relevant document beyond the window gets exactly nothing
from those layers' heads, one inside it does."""
import json

import numpy as np
import pandas as pd
import pytest

from lens_focus.analyses import window
from lens_focus import answer_examples, load_examples, load_model
from lens_focus.commands.reproduce import plan_for, reproduce
from lens_focus.profile import Profile
from lens_focus.model import attention_layers
from lens_focus.tiny import tiny_model

from test_scoring import naive_scores


@pytest.fixture(scope="module")
def gemma(tmp_path_factory):
    path = tiny_model("gemma3", tmp_path_factory.mktemp("gemma3w"), seed=4, config={"sliding_window": 16})
    return path, load_model(str(path), device="cpu")


def test_window_table_reach_and_scores(gemma, nq_path):
    from transformers import AutoModelForCausalLM

    path, model = gemma
    windows = [a.window for a in attention_layers(model)]
    assert windows == [16, None]
    exs = load_examples(nq_path, limit=3, n_docs=3, gold_positions=[1, 3], variants=("long",))
    answered = answer_examples(model, exs, max_new_tokens=3, stop="eos", score="generation", progress=False)
    table = window.compute(answered, windows).set_index("gold_position")
    per_position = pd.Series([e.meta["gold_position"] for e in exs]).value_counts()
    assert list(table.index) == [1, 3] and list(table.n) == [per_position[1], per_position[3]]
    assert table.loc[1, "outside"] == table.loc[1, "scored"] > 0  # the first of three documents is far beyond 16 tokens
    assert table.loc[1, "relevant_windowed_max"] == 0.0 and table.loc[1, "relevant_full_max"] > 0
    for a in (a for a in answered if a.sequence is not None):  # each answer's reach, from its token positions by hand
        seq = a.sequence
        first = seq.token_spans["relevant"][0][0]
        last = seq.token_spans["relevant"][-1][1] - 1
        row = seq.n_prompt - 1
        want = "inside" if row - first < 16 else "outside" if row - last >= 16 else "partly"
        assert window.reach(seq, 16) == want
    hf = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    at3 = [a for a in answered if a.example.meta["gold_position"] == 3]
    ref = np.mean([naive_scores(hf, a.sequence, "generation")["relevant"] for a in at3 if a.scores is not None], axis=0)
    assert table.loc[3, "relevant_full_mean"] == pytest.approx(ref[1].mean(), abs=1e-5)
    assert table.loc[3, "relevant_windowed_max"] == pytest.approx(ref[0].max(), abs=1e-5)
    k = int(sum(a.em for a in at3))
    assert (table.loc[3, "em_low"], table.loc[3, "em_high"]) == pytest.approx(window.wilson(k, 3))
    with pytest.raises(ValueError, match="both windowed and full"):
        window.compute(answered, [None, None])


@pytest.mark.slow
def test_reproduce_writes_the_window_step_for_a_windowed_model_and_skips_it_otherwise(gemma, tiny_dirs, tmp_path):
    path, _ = gemma
    plan = plan_for(Profile(False, 8192), quick=True, changes={"max_new_tokens": 2, "window": {"n_docs": 4, "limit": 2, "gold_positions": [1, 4]}})
    status = reproduce(str(path), tmp_path / "g", plan=plan, steps=["window"], progress=False, log=lambda *_: None)
    assert status["window"] == "ran" and status["score"] == "skipped"
    table = pd.read_csv(tmp_path / "g" / "window" / "window.csv")
    assert list(table.gold_position) == [1, 4] and list(table.n) == [2, 2] and (table.scored <= table.n).all()
    meta = json.loads((tmp_path / "g" / "window" / "window.json").read_text())
    assert meta["windows"] == [16, None] and (tmp_path / "g" / "window" / "window.html").exists()
    index = (tmp_path / "g" / "index.md").read_text()
    assert "| position 1 (" in index and "| position 4 (" in index and "Not drawn" not in index
    assert reproduce(str(path), tmp_path / "g", plan=plan, steps=["window"], progress=False, log=lambda *_: None)["window"] == "done"
    status = reproduce(str(tiny_dirs["llama"]), tmp_path / "l", plan=plan, steps=["window"], progress=False, log=lambda *_: None)
    assert json.loads((tmp_path / "l" / "window" / "window.json").read_text()) == {"skipped": "no layer has a sliding window"}
    assert "Not drawn: no layer has a sliding window." in (tmp_path / "l" / "index.md").read_text()


@pytest.mark.parametrize("block", [5, 40])
def test_the_fast_path_reads_a_windowed_layer_in_blocks_as_transformers_reads_it_whole(gemma, nq_path, monkeypatch, block):
    """Blocks of query rows (at least the window, 16) against only the keys of their window give a
    padded batch the scores, logits and greedy answers of transformers' own (T × T)-masked forward."""
    import torch
    from transformers import AutoModelForCausalLM

    import lens_focus.fast as fast_module
    from lens_focus import label
    from lens_focus.fast import attention_path
    from lens_focus.forward import run
    from lens_focus.scoring import span_sums

    monkeypatch.setattr(fast_module, "WINDOW_BLOCK", block)
    path, model = gemma
    hf = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    exs = load_examples(nq_path, limit=2, n_docs=3, gold_positions=[1, 3], variants=("long",))
    seqs = [label(e, model.tokenizer, " the answer") for e in exs]
    assert min(map(len, seqs)) > 4 * max(block, 16)  # several blocks per prompt
    with attention_path(model, "fast") as ran:
        assert ran == "fast"
        for seq, got in zip(seqs, span_sums(model, seqs, batch_size=4, progress=False)):  # a padded batch
            ref = naive_scores(hf, seq, "generation")
            for span in ref:
                np.testing.assert_allclose(got[span], ref[span], atol=1e-5, err_msg=span)
        ids = [s.input_ids[: s.n_prompt] for s in seqs]
        width = max(map(len, ids))
        batch = torch.tensor([[0] * (width - len(p)) + list(p) for p in ids])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in ids])
        with torch.no_grad():
            logits, _ = run(model, batch, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0))
            for b, p in enumerate(ids):
                torch.testing.assert_close(logits[b], hf(torch.tensor([p])).logits[0, -1], atol=1e-4, rtol=0)
