import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch
from typer.testing import CliRunner

from lens_focus.analyses import findings, task_tables
from lens_focus.analyses.index import Folders
from lens_focus.answers import answer_examples
from lens_focus.commands.cli import app
from lens_focus.directions import FocusDirections, zero_directions
from lens_focus.evaluation import ANSWER_COLUMNS, SINK_COLUMNS, TASK_COLUMNS, Setting, evaluate_tasks, evaluation_tables, group_by_length, parse_settings
from lens_focus.heads import Head, save_heads
from lens_focus.interventions import focus_intervention
from lens_focus.model import model_info
from lens_focus.stats import mean_interval, paired_difference, wilson
from lens_focus.tasks import TASKS, build_task

runner = CliRunner()


def random_directions(model, scale: float = 3.0, seed: int = 0) -> FocusDirections:
    d = zero_directions(model)
    g = torch.Generator().manual_seed(seed)
    return FocusDirections(q=scale * torch.randn(d.q.shape, generator=g), k=scale * torch.randn(d.k.shape, generator=g), site=d.site, meta=d.meta)


def all_heads(model) -> list[Head]:
    info = model_info(model)
    return [Head(layer, head) for layer in reversed(range(info.n_layers)) for head in range(info.n_heads)]


def test_parse_settings():
    assert [s.name for s in parse_settings("baseline,10_0.2,20_-0.2")] == ["baseline", "10_0.2", "20_-0.2"]
    assert parse_settings(["5_1"]) == [Setting(5, 1.0)]
    for bad, match in (("", "no settings"), ("top10", "is not 'baseline' or '<k>_<alpha>\\[@"), ("0_0.2", "needs a whole k >= 1"), ("5_nan", "a finite α"),
                       ("5_inf", "a finite α"), ("baseline,5_1,5_1", "5_1 given more than once")):
        with pytest.raises(ValueError, match=match):
            parse_settings(bad)


@pytest.fixture(scope="module")
def evaluated(llama):
    sets = group_by_length(TASKS["mk_needle"], build_task("mk_needle", llama.tokenizer, lengths=[120, 240], n=3))
    sets += group_by_length(TASKS["json_kv"], build_task("json_kv", llama.tokenizer, lengths=[200], n=2))
    d, ranked = random_directions(llama), all_heads(llama)
    settings = parse_settings("baseline,2_0,3_1.5")
    ids = torch.tensor([list(range(5, 40))])
    with torch.no_grad():
        before = llama(ids)
    frames = evaluate_tasks(llama, sets, settings=settings, directions=d, ranked=ranked, sink_k=5, batch_size=2, progress=False)
    with torch.no_grad():
        after = llama(ids)
    return sets, d, ranked, frames, (before, after)


def test_task_scores_grade_every_answer(evaluated):
    sets, _, _, (scores, sinks, answers), _ = evaluated
    assert list(scores.columns) == TASK_COLUMNS and list(sinks.columns) == SINK_COLUMNS and list(answers.columns) == ANSWER_COLUMNS
    assert len(scores) == 3 * 3 and set(scores.setting) == {"baseline", "2_0", "3_1.5"}
    for row in scores.itertuples():
        ts = next(s for s in sets if s.task.name == row.task and s.length == row.length)
        mine = answers[(answers.task == row.task) & (answers.length == row.length) & (answers.setting == row.setting)]
        assert row.n == len(ts.examples) == len(mine)
        by_id = {e.id: e for e in ts.examples}
        regraded = [ts.task.grade(r, by_id[i].answers) for i, r in zip(mine.id, mine.response.fillna(""))]
        assert row.score == pytest.approx(np.mean(regraded))
        # json_kv's EM is a proportion (Wilson's interval), mk_needle's recall graded (a bootstrap)
        expected = wilson(int(sum(regraded)), len(regraded)) if ts.task.metric == "em" else mean_interval(regraded)
        assert (row.low, row.high) == pytest.approx(expected) and row.low <= row.score <= row.high


def test_a_resumed_cell_is_graded_by_the_metric_as_it_stands(llama, tmp_path):
    """A cell kept in the cache (an interrupted run resumed) holds its answers; their grades are
    taken afresh, so a metric changed since the cell was written applies to every cell alike."""
    import json

    from lens_focus.cache import RowCache
    from lens_focus.evaluation import evaluation_cells

    sets = group_by_length(TASKS["mk_needle"], build_task("mk_needle", llama.tokenizer, lengths=[120], n=2))
    kw = dict(settings=parse_settings("baseline"), ranked=all_heads(llama), sink_k=2, batch_size=2, progress=False)
    first = evaluation_cells(llama, sets, cache=RowCache(tmp_path / "cells.jsonl"), **kw)
    entry = json.loads((tmp_path / "cells.jsonl").read_text())
    for a in entry["value"]["answers"]:
        a["score"] = 0.123  # as an older metric might have graded it
    (tmp_path / "cells.jsonl").write_text(json.dumps(entry) + "\n")
    again = evaluation_cells(llama, sets, cache=RowCache(tmp_path / "cells.jsonl"), **kw)
    assert [a["score"] for a in again[0]["answers"]] == [a["score"] for a in first[0]["answers"]] != [0.123] * 2


def test_an_interrupted_cell_resumes_from_its_last_finished_batch(llama, tmp_path, monkeypatch):
    """A cell is computed a batch of prompts at a time, each batch kept as it finishes: a run
    interrupted inside a cell answers only the batches it has not finished, and gives the cell an
    uninterrupted run gives (answers, sink scores, skips), timed over both runs."""
    from lens_focus import evaluation
    from lens_focus.answers import answer_batches
    from lens_focus.cache import RowCache, unfinished_path
    from lens_focus.evaluation import evaluation_cells

    sets = group_by_length(TASKS["mk_needle"], build_task("mk_needle", llama.tokenizer, lengths=[240], n=5))
    kw = dict(settings=parse_settings("baseline,3_1.5"), directions=random_directions(llama), ranked=all_heads(llama), sink_k=3, batch_size=2,
              progress=False)  # fmt: skip
    whole = evaluation_cells(llama, sets, **kw)
    (ts,) = sets
    batches = answer_batches(llama, ts.examples, max_new_tokens=ts.task.max_new_tokens, batch_size=2)
    assert len(batches) == 3 and max(map(len, batches)) == 2

    real, calls, interrupt = evaluation.answer_examples, [], [3]

    def answering(model, examples, **kw):
        calls.append([e.id for e in examples])
        if len(calls) in interrupt:  # the first cell's third batch: interrupted
            raise KeyboardInterrupt
        return real(model, examples, **kw)

    monkeypatch.setattr(evaluation, "answer_examples", answering)
    path = tmp_path / "cells.jsonl"
    with pytest.raises(KeyboardInterrupt):
        evaluation_cells(llama, sets, cache=RowCache(path), **kw)
    assert not path.exists() and len(unfinished_path(path).read_text().splitlines()) == 2  # two batches kept, no cell finished
    done = calls[:2]
    calls.clear(), interrupt.clear()
    cells = evaluation_cells(llama, sets, cache=RowCache(path), **kw)
    ids = [[ts.examples[i].id for i in b] for b in batches]
    assert done == ids[:2] and calls == ids[2:] + ids  # the baseline cell's last batch, then the steered cell's
    assert cells == whole and not unfinished_path(path).exists()
    assert [c["answers"] for c in cells] == [c["answers"] for c in evaluation_cells(llama, sets, cache=RowCache(path), **kw)]  # read back
    assert len(cells[0]["heads"]) == 5 - cells[0]["skipped"] and cells[1]["heads"] is None
    assert [a["id"] for a in cells[0]["answers"]] == [e.id for e in ts.examples]  # in the examples' order, not the batches'
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    assert entries[0]["seconds"] > 0 and [e["key"][2] for e in entries] == ["baseline", "3_1.5"]


def test_row_cache_keeps_the_pieces_of_an_unfinished_cell(tmp_path):
    import time

    from lens_focus.cache import RowCache, unfinished_path

    path = tmp_path / "cells.jsonl"
    computed = []

    def cell(cache, key, parts, stop=None):
        piece = cache.pieces(key)

        def one(p):
            if p == stop:
                raise KeyboardInterrupt
            computed.append((key, p))
            return time.sleep(0.1) or p * 10

        return cache(key, lambda: [piece(p, lambda: one(p)) for p in parts])

    with pytest.raises(KeyboardInterrupt):
        cell(RowCache(path), ["a"], [1, 2, 3], stop=3)
    with pytest.raises(KeyboardInterrupt):
        cell(RowCache(path), ["b"], [1, 2], stop=2)
    assert len(unfinished_path(path).read_text().splitlines()) == 3 and computed == [(["a"], 1), (["a"], 2), (["b"], 1)]
    cache = RowCache(path)
    computed.clear()
    assert cell(cache, ["a"], [1, 2, 3]) == [10, 20, 30] and computed == [(["a"], 3)]
    entry = json.loads(path.read_text())
    assert entry["key"] == ["a"] and entry["seconds"] >= 0.3  # the pieces of the earlier run count too
    assert [json.loads(line)["key"] for line in unfinished_path(path).read_text().splitlines()] == [[["b"], 1]]  # another cell's pieces stay
    assert cell(cache, ["b"], [1, 2]) == [10, 20] and not unfinished_path(path).exists()
    memory = RowCache()
    assert memory("k", lambda: memory.pieces("k")(1, lambda: 2)) == 2


def test_settings_apply_their_directions(evaluated, llama):
    sets, d, ranked, (_, _, answers), (before, after) = evaluated
    resp = answers.set_index(["setting", "id"]).response.fillna("")
    base, zero, steered = (resp[s] for s in ("baseline", "2_0", "3_1.5"))
    assert (zero == base).all()  # α = 0 is the unmodified model
    assert (steered != base).any()  # large random directions change some answer
    ts = sets[0]
    direct = answer_examples(llama, ts.examples, max_new_tokens=ts.task.max_new_tokens, stop=ts.task.stop,
                             intervention=focus_intervention(llama, d, ranked[:3], alpha=1.5), progress=False)  # fmt: skip
    assert [a.response for a in direct] == [steered[e.id] for e in ts.examples]
    torch.testing.assert_close(before, after, rtol=0, atol=0)  # no hook left behind


def test_sink_scores_equal_a_plain_hf_forward(evaluated, llama, tiny_dirs):
    from transformers import AutoModelForCausalLM

    sets, _, ranked, (_, sinks, _), _ = evaluated
    hf = AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"], attn_implementation="eager").eval()
    top = ranked[:5]
    for ts in sets:
        answered = answer_examples(llama, ts.examples, max_new_tokens=ts.task.max_new_tokens, stop=ts.task.stop, progress=False)
        sink, rel = [], []
        for a in answered:
            if a.sequence is None:
                continue
            seq = a.sequence
            with torch.no_grad():
                att = hf(torch.tensor([seq.input_ids]), output_attentions=True).attentions
            rows, cols = list(seq.rows("generation")), seq.tokens_of("relevant")
            sink.append(np.mean([float(att[l][0, h][rows, 0].mean()) for l, h in top]))
            rel.append(np.mean([float(att[l][0, h][rows][:, cols].sum(-1).mean()) for l, h in top]))
        row = sinks[(sinks.task == ts.task.name) & (sinks.length == ts.length)].iloc[0]
        assert row.n == len(sink) and row.n + row.skipped == len(ts.examples)
        assert row.sink == pytest.approx(np.mean(sink), abs=1e-4) and row.relevant == pytest.approx(np.mean(rel), abs=1e-4)


def test_evaluate_needs_what_its_settings_use(llama):
    sets = group_by_length(TASKS["mk_needle"], build_task("mk_needle", llama.tokenizer, lengths=[120], n=1))
    with pytest.raises(ValueError, match="need focus directions"):
        evaluate_tasks(llama, sets, settings=parse_settings("10_0.2"), ranked=all_heads(llama))
    with pytest.raises(ValueError, match="need more heads than the 8 ranked"):
        evaluate_tasks(llama, sets, settings=parse_settings("10_0.2"), directions=zero_directions(llama), ranked=all_heads(llama))
    with pytest.raises(ValueError, match="top 5 heads; 3 ranked"):
        evaluate_tasks(llama, sets, settings=parse_settings("baseline"), ranked=all_heads(llama)[:3])
    with pytest.raises(ValueError, match="no examples"):
        group_by_length(TASKS["nq"], [])


def frames():
    rows = []
    for setting, bump in (("baseline", 0.0), ("10_0.2", 0.1)):
        for length in (1000, 2000):
            for task, cat, score in (("a", "recall", 0.2), ("b", "recall", 0.4), ("c", "rag", 0.9)):
                value = score + bump - length / 1e4
                rows.append({"task": task, "category": cat, "length": length, "setting": setting, "score": value, "low": value - 0.05,
                             "high": value + 0.05, "n": 4})  # fmt: skip
    tasks = pd.DataFrame(rows)
    sinks = pd.DataFrame([{"task": t, "category": c, "length": L, "sink": s, "relevant": 0.1, "n": 4, "skipped": 0}
                          for L in (1000, 2000) for t, c, s in (("a", "recall", 0.3), ("b", "recall", 0.5), ("c", "rag", 0.7 + L / 1e4))])  # fmt: skip
    return tasks, sinks


def test_category_and_sink_tables():
    tasks, sinks = frames()
    cats = task_tables.category_scores(tasks)
    base = cats[(cats.setting == "baseline") & (cats.length == 1000)].set_index("category")
    assert base.loc["recall", "score"] == pytest.approx((0.1 + 0.3) / 2) and base.loc["rag", "score"] == pytest.approx(0.8)
    # the mean of the category means (0.45), not of the tasks (0.4)
    assert base.loc["overall", "score"] == pytest.approx((0.2 + 0.8) / 2) and base.loc["overall", "n_tasks"] == 3
    std = task_tables.sink_with_std(sinks)
    got = std[std.task == task_tables.STD].set_index("length").sink
    assert got[1000] == pytest.approx(np.std([0.3, 0.5, 0.8], ddof=1)) and got[2000] == pytest.approx(np.std([0.3, 0.5, 0.9], ddof=1))
    assert task_tables.sink_with_std(std).equals(std)  # reading the written table back adds no second STD
    fig = task_tables.figure(tasks)
    assert isinstance(fig, go.Figure) and len(fig.data) == 2 * 4  # 2 settings × (3 tasks + overall)
    overall = [t for t in fig.data if t.name == "10_0.2" and list(t.y) != []][-1]
    assert list(overall.y) == pytest.approx([(0.3 + 0.9) / 2 + 0.1 - 0.1, (0.3 + 0.9) / 2 + 0.1 - 0.2])
    # the two settings' points at a length sit apart, symmetric about it, and hover with the length itself
    base = [t for t in fig.data if t.name == "baseline" and list(t.y) != []][-1]
    for length, a, b in zip((1000, 2000), base.x, overall.x):
        assert a < length < b and a * b == pytest.approx(length**2)
    assert list(overall.customdata) == [1000, 2000]


@pytest.mark.parametrize("categories, paper", [
    ({"recall": 89.75, "rag": 60.92, "icl": 32.71, "re_rank": 77.40}, 65.20),  # Table 10, Llama-3.2-3B, baseline, 16k
    ({"recall": 92.81, "rag": 64.71, "icl": 29.82, "re_rank": 76.80, "long_qa": 27.64}, 58.36),  # Llama-3.2-3B-Instruct
])  # fmt: skip
def test_overall_is_the_mean_of_the_category_means_as_in_table_10(categories, paper):
    # categories of unequal size (1, 2, 3 ... tasks) around the paper's category means: only the
    # mean of the category means gives the paper's overall value
    rows = []
    for i, (cat, mean) in enumerate(categories.items()):
        spread = [mean + d for d in np.linspace(-i, i, i + 1)]
        rows += [{"task": f"{cat}{j}", "category": cat, "length": 8000, "setting": "baseline", "score": s, "n": 10} for j, s in enumerate(spread)]
    table = task_tables.category_scores(pd.DataFrame(rows)).set_index("category")
    assert round(table.loc["overall", "score"] + 1e-9, 2) == paper  # the paper prints two decimals
    assert abs(pd.DataFrame(rows).score.mean() - paper) > 0.005 or len(categories) == 1  # the task mean would not


def test_sink_std_is_the_sample_deviation_as_in_table_13():
    # Table 13 (16k), Llama-3.2-3B-Instruct: sink scores of sixteen tasks, STD 7.71 (ddof 0 would give 7.47)
    paper = [31.85, 29.34, 24.42, 34.02, 22.53, 26.78, 24.81, 25.90, 30.04, 53.52, 35.39, 26.45, 31.76, 31.67, 18.61, 28.49]
    sinks = pd.DataFrame([{"task": f"t{i}", "category": "c", "length": 8000, "sink": s, "relevant": 0.0, "n": 1, "skipped": 0} for i, s in enumerate(paper)])
    std = task_tables.sink_with_std(sinks)
    assert std[std.task == task_tables.STD].sink.item() == pytest.approx(7.71, abs=0.005)


def test_tables_are_written(tmp_path):
    tasks, sinks = frames()
    task_tables.write(tasks, sinks, tmp_path)
    assert pd.read_csv(tmp_path / "task_scores.csv").equals(tasks)
    md = (tmp_path / "task_scores.md").read_text()
    assert "### 1000 tokens" in md and "| setting | a | b | c |" in md and "| baseline | 0.100 [0.050, 0.150] | 0.300 [0.250, 0.350] |" in md
    assert md.index("| baseline |") < md.index("| 10_0.2 |")
    assert not (tmp_path / "changes.csv").exists()  # no answers given: no paired changes
    assert "| setting | recall | rag | overall |" in (tmp_path / "category_scores.md").read_text()
    assert "| length | a | b | c | STD |" in (tmp_path / "sink_scores.md").read_text()
    assert (tmp_path / "scores_vs_length.html").exists()


def synthetic_cells(n: int = 40) -> list[dict]:
    """Cells of two tasks at one length: ``em`` scores 0/1, ``graded`` in [0, 1]; ``up`` adds 0.2
    to every graded score (a rise) and changes no EM, ``down`` moves EM 1 → 0 on 12 prompts."""
    rng = np.random.default_rng(3)
    em, graded = (rng.random(n) < 0.5).astype(float), rng.uniform(0, 0.7, n)
    bend = {"baseline": (em, graded), "up": (em, graded + 0.2), "down": (np.where(np.arange(n) < 24, 0.0, em), graded)}
    cells = []
    for setting, scores in bend.items():
        for task, values in zip(("em", "graded"), scores):
            answers = [{"task": task, "length": 1000, "setting": setting, "id": f"{task}-{i}", "depth": None, "response": "r", "answers": "a",
                        "score": float(v)} for i, v in enumerate(values)]  # fmt: skip
            cells.append({"task": task, "category": "c_" + task, "metric": "em" if task == "em" else "rouge_f1", "length": 1000, "setting": setting,
                          "answers": answers, "skipped": 0,
                          "heads": [{"sink": [0.2], "relevant": [0.1]}] if setting == "baseline" else None})  # fmt: skip
    return cells


def test_each_cell_has_its_interval_and_each_change_is_paired(tmp_path):
    tasks, sinks, answers = evaluation_tables(synthetic_cells())
    by = tasks.set_index(["task", "setting"])
    em = answers[(answers.task == "em") & (answers.setting == "baseline")].score
    assert (by.loc[("em", "baseline"), "low"], by.loc[("em", "baseline"), "high"]) == wilson(int(em.sum()), 40)
    g = by.loc[("graded", "up")]
    assert g.low < g.score < g.high and g.high - g.low < 0.2  # a bootstrap interval around the mean, not Wilson's 0/1 one
    task_tables.write(tasks, sinks, tmp_path, answers=answers)
    changes = pd.read_csv(tmp_path / "changes.csv")
    assert changes.equals(task_tables.paired_differences(answers).reset_index(drop=True))
    up = changes.set_index(["task", "setting"]).loc[("graded", "up")]
    assert up["diff"] == pytest.approx(0.2) and up.diff_low == pytest.approx(0.2)  # the same shift on every prompt: no spread
    down = paired_difference(em, np.where(np.arange(40) < 24, 0.0, em))
    assert changes.set_index(["task", "setting"]).loc[("em", "down"), ["diff", "diff_low", "diff_high"]].tolist() == pytest.approx([down.mean, down.low, down.high])
    md = (tmp_path / "changes.md").read_text()
    assert "| setting | em | graded | all |" in md  # the tasks in the answers' order
    flipped = task_tables.paired_differences(pd.concat([answers[answers.task == "graded"], answers[answers.task == "em"]]))
    assert list(dict.fromkeys(flipped.task)) == ["graded", "em", "all"] and "### 1000 tokens (80 prompts per setting)" in md
    assert "| up | +0.000 [+0.000, +0.000] | **+0.200 [+0.200, +0.200]** |" in md and md.count("**") == 2 * 4  # up: graded, all; down: em, all
    answers.to_csv(tmp_path / "answers.csv", index=False)  # as the evaluate command writes it
    (tmp_path / "done.json").write_text("{}")
    text, rows = task_tables.section(Folders(tmp_path, tmp_path))
    said = {r[""]: r["ours"] for r in rows}
    assert said["task × length cells where some setting rises (paired interval above 0)"] == "1 of 2"
    assert said["task × length cells where some setting falls (paired interval below 0)"] == "1 of 2"
    assert "[changes.md](changes.md)" in text
    step = tmp_path / "run" / "evaluation"
    step.mkdir(parents=True)
    for name in ("task_scores.csv", "sink_scores.csv", "answers.csv", "done.json"):
        (step / name).write_bytes((tmp_path / name).read_bytes())
    said = findings.tasks(tmp_path / "run")
    assert "em, graded at 1000 tokens, 40 prompts per task" in said
    assert "The 4 changes per task, length and setting (evaluation/changes.md): rises 1, falls 1, no measurable effect 2." in said
    assert "At the baseline" not in said  # no task sits at a bound of its metric


def test_a_task_at_the_floor_or_ceiling_of_its_metric_is_named(tmp_path):
    cells = synthetic_cells()
    for c in cells:
        if c["setting"] == "baseline":
            c["answers"] = [{**a, "score": 1.0 if c["task"] == "em" else 0.0} for a in c["answers"]]
    tasks, sinks, answers = evaluation_tables(cells)
    step = tmp_path / "run" / "evaluation"
    task_tables.write(tasks, sinks, step, answers=answers)
    answers.to_csv(step / "answers.csv", index=False)
    (step / "done.json").write_text("{}")
    said = findings.tasks(tmp_path / "run")
    assert ("At the baseline em at 1000 tokens scores 1 on every prompt (its ceiling: a setting can only lower it); "
            "graded at 1000 tokens scores 0 on every prompt (its floor: a setting can only raise it).") in said


@pytest.mark.slow
def test_evaluate_command_on_the_toy(tmp_path):
    from lens_focus import load_model

    toy = load_model("toy")
    heads, d = tmp_path / "heads.json", tmp_path / "d.safetensors"
    save_heads(all_heads(toy), heads)
    random_directions(toy, scale=1.0).save(d)
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", "--model", "toy", "--heads", str(heads), "--directions", str(d), "--n", "3",
                                 "--settings", "baseline,5_0.5", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out / "task_scores.csv")
    assert set(scores.task) == {"toy_needle", "toy_qa"} and set(scores.length) == {80, 160} and (scores.n == 3).all()
    for name in ("category_scores.csv", "sink_scores.csv", "sink_scores.md", "category_scores.md", "answers.csv", "scores_vs_length.html"):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"] == ["baseline", "5_0.5"] and summary["tasks"] == ["toy_needle", "toy_qa"]
    bad = runner.invoke(app, ["evaluate", "--model", "toy", "--heads", str(heads), "--settings", "baseline,5_0.5", "--out", str(out)])
    assert bad.exit_code == 2 and "need focus directions" in bad.output


def test_evaluate_command_on_a_tiny_llama_with_every_source(tiny_dirs, llama, nq_path, kv_path, tmp_path):
    heads, d = tmp_path / "heads.json", tmp_path / "d.safetensors"
    save_heads(all_heads(llama), heads)
    random_directions(llama).save(d)
    helmet = tmp_path / "json_kv_tiny.jsonl"
    pairs = {f"key-{i}": f"value-{i}" for i in range(30)}
    helmet.write_text(json.dumps({"context": json.dumps(pairs), "question": '"key-3"', "answer": "value-3"}) + "\n")
    out = tmp_path / "eval"
    args = ["evaluate", "--model", str(tiny_dirs["llama"]), "--heads", str(heads), "--directions", str(d), "--n", "1",
            "--tasks", "mk_needle,mv,json_kv,nq", "--lengths", "2500", "--nq", str(nq_path), "--kv", str(kv_path),
            "--helmet", str(helmet), "--settings", "baseline,2_-1", "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out / "task_scores.csv")
    assert list(dict.fromkeys(scores.task)) == ["mk_needle", "mv", "json_kv", "nq", "json_kv_tiny"]
    assert set(scores.category) == {"recall", "rag"} and len(scores) == 5 * 2
    sinks = pd.read_csv(out / "sink_scores.csv")
    assert len(sinks) == 5 + 2 and sinks.sink.iloc[:5].between(0, 1).all()  # 5 tasks, then an STD row per length (2500 and the file's)
    std = sinks[sinks.task == "STD"].set_index("length").sink
    assert std[2500] >= 0 and pd.isna(std.drop(2500).item())  # the sample deviation of one task's score is undefined
    assert json.loads((out / "summary.json").read_text())["kv"] == str(kv_path)
    bad = runner.invoke(app, ["evaluate", "--model", str(tiny_dirs["llama"]), "--heads", str(heads), "--tasks", "nq",
                              "--settings", "baseline", "--out", str(out)])  # fmt: skip
    assert bad.exit_code == 2 and "needs the NQ file" in bad.output
