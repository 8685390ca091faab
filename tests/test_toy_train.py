import json

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from lens_focus.commands.cli import app
from lens_focus.toy.train import Recipe, train

SMALL = dict(layers=2, width=32, heads=4, kv_heads=2, batch=8, warmup=2, curriculum_steps=4, max_docs=4, drill_steps=2, rest_from=2)
"""The shipped recipe scaled down; its rest cost starts after the drills, as in the shipped one."""


def test_training_is_deterministic_under_a_seed(tmp_path):
    logs = [train(Recipe(seed=3, steps=6, **SMALL), tmp_path / name, log=lambda s: None, eval_every=100) for name in "ab"]
    a, b = (load_file(tmp_path / name / "model.safetensors") for name in "ab")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert logs[0]["history"] == [{**logs[1]["history"][0], "minutes": logs[0]["history"][0]["minutes"]}]
    c = load_file(train(Recipe(seed=4, steps=6, **SMALL), tmp_path / "c", log=lambda s: None)["recipe"] and tmp_path / "c" / "model.safetensors")
    assert not torch.equal(a["model.embed_tokens.weight"], c["model.embed_tokens.weight"])


def test_toy_train_and_report_commands(tmp_path, monkeypatch):
    import lens_focus.commands.cli as cli

    monkeypatch.setattr(cli, "Recipe", lambda seed: Recipe(seed=seed, **SMALL))
    runner = CliRunner()
    out = tmp_path / "toy"
    result = runner.invoke(app, ["toy", "train", "--steps", "5", "--out", str(out), "--report-n", "3"])
    assert result.exit_code == 0, result.output
    for name in ["config.json", "model.safetensors", "tokenizer.json", "README.md", "report.json", "training_log.json"]:
        assert (out / name).exists(), name
    assert '"steps": 5' in (out / "README.md").read_text()
    result = runner.invoke(app, ["toy", "report", "--model", str(out), "--n", "3", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["checkpoint"] == str(out) and report["n"] == 3
    assert set(report["long_accuracy"]) == {"1", "5", "10", "15", "20", "overall"}
    assert len(report["sink_by_layer"]) == 2 and report["n_heads"] == 8
    # accuracies over 3 questions (one prompt each per position) are multiples of 1/3; "overall" averages the 5 positions
    acc = report["long_accuracy"]
    assert all(abs(3 * acc[p] - round(3 * acc[p])) < 1e-9 for p in ("1", "5", "10", "15", "20"))
    assert acc["overall"] == pytest.approx(sum(acc[p] for p in ("1", "5", "10", "15", "20")) / 5)
    assert abs(3 * report["gold_accuracy"] - round(3 * report["gold_accuracy"])) < 1e-9
    assert report["checks"]["gold-only accuracy >= 0.95"] == (report["gold_accuracy"] >= 0.95)
    assert report["checks"]["negative accuracy <= 0.10"] == (report["negative_accuracy"] <= 0.10)
    config = json.loads((out / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"], config["num_attention_heads"]) == (2, 32, 4)


def test_rest_cost_moves_attention_onto_bos(tmp_path):
    """A few steps with the cost on reading put more attention on ``<bos>`` than the same steps
    without it (same seed, same batches)."""
    import random

    from transformers import AutoTokenizer, LlamaForCausalLM

    from lens_focus.toy.train import drill_batch

    on_bos = {}
    for cost in (0.0, 1.0):
        out = tmp_path / str(cost)
        train(Recipe(**{**SMALL, "rest_from": 0}, seed=3, steps=40, lr=1e-2, rest_cost=cost, rest_rows="all"), out, log=lambda s: None, eval_every=100)
        model = LlamaForCausalLM.from_pretrained(out, attn_implementation="eager").eval()
        ids, _ = drill_batch(random.Random(0), Recipe(batch=8), AutoTokenizer.from_pretrained(out).get_vocab())
        with torch.no_grad():
            attentions = model(ids, output_attentions=True).attentions
        on_bos[cost] = float(torch.stack([a[:, :, 1:, 0] for a in attentions]).mean())
    assert on_bos[1.0] > on_bos[0.0] + 0.5, on_bos
