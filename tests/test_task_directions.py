"""Focus directions for each task category: named directions in the evaluation, training sequences
from a task's reference answers, held-out and training prompts apart, the matrix against its own
arithmetic, adopted cells, and the command end to end on the toy."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lens_focus.analyses import task_directions as analysis
from lens_focus.cache import RowCache
from lens_focus.commands.declare import run_declared
from lens_focus.commands.experiments.task_directions import training_seed
from lens_focus.data.lost_in_the_middle import rag_examples
from lens_focus.directions import FocusDirections
from lens_focus.errors import InputError
from lens_focus.evaluation import ANSWER_COLUMNS, Setting, evaluate_tasks, group_by_length, parse_settings
from lens_focus.heads import load_heads
from lens_focus.stats import paired_difference
from lens_focus.tasks import REFERENCES, TASKS, build_task

from test_evaluation import all_heads, random_directions


@pytest.fixture(scope="module")
def toy():
    from lens_focus import load_model

    return load_model("toy")

REPO = Path(__file__).resolve().parents[1]
NQ_SAMPLE = REPO / "tests/data/nq-synthetic.jsonl.gz"  # 400 questions


def test_a_setting_may_name_its_directions():
    assert parse_settings("baseline,20_0.2@rag,5_-1@re_rank") == [Setting(), Setting(20, 0.2, "rag"), Setting(5, -1.0, "re_rank")]
    assert [s.name for s in parse_settings(["20_0.2@rag", "20_0.2"])] == ["20_0.2@rag", "20_0.2"]
    for bad in ("20_0.2@", "x@rag"):
        with pytest.raises(InputError):
            parse_settings(bad)


def test_named_directions_act_as_the_one_set_would(llama):
    """``k_α@x`` with ``named={"x": d}`` gives the answers ``k_α`` gives with ``directions=d``; a
    name not given is refused before any answer."""
    sets = group_by_length(TASKS["mk_needle"], build_task("mk_needle", llama.tokenizer, lengths=[120], n=3))
    d, other, ranked = random_directions(llama), random_directions(llama, seed=1), all_heads(llama)
    kw = dict(ranked=ranked, sink_k=2, batch_size=3, progress=False)
    _, _, one = evaluate_tasks(llama, sets, settings=parse_settings("3_1.5"), directions=d, **kw)
    _, _, named = evaluate_tasks(llama, sets, settings=parse_settings("3_1.5@x,3_1.5@y"), directions=None, named={"x": d, "y": other}, **kw)
    assert list(named[named.setting == "3_1.5@x"].response) == list(one.response)
    assert list(named[named.setting == "3_1.5@y"].response) != list(one.response)  # the other directions change something
    with pytest.raises(InputError, match=r"name directions that were not given \(given: x\)"):
        evaluate_tasks(llama, sets, settings=parse_settings("3_1.5@z"), named={"x": d}, **kw)
    with pytest.raises(InputError, match="need focus directions"):
        evaluate_tasks(llama, sets, settings=parse_settings("3_1.5"), named={"x": d}, **kw)


@pytest.mark.parametrize("name", ["mv", "rerank", "icl", "long_qa", "mk_needle"])
def test_a_training_sequence_is_the_prompt_and_the_reference_answer(llama, name):
    task = TASKS[name]
    example = build_task(name, llama.tokenizer, lengths=[300], n=1)[0]
    seq = task.sequence(example, llama.tokenizer)
    (start, end), = seq.token_spans["response"]
    reference = REFERENCES[task.reference](example.answers)
    assert seq.text == seq.prompt + " " + reference and end == len(seq.input_ids)
    assert llama.tokenizer.decode(seq.input_ids[start:end]).strip() == reference
    assert seq.token_spans["relevant"] and all(b <= seq.n_prompt for _, b in seq.token_spans["relevant"])


def test_references():
    assert REFERENCES["all"](("1", "22", "3")) == "1, 22, 3"
    ranking = " > ".join(str(i) for i in range(100, 130))
    assert REFERENCES["top10"]((ranking,)).split(" > ") == [str(i) for i in range(100, 110)]
    assert REFERENCES["first"](("a", "b")) == "a"


@pytest.mark.parametrize("seed,n,train_n", [(0, 30, 30), (0, 30, 20), (0, 5, 40), (2, 7, 3), (1, 10, 10)])
def test_training_questions_follow_the_held_out_ones(llama, seed, n, train_n):
    """The training seed's NQ questions never meet the held-out seed's: its block of the split
    starts where the held-out block ends (the first seed that does), checked on the file."""
    t = training_seed(seed, n, train_n)
    assert t * train_n >= (seed + 1) * n and ((t - 1) * train_n < (seed + 1) * n)
    held = {e.meta["question_id"] for e in rag_examples(NQ_SAMPLE, llama.tokenizer, lengths=[600], n=n, seed=seed)}
    train = {e.meta["question_id"] for e in rag_examples(NQ_SAMPLE, llama.tokenizer, lengths=[600], n=train_n, seed=t)}
    assert len(held) == n and len(train) == train_n and not held & train
    earlier = {e.meta["question_id"] for e in rag_examples(NQ_SAMPLE, llama.tokenizer, lengths=[600], n=train_n, seed=t - 1)}
    assert earlier & held  # one seed less would have met them


def test_adopted_cells_are_read_not_computed_and_the_other_file_is_left_as_it_is(tmp_path):
    other = tmp_path / "evaluation" / "cells.jsonl"
    RowCache(other)(["a"], lambda: {"x": 1})
    other.write_text(other.read_text() + '{"key": ["b"], "val')  # a run still writing its next cell
    before = other.read_bytes()
    mine = RowCache(tmp_path / "mine.jsonl")
    assert mine.adopt(other) == 1 and mine.adopt(tmp_path / "none.jsonl") == 0
    calls = []
    assert mine(["a"], lambda: calls.append("a") or {"x": 2}) == {"x": 1} and calls == [] and mine.hits == 1
    assert mine(["b"], lambda: calls.append("b") or 7) == 7 and calls == ["b"]
    assert other.read_bytes() == before  # never repaired or written
    assert RowCache(tmp_path / "mine.jsonl").rows == mine.rows  # the adopted cell is copied into this cache's own file


def _answers(rng, settings, tasks, n):
    rows = []
    for setting in settings:
        for task in tasks:
            for i in range(n):
                rows.append({"task": task, "length": 100, "setting": setting, "id": f"{task}-{i}", "depth": 0, "response": f"r{rng.integers(0, 2)}", "answers": "a",
                             "score": float(rng.integers(0, 2))})  # fmt: skip
    return pd.DataFrame(rows, columns=ANSWER_COLUMNS)


def test_the_matrix_is_each_setting_s_paired_change_from_the_baseline():
    rng = np.random.default_rng(0)
    answers = _answers(rng, ["baseline", "20_0.2", "20_0.2@recall", "20_0.2@rag", "10_0.2"], ["needle", "qa"], 12)
    table = analysis.matrix(answers, setting="20_0.2")
    assert list(table.directions.unique()) == ["general", "recall", "rag"] and list(table.task.unique()) == ["needle", "qa"]  # 10_0.2 is not a row
    for r in table.itertuples():
        setting = "20_0.2" if r.directions == "general" else f"20_0.2@{r.directions}"
        base = answers[(answers.setting == "baseline") & (answers.task == r.task)].score.to_numpy()
        after = answers[(answers.setting == setting) & (answers.task == r.task)].score.to_numpy()
        assert r.n == 12 and r.before == pytest.approx(base.mean()) and r.after == pytest.approx(after.mean())
        assert r.diff == pytest.approx((after - base).mean())
        responses = answers[(answers.setting == setting) & (answers.task == r.task)].response.to_numpy()
        assert r.changed == int((responses != answers[(answers.setting == "baseline") & (answers.task == r.task)].response.to_numpy()).sum())
        ids = answers[(answers.setting == "baseline") & (answers.task == r.task)].id
        d = paired_difference(base, after, r.task + "/" + ids)  # the prompts are the units resampled
        assert (r.diff_low, r.diff_high) == pytest.approx((d.low, d.high))
    own = analysis.own_vs_general(answers, setting="20_0.2", categories={"needle": "recall", "qa": "rag"})
    for r in own.itertuples():
        general = answers[(answers.setting == "20_0.2") & (answers.task == r.task)].score.to_numpy()
        mine = answers[(answers.setting == f"20_0.2@{r.category}") & (answers.task == r.task)].score.to_numpy()
        assert r.diff == pytest.approx((mine - general).mean()) and r.general == pytest.approx(general.mean())
    assert analysis.own_vs_general(answers[answers.setting != "20_0.2"], setting="20_0.2", categories={"needle": "recall"}).empty
    # an empty response is read back from answers.csv as NaN: two empty responses are not a change
    empty = answers.assign(response=answers.response.where(answers.id != "qa-0", ""))
    read_back = empty.assign(response=empty.response.replace("", np.nan))
    pd.testing.assert_frame_equal(analysis.matrix(read_back, setting="20_0.2"), analysis.matrix(empty, setting="20_0.2"))
    text = analysis.wide(table)
    assert list(text.columns) == ["directions", "needle", "qa"]
    first = table.iloc[0]
    assert text.iloc[0]["needle"] == f"{first['diff']:+.3f} [{first.diff_low:+.3f}, {first.diff_high:+.3f}]"


@pytest.fixture(scope="module")
def toy_run(toy, tmp_path_factory):
    out = tmp_path_factory.mktemp("task_directions")
    heads = load_heads(REPO / "figures/toy/heads/heads.json")
    general = FocusDirections.load(REPO / "figures/toy/directions/directions.safetensors", model=toy)
    kw = dict(heads=heads, directions=general, length=80, n=6, train_n=8, epochs=2, batch_size=16, log=lambda s: None)
    summary = run_declared("task-directions", toy, out, **kw)
    return out, heads, general, kw, summary


def test_the_toy_run_writes_the_matrix_of_every_category_on_every_task(toy, toy_run):
    out, heads, general, _, summary = toy_run
    table = pd.read_csv(out / "matrix.csv")
    assert list(table.directions.unique()) == ["general", "recall", "rag"] and list(table.task.unique()) == ["toy_needle", "toy_qa"]
    assert (table.n == 6).all() and len(pd.read_csv(out / "own_vs_general.csv")) == 2
    training = pd.read_csv(out / "training.csv")
    assert list(training.category) == ["recall", "rag"] and (training.sequences == 8).all()
    for category in ("recall", "rag"):
        d = FocusDirections.load(out / "directions" / f"{category}.safetensors", model=toy)
        assert d.meta["training"]["seed"] == training_seed(0, 6, 8) == 1 and not torch.equal(d.q, general.q)
    # the baseline and the general directions' answers are the evaluate command's on the same prompts
    sets = [s for name in ("toy_needle", "toy_qa") for s in group_by_length(TASKS[name], build_task(name, toy.tokenizer, lengths=[80], n=6))]
    _, _, expected = evaluate_tasks(toy, sets, settings=parse_settings("baseline,20_0.2"), directions=general, ranked=heads, batch_size=16, progress=False)
    answers = pd.read_csv(out / "answers.csv", keep_default_na=False)
    for setting in ("baseline", "20_0.2"):
        assert list(answers[answers.setting == setting].response) == list(expected[expected.setting == setting].response)
    assert summary["training"][0]["category"] == "recall" and (out / "matrix.md").read_text().count("| general |") == 1


def test_a_second_run_reads_the_directions_back_and_gives_the_same_matrix(toy, toy_run):
    out, heads, general, kw, _ = toy_run
    stamp = (out / "directions" / "rag.safetensors").stat().st_mtime_ns
    logged = []
    run_declared("task-directions", toy, out / "again", **{**kw, "log": logged.append})
    assert (out / "again/directions/rag.safetensors").exists()  # its own folder: trained again there
    import shutil

    shutil.copytree(out / "directions", out / "third" / "directions")
    logged.clear()
    run_declared("task-directions", toy, out / "third", **{**kw, "log": logged.append})
    assert any("directions read from" in line for line in logged) and (out / "directions" / "rag.safetensors").stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(pd.read_csv(out / "third/matrix.csv"), pd.read_csv(out / "matrix.csv"))
    pd.testing.assert_frame_equal(pd.read_csv(out / "again/matrix.csv"), pd.read_csv(out / "matrix.csv"))  # deterministic


def test_bad_input_is_refused_before_the_model_runs(toy, toy_run):
    _, heads, general, kw, _ = toy_run
    for change, match in (({"setting": "20_0.2@rag"}, "must be '<k>_<alpha>'"), ({"setting": "baseline"}, "must be '<k>_<alpha>'"),
                          ({"tasks": ["nope"]}, "unknown tasks nope"), ({"length": 5000}, "do not fit the model's context")):
        with pytest.raises(ValueError, match=match):
            run_declared("task-directions", toy, "/tmp/never", **{**kw, **change})


def test_a_training_prompt_that_asks_a_held_out_question_is_skipped_and_counted(toy, toy_run, tmp_path):
    """The toy's small vocabulary repeats questions across seeds: such a training prompt is left
    out (never trained on), counted, and the count checked against the prompts themselves."""
    from lens_focus.commands.experiments.task_directions import _question

    _, heads, general, kw, _ = toy_run
    held = {_question(e) for e in build_task("toy_needle", toy.tokenizer, lengths=[80], n=20)}
    training = build_task("toy_needle", toy.tokenizer, lengths=[80], n=40, seed=training_seed(0, 20, 40))
    repeated = sum(_question(e) in held for e in training)
    assert repeated >= 1  # these sizes do repeat one
    run_declared("task-directions", toy, tmp_path, **{**kw, "tasks": ["toy_needle"], "n": 20, "train_n": 40, "epochs": 1})
    record = pd.read_csv(tmp_path / "training.csv").iloc[0]
    assert record.skipped == repeated and record.sequences == 40 - repeated and f"asks a held-out question: {repeated}" in record.skipped_why
