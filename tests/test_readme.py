import re

from conftest import DATA, REPO

README = (REPO / "README.md").read_text()


def test_readme_opens_with_the_two_commands():
    blocks = re.findall(r"^    (pip install .+)$", README, flags=re.M)
    assert len(blocks) == 2 and "lens-focus score" in blocks[0] and blocks[1].endswith("python -m pytest")
    assert "python -m pytest" in (REPO / ".ci" / "run").read_text()


def test_quickstart_runs(tmp_path, monkeypatch, capsys):
    code, interventions = re.findall(r"```python\n(.*?)```", README, flags=re.S)[:2]
    assert len(code.strip().splitlines()) <= 10
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code.replace("../shared/data", str(DATA)), "README quickstart", "exec"), scope)
    out = capsys.readouterr().out
    assert "4 layers × 4 heads, 2 key-value heads" in out and "Head(layer=" in out
    exec(compile(interventions, "README interventions", "exec"), scope)  # continues the quickstart
    assert len(scope["patched"]) == len(scope["examples"]) and scope["d"].site == "post_rotary"
    assert scope["logits"].shape[:2] == (1, len(scope["seqs"][0]))
