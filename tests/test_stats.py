import itertools
import math

import numpy as np
import pytest

from lens_focus.stats import em_interval, em_text, mean_interval, overlap_chance, paired_difference, wilson


def test_wilson_interval_against_its_closed_form():
    # 9 of 72: centre (p + z²/2n) / (1 + z²/n), half-width z √(p(1-p)/n + z²/4n²) / (1 + z²/n)
    z, n, p = 1.959963984540054, 72, 9 / 72
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert wilson(9, 72) == pytest.approx((centre - half, centre + half))
    assert wilson(9, 72) == pytest.approx((0.0672, 0.2208), abs=1e-4)
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0 and all(math.isnan(x) for x in wilson(0, 0))
    assert em_interval(0.125, 72) == wilson(9, 72)
    assert em_text(0.125, 72) == "0.125 [0.067, 0.221] (n 72)"


def test_paired_difference_mean_and_determinism():
    rng = np.random.default_rng(0)
    before = rng.integers(0, 2, 60).astype(float)
    after = np.clip(before + rng.integers(0, 2, 60), 0, 1)
    d = paired_difference(before, after)
    assert d.mean == pytest.approx((after - before).mean()) and d.n == 60 and d.clusters == 60
    assert d.before == pytest.approx(before.mean()) and d.after == pytest.approx(after.mean())
    assert d.low <= d.mean <= d.high and d.measurable == (d.low > 0)
    assert paired_difference(before, after) == d  # seeded: the same interval every time
    nothing = paired_difference(before, before)
    assert (nothing.mean, nothing.low, nothing.high) == (0.0, 0.0, 0.0) and not nothing.measurable
    assert "no measurable effect" in nothing.text() and "no measurable" not in paired_difference(np.zeros(40), np.ones(40)).text()


def test_the_bootstrap_resamples_whole_questions():
    # 30 questions at 3 positions each, whose three prompts always move together: resampling
    # prompts would treat 90 draws as independent and give an interval ~√3 too narrow
    rng = np.random.default_rng(1)
    per_q = rng.normal(0.1, 1.0, 30)
    diffs = np.repeat(per_q, 3)
    clusters = np.repeat(np.arange(30), 3)
    by_q = paired_difference(np.zeros(90), diffs, clusters, resamples=20_000)
    by_prompt = paired_difference(np.zeros(90), diffs, resamples=20_000)
    assert by_q.clusters == 30 and by_prompt.clusters == 90
    se = per_q.std(ddof=0) / math.sqrt(30)  # the bootstrap's standard error of the mean of 30 cluster means
    assert (by_q.high - by_q.low) == pytest.approx(2 * 1.96 * se, rel=0.06)
    assert (by_q.high - by_q.low) / (by_prompt.high - by_prompt.low) == pytest.approx(math.sqrt(3), rel=0.08)


def test_mean_interval_of_proportions_and_of_graded_scores():
    # a proportion: Wilson's interval, informative at 0 of n and n of n
    assert mean_interval([1, 0, 0, 1, 1] * 8, proportion=True) == wilson(24, 40)
    assert mean_interval(np.zeros(30), proportion=True) == wilson(0, 30) and wilson(0, 30)[1] > 0.1
    with pytest.raises(ValueError, match="0 or 1"):
        mean_interval([0.5, 1.0], proportion=True)
    # graded scores: a percentile bootstrap, whose width for n = 2000 is the normal one (±1.96 s/√n)
    x = np.random.default_rng(2).beta(2, 5, 2000)
    low, high = mean_interval(x)
    half = 1.96 * x.std(ddof=0) / math.sqrt(len(x))
    assert (low, high) == pytest.approx((x.mean() - half, x.mean() + half), abs=0.15 * half)
    assert mean_interval(x) == (low, high)  # seeded
    assert mean_interval([0.5] * 7) == (0.5, 0.5) and mean_interval(np.zeros(30)) == (0.0, 0.0)  # no spread to resample
    with pytest.raises(ValueError, match="non-empty"):
        mean_interval([])


def test_paired_difference_refuses_what_cannot_be_paired():
    with pytest.raises(ValueError, match="paired"):
        paired_difference([1, 0], [1, 0, 1])
    with pytest.raises(ValueError, match="no prompts"):
        paired_difference([], [])
    with pytest.raises(ValueError, match="cluster labels"):
        paired_difference([1, 0], [1, 1], ["a"])


def test_overlap_chance_is_the_exact_permutation_test():
    # every pair of 3-subsets of 7 heads: the share of pairs overlapping in ≥ j heads
    n, k = 7, 3
    subsets = list(itertools.combinations(range(n), k))
    first = set(subsets[0])  # by symmetry one fixed set against every other is the whole distribution
    overlaps = [len(first & set(s)) for s in subsets]
    for j in range(k + 1):
        o = overlap_chance(j, k, n)
        assert o.p_value == pytest.approx(np.mean([x >= j for x in overlaps]))
        assert o.chance == pytest.approx(np.mean(overlaps))
    smol = overlap_chance(11, 20, 270)  # SmolLM2's Figure 9: 11 of 20 shared among 270 heads
    assert smol.chance == pytest.approx(20 * 20 / 270) and smol.p_value < 1e-8
    assert overlap_chance(5, 20, 672).chance == pytest.approx(0.595, abs=1e-3)
    with pytest.raises(ValueError, match="shared"):
        overlap_chance(21, 20, 270)


def test_the_library_statistics_recompute_the_committed_intervals():
    """The committed SmolLM2 compensation and sweep tables were computed before the intervals came
    from scipy: every Wilson interval recomputes to 1e-9, every paired difference exactly, and every
    bootstrap interval within the resampling noise of 10,000 draws (the draws differ, not the method)."""
    import pandas as pd
    from conftest import REPO

    from lens_focus.stats import wilson

    for step, keys in (("compensation", ["method", "k", "tau"]), ("sweep", ["k", "alpha"])):
        folder = REPO / "figures" / "smollm2" / step
        table, answers = pd.read_csv(folder / f"{step}.csv"), pd.read_csv(folder / "answers.csv")
        base = answers[answers[keys[0]] == ("baseline" if step == "compensation" else 0)].set_index("id").em
        for r in table.itertuples():
            lo, hi = wilson(round(r.em * r.n), int(r.n))
            assert (lo, hi) == pytest.approx((r.em_low, r.em_high), abs=1e-9)
            if pd.isna(r.diff):
                continue
            rows = answers
            for key in keys:
                rows = rows[rows[key] == getattr(r, key)] if key != "tau" else rows[np.isclose(rows.tau, r.tau)]
            d = paired_difference(base.loc[rows.id].to_numpy(), rows.em.to_numpy(), rows.question_id.to_numpy())
            assert d.mean == pytest.approx(r.diff, abs=1e-12) and d.n == len(rows) == r.n
            assert abs(d.low - r.diff_low) <= 0.03 and abs(d.high - r.diff_high) <= 0.03, (step, r)
