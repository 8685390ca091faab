import shutil
import pytest

import numpy as np
import pandas as pd

from lens_focus.analyses import head_locations, markdown_table, table1


def synthetic_scores(n_layers=3, n_heads=4, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for cond in ["long", "correct", "wrong", "gold"]:
        for span in ["relevant", "irrelevant", "irrelevant_max", "sink"]:
            for l in range(n_layers):
                for h in range(n_heads):
                    rows.append(dict(layer=l, head=h, condition=cond, span=span, score=float(rng.uniform(0, 0.3)), n=7))
    return pd.DataFrame(rows)


def test_sparsity_counts_heads_above_thresholds():
    scores = synthetic_scores()
    grid = scores[(scores.condition == "long") & (scores.span == "relevant")].score.to_numpy()
    table = head_locations.sparsity(scores)
    assert table.n_heads.tolist() == [int((grid > t).sum()) for t in (0.2, 0.1, 0.05)]
    assert np.isclose(table.fraction[1], (grid > 0.1).mean())
    assert head_locations.sparsity_line(table).startswith(f"heads with relevant score > 0.2: {table.n_heads[0]} (")


def test_table1_lists_top_heads_with_their_scores():
    scores = synthetic_scores()
    t = table1.compute(scores, k=5)
    rel = scores[(scores.condition == "long") & (scores.span == "relevant")].sort_values("score", ascending=False)
    assert list(zip(t.layer, t["head"])) == list(zip(rel.layer[:5], rel["head"][:5]))
    row = t.iloc[2]
    want = scores[(scores.condition == "wrong") & (scores.span == "sink") & (scores.layer == row.layer) & (scores["head"] == row["head"])]
    assert np.isclose(row.wrong_sink, want.score.item())
    assert "gold_IR" not in t.columns and "gold_sink" in t.columns and (t.n_long == 7).all()


def test_figure_and_markdown(tmp_path):
    scores = synthetic_scores()
    table, fig = head_locations.compute(scores)
    rel = scores[(scores.condition == "long") & (scores.span == "relevant")]
    want = rel.pivot(index="layer", columns="head", values="score").to_numpy()
    assert np.allclose(np.array(fig.data[0].z, dtype=float), want)  # row l, column h: head (l, h)'s relevant score
    written = head_locations.write(scores, tmp_path)
    assert pd.read_csv(tmp_path / "sparsity.csv").equals(table.reset_index(drop=True))
    assert "Contextual heads: relevant score (long)" in (tmp_path / "head_locations.html").read_text()
    png = tmp_path / "head_locations.png"
    if shutil.which("chromium"):  # .ci/run installs one
        assert png in written and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:  # without a browser the PNG is left out, and not listed as written
        assert png not in written and not png.exists()
    md = markdown_table(pd.DataFrame({"a": [1, 2], "b": [0.12345, float("nan")]}))
    assert md.splitlines() == ["| a | b |", "|---|---|", "| 1 | 0.123 |", "| 2 |  |"]


def test_intervention_figures_and_table3_on_synthetic_results(tmp_path):
    import pytest

    from lens_focus.analyses import compensation, sweep, table3

    rng = np.random.default_rng(1)
    comp = pd.DataFrame(
        [{"method": m, "k": None, "tau": None, "em": e, "n": 10} for m, e in [("baseline", 0.5), ("gold", 0.9), ("negative", 0.2)]]
        + [{"method": "contextual", "k": k, "tau": t, "em": float(rng.uniform()), "n": 10} for k in (1, 5) for t in (0.1, 1.5)]
        + [{"method": "random", "k": k, "tau": 0.3, "em": 0.4, "n": 10} for k in (1, 5)]
    )
    fig = compensation.figure(comp)
    names = [t.name for t in fig.data]
    assert names == ["top-k, τ = 0.1", "top-k, τ = 1.5", "random k, τ = 0.3"]
    assert list(fig.data[0].y) == comp[(comp.method == "contextual") & (comp.tau == 0.1)].em.tolist()
    assert sorted(s.y0 for s in fig.layout.shapes) == [0.2, 0.5, 0.9]  # the three baselines
    with pytest.raises(ValueError, match="lacks columns"):
        compensation.figure(comp.drop(columns="tau"))

    sw = pd.DataFrame([{"k": k, "alpha": a, "em": 0.5 if a == 0 else float(rng.uniform()), "n": 10} for k in (1, 8) for a in (-0.5, 0, 0.5)])
    fig = sweep.figure(sw)
    assert [t.name for t in fig.data] == ["top-1", "top-8"] and list(fig.data[1].x) == [-0.5, 0.0, 0.5]
    assert fig.layout.shapes[0].y0 == 0.5

    t3 = pd.DataFrame([{"intervened": k, "alpha": a, "layer": 2, "head": 1, "span": s, "score": 0.1 + a / 10 + (k > 1) * a / 100, "delta": a / 10 + (k > 1) * a / 100}
                       for k in (1, 20) for a in (0.0, 0.5) for s in ("relevant", "sink")])  # fmt: skip
    wide = table3.wide(t3[t3.intervened == 1])
    assert list(wide.columns) == ["alpha", "layer", "head", "R", "sink"]
    assert wide.R.tolist() == ["0.100", "0.150 (+0.050)"]
    table3.write(t3, tmp_path, note="site post_rotary")
    md = (tmp_path / "table3.md").read_text()
    left, right = md.split("### α·d on the top 20 heads, the top 1 reported")
    assert "site post_rotary" in left and "### α·d on the top 1 heads (the heads reported)" in left and "| 0.500 | 2 | 1 | 0.150 (+0.050) |" in left
    assert "| 0.500 | 2 | 1 | 0.155 (+0.055) |" in right
    assert pd.read_csv(tmp_path / "table3.csv").equals(t3)
    # every EM line with its 95% Wilson interval as error bars
    from lens_focus.stats import wilson

    bars = sweep.figure(sw).data[0].error_y
    lo, hi = wilson(round(sw.em.iloc[0] * 10), 10)
    assert (bars.array[0], bars.arrayminus[0]) == pytest.approx((hi - sw.em.iloc[0], sw.em.iloc[0] - lo))
    assert compensation.figure(comp).data[2].error_y.array is not None


def test_em_by_position_averages_each_position_and_all_long_prompts(tmp_path):
    from lens_focus.analyses import em_positions

    rng = np.random.default_rng(0)
    answers = pd.DataFrame(
        [{"variant": "long", "gold_position": p, "em": float(rng.random() < 0.5)} for p in (1, 10, 20) for _ in range(7)]
        + [{"variant": "gold", "gold_position": 1, "em": 1.0}] * 4
        + [{"variant": "negative", "gold_position": None, "em": 0.0}] * 3
    )
    table = em_positions.write(answers, tmp_path)
    for p in (1, 10, 20):
        row = table[(table.variant == "long") & (table.gold_position == p)]
        assert row.em.item() == answers[(answers.variant == "long") & (answers.gold_position == p)].em.mean() and row.n.item() == 7
    overall = table[table.gold_position == "all"]
    assert overall.em.item() == answers[answers.variant == "long"].em.mean() and overall.n.item() == 21
    assert table[table.variant == "negative"].n.item() == 3
    assert pd.read_csv(tmp_path / "em.csv").shape == table.shape and (tmp_path / "em_by_position.html").exists()
    fig = em_positions.figure(table)
    assert list(fig.data[0].x) == [1, 10, 20] and len(fig.layout.shapes) == 2  # gold and negative lines
    # every EM with its 95% Wilson interval, in the table and as the figure's error bars
    from lens_focus.stats import wilson

    long = table[(table.variant == "long") & (table.gold_position != "all")]
    for r, up, down in zip(long.itertuples(), fig.data[0].error_y.array, fig.data[0].error_y.arrayminus):
        lo, hi = wilson(round(r.em * r.n), r.n)
        assert (r.em_low, r.em_high) == pytest.approx((lo, hi)) and (up, down) == pytest.approx((hi - r.em, r.em - lo))


def test_figure9_overlap_layers_and_scatter_on_synthetic_scores(tmp_path):
    from lens_focus.analyses import figure9

    layer, head = np.meshgrid(np.arange(4), np.arange(3), indexing="ij")
    layer, head = layer.ravel(), head.ravel()
    ctx_score = np.linspace(0, 1, 12)  # contextual: the last heads (layers 2-3) score highest
    ret_score = ctx_score[::-1].copy()  # retrieval: the first heads
    ret_score[[10]] = 2.0  # head (3, 1) is top of both
    scores = pd.DataFrame({"layer": layer, "head": head, "condition": "long", "span": "relevant", "score": ctx_score, "n": 5})
    retrieval = pd.DataFrame({"layer": layer, "head": head, "score": ret_score, "n": 3})
    table, summary, fig = figure9.compute(scores, retrieval, k=3)
    assert summary["overlap"] == 1 and summary["shared"] == [[3, 1]]
    assert summary["contextual_layers"] == [3, 3, 3] and summary["retrieval_layers"] == [0, 0, 3]
    # beside chance: two random 3-sets of 12 heads share 9/12 on average, and ≥ 1 with 1 - C(9,3)/C(12,3)
    assert summary["n_heads"] == 12 and summary["chance"] == pytest.approx(0.75) and summary["p_value"] == pytest.approx(1 - 84 / 220)
    bars = {t.name: list(t.x) for t in fig.data if t.type == "bar"}
    assert bars == {"contextual": [0, 0, 0, 3], "retrieval": [2, 0, 0, 1]}
    assert table.top_contextual.sum() == table.top_retrieval.sum() == 3
    written = figure9.write(scores, retrieval, tmp_path, k=3)
    assert (tmp_path / "figure9.csv").exists() and (tmp_path / "figure9.html").exists() and len(written) >= 3
    with pytest.raises(ValueError, match="different heads"):
        figure9.compute(scores, retrieval[retrieval.layer < 3], k=3)
    with pytest.raises(ValueError, match="no response recalled"):
        figure9.compute(scores, retrieval.assign(score=np.nan), k=3)


def test_the_shape_of_figure3_is_read_from_paired_answers():
    """EM over k at each τ < 1: the rise to the curve's peak and the change beyond it, each a paired
    difference over the same prompts (recomputed here by hand), and τ > 1's falls counted."""
    from lens_focus.analyses.findings import _shape_of_compensation

    n = 20
    # contextual heads at τ 0.1: k = 1 answers the first 4 prompts, k = 5 the first 18, k = 20 the first 12
    right = {(1, 0.1): 4, (5, 0.1): 18, (20, 0.1): 12, (1, 1.5): 0, (5, 1.5): 0, (20, 1.5): 0}
    answers = pd.DataFrame(
        [{"method": "baseline", "k": np.nan, "tau": np.nan, "id": f"p{i}", "question_id": f"q{i}", "em": float(i < 3)} for i in range(n)]
        + [{"method": "contextual", "k": k, "tau": tau, "id": f"p{i}", "question_id": f"q{i}", "em": float(i < m)} for (k, tau), m in right.items() for i in range(n)]
    )  # fmt: skip
    em = answers.groupby(["method", "k", "tau"], dropna=False).em.mean().reset_index()
    table = em.assign(n=n, diff=lambda f: f.em - 3 / n, diff_low=lambda f: f["diff"] - 0.05, diff_high=lambda f: f["diff"] + 0.05)
    text = _shape_of_compensation(table, answers)
    assert "at τ = 0.1, the top 1 → the top 5 (its peak): +0.700" in text and "a rise" in text.split("the top 5 → the top 20")[0]
    assert "the top 5 → the top 20: -0.300" in text and "a fall" in text.split("the top 5 → the top 20")[1].split(";")[0]
    assert "τ > 1 lowers EM measurably in 3 of its 3 settings" in text  # each 0 − 0.15 with its interval below 0
    assert "τ = 1.5, the top" not in text  # the curves are read at τ < 1 only
