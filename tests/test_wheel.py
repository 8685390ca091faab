"""lens_focus as a user installs it: a wheel built from the repository, installed (not editable) in
a fresh environment, runs README command (a) and a quick reproduction, with the figure modules
inside the project's namespace (``lens_focus.analyses``), never a top-level ``analyses``."""
import os
import subprocess
import sys
import zipfile

import pytest
from conftest import REPO


@pytest.mark.slow
def test_a_wheel_installs_and_runs_in_a_fresh_environment(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(REPO)], check=True)
    wheel = next(dist.glob("lens_focus-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "lens_focus/analyses/findings.py" in names and "lens_focus/commands/experiments/score.py" in names
    assert not any(n.startswith(("analyses/", "tests/", "figures/")) for n in names)
    assert "lens_focus/toy/checkpoint/model.safetensors" in names and "lens_focus/explorer.html" in names

    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    python, command = env / "bin" / "python", env / "bin" / "lens-focus"
    subprocess.run([python, "-m", "pip", "install", "-q", "torch==2.13.0"], check=True)  # the CPU build, before anything pulls a CUDA one
    subprocess.run([python, "-m", "pip", "install", "-q", str(wheel), "-c", str(REPO / "requirements.lock")], check=True)
    work = tmp_path / "work"  # away from the repository: nothing imports from the source tree
    work.mkdir()
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | {"HF_HUB_OFFLINE": "1"}
    where = subprocess.run([python, "-c", "import lens_focus, lens_focus.analyses as a; print(lens_focus.__file__, a.__file__)"],
                           cwd=work, env=clean, capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert str(REPO) not in where and "site-packages/lens_focus/analyses/__init__.py" in where
    score = subprocess.run([command, "score", "--data", "toy", "--limit", "10", "--out", "runs/score"], cwd=work, env=clean, capture_output=True, text=True)
    assert score.returncode == 0, score.stderr[-2000:]
    assert "EM     gold" in score.stdout and (work / "runs/score/scores.csv").exists()
    quick = subprocess.run([command, "reproduce", "--model", "toy", "--quick", "--out", "runs/quick"], cwd=work, env=clean, capture_output=True, text=True)
    assert quick.returncode == 0, quick.stderr[-2000:]
    assert (work / "runs/quick/index.md").exists() and "Not run yet" not in (work / "runs/quick/index.md").read_text()
