import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "data"
NQ = FIXTURES / "nq-synthetic.jsonl.gz"
"""400 synthetic questions in the NQ oracle format (tests/data/make_fixtures.py)."""
KV = FIXTURES / "kv-synthetic.jsonl.gz"
"""20 synthetic key-value examples of 75 UUID pairs, in the lost-in-the-middle format."""
REAL = Path(os.environ.get("LENS_FOCUS_DATA", REPO.parent / "shared" / "data")) / "lost_in_the_middle"
"""The published lost-in-the-middle files, when this machine has them (README, Data)."""


@pytest.fixture(scope="session")
def nq_path():
    return NQ


@pytest.fixture(scope="session")
def kv_path():
    return KV


@pytest.fixture(scope="session")
def real_data():
    """The folder of the real lost-in-the-middle files; the test is skipped, with the reason, where they are absent."""
    if not (REAL / "nq-open-oracle.jsonl.gz").exists():
        pytest.skip(f"the real lost-in-the-middle files are not at {REAL} (set LENS_FOCUS_DATA)")
    return REAL


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    from lens_focus.tiny import ARCHS, tiny_model

    root = tmp_path_factory.mktemp("tiny")
    return {arch: tiny_model(arch, root / arch, seed=1) for arch in ARCHS}


@pytest.fixture(scope="session")
def models(tiny_dirs):
    from lens_focus import load_model

    return {arch: load_model(str(path), device="cpu") for arch, path in tiny_dirs.items()}


@pytest.fixture(scope="session")
def llama(models):
    return models["llama"]
