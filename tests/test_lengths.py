"""The contextual heads across prompt lengths (analyses/lengths.py and the lengths experiment):
ranks, overlaps and chance against computations written out here, the command on the toy
against scores computed apart, its resumption by length, and its refusals."""
import json
from math import comb

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lens_focus.analyses import lengths
from lens_focus.commands.cli import app


def frame(relevant: np.ndarray, sink: np.ndarray) -> pd.DataFrame:
    """A score table (condition long) of a (layer, head) grid of relevant and sink scores."""
    rows = []
    for span, grid in (("relevant", relevant), ("sink", sink), ("irrelevant_max", relevant / 2)):
        for (layer, head), v in np.ndenumerate(grid):
            rows.append({"layer": layer, "head": head, "condition": "long", "span": span, "score": float(v)})
    return pd.DataFrame(rows)


def test_ranks_overlaps_and_chance_against_sets_written_out():
    rng = np.random.default_rng(0)
    grids = {L: rng.random((6, 5)) for L in (100, 200, 400)}
    cells = {L: frame(g, 1 - g) for L, g in grids.items()}
    table = lengths.heads_by_length(cells)
    k = 7
    tops = {L: {divmod(int(i), 5) for i in np.argsort(-g.ravel(), kind="stable")[:k]} for L, g in grids.items()}
    for L in grids:
        assert lengths.top_set(table, L, k) == tops[L]
        first = table[(table.length == L) & (table["rank"] == 1)].iloc[0]
        assert (first.layer, first["head"]) == np.unravel_index(grids[L].argmax(), grids[L].shape)
    pairs = lengths.overlaps(table, k)
    assert list(zip(pairs.length_a, pairs.length_b)) == [(100, 200), (100, 400), (200, 400)]
    for r in pairs.itertuples():
        shared = len(tops[r.length_a] & tops[r.length_b])
        tail = sum(comb(k, i) * comb(30 - k, k - i) for i in range(shared, k + 1)) / comb(30, k)  # the hypergeometric tail, counted
        assert r.shared == shared and r.chance == pytest.approx(k * k / 30) and r.p_value == pytest.approx(tail)
    stats = {L: {"n": 10, "scored": 10, "em_sum": 4.0, "tokens": float(L)} for L in grids}
    per = lengths.per_length(table, stats, k)
    for r in per.itertuples():
        g = grids[r.length]
        assert r.top_relevant == pytest.approx(np.sort(g.ravel())[::-1][:k].mean()) and r.all_sink == pytest.approx((1 - g).mean())
        assert r.em == pytest.approx(0.4) and r.em_low < 0.4 < r.em_high


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lengths") / "run"
    result = CliRunner().invoke(app, ["lengths", "--model", "toy", "--lengths", "80,160", "--n", "6", "--k", "10", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_the_command_scores_each_length_as_scoring_them_apart_does(run):
    from lens_focus import answer_examples, load_model
    from lens_focus.commands.experiments.score import scored_from
    from lens_focus.tasks import TASKS, build_task

    toy = load_model("toy", device="cpu")
    table = pd.read_csv(run / "heads_by_length.csv")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["task"] == "toy_qa" and summary["n_heads"] == 32 and set(table.length) == {80, 160}
    for L in (80, 160):
        examples = build_task("toy_qa", toy.tokenizer, lengths=[L], n=6, seed=0)
        answered = answer_examples(toy, examples, score="generation", max_new_tokens=TASKS["toy_qa"].max_new_tokens, stop=TASKS["toy_qa"].stop, progress=False)
        apart = scored_from(answered).scores
        apart = apart[(apart.condition == "long") & (apart.span == "relevant")].set_index(["layer", "head"]).score
        ours = table[table.length == L].set_index(["layer", "head"]).relevant
        np.testing.assert_allclose(ours.sort_index().to_numpy(), apart.sort_index().to_numpy(), atol=1e-6)
        assert lengths.top_set(table, L, 10) == set(apart.sort_values(ascending=False, kind="stable").index[:10])


def test_a_length_in_the_cells_is_read_not_computed(tmp_path, monkeypatch):
    """Under reproduce each length is a cell: a resumed run reads the lengths it has and computes the rest."""
    from lens_focus.cache import RowCache
    from lens_focus.commands.declare import Context
    from lens_focus.commands.experiments import lengths as experiment

    kept = {"scores": {}, "n": 1, "scored": 1, "em_sum": 1.0, "tokens": 80.0, "skipped": {}}
    cache = RowCache(tmp_path / "cells.jsonl")
    cache(["length", 80], lambda: kept)
    computed = []
    monkeypatch.setattr(experiment, "_cell", lambda ctx, length: computed.append(length) or {**kept, "tokens": float(length)})
    monkeypatch.setattr(experiment, "model_info", lambda model: type("Info", (), {"n_total_heads": 32, "name": "toy"})())
    ctx = Context(model=None, args={"length_task": "toy_qa", "lengths": (160, 80), "n": 1}, out=tmp_path, cache=RowCache(tmp_path / "cells.jsonl"), log=lambda s: None)
    cells = experiment._work(ctx)["cells"]
    assert computed == [160] and cells[80] == kept and cells[160]["tokens"] == 160.0
    assert len(RowCache(tmp_path / "cells.jsonl")) == 2  # the new length was kept as it finished


@pytest.mark.parametrize("args, message", [
    (["--lengths", "80,2000"], "2000 tokens do not fit the model's context of 1024"),
    (["--length-task", "nq"], "the nq task needs the NQ file (--nq)"),
    (["--length-task", "long_qa"], "long_qa is not written in this model's vocabulary; toy_qa is"),
    (["--k", "0"], "--k"),
])  # fmt: skip
def test_bad_input_is_refused_before_any_work(args, message, tmp_path, monkeypatch):
    monkeypatch.setattr("lens_focus.commands.experiments.lengths._cell", lambda ctx, length: pytest.fail("work started"))
    result = CliRunner().invoke(app, ["lengths", "--model", "toy", "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2 and message in result.output, result.output
