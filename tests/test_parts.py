"""Work split across processes (lens_focus.parts): blocks of whole questions; parts written by
--shard and put together by merge, and the ranks of torchrun gathered on rank 0, each giving
exactly the files one process writes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lens_focus import load_examples, load_model
from lens_focus.commands.runs import compensate_run, merge_run, score_run
from lens_focus.heads import load_heads
from lens_focus.parts import Part, blocks, parse_shard, read_parts

REPO = Path(__file__).resolve().parents[1]
SCORE_FILES = ["scores.csv", "heads.json", "examples.jsonl", "em.csv", "table1.csv", "sparsity.csv"]


@pytest.fixture(scope="module")
def toy():
    return load_model("toy", device="cpu")


@pytest.fixture(scope="module")
def examples():
    return load_examples("toy", limit=5, variants=("long", "gold", "negative"))


def same_files(a: Path, b: Path, names) -> None:
    """The same files: text exactly, tables up to float noise of 1e-6 (prompts batched with other
    prompts are padded differently)."""
    for name in names:
        if name.endswith(".csv"):
            pd.testing.assert_frame_equal(pd.read_csv(a / name), pd.read_csv(b / name), check_exact=False, rtol=0, atol=1e-6, obj=name)
        else:
            assert (a / name).read_text() == (b / name).read_text(), name


def test_blocks_keep_questions_whole_and_in_order(examples):
    parts = blocks(examples, 3)
    assert [i for p in parts for i in p] == list(range(len(examples)))  # contiguous, in the data's order
    owner = {}
    for b, part in enumerate(parts):
        for i in part:
            assert owner.setdefault(examples[i].question_id, b) == b  # a question in one part only
    per_question = len(examples) // 5
    assert max(map(len, parts)) - min(map(len, parts)) <= per_question  # as even as whole questions allow
    assert blocks(examples, 7)[5:] == [[], []] and blocks(examples, 1) == [list(range(len(examples)))]
    with pytest.raises(ValueError, match="part 6 of 7 has no questions: 5 question"):
        Part(6, 7, "shard").take(examples)
    with pytest.raises(ValueError, match="not next to each other"):
        blocks([examples[0], examples[per_question], examples[1]], 2)
    assert parse_shard("1/4") == Part(1, 4, "shard")
    for bad in ("4/4", "1-4", "-1/2"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)


def test_shards_merged_write_what_one_process_writes(toy, examples, tmp_path):
    kw = dict(max_new_tokens=4, batch_size=8)
    score_run(toy, examples, tmp_path / "one", log=lambda _: None, **kw)
    for i in range(2):
        assert score_run(toy, examples, tmp_path / f"part{i}", part=Part(i, 2, "shard"), log=lambda _: None, **kw) is None
        assert not (tmp_path / f"part{i}" / "scores.csv").exists()
    merge_run([tmp_path / "part1", tmp_path / "part0"], tmp_path / "merged", log=lambda _: None)  # any order of folders
    same_files(tmp_path / "one", tmp_path / "merged", SCORE_FILES)
    summary = json.loads((tmp_path / "merged" / "summary.json").read_text())
    assert summary["distributed"] == {"launcher": "shard", "world_size": 2, "prompts_per_rank": [len(b) for b in blocks(examples, 2)]}
    assert summary["distributed"]["prompts_per_rank"][1] > 0
    assert json.loads((tmp_path / "one" / "summary.json").read_text())["distributed"]["world_size"] == 1
    # compensation: the same cells, every prompt's answer, the paired intervals
    ranked = load_heads(tmp_path / "one" / "heads.json", n_layers=8, n_heads=4)
    ckw = dict(taus=[0.3], ks=[1, 4], max_new_tokens=1, batch_size=8, log=lambda _: None)
    compensate_run(toy, examples, ranked, tmp_path / "c_one", **ckw)
    for i in range(2):
        compensate_run(toy, examples, ranked, tmp_path / f"c_part{i}", part=Part(i, 2, "shard"), **ckw)
    merge_run([tmp_path / "c_part0", tmp_path / "c_part1"], tmp_path / "c_merged", log=lambda _: None)
    same_files(tmp_path / "c_one", tmp_path / "c_merged", ["compensation.csv", "answers.csv"])
    # parts that do not belong together are refused, naming the folder
    with pytest.raises(ValueError, match=r"parts \[1\] of 2 are missing"):
        read_parts([tmp_path / "part0"])
    with pytest.raises(ValueError, match="both part 0"):
        read_parts([tmp_path / "part0", tmp_path / "part0"])
    with pytest.raises(ValueError, match="c_part1: command differs"):
        read_parts([tmp_path / "part0", tmp_path / "c_part1"])
    with pytest.raises(FileNotFoundError, match="not a part folder"):
        read_parts([tmp_path / "one"])


def test_torchrun_ranks_write_what_one_process_writes(tmp_path):
    args = ["score", "--data", "toy", "--limit", "4", "--max-new-tokens", "4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-m", "lens_focus", *args, "--out", str(tmp_path / "one")], env=env, check=True, capture_output=True)
    launched = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "lens_focus", *args,
                               "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True)  # fmt: skip
    assert launched.returncode == 0, launched.stderr[-2000:]
    same_files(tmp_path / "one", tmp_path / "two", SCORE_FILES)
    split = json.loads((tmp_path / "two" / "summary.json").read_text())["distributed"]
    assert split == {"launcher": "torchrun", "world_size": 2, "prompts_per_rank": [12, 12]}  # 4 questions, 6 prompts each (5 positions, gold)
    scores = pd.read_csv(tmp_path / "two" / "scores.csv")
    assert set(scores.condition) >= {"long", "gold"} and len(scores) > 0
