"""Work split across processes (lens_focus.parts): blocks of whole questions; parts written by
--shard and put together by merge, and the ranks of torchrun gathered on rank 0, each giving
exactly the files one process writes."""
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from lens_focus import load_examples, load_model
from lens_focus.commands.cli import app
from lens_focus.commands.declare import merge_parts, run_declared
from lens_focus.directions import FocusDirections, zero_directions
from lens_focus.evaluation import group_by_length, split_sets
from lens_focus.heads import Head, load_heads
from lens_focus.parts import Part, blocks, parse_shard, read_parts
from lens_focus.tasks import TASKS, build_task

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


@pytest.mark.slow
def test_shards_merged_write_what_one_process_writes(toy, examples, tmp_path):
    kw = dict(examples=examples, data="toy", max_new_tokens=4, batch_size=8, log=quiet)
    run_declared("score", toy, tmp_path / "one", **kw)
    for i in range(2):
        assert run_declared("score", toy, tmp_path / f"part{i}", part=Part(i, 2, "shard"), **kw) is None
        assert not (tmp_path / f"part{i}" / "scores.csv").exists()
    merge_parts([tmp_path / "part1", tmp_path / "part0"], tmp_path / "merged", log=quiet)  # any order of folders
    same_files(tmp_path / "one", tmp_path / "merged", SCORE_FILES)
    summary = json.loads((tmp_path / "merged" / "summary.json").read_text())
    assert summary["distributed"] == {"launcher": "shard", "world_size": 2, "prompts_per_rank": [len(b) for b in blocks(examples, 2)]}
    assert summary["distributed"]["prompts_per_rank"][1] > 0
    assert json.loads((tmp_path / "one" / "summary.json").read_text())["distributed"]["world_size"] == 1
    # compensation: the same cells, every prompt's answer, the paired intervals
    ranked = load_heads(tmp_path / "one" / "heads.json", n_layers=8, n_heads=4)
    ckw = dict(examples=examples, heads=ranked, data="toy", taus=[0.3], ks=[1, 4], max_new_tokens=1, batch_size=8, log=quiet)
    run_declared("compensate", toy, tmp_path / "c_one", **ckw)
    for i in range(2):
        run_declared("compensate", toy, tmp_path / f"c_part{i}", part=Part(i, 2, "shard"), **ckw)
    merge_parts([tmp_path / "c_part0", tmp_path / "c_part1"], tmp_path / "c_merged", log=quiet)
    same_files(tmp_path / "c_one", tmp_path / "c_merged", ["compensation.csv", "answers.csv"])
    # parts that do not belong together are refused, naming the folder
    with pytest.raises(ValueError, match=r"parts 1 of 2 are missing \(have 0\)"):
        read_parts([tmp_path / "part0"])
    with pytest.raises(ValueError, match="both part 0"):
        read_parts([tmp_path / "part0", tmp_path / "part0"])
    with pytest.raises(ValueError, match=r"c_part1 is not a part of the run of .*part0: command: \"score\" vs \"compensate\""):
        read_parts([tmp_path / "part0", tmp_path / "c_part1"])
    with pytest.raises(ValueError, match="not a part folder"):
        read_parts([tmp_path / "one"])


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    return Path(shutil.copytree(src, dst))


def test_merge_refuses_what_is_not_one_run(tmp_path):
    """Parts are JSON and safetensors, checked by their SHA-256 and their questions: a swapped,
    duplicated, truncated or altered part, or parts of other parameters, are refused naming the
    file and the field; nothing is ever unpickled."""
    toy = load_model("toy", device="cpu")
    examples = load_examples("toy", limit=4, variants=("long", "gold"), gold_positions=[1, 20])
    kw = dict(examples=examples, data="toy", max_new_tokens=2, batch_size=8, log=quiet)
    for i in range(2):
        run_declared("score", toy, tmp_path / f"p{i}", part=Part(i, 2, "shard"), **kw)
    assert sorted(f.name for f in (tmp_path / "p0").iterdir()) == ["part.json", "results.json", "results.safetensors"]
    meta = json.loads((tmp_path / "p0" / "part.json").read_text())
    assert meta["part"] == 0 and meta["question_ids"] == sorted({e.question_id for e in Part(0, 2, "shard").take(examples)})
    merge_parts([tmp_path / "p0", tmp_path / "p1"], tmp_path / "ok", log=quiet)  # the two parts merge

    duplicate = _copy(tmp_path / "p0", tmp_path / "dup")
    part = json.loads((duplicate / "part.json").read_text())
    (duplicate / "part.json").write_text(json.dumps({**part, "part": 1}))  # part 0 under the name of part 1
    with pytest.raises(ValueError, match="hold the same results"):
        read_parts([tmp_path / "p0", duplicate])
    swapped = _copy(tmp_path / "p1", tmp_path / "swapped")
    for name in ("results.json", "results.safetensors"):  # part 0's results in part 1's folder, its checksums too
        (swapped / name).write_bytes((tmp_path / "p0" / name).read_bytes())
    (swapped / "part.json").write_text(json.dumps({**json.loads((swapped / "part.json").read_text()), "sha256": part["sha256"],
                                                   "question_ids": part["question_ids"]}))  # fmt: skip
    with pytest.raises(ValueError, match="hold the same results|both hold question"):
        read_parts([tmp_path / "p0", swapped])
    cut = _copy(tmp_path / "p1", tmp_path / "cut")
    (cut / "results.safetensors").write_bytes((cut / "results.safetensors").read_bytes()[:100])
    with pytest.raises(ValueError, match=r"cut/results.safetensors: its contents do not match the SHA-256 .* \(truncated or altered\)"):
        read_parts([tmp_path / "p0", cut])
    altered = _copy(tmp_path / "p1", tmp_path / "altered")
    (altered / "results.json").write_text((altered / "results.json").read_text().replace('"em": 1', '"em": 0'))
    with pytest.raises(ValueError, match="altered/results.json: its contents do not match"):
        read_parts([tmp_path / "p0", altered])
    other = tmp_path / "other"
    run_declared("score", toy, other, part=Part(1, 2, "shard"), **{**kw, "max_new_tokens": 3})
    with pytest.raises(ValueError, match=r"other is not a part of the run of .*p0: params.max_new_tokens: 2 vs 3"):
        read_parts([tmp_path / "p0", other])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "part.json").write_text('{"command": "score",\n')
    with pytest.raises(ValueError, match="bad/part.json: not JSON"):
        read_parts([tmp_path / "p0", tmp_path / "bad"])


def quiet(_):
    pass


def split_and_merged(tmp_path: Path, name: str, run) -> tuple[Path, Path]:
    """``run(out, part)`` once alone and as two shards merged: the two folders."""
    run(tmp_path / name, Part())
    for i in range(2):
        assert run(tmp_path / f"{name}{i}", Part(i, 2, "shard")) is None
    merge_parts([tmp_path / f"{name}0", tmp_path / f"{name}1"], tmp_path / f"{name}_merged", log=quiet)
    return tmp_path / name, tmp_path / f"{name}_merged"


@pytest.mark.slow
def test_sweep_retrieval_and_evaluation_shards_merged(toy, examples, tmp_path):
    g = torch.Generator().manual_seed(0)
    zero = zero_directions(toy)
    d = FocusDirections(q=torch.randn(zero.q.shape, generator=g), k=torch.randn(zero.k.shape, generator=g), site=zero.site, meta=zero.meta)
    ranked = [Head(layer, head) for layer in range(8) for head in range(4)]
    kw = dict(heads=ranked, directions=d, max_new_tokens=2, batch_size=8, log=quiet)
    # sweep: Figure 4's cells with their paired intervals, and Table 3's scores averaged over every part's prompts
    three = [e for e in examples if e.question_id in list(dict.fromkeys(x.question_id for x in examples))[:3]]
    one, merged = split_and_merged(tmp_path, "sweep", lambda out, part: run_declared(
        "sweep", toy, out, examples=three, data="toy", alphas=[2.0], ks=[2], table_alphas=[2.0], table_k=2, intervene_k=4, part=part, **kw))
    same_files(one, merged, ["sweep.csv", "answers.csv", "table3.csv"])
    table3 = pd.read_csv(one / "table3.csv")
    assert (table3[table3.alpha == 2.0].delta.abs() > 0.01).any()  # the directions move the scores: the averages differ from α = 0's
    assert json.loads((merged / "summary.json").read_text())["distributed"]["world_size"] == 2
    # retrieval: the samples that recall the needle, from every part
    one, merged = split_and_merged(tmp_path, "retrieval", lambda out, part: run_declared(
        "retrieval", toy, out, lengths=[80, 120], depths=[0, 50, 100], max_new_tokens=6, batch_size=4, part=part, log=quiet))
    same_files(one, merged, ["retrieval_scores.csv", "retrieval_heads.json"])
    assert json.loads((one / "summary.json").read_text())["counted"] > 2  # more than one part's samples count
    # evaluation: every task set's prompts split in blocks of questions; scores, sink table and answers as one process's
    sets = [s for t in ("toy_needle", "toy_qa") for s in group_by_length(TASKS[t], build_task(t, toy.tokenizer, lengths=[80], n=3))]
    halves = [split_sets(sets, Part(i, 2)) for i in range(2)]
    assert [a.examples + b.examples for a, b in zip(*halves)] == [s.examples for s in sets]
    one, merged = split_and_merged(tmp_path, "evaluate", lambda out, part: run_declared(
        "evaluate", toy, out, heads=ranked, directions=d, tasks=["toy_needle", "toy_qa"], lengths=[80], n=3, settings=["baseline", "4_1"],
        sink_k=2, batch_size=4, part=part, log=quiet))
    same_files(one, merged, ["task_scores.csv", "sink_scores.csv", "category_scores.csv", "answers.csv"])
    split = json.loads((merged / "summary.json").read_text())["distributed"]
    assert sum(split["prompts_per_rank"]) == sum(len(s.examples) for s in sets) and min(split["prompts_per_rank"]) > 0


def test_shard_and_merge_from_the_command_line(tmp_path):
    """--shard I/N on a command and lens-focus merge, as a Slurm array would run them; torchrun
    through the command line is tested with reproduce (tests/test_reproduce.py)."""
    args = ["retrieval", "--model", "toy", "--lengths", "80,120", "--depths", "0,50,100", "--max-new-tokens", "6"]
    runner = CliRunner()
    for extra, out in (([], "one"), (["--shard", "0/2"], "p0"), (["--shard", "1/2"], "p1")):
        result = runner.invoke(app, [*args, *extra, "--out", str(tmp_path / out)])
        assert result.exit_code == 0, result.output
    assert "combine the parts with lens-focus merge" in result.output and not (tmp_path / "p1" / "retrieval_scores.csv").exists()
    merged = runner.invoke(app, ["merge", str(tmp_path / "p0"), str(tmp_path / "p1"), "--out", str(tmp_path / "merged")])
    assert merged.exit_code == 0, merged.output
    same_files(tmp_path / "one", tmp_path / "merged", ["retrieval_scores.csv", "retrieval_heads.json"])
    bad = runner.invoke(app, [*args, "--shard", "2/2", "--out", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and "--shard '2/2'" in bad.output
    missing = runner.invoke(app, ["merge", str(tmp_path / "p0"), "--out", str(tmp_path / "m2")])
    assert missing.exit_code == 2 and "parts 1 of 2 are missing" in missing.output
