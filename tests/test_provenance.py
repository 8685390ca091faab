import subprocess
from importlib import metadata
from pathlib import Path

import torch

from lens_focus.provenance import git_commit, versions

REPO = Path(__file__).resolve().parents[1]


def test_versions_are_those_installed():
    v = versions()
    assert set(v) == {"python", "torch", "transformers", "transformer_lens", "lens_focus", "commit"}
    for package in ("torch", "transformers", "transformer_lens", "lens_focus"):
        assert v[package] == metadata.version(package)
    # the installed distribution's version; a build's local label (+cpu, +cu132) is the wheel's to carry or not
    assert torch.__version__.split("+")[0] == v["torch"].split("+")[0]


def test_the_commit_is_the_checkouts_and_none_outside_one(tmp_path):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    if head.returncode == 0:
        assert git_commit(REPO).split("+")[0] == head.stdout.strip()
    assert git_commit(tmp_path) is None


def test_only_changed_code_makes_a_checkout_dirty(tmp_path):
    git = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, capture_output=True, text=True, check=True)
    git("init", "-q")
    (tmp_path / "lens_focus").mkdir()
    (tmp_path / "figures").mkdir()
    (tmp_path / "lens_focus" / "a.py").write_text("x = 1\n")
    (tmp_path / "figures" / "f.csv").write_text("1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
    head = git("rev-parse", "HEAD").stdout.strip()
    (tmp_path / "figures" / "f.csv").write_text("2\n")
    assert git_commit(tmp_path / "lens_focus") == head
    (tmp_path / "lens_focus" / "a.py").write_text("x = 2\n")
    assert git_commit(tmp_path / "lens_focus") == head + "+dirty"
