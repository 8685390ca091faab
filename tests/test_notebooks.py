"""The teaching notebooks run top to bottom on the toy model; a failing cell fails the test."""
import importlib.util
import json

import pytest
from conftest import REPO

spec = importlib.util.spec_from_file_location("nb_execute", REPO / "notebooks" / "execute.py")
nb_execute = importlib.util.module_from_spec(spec)
spec.loader.exec_module(nb_execute)

# A last cell each test appends: what the notebook computed, as JSON, to check against
# computations the notebook did not show.
CHECKS = {
    "01_contextual_heads": """import json
print(json.dumps({"view": float(view.groupby("part").attention.sum()["relevant"]),
                  "scored": float(shown.scores["relevant"][top.layer, top.head]),
                  "top": list(top), "ranked": list(lf.top_heads(scores, 1)[0]), "em_rows": len(em),
                  "explorer": [len(page.data["examples"]), [s["name"] for s in page.data["settings"]], "<iframe" in page._repr_html_()]}))""",
    "02_attention_compensation": """import json
print(json.dumps({"before": rows[0]["relevant"], "after": rows[1]["relevant"],
                  "methods": sorted(set(table.method)), "n": int(table.n.max())}))""",
    "03_focus_directions": """import json
print(json.dumps({"dk_change": float(abs(same - base).max()), "alphas": sorted(set(sweep.alpha)),
                  "base": sorted(set(sweep[sweep.alpha == 0].em)), "t3_heads": len(t3[["layer", "head"]].drop_duplicates())}))""",
    "04_long_contexts": """import json
base = answers[answers.setting == "baseline"][["task", "length", "id", "score"]]
merged = answers[answers.setting != "baseline"].merge(base, on=["task", "length", "id"], suffixes=("", "_base"))
paired = (merged.score - merged.score_base).groupby([merged.length, merged.task, merged.setting]).mean()
shown = changes[changes.task != "all"].set_index(["length", "task", "setting"])["diff"]
means = answers.groupby(["task", "length", "setting"]).score.mean()
relevant = model.tokenizer.decode([seq.input_ids[i] for i in seq.tokens_of("relevant")])
print(json.dumps({"n": sorted(set(task_scores.n.tolist())), "parts": int(parts.value_counts().sum()) == seq.n_prompt,
                  "answer_in_relevant": any(a in relevant for a in seq.example.answers), "pairs": len(merged),
                  "scores": float((task_scores.set_index(["task", "length", "setting"]).score - means).abs().max()),
                  "diffs": float((shown - paired.reindex(shown.index)).abs().max()),
                  "sink": bool(sink_scores[sink_scores.task != "STD"][["sink", "relevant"]].stack().between(0, 1).all())}))""",
}


def _run(name):
    nb = nb_execute.execute(REPO / "notebooks" / f"{name}.ipynb", "toy", timeout=300, append=CHECKS[name])
    figures = sum("application/vnd.plotly.v1+json" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    return nb, json.loads(nb.cells[-1].outputs[-1].text), figures


def test_the_committed_notebooks_are_the_smollm2_runs():
    assert [p.stem for p in nb_execute.NOTEBOOKS] == list(CHECKS)
    for path in nb_execute.NOTEBOOKS:
        assert '"MODEL = \\"smollm2\\"' in path.read_text(), f"{path.name}: the committed notebook is not the SmolLM2 run"


@pytest.mark.slow
def test_contextual_heads_notebook():
    nb, got, figures = _run("01_contextual_heads")
    assert nb.cells[1].source.startswith('MODEL = "toy"') and figures == 3  # EM by position, head map, attention view
    assert got["top"] == got["ranked"] and got["em_rows"] == 5  # gold at 1, long at 1 / 10 / 20 and all
    # the view's pattern (a teacher-forced pass) against the score taken while generating
    assert got["view"] == pytest.approx(got["scored"], abs=1e-4) and got["view"] > 0
    assert got["explorer"] == [3, ["baseline", "compensation"], True]  # the explorer page, inline


@pytest.mark.slow
def test_attention_compensation_notebook():
    _, got, figures = _run("02_attention_compensation")
    assert figures == 1 and got["methods"] == ["baseline", "contextual", "gold", "negative", "random"]
    assert got["after"] > got["before"]  # τ = 0.1 raises every row's share of the relevant document
    assert got["n"] == 24  # 8 questions × 3 positions


@pytest.mark.slow
def test_focus_directions_notebook():
    _, got, figures = _run("03_focus_directions")
    assert figures == 1 and got["dk_change"] < 1e-5  # post-rotary d_K is inert
    assert got["alphas"] == [0.0, 0.3, 1.0] and len(got["base"]) == 1 and got["t3_heads"] == 5


@pytest.mark.slow
def test_long_contexts_notebook():
    _, got, figures = _run("04_long_contexts")
    assert figures == 3 and got["n"] == [6]  # this run's tasks, the committed run's tasks, the heads across lengths
    assert got["parts"] and got["answer_in_relevant"]  # every prompt token has its part; the relevant document holds the answer
    assert got["pairs"] == 2 * 2 * 2 * 6  # two settings × two tasks × two lengths × six prompts, each paired with its baseline
    # the tables against the answers they summarise, recomputed here
    assert got["scores"] < 1e-12 and got["diffs"] < 1e-12 and got["sink"]
