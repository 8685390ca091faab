from dataclasses import replace

import pandas as pd
import pytest
import torch

from lens_focus import load_examples
from lens_focus.answers import answer_examples
from lens_focus.directions import FocusDirections, zero_directions
from lens_focus.experiments import clip_ks, compensation_experiment, focus_scores, sweep_experiment
from lens_focus.heads import Head
from lens_focus.metrics import normalize_answer
from lens_focus.model import model_info

KW = dict(max_new_tokens=6, stop="eos", batch_size=8)


@pytest.fixture(scope="module")
def self_graded(llama, nq_path):
    """Examples whose gold answer is the model's own unmodified response: EM 1 without
    intervention, so any change an intervention makes to an answer shows in the EM."""
    exs = load_examples(nq_path, limit=2, n_docs=2, gold_positions=[1, 2], variants=("long", "gold", "negative"))
    answered = answer_examples(llama, exs, progress=False, **KW)
    assert all(normalize_answer(a.response) for a in answered)  # non-empty answers: EM can fail
    return [replace(a.example, answers=(a.response,)) for a in answered]


def test_clip_ks():
    assert clip_ks([1, 5, 10, 600], 8) == [1, 5, 8]
    assert clip_ks([1, "all"], 32) == [1, 32]
    with pytest.raises(ValueError, match="positive"):
        clip_ks([0], 8)


def test_compensation_experiment(llama, self_graded):
    ranked = [Head(l, h) for l in range(2) for h in range(4)]
    answers = []
    table = compensation_experiment(llama, self_graded, ranked, taus=(1.0, 1000.0, 0.001), ks=(1, 5, 600), seed=3, progress=False, answers=answers, **KW)
    assert list(table.columns) == ["method", "k", "tau", "em", "n", "em_low", "em_high", "diff", "diff_low", "diff_high"]
    base = table.set_index("method").loc[["baseline", "gold", "negative"]]
    assert base.em.tolist() == [1.0, 1.0, 1.0] and base.n.tolist() == [4, 2, 2]
    ctx = table[table.method == "contextual"]
    assert sorted(set(ctx.k)) == [1, 5, 8] and set(ctx.tau) == {1.0, 1000.0, 0.001, 0.3}  # and the control's τ
    assert (ctx[ctx.tau == 1.0].em == 1.0).all()  # τ = 1 is the identity, end to end
    assert (ctx[ctx.tau != 1.0].em < 1.0).any()  # moving attention between the document and the rest changes answers
    rnd = table[table.method == "random"]
    assert sorted(rnd.k) == [1, 5, 8] and (rnd.tau == 0.3).all() and (table.n[table.k.notna()] == 4).all()
    # every prompt's answer under every setting; each row's EM, interval and paired difference from them
    per = pd.DataFrame(answers)
    assert len(per) == 4 + 2 + 2 + 4 * (len(ctx) + len(rnd)) and set(per.columns) >= {"method", "k", "tau", "id", "question_id", "response", "em"}
    base = per[per.method == "baseline"].set_index("id").em
    for r in table[table.k.notna()].itertuples():
        cell = per[(per.method == r.method) & (per.k == r.k) & (per.tau == r.tau)].set_index("id").em
        assert r.em == cell.mean() and r.diff == pytest.approx((cell - base.loc[cell.index]).mean())
        assert r.diff_low <= r.diff <= r.diff_high and r.em_low <= r.em <= r.em_high
    assert table[table.k.isna()]["diff"].isna().all()  # the reference rows are not differences
    with pytest.raises(ValueError, match="ranks 2 heads"):
        compensation_experiment(llama, self_graded, ranked[:2], taus=(0.5,), ks=(5,), progress=False, **KW)
    with pytest.raises(ValueError, match="no long prompts"):
        compensation_experiment(llama, [e for e in self_graded if e.variant == "gold"], ranked, progress=False, **KW)


def test_sweep_zero_directions_are_the_unmodified_model(llama, self_graded):
    info = model_info(llama)
    ranked = [Head(l, h) for l in range(2) for h in range(4)]
    table = sweep_experiment(llama, self_graded, zero_directions(llama), ranked, alphas=(-1.0, 0.0, 1.0), ks=(1, "all"), progress=False, **KW)
    assert list(table.columns) == ["k", "alpha", "em", "n", "em_low", "em_high", "diff", "diff_low", "diff_high"] and len(table) == 6
    assert (table.em == 1.0).all() and (table.n == 4).all()
    steered = table[table.alpha != 0]
    assert (steered["diff"] == 0).all() and (steered.diff_low == 0).all() and table[table.alpha == 0]["diff"].isna().all()
    g = torch.Generator().manual_seed(0)
    strong = FocusDirections(q=torch.randn(info.n_layers, info.n_heads, info.d_head, generator=g) * 20,
                             k=torch.zeros(info.n_layers, info.n_heads, info.d_head), site="post_rotary")  # fmt: skip
    moved = sweep_experiment(llama, self_graded, strong, ranked, alphas=(1.0,), ks=("all",), progress=False, **KW)
    assert moved.alpha.tolist() == [0.0, 1.0], "the unmodified model is always a row"
    assert moved.set_index("alpha").em[0.0] == 1.0 and moved.set_index("alpha").em[1.0] < 1.0


def test_focus_scores_table(llama, self_graded):
    info = model_info(llama)
    heads = [Head(0, 2), Head(1, 1)]
    g = torch.Generator().manual_seed(1)
    d = FocusDirections(q=torch.randn(info.n_layers, info.n_heads, info.d_head, generator=g) * 5,
                        k=torch.zeros(info.n_layers, info.n_heads, info.d_head), site="post_rotary")  # fmt: skip
    table = focus_scores(llama, self_graded, d, heads, alphas=(0.5, 1.0), progress=False, **KW)
    assert list(table.columns) == ["intervened", "alpha", "layer", "head", "span", "score", "delta"] and (table.intervened == 2).all()
    assert set(table.span) == {"relevant", "irrelevant", "irrelevant_max", "sink", "gold_relevant", "gold_sink"}
    assert sorted(set(table.alpha)) == [0.0, 0.5, 1.0] and len(table) == 3 * 2 * 6
    zero = table[table.alpha == 0]
    assert (zero.delta == 0).all()
    pivot = table.pivot_table(index=["layer", "head", "span"], columns="alpha", values="score")
    pd.testing.assert_series_equal(table[table.alpha == 1.0].set_index(["layer", "head", "span"]).delta.sort_index(),
                                   (pivot[1.0] - pivot[0.0]).rename("delta").sort_index(), check_names=False)  # fmt: skip
    assert table[table.alpha == 1.0].delta.abs().max() > 1e-3



def test_table3_right_half_intervenes_on_more_heads_than_it_reports(llama, self_graded):
    # a direction on a layer-1 head cannot change a layer-0 head's attention (causality), while one
    # on the reported layer-0 head itself does: the reported and the intervened sets are separate.
    # One new token: the scored row is the last prompt token, which no answer can change.
    info = model_info(llama)
    g = torch.Generator().manual_seed(2)
    d = FocusDirections(q=torch.randn(info.n_layers, info.n_heads, info.d_head, generator=g) * 5,
                        k=torch.zeros(info.n_layers, info.n_heads, info.d_head), site="post_rotary")  # fmt: skip
    reported = [Head(0, 1)]
    one = {**KW, "max_new_tokens": 1}
    later = focus_scores(llama, self_graded, d, reported, intervene=[Head(1, 0), Head(1, 3)], alphas=(1.0,), progress=False, **one)
    itself = focus_scores(llama, self_graded, d, reported, alphas=(1.0,), progress=False, **one)
    assert (later.intervened == 2).all() and (itself.intervened == 1).all()
    assert set(zip(later["layer"], later["head"])) == {(0, 1)}
    assert later[later.alpha == 1.0].delta.abs().max() < 1e-6
    assert itself[itself.alpha == 1.0].delta.abs().max() > 1e-3
