import json
import re

from conftest import REPO

from lens_focus.aliases import TOY_DIR

README = (REPO / "README.md").read_text()


def test_readme_opens_with_the_two_commands():
    blocks = re.findall(r"^    (pip install .+)$", README, flags=re.M)
    assert len(blocks) == 3 and "lens-focus score" in blocks[0] and blocks[1].endswith("python -m pytest")
    assert "python -m pytest" in (REPO / ".ci" / "run").read_text()
    # the third installs from the lock file, which pins what pyproject.toml allows
    assert blocks[2].endswith("-c requirements.lock")
    lock = dict(line.split("==") for line in (REPO / "requirements.lock").read_text().splitlines() if "==" in line and not line.startswith("#"))
    assert lock["torch"] == "2.13.0" and lock["transformers"].startswith(("5.23.", "5.24.")) and lock["transformer-lens"].startswith("4.3.")


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


def test_readme_lists_the_reproduce_steps_in_order_and_every_command():
    from typer.main import get_command

    from lens_focus.commands.cli import app
    from lens_focus.commands.declare import steps

    section = README[README.index("## Regenerate every figure") : README.index("## Notebooks")]
    assert re.findall(r"^\| `([a-z_0-9]+)` \| ", section, flags=re.M) == [s.name for _, s in steps()]
    reference = README[README.index("## Command-line reference"):]
    for name in get_command(app).commands:
        assert f"| `{name}" in reference, f"command {name} missing from the command-line reference"
