import re

from conftest import DATA, REPO

README = (REPO / "README.md").read_text()


def test_readme_opens_with_the_two_commands():
    blocks = re.findall(r"^    (pip install .+)$", README, flags=re.M)
    assert len(blocks) == 2 and "lens-focus score" in blocks[0] and blocks[1].endswith("python -m pytest")
    assert "python -m pytest" in (REPO / ".ci" / "run").read_text()


def test_quickstart_runs(tmp_path, monkeypatch, capsys):
    code = re.search(r"```python\n(.*?)```", README, flags=re.S).group(1)
    assert len(code.strip().splitlines()) <= 10
    monkeypatch.chdir(tmp_path)
    exec(compile(code.replace("../shared/data", str(DATA)), "README quickstart", "exec"), {})
    out = capsys.readouterr().out
    assert "2 layers × 4 heads" in out and "Head(layer=" in out
