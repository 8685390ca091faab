import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LENS_FOCUS_DATA", REPO.parent / "shared" / "data"))
NQ = DATA / "lost_in_the_middle" / "nq-open-oracle.jsonl.gz"
KV = DATA / "lost_in_the_middle" / "kv-retrieval-75_keys.jsonl.gz"


@pytest.fixture(scope="session")
def nq_path():
    if not NQ.exists():
        pytest.fail(f"real data missing: {NQ} (set LENS_FOCUS_DATA)")
    return NQ


@pytest.fixture(scope="session")
def kv_path():
    return KV


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
