import json
import re
import tomllib

from conftest import REPO

from lens_focus.aliases import TOY_DIR
from lens_focus.commands.docs import BLOCK, blocks, render

README = (REPO / "README.md").read_text()


def test_readme_opens_with_the_two_commands():
    blocks = re.findall(r"^    (pip install .+)$", README, flags=re.M)
    assert len(blocks) == 3 and "lens-focus score" in blocks[0] and blocks[1].endswith('python -m pytest -m "not slow"')
    ci = (REPO / ".ci" / "run").read_text()
    assert 'python -m pytest -m "not slow"' in ci and "python -m pytest -m slow" in ci  # CI runs the README's fast tier and the slow tier
    # the third installs from the lock file, which pins what pyproject.toml allows
    assert blocks[2].endswith("-c requirements.lock")
    lock = dict(line.split("==") for line in (REPO / "requirements.lock").read_text().splitlines() if "==" in line and not line.startswith("#"))
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    declared = {canonicalize_name(r.name): r.specifier for r in map(Requirement, tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])}
    for name in ("torch", "transformers", "transformer-lens"):
        assert lock[name] in declared[name], f"requirements.lock has {name} {lock[name]}, outside pyproject.toml's {declared[name]}"
    assert lock["torch"] == re.search(r"torch==([\d.]+)", ci).group(1)  # the CPU build CI installs first


def test_quickstart_runs(tmp_path, monkeypatch, capsys):
    code, interventions, tasks = re.findall(r"```python\n(.*?)```", README, flags=re.S)[:3]
    assert len(code.strip().splitlines()) <= 10
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README quickstart", "exec"), scope)
    out = capsys.readouterr().out
    cfg = json.loads((TOY_DIR / "config.json").read_text())
    shape = f"{cfg['num_hidden_layers']} layers × {cfg['num_attention_heads']} heads, {cfg['num_key_value_heads']} key-value heads"
    assert shape in out and "Head(layer=" in out
    exec(compile(interventions, "README interventions", "exec"), scope)  # continues the quickstart
    assert len(scope["patched"]) == len(scope["examples"]) and scope["d"].site == "post_rotary"
    assert scope["logits"].shape[:2] == (1, len(scope["seqs"][0]))
    exec(compile(tasks, "README tasks", "exec"), scope)
    assert set(scope["task_scores"].setting) == {"baseline", "10_0.2"} and (scope["task_scores"].n == 4).all()
    assert scope["sink_scores"].sink.between(0, 1).all() and len(scope["answers"]) == 2 * 2 * 4


def test_the_generated_blocks_are_what_the_code_and_the_committed_runs_say():
    """The steps, the command reference, the committed runs and their findings are written by
    lens_focus.commands.docs; a changed option, step or committed number fails here until
    `python -m lens_focus.commands.docs` rewrites the README."""
    names = [m["name"] for m in BLOCK.finditer(README)]
    assert set(names) == set(blocks(REPO)) and len(names) == len(set(names))  # every block written, once
    assert render(README, REPO) == README, "README.md is stale: run python -m lens_focus.commands.docs"
    assert "| `tiny-model ARCH OUT` |" in README and "`--taus` (0.1,0.3,0.6,1.5,1000)" in README


def test_the_readme_states_no_hand_typed_counts_or_timings():
    hand_written = BLOCK.sub("", README)
    assert not re.search(r"\b\d+ tests\b", hand_written), "a hand-typed test count"
    assert not re.search(r"\b[\d.–]+ (min|minutes|s|seconds|hours?)\b", hand_written), "a hand-typed timing"


def test_the_committed_runs_read_nq_with_the_distractors_the_readme_names():
    """The README says the committed runs' NQ prompts take BM25's distractors: every step of every
    committed plan that reads an NQ file draws them so (the distractor comparison draws both)."""
    import json

    readers = 0
    for plan in (REPO / "figures").glob("*/plan.json"):
        for step, values in json.loads(plan.read_text()).items():
            if isinstance(values, dict) and values.get("nq") and step != "distractor_kinds":
                readers += 1
                assert values.get("distractors") == "bm25", f"{plan}: step {step} reads NQ with {values.get('distractors', 'random')} distractors"
    assert readers >= 3 and "The committed runs' NQ prompts take BM25's distractors" in README
