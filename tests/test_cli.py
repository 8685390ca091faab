import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from lens_focus.commands.cli import app

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


def test_intervention_commands_end_to_end(score_run, tiny_dirs, nq_path, tmp_path):
    """compensate, train-directions and sweep on a tiny Llama, with the heads `score` ranked."""
    heads, model = str(score_run[0] / "heads.json"), str(tiny_dirs["llama"])
    data = ["--model", model, "--data", str(nq_path), "--limit", "1", "--n-docs", "2", "--gold-positions", "1,2",
            "--max-new-tokens", "2"]  # fmt: skip
    comp = runner.invoke(app, ["compensate", *data, "--heads", heads, "--taus", "0.3,1.5", "--ks", "1,50", "--out", str(tmp_path / "c")])
    assert comp.exit_code == 0, comp.output
    table = pd.read_csv(tmp_path / "c" / "compensation.csv")
    assert list(table.columns) == ["method", "k", "tau", "em", "n", "em_low", "em_high", "diff", "diff_low", "diff_high"]
    assert set(table.method) == {"contextual", "random", "baseline", "gold", "negative"}
    assert sorted(set(table.k.dropna().astype(int))) == [1, 8]  # 50 clipped to the model's 8 heads
    assert (tmp_path / "c" / "compensation.html").exists()
    answers = pd.read_csv(tmp_path / "c" / "answers.csv")  # every prompt under every setting: 2 long, 1 gold, 1 negative
    assert len(answers) == 2 + 1 + 1 + 2 * (len(table) - 3) and set(answers.columns) >= {"method", "k", "tau", "id", "response", "em"}

    d, gold = tmp_path / "d.safetensors", tmp_path / "gold.safetensors"
    train = runner.invoke(app, ["train-directions", *data, "--epochs", "2", "--site", "pre_rotary", "--out", str(d)])
    assert train.exit_code == 0, train.output
    assert "train  2 sequences (long prompt + gold response)" in train.output and d.exists()
    train = runner.invoke(app, ["train-directions", *data, "--epochs", "2", "--prompts", "gold", "--out", str(gold)])
    assert train.exit_code == 0, train.output
    assert "train  1 sequences (gold prompt + gold response)" in train.output  # one gold prompt per question
    from lens_focus.directions import FocusDirections

    assert FocusDirections.load(gold).meta["prompts"] == "gold" and FocusDirections.load(d).meta["prompts"] == "long"

    sw = runner.invoke(app, ["sweep", *data, "--heads", heads, "--directions", str(d), "--alphas", "0,0.5", "--ks", "1,all",
                             "--table-alphas", "1", "--table-k", "2", "--intervene-k", "4", "--out", str(tmp_path / "s")])  # fmt: skip
    assert sw.exit_code == 0, sw.output
    sweep = pd.read_csv(tmp_path / "s" / "sweep.csv")
    assert list(sweep.columns) == ["k", "alpha", "em", "n", "em_low", "em_high", "diff", "diff_low", "diff_high"] and len(sweep) == 4
    assert len(pd.read_csv(tmp_path / "s" / "answers.csv")) == 2 * 3  # the baseline and α = 0.5 at k = 1 and all, two prompts each
    t3 = pd.read_csv(tmp_path / "s" / "table3.csv")
    assert list(t3.columns) == ["intervened", "alpha", "layer", "head", "span", "score", "delta"] and set(t3.alpha) == {0.0, 1.0}
    assert set(t3.intervened) == {2, 4} and t3.groupby("intervened")[["layer", "head"]].apply(lambda g: len(g.drop_duplicates())).tolist() == [2, 2]
    md = (tmp_path / "s" / "table3.md").read_text()
    assert "| alpha | layer | head | R |" in md and "α·d on the top 4 heads, the top 2 reported" in md


def test_intervention_commands_reject_bad_input(score_run, tiny_dirs, nq_path, tmp_path):
    from lens_focus.directions import zero_directions
    from lens_focus.model import load_model

    data = ["--data", str(nq_path), "--limit", "1", "--n-docs", "2", "--gold-positions", "1,2", "--max-new-tokens", "2"]
    import torch

    from lens_focus.directions import FocusDirections

    other = tmp_path / "other.safetensors"  # another model's shape (3 layers): refused
    FocusDirections(q=torch.zeros(3, 4, 16), k=torch.zeros(3, 4, 16), site="post_rotary", meta={"model": "three-layers"}).save(other)
    bad = runner.invoke(app, ["sweep", "--model", str(tiny_dirs["llama"]), *data, "--heads", str(score_run[0] / "heads.json"),
                              "--directions", str(other), "--out", str(tmp_path / "s")])  # fmt: skip
    assert bad.exit_code == 2 and "made for three-layers" in bad.output and "needs q (2, 4, 16)" in bad.output
    same_shape = tmp_path / "gpt2.safetensors"  # another model of the same shape: applied, with a warning naming both
    zero_directions(load_model(str(tiny_dirs["gpt2"]))).save(same_shape)
    ok = runner.invoke(app, ["sweep", "--model", str(tiny_dirs["llama"]), *data, "--heads", str(score_run[0] / "heads.json"),
                             "--directions", str(same_shape), "--alphas", "0.5", "--ks", "1", "--table-alphas", "0.5", "--out", str(tmp_path / "s")])  # fmt: skip
    assert ok.exit_code == 0 and "gpt2', applied to '" in ok.output, ok.output
    (tmp_path / "h.json").write_text("[[9, 0]]")
    bad = runner.invoke(app, ["compensate", "--model", str(tiny_dirs["llama"]), *data, "--heads", str(tmp_path / "h.json")])
    assert bad.exit_code == 2 and "does not exist" in bad.output
    bad = runner.invoke(app, ["train-directions", "--model", str(tiny_dirs["llama"]), *data, "--site", "middle"])
    assert bad.exit_code == 2 and "--site" in bad.output


def test_score_variants(tiny_dirs, nq_path, tmp_path):
    base = ["score", "--model", str(tiny_dirs["llama"]), "--data", str(nq_path), "--limit", "2", "--n-docs", "3",
            "--gold-positions", "1,3", "--max-new-tokens", "3"]  # fmt: skip
    result = runner.invoke(app, [*base, "--variants", "long,negative", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    em = pd.read_csv(tmp_path / "em.csv")
    assert set(em.variant) == {"long", "negative"} and em[em.variant == "negative"].n.item() == 2
    assert set(pd.read_csv(tmp_path / "scores.csv").condition) == {"long", "negative"}
    assert json.loads((tmp_path / "summary.json").read_text())["variants"] == ["long", "negative"]
    result = runner.invoke(app, [*base, "--variants", "gold", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "heads are ranked on long prompts" in result.output


def test_retrieval_command(tiny_dirs, tmp_path):
    out = tmp_path / "retrieval"
    args = ["retrieval", "--model", str(tiny_dirs["llama"]), "--lengths", "240", "--depths", "0,50,100",
            "--max-new-tokens", "4", "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out / "retrieval_scores.csv")
    assert list(frame.columns) == ["layer", "head", "score", "n"] and len(frame) == 2 * 4
    summary = json.loads((out / "summary.json").read_text())
    assert summary["samples"] == 3 * 3 and summary["depths"] == [0.0, 50.0, 100.0]
    # a random-weight model recalls no needle: nothing counts, and the command says so
    assert summary["counted"] == 0 and frame.score.isna().all() and json.loads((out / "retrieval_heads.json").read_text()) == []
    assert "no response recalled the needle" in result.output
    bad = runner.invoke(app, ["retrieval", "--model", str(tiny_dirs["llama"]), "--depths", "150", "--out", str(out)])
    assert bad.exit_code == 2 and "--depths: every value must be a finite number within 0..100, got 150" in bad.output


def test_retrieval_on_the_toy_uses_toy_vocabulary_needles(tmp_path):
    from lens_focus import label, load_model
    from lens_focus.toy.task import VALUES, toy_needle_examples

    out = tmp_path / "toy"
    result = runner.invoke(app, ["retrieval", "--model", "toy", "--lengths", "200", "--depths", "0,50,100", "--max-new-tokens", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "(toy vocabulary)" in result.output and json.loads((out / "summary.json").read_text())["samples"] == 9
    toy = load_model("toy", device="cpu")
    for ex in toy_needle_examples(toy.tokenizer, lengths=[200], depths=[0, 100]):
        seq = label(ex, toy.tokenizer)  # every word is in the toy vocabulary: no <unk>
        assert toy.tokenizer.unk_token_id not in seq.input_ids
        (a, b), = seq.token_spans["answer"]
        assert b - a == 1 and toy.tokenizer.decode(seq.input_ids[a:b]).strip() == ex.answers[0] in VALUES
    bad = runner.invoke(app, ["retrieval", "--model", "toy", "--filler", str(tmp_path / "x.txt"), "--out", str(out)])
    assert bad.exit_code == 2 and "--filler: does not apply to a toy-vocabulary model" in bad.output


@pytest.fixture()
def no_model_load(monkeypatch):
    """Any attempt to load a model fails the test: bad input must stop before that."""
    import lens_focus.commands.options as options

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the bad input was found")

    monkeypatch.setattr(options, "load_model", refuse)


HEADS_ARGS = ["--heads", "heads.json"]


def test_the_guard_sees_a_model_load(no_model_load):
    result = runner.invoke(app, ["score", "--data", "toy", "--limit", "1"])  # valid: reaches the model
    assert isinstance(result.exception, AssertionError) and "model was loaded" in str(result.exception)


@pytest.mark.parametrize(
    "args, says",
    [
        (["score", "--data", "toy", "--max-new-tokens", "0"], "--max-new-tokens"),
        (["score", "--data", "toy", "--max-new-tokens", "-1"], "--max-new-tokens"),
        (["score", "--data", "toy", "--limit", "0"], "--limit"),
        (["score", "--data", "toy", "--n-docs", "0"], "--n-docs"),
        (["score", "--data", "toy", "--batch-size", "0"], "--batch-size"),
        (["score", "--data", "toy", "--n-sink", "0"], "--n-sink"),
        (["score", "--data", "toy", "--n-docs", "10", "--gold-positions", "1,11"], "--gold-positions"),
        (["score", "--data", "toy", "--gold-positions", "0"], "--gold-positions"),
        (["train-directions", "--data", "toy", "--epochs", "0"], "--epochs"),
        (["train-directions", "--data", "toy", "--lr", "0"], "--lr"),
        (["compensate", "--data", "toy", *HEADS_ARGS, "--taus", "0.1,0"], "--taus"),
        (["compensate", "--data", "toy", *HEADS_ARGS, "--taus", "-1"], "--taus"),
        (["compensate", "--data", "toy", *HEADS_ARGS, "--ks", "5,0"], "--ks"),
        (["compensate", "--data", "toy", *HEADS_ARGS, "--random-tau", "0"], "--random-tau"),
        (["sweep", "--data", "toy", "--directions", "d.safetensors", *HEADS_ARGS, "--ks", "-3"], "--ks"),
        (["retrieval", "--model", "toy", "--lengths", "0,80"], "--lengths"),
        (["retrieval", "--model", "toy", "--depths", "50,120"], "--depths"),
        (["evaluate", *HEADS_ARGS, "--n", "0"], "--n"),
    ],
)
def test_numbers_out_of_range_stop_before_the_model_loads(args, says, no_model_load):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert says in result.output and "AssertionError" not in result.output


def test_an_empty_data_file_is_named_as_empty(tmp_path, no_model_load):
    for name, content in (("empty.jsonl", b""), ("blank.jsonl", b"\n\n  \n")):
        path = tmp_path / name
        path.write_bytes(content)
        result = runner.invoke(app, ["score", "--data", str(path)])
        assert result.exit_code == 2 and f"{name}: the file is empty" in result.output, result.output
    gz = tmp_path / "empty.jsonl.gz"
    import gzip

    with gzip.open(gz, "wb"):
        pass
    result = runner.invoke(app, ["score", "--data", str(gz)])
    assert result.exit_code == 2 and "empty.jsonl.gz: the file is empty" in result.output
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(b"not gzip at all")
    result = runner.invoke(app, ["score", "--data", str(broken)])
    assert result.exit_code == 2 and "broken.jsonl.gz: not a readable gzipped JSON-lines file" in result.output


def test_help_is_plain_text_and_describes_every_option():
    from typer.main import get_command

    group = get_command(app)
    commands = {name: group.get_command(None, name) for name in group.list_commands(None)}
    toy = commands.pop("toy")
    commands.update({f"toy {n}": toy.get_command(None, n) for n in toy.list_commands(None)})
    assert {"score", "compensate", "train-directions", "sweep", "retrieval", "evaluate", "reproduce", "models", "toy train"} <= set(commands)
    for name, cmd in commands.items():
        text = runner.invoke(app, [*name.split(), "--help"]).output
        assert "``" not in text and "SPEC" not in text and "╭" not in text, name
        for param in cmd.params:
            if param.param_type_name == "option" and param.name != "help":
                assert param.help and param.help.strip(), f"{name}: {param.opts[0]} has no description"
    # every command that scores attention takes the row convention, with both choices
    for name in ("score", "train-directions", "sweep", "evaluate", "reproduce"):
        assert any(p.name == "rows" for p in commands[name].params), name
        bad = runner.invoke(app, [name, "--rows", "answer", "--out", "x"])
        assert bad.exit_code == 2 and "'answer' is not one of 'generation', 'response'" in bad.output, (name, bad.output)


def test_answers_scored_in_a_second_pass_are_counted_and_said(tmp_path, nq_path):
    from lens_focus.tiny import tiny_model

    model = tiny_model("lfm2", tmp_path / "hybrid", seed=2)  # its convolution state cannot be cut back to the prompt
    out = tmp_path / "run"
    result = runner.invoke(app, ["score", "--model", str(model), "--data", str(nq_path), "--limit", "1", "--n-docs", "2",
                                 "--gold-positions", "1", "--max-new-tokens", "3", "--stop", "eos", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    reason = "recurrent layers (a hybrid model's state cannot be cut back to the prompt)"
    assert summary["second_pass"] == {reason: summary["scored"]} and summary["scored"] > 0
    assert f"{summary['scored']} scored in a second teacher-forced pass" in result.output


def test_a_message_keeps_its_quotes_and_a_bug_keeps_its_traceback(tmp_path, monkeypatch, capsys):
    import gzip

    from lens_focus.commands import cli, options

    bad = tmp_path / "no-answers.jsonl.gz"
    with gzip.open(bad, "wt") as f:
        f.write(json.dumps({"question": "q?", "ctxs": [{"title": "t", "text": "x", "isgold": True}]}) + "\n")
    result = runner.invoke(app, ["score", "--data", str(bad), "--task", "nq"])
    assert result.exit_code == 2 and "missing field 'answers'" in result.output and "Traceback" not in result.output

    def broken(args):
        raise KeyError("a column the code forgot")

    monkeypatch.setattr(options, "load_questions", broken)
    monkeypatch.setattr("sys.argv", ["lens-focus", "score", "--data", "toy", "--limit", "1", "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit) as ended:
        cli.main()
    err = capsys.readouterr().err
    assert ended.value.code == 1 and "Traceback" in err and "KeyError: 'a column the code forgot'" in err
    assert "a bug in lens_focus (KeyError above), not in your input" in err.splitlines()[-1]


def test_evaluate_with_one_task(tmp_path):
    heads = tmp_path / "heads.json"
    heads.write_text(json.dumps([[l, h] for l in range(8) for h in range(4)]))
    result = runner.invoke(app, ["evaluate", "--heads", str(heads), "--tasks", "toy_needle", "--lengths", "80", "--n", "2", "--settings", "baseline",
                                 "--out", str(tmp_path / "one")])  # fmt: skip
    assert result.exit_code == 0, result.output
    sink = pd.read_csv(tmp_path / "one" / "sink_scores.csv")
    assert list(sink.task) == ["toy_needle", "STD"] and sink.sink.isna().tolist() == [False, True]  # one task: no spread
    assert "STD" in (tmp_path / "one" / "sink_scores.md").read_text() and (tmp_path / "one" / "summary.json").exists()
