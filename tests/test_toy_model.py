"""The shipped toy model: it loads offline by its alias, and the paper's interventions do on it
what the paper reports (issue: interventions, item 6)."""
import numpy as np
import pytest

from lens_focus import answer_examples, conditions, experiments, load_examples, load_model, model_info
from lens_focus.answers import gold_response_sequences
from lens_focus.directions import train_directions
from lens_focus.experiments import focus_scores
from lens_focus.heads import top_heads
from lens_focus.interventions import compensation_intervention
from lens_focus.aliases import TOY_DIR
from lens_focus.scoring import aggregate_scores

N_DOCS, POSITIONS = 20, (1, 10, 20)


@pytest.fixture(scope="module")
def toy():
    return load_model("toy", device="cpu")


@pytest.fixture(scope="module")
def ranked(toy):
    """Heads ranked by relevant score on training-split questions (the test split is kept for the
    interventions)."""
    examples = load_examples("toy", n_docs=N_DOCS, gold_positions=POSITIONS, split="train", seed=7, limit=12)
    answered = answer_examples(toy, examples, max_new_tokens=4, batch_size=64, score="generation", progress=False)
    kept = [(a.scores, c) for a, c in zip(answered, conditions(answered)) if a.scores is not None]
    return top_heads(aggregate_scores(*zip(*kept)), model_info(toy).n_total_heads)


@pytest.fixture(scope="module")
def held_out():
    return load_examples("toy", n_docs=N_DOCS, gold_positions=POSITIONS, split="test", seed=11, limit=40)


def _em(model, examples, intervention=None) -> float:
    return float(np.mean([r["em"] for r in experiments.answer_records(model, examples, intervention, max_new_tokens=4, batch_size=64)]))


def test_the_toy_ships_and_loads_offline(toy):
    info = model_info(toy)
    assert info.rotary and info.n_kv_heads < info.n_heads and info.n_layers >= 4 and info.n_heads >= 4
    assert toy.tokenizer.bos_token == "<bos>"
    size = sum(p.stat().st_size for p in TOY_DIR.iterdir())
    assert size <= 20 * 2**20
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md", "report.json"):
        assert (TOY_DIR / name).exists(), name


def test_compensation_on_contextual_heads_moves_em_both_ways(toy, ranked, held_out):
    long = [e for e in held_out if e.variant == "long"]
    gold = [e for e in held_out if e.variant == "gold"]
    baseline = _em(toy, long)
    assert _em(toy, gold) >= baseline + 0.2  # distracted, with signal left
    heads = ranked[:4]
    sharpened = _em(toy, long, compensation_intervention(toy, heads, tau=0.5))
    flattened = _em(toy, long, compensation_intervention(toy, heads, tau=2.0))
    assert sharpened > baseline > flattened, (sharpened, baseline, flattened)


def test_positive_focus_moves_the_top_heads_from_the_sink_to_the_relevant_document(toy, ranked):
    """Directions trained as in the paper (10 epochs) on training-split questions, applied to the
    top-5 contextual heads on held-out ones: each head's relevant score rises, on average more at
    larger α; the sink of the head that rests on it most falls, more at larger α, and no head's
    sink rises. (The retrieval heads of layer 1 put almost nothing on the sink: see the card.)"""
    train = load_examples("toy", n_docs=N_DOCS, gold_positions=POSITIONS, split="train", seed=3, limit=10)
    seqs, _ = gold_response_sequences(toy, train, max_new_tokens=4, batch_size=64, progress=False)
    directions = train_directions(toy, seqs, epochs=10, seed=0, progress=False)
    assert directions.meta["relevant_score_trained"] > directions.meta["relevant_score_at_init"]
    evaluation = load_examples("toy", n_docs=N_DOCS, gold_positions=POSITIONS, split="test", seed=5, limit=10)
    table = focus_scores(toy, evaluation, directions, ranked[:5], alphas=[0.5, 1.0], max_new_tokens=4, batch_size=64, progress=False)
    relevant, sink = (table[table.span == s].pivot_table(index=["layer", "head"], columns="alpha", values=["score", "delta"]) for s in ("relevant", "sink"))
    assert (relevant["delta"][[0.5, 1.0]] > 0).all().all() and relevant["delta"][1.0].mean() > relevant["delta"][0.5].mean(), relevant
    resting = sink["score"][0.0].idxmax()
    assert sink["score"][0.0][resting] > 0.02 and 0 > sink["delta"][0.5][resting] > sink["delta"][1.0][resting], sink
    assert (sink["delta"][[0.5, 1.0]] < 1e-3).all().all(), sink


def test_readme_command_a_scores_the_toy_and_matches_a_plain_forward(tmp_path):
    """`lens-focus score --data toy` (the README's main job, the toy by default), checked against
    attention read from a plain Hugging Face forward pass of the written sequences."""
    import json

    import pandas as pd
    import torch
    from transformers import LlamaForCausalLM
    from typer.testing import CliRunner

    from lens_focus.commands.cli import app

    result = CliRunner().invoke(app, ["score", "--data", "toy", "--limit", "3", "--gold-positions", "1,20", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "summary.json").read_text())["model"]["name"] == "toy"
    hf = LlamaForCausalLM.from_pretrained(TOY_DIR, attn_implementation="eager").eval()
    per_seq = []
    for line in (tmp_path / "examples.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["condition"] != "long":
            continue
        with torch.no_grad():
            att = torch.stack(hf(torch.tensor([rec["input_ids"]]), output_attentions=True).attentions)[:, 0]  # (layer, head, q, k)
        (r0, r1), (s0, s1) = rec["token_spans"]["response"][0], rec["token_spans"]["relevant"][0]
        per_seq.append(att[:, :, r0 - 1 : r1 - 1, s0:s1].sum(-1).mean(-1))
    expected = torch.stack(per_seq).mean(0).numpy()
    scores = pd.read_csv(tmp_path / "scores.csv").query("condition == 'long' and span == 'relevant'")
    got = scores.pivot(index="layer", columns="head", values="score").to_numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_the_default_recipe_is_the_shipped_one():
    """`lens-focus toy train --seed 0` trains what ships: the default recipe equals the one in the
    shipped training log."""
    import json

    from lens_focus.toy.train import Recipe

    shipped = json.loads((TOY_DIR / "training_log.json").read_text())["recipe"]
    default = json.loads(json.dumps(Recipe().to_dict()))
    assert default == shipped
