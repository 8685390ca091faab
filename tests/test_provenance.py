import subprocess
from importlib import metadata
from pathlib import Path

import torch

from lens_focus.provenance import git_commit, versions

REPO = Path(__file__).resolve().parents[1]


def test_versions_are_those_installed():
    v = versions()
    assert set(v) == {"python", "torch", "transformers", "transformer_lens", "lens_focus", "commit"}
    assert v["torch"] == torch.__version__
    for package in ("transformers", "transformer_lens", "lens_focus"):
        assert v[package] == metadata.version(package)


def test_the_commit_is_the_checkouts_and_none_outside_one(tmp_path):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    if head.returncode == 0:
        assert git_commit(REPO).split("+")[0] == head.stdout.strip()
    assert git_commit(tmp_path) is None
