import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from lens_focus.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def score_run(tiny_dirs, nq_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("score")
    args = ["score", "--model", str(tiny_dirs["llama"]), "--data", str(nq_path), "--limit", "2", "--n-docs", "4",
            "--gold-positions", "1,4", "--max-new-tokens", "4", "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_score_writes_every_output(score_run, llama):
    out, output = score_run
    for name in ["scores.csv", "heads.json", "examples.jsonl", "em.csv", "table1.csv", "table1.md",
                 "head_locations.html", "sparsity.csv", "summary.json"]:  # fmt: skip
        assert (out / name).exists(), name
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns) == ["layer", "head", "condition", "span", "score", "n"]
    heads = json.loads((out / "heads.json").read_text())
    rel = scores[(scores.condition == "long") & (scores.span == "relevant")].set_index(["layer", "head"]).score
    assert len(heads) == 8 and [rel[tuple(h)] for h in heads] == sorted(rel, reverse=True)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["examples"] == 2 * 3 and summary["scored"] + sum(summary["skipped"].values()) == 6
    assert "heads with relevant score > 0.2" in output
    table1 = pd.read_csv(out / "table1.csv")
    assert len(table1) == 5 and list(table1.columns[:4]) == ["layer", "head", "long_R", "long_IR"]


def test_examples_jsonl_is_exact(score_run, llama):
    out, _ = score_run
    records = [json.loads(l) for l in (out / "examples.jsonl").read_text().splitlines()]
    assert records
    for r in records:
        text = r["prompt"] + r["response"]
        assert r["input_ids"] == llama.tokenizer(text, add_special_tokens=False)["input_ids"]
        assert r["condition"] in ("long", "gold") and r["gold_position"] in (1, 4)
        (s, e), = r["spans"]["relevant"]
        assert text[s:e].startswith(f"Document [{r['gold_position']}](Title: ")
        (ts, te), = r["token_spans"]["response"]
        assert te == len(r["input_ids"]) and text[r["spans"]["response"][0][0]:] == r["response"]


def test_bad_input_gives_one_clear_line(tiny_dirs, tmp_path, nq_path):
    result = runner.invoke(app, ["score", "--model", str(tiny_dirs["llama"]), "--data", str(tmp_path / "none.jsonl")])
    assert result.exit_code == 2 and "data file not found" in result.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text("[1, 2]\n")
    result = runner.invoke(app, ["score", "--model", str(tiny_dirs["llama"]), "--data", str(bad)])
    assert result.exit_code == 2 and "bad.jsonl:1: expected a JSON object" in result.output
    result = runner.invoke(app, ["score", "--model", str(tiny_dirs["gpt2"]), "--data", str(nq_path), "--limit", "1",
                                 "--max-new-tokens", "8000"])  # fmt: skip
    assert result.exit_code == 2 and "exceeds the model's context of 8192" in result.output
