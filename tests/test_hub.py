"""Hub names load with from_pretrained semantics: the Hugging Face cache first, offline here."""
import os
import shutil
import subprocess
import sys

import pytest

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory, tiny_dirs):
    """A Hugging Face cache holding the tiny Llama as ``acme/tiny-llama``, laid out as the hub
    client writes it (``models--org--name/snapshots/<commit>``, ``refs/main``)."""
    home = tmp_path_factory.mktemp("hf_home")
    repo = home / "hub" / "models--acme--tiny-llama"
    shutil.copytree(tiny_dirs["llama"], repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return home


def offline(hf_home, *cmd, cwd=None):
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def test_a_hub_name_loads_from_the_cache_offline(hf_home, tiny_dirs):
    code = (
        "import torch, lens_focus as lf\n"
        "ids = torch.tensor([[1, 5, 9, 14, 3]])\n"
        f"by_path = lf.load_model({str(tiny_dirs['llama'])!r}, device='cpu')\n"
        "by_name = lf.load_model('acme/tiny-llama', device='cpu')\n"
        "print(lf.model_info(by_name).name, float((by_name(ids) - by_path(ids)).abs().max()))\n"
    )
    done = offline(hf_home, sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr[-2000:]
    name, diff = done.stdout.split()[-2:]
    assert name == "acme/tiny-llama" and float(diff) == 0.0


@pytest.mark.slow
def test_a_hub_name_runs_from_the_command_line(hf_home, tmp_path):
    done = offline(
        hf_home, sys.executable, "-m", "lens_focus.commands.cli", "score", "--model", "acme/tiny-llama", "--data", "facts",
        "--limit", "1", "--n-docs", "2", "--gold-positions", "1", "--max-new-tokens", "3", "--stop", "eos",
        "--device", "cpu", "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "acme/tiny-llama: 2 layers" in done.stdout
    assert (tmp_path / "run" / "scores.csv").is_file()


@pytest.mark.slow
def test_a_name_that_is_neither_a_folder_nor_cached_says_both(hf_home, tmp_path):
    code = (
        "import lens_focus as lf\n"
        "try:\n    lf.load_model('acme/missing')\n"
        "except FileNotFoundError as e:\n    print(e)\n"
    )
    done = offline(hf_home, sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr[-2000:]
    message = done.stdout.strip()
    assert "'acme/missing'" in message and "no such folder" in message
    assert "Hugging Face cache" in message and str(hf_home) in message and "HF_HUB_OFFLINE" in message
    cli = offline(hf_home, sys.executable, "-m", "lens_focus.commands.cli", "score", "--model", "acme/missing", "--data", "facts",
                  "--limit", "1", "--out", str(tmp_path / "x"))  # fmt: skip
    assert cli.returncode == 2
    assert cli.stderr.strip().count("\n") == 0 and "no such folder" in cli.stderr
