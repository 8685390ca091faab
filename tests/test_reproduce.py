"""``lens-focus reproduce``: every step in order, the index beside the paper, and resuming."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from lens_focus.cache import RowCache, cell_seconds
from lens_focus.commands.cli import app
from lens_focus.profile import Profile
from lens_focus.commands.declare import Context, steps as registered
from lens_focus.commands.reproduce import plan_for, read_plan_file, reproduce, step_params, wanted_steps, with_files
from lens_focus.directions import FocusDirections
from lens_focus.stats import em_text

TOY = Profile(True, 1024)
SMALL = {
    "score": {"limit": 6}, "heads": {"limit": 6}, "compensation": {"limit": 4, "taus": [0.1], "ks": [5]}, "directions": {"limit": 4, "epochs": 3},
    "sweep": {"limit": 4, "alphas": [0.3], "ks": [5], "table_alphas": [0.3]}, "retrieval_heads": {"lengths": [80], "depths": [0, 100]},
    "evaluation": {"n": 3}, "task_directions": {"n": 3, "train_n": 3, "epochs": 2}, "seeds": {"seeds": [0, 1], "train_limit": 4, "heads_limit": 4, "test_limit": 3, "epochs": 3},
}  # fmt: skip


def tiny(**changes):
    """Smaller than --quick (every step runs, each for seconds), with ``changes`` (a step's fields merged into its own)."""
    merged = {k: dict(v) for k, v in SMALL.items()}
    for key, value in changes.items():
        merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
    return plan_for(TOY, quick=True, changes=merged)


TINY = tiny()
POSITIONS = TINY.steps["seeds"]["gold_positions"]


def test_row_cache_resumes_from_its_file(tmp_path):
    path = tmp_path / "cells.jsonl"
    calls = []

    def compute(x):
        calls.append(x)
        return {"em": x / 10, "cell": (x, "a")}

    first = RowCache(path)
    values = [first(["cell", x], lambda x=x: compute(x)) for x in range(3)]
    assert calls == [0, 1, 2] and values[1] == {"em": 0.1, "cell": [1, "a"]}  # stored as JSON reads it back

    again = RowCache(path)
    assert len(again) == 3 and ["cell", 2] in again and ["cell", 3] not in again
    assert [again(["cell", x], lambda x=x: compute(x)) for x in range(4)] == [*values, {"em": 0.3, "cell": [3, "a"]}]
    assert calls == [0, 1, 2, 3] and again.hits == 3

    path.write_text(path.read_text() + '{"key": ["cell", 4], "val')  # a write cut short
    resumed = RowCache(path)
    assert len(resumed) == 4 and resumed(["cell", 4], lambda: compute(4)) == {"em": 0.4, "cell": [4, "a"]}
    assert len(RowCache(path)) == 5  # the new entry did not join the cut line
    path.write_text('not json\n' + path.read_text())
    with pytest.raises(ValueError, match="line 1: not a cache entry"):
        RowCache(path)

    memory = RowCache()
    assert memory("k", lambda: 1) == 1 and memory("k", lambda: 2) == 1 and memory.path is None


def test_a_cache_declares_its_grid_and_a_reader_counts_what_is_left(tmp_path):
    from lens_focus.cache import cell_files, planned_path

    path = tmp_path / "cells.jsonl"
    assert cell_seconds(cell_files(tmp_path)) == (0, 0, 0.0, None, None)  # nothing there: nothing known
    cache = RowCache(path)
    cache.expect([["cell", x] for x in range(3)])
    assert cell_files(tmp_path) == [path] and not path.exists()  # declared before any cell is finished
    assert cell_seconds([path])[3:] == (3, 3)
    cache(["cell", 0], lambda: 0)
    cache(["stale"], lambda: 1)  # a cell of no declared key (a grid that shrank) counts as found, not as done
    cache.expect([["cell", 3], ["cell", 0]])  # a second loop of the same run adds its keys
    assert json.loads(planned_path(path).read_text()) == [["cell", x] for x in range(4)]
    assert cell_seconds([path])[0] == 2 and cell_seconds([path])[3:] == (4, 3)

    resumed = RowCache(path)  # a new run declares its own grid, replacing the last run's
    resumed.expect([["cell", 0], ["cell", 1]])
    resumed(["cell", 1], lambda: 1)
    assert cell_seconds([path])[3:] == (2, 0)
    assert cell_seconds([path, tmp_path / "cells.1of2.jsonl"])[3:] == (None, None)  # a file without a declaration: unknown
    planned_path(path).write_text('[["cell", 0], ["ce')  # a declaration being written
    assert cell_seconds([path])[3:] == (None, None)


def test_cells_record_their_computing_time_and_a_file_sums_it_over_runs(tmp_path):
    import time

    path = tmp_path / "cells.jsonl"
    path.write_text('{"key": "old", "value": 1}\n')  # a cell from before cells were timed
    cache = RowCache(path)
    cache("slow", lambda: time.sleep(0.2) or 2)
    cache("fast", lambda: 3)
    entries = {json.loads(line)["key"]: json.loads(line) for line in path.read_text().splitlines()}
    assert "seconds" not in entries["old"] and 0.2 <= entries["slow"]["seconds"] < 5 and entries["fast"]["seconds"] < 0.2
    other = RowCache(tmp_path / "copy.jsonl")
    other.adopt(path)
    other("slow", lambda: pytest.fail("an adopted cell is not computed again"))
    assert json.loads((tmp_path / "copy.jsonl").read_text())["seconds"] == entries["slow"]["seconds"]  # its time travels with it
    total = cell_seconds([path, tmp_path / "copy.jsonl"])
    assert (total.n, total.timed) == (4, 3)
    assert total.seconds == pytest.approx(2 * entries["slow"]["seconds"] + entries["fast"]["seconds"], abs=0.06)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("repro") / "toy"
    status = reproduce("toy", out, plan=TINY, progress=False, log=lambda s: None)
    return out, status


def _index_sections(out):
    return dict(re.findall(r"## (.+?)\n(.*?)(?=\n## |\Z)", (out / "index.md").read_text(), flags=re.S))


@pytest.mark.slow
def test_every_step_writes_its_artefacts_and_the_index_links_them(run):
    out, status = run
    assert status == {s.name: "ran" for _, s in registered()}
    for rel in ("score/scores.csv", "score/head_locations.png", "score/em_by_position.png", "score/table1.md", "heads/heads.json",
                "compensation/compensation.csv", "compensation/compensation.png", "directions/directions.safetensors",
                "sweep/sweep.csv", "sweep/table3.md", "retrieval_heads/retrieval_scores.csv", "figure9/figure9.json",
                "evaluation/task_scores.csv", "evaluation/sink_scores.md", "plan.json", "rows/scores.csv", "rows/table1.md",
                "compensation/answers.csv", "sweep/answers.csv", "seeds/seeds.csv", "seeds/answers.csv", "seeds/seeds.png",
                "seeds/seed1/directions_gold.safetensors", "seeds/seed1/directions_long.safetensors", "explore.html"):  # fmt: skip
        assert (out / rel).exists(), rel
    index = (out / "index.md").read_text()
    assert "Not run yet" not in index and "(missing)" not in index
    for link in re.findall(r"\]\(([^)]+)\)", index):
        assert (out / link).exists(), link
    assert json.loads((out / "plan.json").read_text())["score"]["limit"] == TINY.steps["score"]["limit"] == 6
    # the versions it ran under, in the index and in every step's summary
    import transformers

    assert f"transformers {transformers.__version__}" in index and "ran under" not in index
    for summary in ("score", "heads", "compensation", "sweep", "retrieval_heads", "evaluation"):
        assert json.loads((out / summary / "summary.json").read_text())["versions"]["transformers"] == transformers.__version__


@pytest.mark.slow
def test_index_numbers_are_read_from_the_step_files(run):
    out, _ = run
    sections = _index_sections(out)
    em = pd.read_csv(out / "score/em.csv")
    long = em[(em.variant == "long") & (em.gold_position.astype(str) == "all")].iloc[0]
    assert f"| EM, long prompts | {em_text(long.em, int(long.n))} | 0.594 |" in sections["Contextual heads (Figure 2, Table 1, EM by position)"]
    assert "`rows = generation`" in sections["Contextual heads (Figure 2, Table 1, EM by position)"]
    top5 = json.loads((out / "score/summary.json").read_text())["top_heads"][:5]
    assert " ".join(f"({l},{h})" for l, h in top5) in sections["Contextual heads (Figure 2, Table 1, EM by position)"]

    comp = pd.read_csv(out / "compensation/compensation.csv")
    best = comp.loc[comp[comp.method == "contextual"].em.idxmax()]
    base = comp[comp.method == "baseline"].iloc[0]
    section = sections["Attention compensation (Figure 3)"]
    assert f"| baseline (long prompts, no intervention) | {em_text(base.em, int(base.n))} |" in section
    assert f"| {em_text(best.em, int(best.n))}; paired difference {best['diff']:+.3f} [{best.diff_low:+.3f}, {best.diff_high:+.3f}]" in section
    rnd = comp[comp.method == "random"].iloc[0]  # the control beside contextual heads at its own k and τ
    assert f"| top-{int(rnd.k)} contextual heads, τ = {rnd.tau:g} |" in section and f"| {int(rnd.k)} random heads, τ = {rnd.tau:g} |" in section

    t3 = pd.read_csv(out / "sweep/table3.csv")
    assert sorted(set(t3.intervened)) == [5, 20]  # both halves of Table 3
    for k in (5, 20):
        d = t3[(t3.alpha == 0.3) & (t3.intervened == k)].groupby("span").delta.mean()
        assert (f"| Table 3, α = 0.3 on the top {k}: mean change over the top 5 (one run, no interval) | R {d['relevant']:+.3f}, IR max {d['irrelevant_max']:+.3f}, "
                f"sink {d['sink']:+.3f}") in sections["Focus directions (Figure 4, Table 3)"]  # fmt: skip

    seeds = pd.read_csv(out / "seeds/seeds.csv", dtype={"seed": str})
    answers = pd.read_csv(out / "seeds/answers.csv")
    assert sorted(seeds.seed.unique()) == ["0", "1", "all"] and len(answers) == 2 * 3 * 3 * len(POSITIONS)  # seeds × settings × questions × positions
    pooled = seeds[(seeds.seed == "all") & (seeds.metric == "em")].set_index("setting")
    base = answers[answers.setting == "baseline"].set_index(["seed", "id"]).em
    for setting, r in pooled.iterrows():
        after = answers[answers.setting == setting].set_index(["seed", "id"]).em
        assert r["diff"] == pytest.approx((after - base.loc[after.index]).mean()) and r.n == len(after) == 2 * 3 * len(POSITIONS) and r.questions == 6
        assert f"seed all, {setting}: em" in sections["Focus directions over seeds, trained on long and on gold-only prompts"]
    rows = sections["Which rows a score averages: both conventions side by side"]
    assert json.loads((out / "rows/summary.json").read_text())["rows"] == "response"
    response_top = json.loads((out / "rows/summary.json").read_text())["top_heads"][:5]
    assert "`response`: top 5 | " + " ".join(f"({l},{h})" for l, h in response_top) in rows and "`generation`: top 5" in rows

    sink = pd.read_csv(out / "evaluation/sink_scores.csv")
    std = sink[sink.task == "STD"].iloc[0]
    assert f"{100 * std.sink:.1f} points across 2 tasks at {int(std.length)} tokens" in sections["Long-context tasks (Table 2 shape, Tables 12–13)"]

    # the task-directions step answered the same held-out prompts as the evaluation step: its baseline and
    # general-directions cells are the evaluation's own (read from there), the categories' cells its own work
    mine, theirs = RowCache(out / "task_directions/cells.jsonl").rows, RowCache(out / "evaluation/cells.jsonl").rows
    shared = {k for k in mine if k in theirs}
    assert len(shared) == 2 * 2 and all(mine[k] == theirs[k] for k in shared)  # baseline, 20_0.2 × toy_needle, toy_qa at 80 tokens
    assert len(mine) == len(shared) + 2 * 2  # each category's directions on each task
    matrix = pd.read_csv(out / "task_directions/matrix.csv")
    section = sections["Focus directions for each task category (the paper's first open question)"]
    for r in matrix.itertuples():
        assert f"{r.directions}: {r.diff:+.3f} [{r.diff_low:+.3f}, {r.diff_high:+.3f}]" in section and f"({r.changed} {'response' if r.changed == 1 else 'responses'} changed)" in section


@pytest.mark.slow
def test_a_second_run_redoes_nothing_and_loads_no_model(run, monkeypatch):
    out, _ = run

    def no_model(*a, **k):
        raise AssertionError("a finished run loaded the model again")

    monkeypatch.setattr("lens_focus.commands.reproduce.load_model", no_model)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.csv")}
    assert set(reproduce("toy", out, plan=TINY, progress=False, log=lambda s: None).values()) == {"done"}
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.csv")} == before


@pytest.mark.slow
def test_explore_takes_its_limit_from_the_command_line(run, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(run[0], out)
    result = CliRunner().invoke(app, ["explore", str(out), "--limit", "1"])
    assert result.exit_code == 0, result.output
    page = (out / "explore.html").read_text()
    assert json.loads((out / "plan.json").read_text())["explore"]["limit"] == 1 and "1 of the held-out test questions" in page


@pytest.mark.slow
def test_a_changed_plan_redoes_the_changed_step_and_those_that_read_it(run, tmp_path, monkeypatch):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(run[0], out)
    logged = []
    status = reproduce("toy", out, plan=tiny(sweep={"alphas": [0.5]}), progress=False, log=logged.append)
    assert [s for s, v in status.items() if v == "ran"] == ["sweep"]
    assert set(pd.read_csv(out / "sweep/sweep.csv").alpha) == {0.0, 0.5}
    # the earlier sweep is set aside, not deleted, and the log names what changed
    assert (out / ".previous/sweep/sweep.csv").read_bytes() == (run[0] / "sweep/sweep.csv").read_bytes()
    assert any("sweep: parameters changed (args.alphas:" in line and ".previous/sweep" in line for line in logged), logged
    # only the α grid changed: the cells computed before are kept, and the new α's appended after them
    assert (out / "sweep/cells.jsonl").read_text().startswith((run[0] / "sweep/cells.jsonl").read_text())

    ran = []  # which steps a change upstream redoes (recorded, not run: the steps themselves are tested above)
    monkeypatch.setattr("lens_focus.commands.reproduce.run_experiment", lambda e, ctx: ran.append(ctx.out.parent.name if ctx.out.suffix else ctx.out.name))
    monkeypatch.setattr("lens_focus.commands.reproduce.Run.context", lambda self, e, s: Context(model=None, args={}, out=self.out / s.name))
    monkeypatch.setattr("lens_focus.commands.reproduce.write_index", lambda out, *a, **k: out / "index.md")
    status = reproduce("toy", out, plan=tiny(sweep={"alphas": [0.5]}, heads={"limit": 5}), progress=False, log=lambda s: None)
    assert ran == [s for s, v in status.items() if v == "ran"] == ["heads", "compensation", "sweep", "evaluation", "task_directions", "explore"]
    ran.clear()
    status = reproduce("toy", out, plan=tiny(sweep={"alphas": [0.5]}, heads={"limit": 5}, retrieval_heads={"depths": [50]}), progress=False, log=lambda s: None)
    assert ran == ["retrieval_heads", "figure9"]
    ran.clear()
    status = reproduce("toy", out, plan=tiny(sweep={"alphas": [0.5]}, heads={"limit": 5}, retrieval_heads={"depths": [50]}, rows="response"),
                       progress=False, log=lambda s: None)  # fmt: skip
    assert ran == ["score", "rows", "heads", "compensation", "directions", "sweep", "figure9", "evaluation", "seeds", "window", "lengths", "distractor_kinds", "task_directions", "explore"]


def test_a_stamp_changes_with_the_step_s_own_arguments_only():
    by_name = {s.name: (e, s) for e, s in registered()}

    def stamp(plan, name):
        e, s = by_name[name]
        return step_params(e, s, "toy", plan, {n: "x" for n in s.needs})

    changed = tiny(compensation={"taus": [0.3]}, rows="response")
    assert stamp(changed, "compensation") != stamp(TINY, "compensation") and stamp(changed, "sweep") != stamp(TINY, "sweep")  # rows: every step that reads it
    assert stamp(changed, "compensation")["args"]["taus"] == [0.3] and stamp(changed, "retrieval_heads") == stamp(TINY, "retrieval_heads")
    assert stamp(TINY, "rows")["args"]["rows"] == "response" and stamp(changed, "rows")["args"]["rows"] == "generation"  # the other convention
    assert stamp(TINY, "rows")["args"]["limit"] == stamp(TINY, "score")["args"]["limit"] == 6  # the rows step scores the score step's questions


def test_a_task_run_s_lengths_and_settings_are_a_grid_whose_cells_hold():
    """Each task cell's key names its task, length and setting, and a length's prompts do not
    depend on the other lengths (tests/test_tasks.py): added lengths or settings keep the cells."""
    from lens_focus.commands.experiments.evaluation import EVALUATE
    from lens_focus.commands.experiments.lengths import LENGTHS
    from lens_focus.commands.reproduce import grid_changes

    by_name = {s.name: (e, s) for e, s in registered()}

    def params(plan, name):
        e, s = by_name[name]
        return step_params(e, s, "toy", plan, {n: "x" for n in s.needs})

    before = params(TINY, "evaluation")
    wider = tiny(evaluation={"lengths": [80, 160, 320], "settings": ["baseline", "20_0.2", "10_-0.2"]})
    assert grid_changes(EVALUATE, before, params(wider, "evaluation")) == ["lengths", "settings"]
    assert grid_changes(EVALUATE, before, params(tiny(evaluation={"lengths": [80, 160, 320], "n": 4}), "evaluation")) == []  # other prompts
    assert grid_changes(LENGTHS, params(TINY, "lengths"), params(tiny(lengths={"lengths": [80, 160, 320]}), "lengths")) == ["lengths"]


@pytest.mark.slow
def test_an_interrupted_step_resumes_at_its_cells_and_gives_the_same_result(run, tmp_path, monkeypatch):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(run[0], out)
    for step in ("compensation", "sweep"):
        (out / step / "done.json").unlink()
        cells = (out / step / "cells.jsonl").read_text().splitlines()
        assert len(cells) >= 2
        (out / step / "cells.jsonl").write_text("\n".join(cells[:1]) + "\n" + cells[1][: len(cells[1]) // 2])  # cut mid-write
    expected = {s: pd.read_csv(run[0] / s / f"{s}.csv") for s in ("compensation", "sweep")}
    computed = []
    real_call = RowCache.__call__

    def spy(self, key, compute):
        return real_call(self, key, lambda: computed.append(key) or compute())

    monkeypatch.setattr(RowCache, "__call__", spy)
    status = reproduce("toy", out, plan=TINY, progress=False, log=lambda s: None)
    assert [s for s, v in status.items() if v == "ran"] == ["compensation", "sweep"]
    for s, frame in expected.items():
        pd.testing.assert_frame_equal(pd.read_csv(out / s / f"{s}.csv"), frame)
        n = len((run[0] / s / "cells.jsonl").read_text().splitlines())
        assert len((out / s / "cells.jsonl").read_text().splitlines()) == n == len(RowCache(out / s / "cells.jsonl"))
    assert len(computed) == sum(len((run[0] / s / "cells.jsonl").read_text().splitlines()) - 1 for s in expected)
    for s in expected:  # done.json: the cell found done, and every cell's time over both runs
        cells = json.loads((out / s / "done.json").read_text())["cells"]
        assert cells["found"] == 1 and cells["n"] == cells["timed"] == len(RowCache(out / s / "cells.jsonl"))
        assert cells["seconds"] == cell_seconds([out / s / "cells.jsonl"]).seconds
    assert re.search(r"Step `sweep`: [\d.]+ s in its last run, which found 1 of its \d+ cells done by earlier runs; computing the cells took [\d,]+ s in all\.",
                     (out / "index.md").read_text())


@pytest.mark.slow
def test_redo_rewrites_a_finished_step_from_its_cells_and_leaves_the_rest(run, tmp_path, monkeypatch):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(run[0], out)
    (out / "evaluation/task_scores.md").write_text("written by an older version\n")
    (out / "evaluation/changes.csv").unlink()
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/done.json") if p.parent.name != "evaluation"}
    monkeypatch.setattr("lens_focus.evaluation._cell", lambda *a, **k: pytest.fail("a kept cell was computed again"))
    status = reproduce("toy", out, plan=TINY, redo=["evaluation"], progress=False, log=lambda s: None)
    assert [s for s, v in status.items() if v == "ran"] == ["evaluation"]
    assert {s for s, v in status.items() if v == "done"} == wanted_steps(["evaluation"]) - {"evaluation"} != set()  # what it reads, already done
    for name in ("task_scores.md", "changes.csv", "task_scores.csv", "answers.csv"):
        assert (out / "evaluation" / name).read_bytes() == (run[0] / "evaluation" / name).read_bytes(), name
    done = json.loads((out / "evaluation/done.json").read_text())
    assert done["params"] == json.loads((run[0] / "evaluation/done.json").read_text())["params"] and done["cells"]["found"] == done["cells"]["n"]
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/done.json") if p.parent.name != "evaluation"} == before
    assert set(reproduce("toy", out, plan=TINY, progress=False, log=lambda s: None).values()) == {"done"}  # the steps after it still hold


def test_plan_for_and_bad_steps(tmp_path):
    toy, natural = Profile(True, 1024), Profile(False, 8192, chat=True)
    assert plan_for(toy).data == "toy" and plan_for(natural).data == "facts"
    assert plan_for(toy, quick=True).steps["score"]["limit"] < plan_for(toy).steps["score"]["limit"]
    assert plan_for(natural, changes={"evaluation": {"tasks": ["mv", "nq"], "nq": "x.jsonl"}}).steps["evaluation"]["tasks"] == ("mv", "nq")
    with pytest.raises(ValueError, match="unknown steps scores"):
        reproduce("toy", tmp_path, plan=TINY, steps=["scores"], progress=False)


def test_cli_runs_chosen_steps_with_what_they_read(tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text('{"directions": {"limit": 4, "epochs": 2, "gold_positions": [1, 20]}}')
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["reproduce", "--model", "toy", "--quick", "--steps", "directions", "--plan", str(plan), "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = json.loads((out / "plan.json").read_text())
    assert (written["directions"]["limit"], written["directions"]["epochs"], written["quick"]) == (4, 2, True)
    assert "directions ran" in result.output and "score skipped" in result.output and "sweep skipped" in result.output
    assert (out / "directions/directions.safetensors").exists() and not (out / "score").exists()
    assert "Not run yet (step `score`)" in (out / "index.md").read_text()
    again = CliRunner().invoke(app, ["reproduce", "--model", "toy", "--quick", "--steps", "directions", "--plan", str(out / "plan.json"), "--out", str(out)])
    assert again.exit_code == 0 and "directions done" in again.output, again.output  # a run's own plan.json is a plan file
    written = (out / "directions/directions.safetensors").stat().st_mtime_ns
    redo = CliRunner().invoke(app, ["reproduce", "--model", "toy", "--quick", "--redo", "directions", "--plan", str(out / "plan.json"), "--out", str(out)])
    assert redo.exit_code == 0 and "directions ran" in redo.output and "score skipped" in redo.output, redo.output  # no cells: computed again
    assert (out / "directions/directions.safetensors").stat().st_mtime_ns > written
    for option in ("--steps", "--redo"):
        bad = CliRunner().invoke(app, ["reproduce", "--model", "toy", option, "nope", "--out", str(out)])
        assert bad.exit_code == 2 and "unknown steps nope" in bad.output
    plan.write_text('{"epoch": 2}')
    bad = CliRunner().invoke(app, ["reproduce", "--model", "toy", "--plan", str(plan), "--out", str(out)])
    assert bad.exit_code == 2 and f"{plan}: unknown field 'epoch'" in bad.output


def test_nq_and_kv_reach_every_step_that_reads_one_and_a_plan_s_missing_file_is_named(tmp_path):
    plan = tmp_path / "plans/plan.json"  # a run's plan.json, its files relative to its folder, moved where they are not
    plan.parent.mkdir()
    plan.write_text(json.dumps({"distractor_kinds": {"nq": "../data/nq.jsonl.gz"}, "task_directions": {"kv": "../data/kv.jsonl.gz"}}))
    out = tmp_path / "run"
    status = ["reproduce", "--model", "toy", "--quick", "--plan", str(plan), "--out", str(out), "--status"]
    bad = CliRunner().invoke(app, status)
    assert bad.exit_code == 2, bad.output
    assert f"{plan}: field 'distractor_kinds.nq' names {tmp_path / 'data/nq.jsonl.gz'}, which is not there; give the file with --nq FILE" in bad.output
    nq, kv = tmp_path / "mine/nq.jsonl.gz", tmp_path / "mine/kv.jsonl.gz"
    nq.parent.mkdir()
    nq.write_bytes(b"nq"), kv.write_bytes(b"kv")
    bad = CliRunner().invoke(app, [*status, "--nq", str(nq)])
    assert bad.exit_code == 2 and "field 'task_directions.kv'" in bad.output and "--kv FILE" in bad.output, bad.output
    given = CliRunner().invoke(app, [*status, "--nq", str(nq), "--kv", str(kv)])
    assert given.exit_code == 0 and re.search(r"task_directions\s+not run", given.output), given.output
    assert not out.exists()  # --status writes nothing

    steps = plan_for(Profile(True, 1024), quick=True, changes=with_files(read_plan_file(plan), {"nq": str(nq), "kv": str(kv)})).steps
    assert {s for s, v in steps.items() if v.get("nq") == nq} == {"evaluation", "lengths", "distractor_kinds", "task_directions"}
    assert {s for s, v in steps.items() if v.get("kv") == kv} == {"evaluation", "task_directions"}
    assert not any("nq" in v or "kv" in v for s, v in steps.items() if s not in ("evaluation", "lengths", "distractor_kinds", "task_directions"))


@pytest.mark.slow
def test_torchrun_ranks_reproduce_what_one_process_writes(run, tmp_path):
    """Two ranks of torchrun: the question steps split (each rank its own cell cache), rank 0 alone
    trains the directions while the other waits, and every table is the one process's."""
    one, _ = run
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({k: v for k, v in TINY.to_dict().items() if k != "data"}))
    two = tmp_path / "two"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    steps = "score,compensation,sweep,retrieval_heads,evaluation"
    launched = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "lens_focus", "reproduce",
                               "--model", "toy", "--plan", str(plan), "--steps", steps, "--out", str(two)], env=env, capture_output=True, text=True)  # fmt: skip
    assert launched.returncode == 0, launched.stderr[-3000:]
    for name in ["score/scores.csv", "score/em.csv", "heads/scores.csv", "compensation/compensation.csv", "compensation/answers.csv",
                 "sweep/sweep.csv", "sweep/answers.csv", "sweep/table3.csv", "retrieval_heads/retrieval_scores.csv",
                 "evaluation/task_scores.csv", "evaluation/sink_scores.csv", "evaluation/answers.csv"]:  # fmt: skip
        pd.testing.assert_frame_equal(pd.read_csv(one / name), pd.read_csv(two / name), check_exact=False, rtol=0, atol=1e-6, obj=name)
    assert (one / "heads/heads.json").read_text() == (two / "heads/heads.json").read_text()
    a, b = (FocusDirections.load(d / "directions/directions.safetensors") for d in (one, two))
    assert (a.q == b.q).all() and (a.k == b.k).all()
    for step in ("score", "heads", "compensation", "sweep", "retrieval_heads", "evaluation"):
        split = json.loads((two / step / "summary.json").read_text())["distributed"]
        assert split["launcher"] == "torchrun" and split["world_size"] == 2 and min(split["prompts_per_rank"]) > 0, step
    assert sorted(p.name for p in (two / "sweep").glob("cells*.jsonl")) == ["cells.0of2.jsonl", "cells.1of2.jsonl"]
    assert "── directions: focus directions (rank 0 alone; the others wait)" in launched.stdout + launched.stderr


def test_differences_name_each_changed_field_by_its_dotted_path():
    from lens_focus.commands.reproduce import _differences

    a = {"model": "toy", "args": {"alphas": [0.2], "k": 5}, "needs": {"heads": "x"}}
    b = {"model": "toy", "args": {"alphas": [0.5], "k": 5, "tau": 0.3}, "needs": {"heads": "x"}}
    assert _differences(a, b) == ["args.alphas: [0.2] → [0.5]", "args.tau: null → 0.3"]
    assert _differences(a, a) == []


def test_a_plan_that_changes_only_a_grid_keeps_the_cells_already_computed(tmp_path, monkeypatch):
    from lens_focus.commands.experiments.sweep import SWEEP
    from lens_focus.commands.reproduce import grid_changes

    seen = {}  # step -> its cells file as the step found it when it ran (recorded, not run: the steps are tested elsewhere)

    def record(experiment, ctx):
        folder = ctx.out.parent if ctx.out.suffix else ctx.out
        cells = folder / "cells.jsonl"
        seen[folder.name] = cells.read_text() if cells.exists() else None

    monkeypatch.setattr("lens_focus.commands.reproduce.run_experiment", record)
    monkeypatch.setattr("lens_focus.commands.reproduce.Run.context", lambda self, e, s: Context(model=None, args={}, out=self.out / s.name))
    monkeypatch.setattr("lens_focus.commands.reproduce.write_index", lambda out, *a, **k: out / "index.md")
    out, steps = tmp_path / "run", ["compensation", "sweep"]
    reproduce("toy", out, plan=TINY, steps=steps, progress=False, log=lambda s: None)
    for step in steps:
        (out / step / "cells.jsonl").write_text(f'{{"key": ["{step}"], "value": 1}}\n')
        (out / step / "unfinished.cells.jsonl").write_text(f'{{"key": [["{step}", 2], 0], "value": 1}}\n')  # a cell half done
    logged, seen = [], {}
    # sweep: a wider α grid and another Table 3 half (keyed); compensation: fewer questions (not keyed)
    plan = tiny(sweep={"alphas": [0.3, 0.5], "intervene_k": 10}, compensation={"limit": 3})
    reproduce("toy", out, plan=plan, steps=steps, progress=False, log=logged.append)
    assert seen["sweep"] == '{"key": ["sweep"], "value": 1}\n' and seen["compensation"] is None
    assert (out / "sweep/unfinished.cells.jsonl").read_text() == '{"key": [["sweep", 2], 0], "value": 1}\n'  # its finished pieces too
    assert not (out / "compensation/unfinished.cells.jsonl").exists()
    assert (out / ".previous/compensation/cells.jsonl").exists() and (out / ".previous/sweep/cells.jsonl").exists()
    assert any("sweep: only its grid changed (alphas, intervene_k)" in line for line in logged), logged
    assert not any("compensation: only its grid" in line for line in logged)

    earlier = json.loads((out / ".previous/sweep/params.json").read_text())
    now = json.loads((out / "sweep/params.json").read_text())
    assert grid_changes(SWEEP, earlier, now) == ["alphas", "intervene_k"]
    assert grid_changes(SWEEP, earlier, {**now, "inputs": {**now["inputs"], "heads": "another"}}) == []  # other heads: no cell holds
    assert grid_changes(SWEEP, earlier, {**now, "args": {**now["args"], "max_new_tokens": 3}}) == []  # a keyed and an unkeyed change
    assert grid_changes(SWEEP, None, now) == [] and grid_changes(SWEEP, now, now) == []


def test_a_changed_prompt_format_redoes_the_steps_and_earlier_records_take_the_format_of_now(tmp_path, monkeypatch):
    """Every step that runs the model records its prompt format; records made before they did
    (none in their parameters, nor down their inputs) are rewritten with it and stay done, an
    unfinished one keeps its cells; another format redoes every step, figure9 through its inputs."""
    from lens_focus.commands.reproduce import Run

    ran, seen = [], {}

    def record(experiment, ctx):
        folder = ctx.out.parent if ctx.out.suffix else ctx.out
        ran.append(folder.name)
        seen[folder.name] = (folder / "cells.jsonl").read_text() if (folder / "cells.jsonl").exists() else None

    monkeypatch.setattr("lens_focus.commands.reproduce.run_experiment", record)
    monkeypatch.setattr("lens_focus.commands.reproduce.Run.context", lambda self, e, s: Context(model=None, args={}, out=self.out / s.name))
    monkeypatch.setattr("lens_focus.commands.reproduce.write_index", lambda out, *a, **k: out / "index.md")
    out, steps = tmp_path / "run", ["score", "retrieval_heads", "figure9"]
    with monkeypatch.context() as before:  # a run of the code before steps recorded the prompt format
        before.setattr(Run, "prompt", property(lambda self: None))
        reproduce("toy", out, plan=TINY, steps=steps, progress=False, log=lambda s: None)
    assert all("prompt" not in json.loads((out / s / "done.json").read_text())["params"] for s in steps)
    (out / "retrieval_heads/done.json").unlink()  # unfinished, with a cell computed
    (out / "retrieval_heads/cells.jsonl").write_text('{"key": ["needle"], "value": 1}\n')

    logged, ran[:] = [], []
    status = reproduce("toy", out, plan=TINY, steps=steps, progress=False, log=logged.append)
    assert status["score"] == status["figure9"] == "done" and ran == ["retrieval_heads"] and seen["retrieval_heads"] == '{"key": ["needle"], "value": 1}\n'
    assert not (out / ".previous").exists()
    fmt = Run("toy", out, TINY, load_kw={}).prompt
    assert len(fmt) == 16 and sum("recorded before the prompt format was" in line for line in logged) == 3, logged
    for step in ("score", "retrieval_heads"):
        assert json.loads((out / step / "done.json").read_text())["params"]["prompt"] == fmt
        assert json.loads((out / step / "params.json").read_text())["prompt"] == fmt
    assert "prompt" not in json.loads((out / "figure9/done.json").read_text())["params"]  # no model: its inputs carry the format

    ran[:] = []
    status = reproduce("toy", out, plan=TINY, steps=steps, progress=False, log=lambda s: None)
    assert {status[s] for s in steps} == {"done"} and ran == []
    logged = []
    monkeypatch.setattr("lens_focus.commands.reproduce.format_stamp", lambda tokenizer: "another-format")
    reproduce("toy", out, plan=TINY, steps=steps, progress=False, log=logged.append)
    assert ran == steps and any(f'score: parameters changed (prompt: "{fmt}" → "another-format")' in line for line in logged), logged


def test_the_index_line_on_a_step_s_time():
    from lens_focus.analyses.index import step_time

    assert step_time("sweep", {"seconds": 12.5}) == "\n\nStep `sweep`: 12.5 s."
    assert step_time("sweep", {"seconds": 12.5, "cells": {"found": 0, "n": 4, "timed": 4, "seconds": 12.0}}) == "\n\nStep `sweep`: 12.5 s."
    resumed = step_time("evaluation", {"seconds": 20.8, "cells": {"found": 42, "n": 75, "timed": 33, "seconds": 31415.9}})
    assert resumed == ("\n\nStep `evaluation`: 20.8 s in its last run, which found 42 of its 75 cells done by earlier runs; computing the cells "
                       "took 31,416 s in all (42 of them untimed: computed before cells recorded their time).")
    assert step_time("figure9", {}) == ""


@pytest.mark.slow  # reads the whole tiny run, which the slow tier builds for its other tests
def test_status_says_what_each_step_is_reading_only_with_no_model(run, tmp_path, monkeypatch):
    import shutil

    from lens_focus.commands.reproduce import step_states
    from lens_focus.outputs import lock

    out = tmp_path / "copy"
    shutil.copytree(run[0], out)

    def no_model(*a, **k):
        raise AssertionError("--status loaded the model")

    monkeypatch.setattr("lens_focus.commands.reproduce.load_model", no_model)
    states = step_states("toy", out, plan=TINY).set_index("step")
    assert set(states.state) == {"done"} and not states.runs.any()
    assert states.loc["sweep", "cells"] == len(RowCache(out / "sweep/cells.jsonl"))
    with_cells = [s for s in states.index if (out / s / "cells.jsonl").exists()]
    assert {"compensation", "sweep", "evaluation", "lengths"} <= set(with_cells)
    for step in with_cells:  # each loop declared exactly the cells it computed
        kept = [json.loads(line)["key"] for line in (out / step / "cells.jsonl").read_text().splitlines()]
        assert sorted(map(json.dumps, json.loads((out / step / "cells.planned.json").read_text()))) == sorted(map(json.dumps, kept)), step
        assert states.loc[step, "of"] == len(kept) and pd.isna(states.loc[step, "left"]), step
    assert states.drop(with_cells).of.isna().all()
    assert states.loc["sweep", "seconds"] == json.loads((out / "sweep/done.json").read_text())["seconds"]

    (out / "sweep/done.json").unlink()  # a sweep stopped after two cells, a third being written
    cells = (out / "sweep/cells.jsonl").read_text().splitlines()
    (out / "sweep/cells.jsonl").write_text("\n".join(cells[:2]) + "\n" + cells[2][:10])
    before = (out / "sweep/cells.jsonl").read_bytes()
    with lock(out):  # beside the run that holds the folder
        states = step_states("toy", out, plan=TINY, steps=["sweep"]).set_index("step")
    assert (out / "sweep/cells.jsonl").read_bytes() == before  # read, not repaired
    sweep = states.loc["sweep"]
    assert (sweep.state, sweep.cells, sweep.of, sweep.runs) == ("unfinished", 2, len(cells), True)
    assert sweep.seconds == pytest.approx(sum(json.loads(line)["seconds"] for line in cells[:2]), abs=0.06)
    assert sweep.left == pytest.approx((len(cells) - 2) * sweep.seconds / 2, abs=1)  # what is left, at the mean time of the cells done
    assert states.runs.sum() == 1 and not states.loc["score"].runs  # done: what sweep reads is not redone

    states = step_states("toy", out, plan=tiny(sweep={"alphas": [0.5]}, compensation={"limit": 3})).set_index("step")
    assert states.loc["sweep", "state"] == "grid changed" and "alphas" in states.loc["sweep", "detail"]
    assert states.loc["compensation", "state"] == "changed" and "args.limit: 4 → 3" in states.loc["compensation", "detail"]
    assert states.loc["score", "state"] == "done" and not states.loc["score", "runs"]

    result = CliRunner().invoke(app, ["reproduce", "--model", "toy", "--quick", "--plan", str(out / "plan.json"), "--out", str(out), "--status"])
    assert result.exit_code == 0, result.output
    assert re.search(rf"sweep\s+unfinished\s+2\s+{len(cells)}\s", result.output) and re.search(r"score\s+done\s", result.output), result.output
    assert not (out / "sweep/done.json").exists() and (out / "sweep/cells.jsonl").read_bytes() == before  # nothing ran

    with lock(out):  # --index: the index of what is finished now, beside a running run
        result = CliRunner().invoke(app, ["reproduce", "--model", "toy", "--quick", "--plan", str(out / "plan.json"), "--out", str(out), "--index"])
    assert result.exit_code == 0 and "wrote" in result.output, result.output
    index, original = _index_sections(out), _index_sections(run[0])
    assert index["Focus directions (Figure 4, Table 3)"].strip().startswith(f"Not finished yet (step `sweep`: 2 of its {len(cells)} cells done")
    assert {t: v for t, v in index.items() if "sweep" not in v} == {t: v for t, v in original.items() if "sweep" not in v}
    assert (out / "sweep/cells.jsonl").read_bytes() == before and not (out / "sweep/done.json").exists()
