"""Half precision: a model loaded in bfloat16 or float16 is scored, compensated and steered with
float32 statistics, parameters and optimizer state, and its results stay within the tolerance
README "Precision" states (measured on SmolLM2 by bench/precision.py)."""
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lens_focus import label, load_model
from lens_focus.commands.cli import app
from lens_focus.directions import train_directions
from lens_focus.fast import attention_path
from lens_focus.heads import Head
from lens_focus.interventions import compensation_intervention, split_softmax_pattern
from lens_focus.scoring import head_pattern, span_sums

from test_families import DOCS
from test_labels import make_example


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_split_softmax_in_low_precision_is_finite_normalised_and_the_float32_result(dtype):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 6, 40, generator=g) * 6
    logits[0, :, :, :5] -= 30  # rows whose span mass is ~1e-13: pi ** tau underflows in half precision
    pattern = logits.softmax(-1).to(dtype)
    span = torch.zeros(2, 40, dtype=torch.bool)
    span[:, :5] = True
    rows = torch.ones(2, 6, dtype=torch.bool)
    for tau in (0.1, 0.3, 1.5):
        out = split_softmax_pattern(pattern, span, rows, tau)
        assert out.dtype == dtype and torch.isfinite(out).all()
        torch.testing.assert_close(out.float().sum(-1), torch.ones(2, 3, 6), atol=2e-2, rtol=0)
        assert torch.equal(out, split_softmax_pattern(pattern.float(), span, rows, tau).to(dtype))
        moved = (out.float() * span[:, None, None]).sum(-1) - (pattern.float() * span[:, None, None]).sum(-1)
        assert ((moved > 0) if tau < 1 else (moved < 0))[1].all()


@pytest.fixture(scope="module")
def pair(tiny_dirs):
    """The same tiny Llama in float32 and in bfloat16, and two labeled sequences."""
    full = load_model(str(tiny_dirs["llama"]), device="cpu")
    half = load_model(str(tiny_dirs["llama"]), device="cpu", dtype="bfloat16")
    exs = [make_example(DOCS, relevant=3, qid="last"), make_example(DOCS[::-1], relevant=1, qid="first")]
    seqs = [label(e, full.tokenizer, r) for e, r in zip(exs, [" Wilhelm Röntgen", " 1901"])]
    return full, half, seqs


@pytest.mark.parametrize("path", ["eager", "fast"])
def test_bfloat16_scores_and_compensation_stay_near_float32(pair, path):
    full, half, seqs = pair
    assert next(half.parameters()).dtype == torch.bfloat16
    with attention_path(full, path), attention_path(half, path):
        for a, b in zip(span_sums(full, seqs, progress=False), span_sums(half, seqs, progress=False)):
            assert a["relevant"].dtype == b["relevant"].dtype == np.float32
            np.testing.assert_allclose(b["relevant"], a["relevant"], atol=0.03)
            assert np.abs(b["relevant"] - a["relevant"]).max() > 0  # it did run in another precision
        chosen = [Head(0, 1), Head(1, 2)]
        for layer, head in [(0, 1), (1, 2)]:
            plain = head_pattern(half, seqs[0], layer, head, intervention=compensation_intervention(half, chosen, tau=0.3))
            ref = head_pattern(full, seqs[0], layer, head, intervention=compensation_intervention(full, chosen, tau=0.3))
            assert np.isfinite(plain).all()
            np.testing.assert_allclose(plain.sum(-1), 1.0, atol=2e-2)
            np.testing.assert_allclose(plain, ref, atol=0.03)


def test_directions_of_a_bfloat16_model_train_in_float32(pair):
    full, half, seqs = pair
    seen = []
    original = torch.optim.AdamW.step

    def spy(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        seen.extend(t.dtype for st in self.state.values() for t in st.values() if torch.is_tensor(t) and t.dim() > 0)
        seen.extend(p.dtype for g in self.param_groups for p in g["params"])
        return out

    torch.optim.AdamW.step = spy
    try:
        d_half = train_directions(half, seqs, epochs=2, lr=0.05, seed=1, progress=False)
    finally:
        torch.optim.AdamW.step = original
    d_full = train_directions(full, seqs, epochs=2, lr=0.05, seed=1, progress=False)
    assert seen and set(seen) == {torch.float32}
    assert d_half.q.dtype == d_half.k.dtype == torch.float32
    assert d_half.meta["relevant_score_trained"] > d_half.meta["relevant_score_at_init"]
    # Adam's steps are sign-like, so single entries may part ways; what training reaches does not
    assert d_half.meta["relevant_score_trained"] == pytest.approx(d_full.meta["relevant_score_trained"], abs=0.03)


def test_every_model_command_takes_dtype(tiny_dirs, nq_path, tmp_path):
    args = ["score", "--model", str(tiny_dirs["llama"]), "--data", str(nq_path), "--limit", "1", "--n-docs", "2",
            "--gold-positions", "1", "--max-new-tokens", "2", "--out", str(tmp_path / "s")]  # fmt: skip
    result = CliRunner().invoke(app, [*args, "--dtype", "bfloat16"])
    assert result.exit_code == 0, result.output
    assert "context 8192, bfloat16; fast attention" in result.output
    bad = CliRunner().invoke(app, [*args, "--dtype", "float64"])
    assert bad.exit_code == 2 and "float64" in bad.output
    for command in ("score", "heads", "compensate", "train-directions", "sweep", "evaluate", "retrieval", "reproduce"):
        helped = CliRunner().invoke(app, [command, "--help"])
        if helped.exit_code == 0:
            assert "--dtype" in helped.output, command
