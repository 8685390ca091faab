"""Bad input, tried as a hostile user would: each case ends in one line naming the culprit (the
option, or the file and what is wrong with it), exit status 2, no traceback, and the output folder
exactly as it was. Then what happens around a run: interrupted while it writes, two runs into one
folder, parts that are not one run."""
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lens_focus.commands.cli import app
from lens_focus.directions import FocusDirections, zero_directions

runner = CliRunner()
HEADS = [[layer, head] for layer in range(8) for head in range(4)]  # the toy's every head


@pytest.fixture(scope="module")
def files(tmp_path_factory, nq_path):
    """Every bad file the cases read, and a valid heads file and directions of the toy's shape."""
    d = tmp_path_factory.mktemp("hostile")
    (d / "heads.json").write_text(json.dumps(HEADS))
    (d / "six-of-one.json").write_text(json.dumps([[1, 2]] * 6))
    (d / "fraction.json").write_text(json.dumps([[1.5, 3]]))
    (d / "strings.json").write_text(json.dumps(["1"]))
    (d / "not-json.json").write_text("[[1, 2],")
    (d / "empty.jsonl").write_text("")
    (d / "broken.jsonl.gz").write_bytes(b"not gzip at all")
    with gzip.open(d / "no-answers.jsonl.gz", "wt") as f:
        f.write(json.dumps({"question": "q?", "ctxs": [{"title": "t", "text": "x", "isgold": True}]}) + "\n")
    (d / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (d / "a-file").write_text("x")
    (d / "a-folder").mkdir()
    bad_config = d / "bad-config"
    bad_config.mkdir()
    (bad_config / "config.json").write_text("{not json")
    no_weights = d / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text(json.dumps({"model_type": "llama"}))
    from lens_focus import load_model

    toy = load_model("toy", device="cpu")
    zero = zero_directions(toy)
    FocusDirections(q=torch.full_like(zero.q, float("nan")), k=zero.k, site=zero.site, meta={}).save(d / "nan.safetensors")
    FocusDirections(q=torch.zeros(3, 4, 32), k=torch.zeros(3, 4, 32), site="post_rotary", meta={"model": "three-layers"}).save(d / "other.safetensors")
    from safetensors.torch import save_file

    save_file({"q": zero.q, "k": zero.k}, str(d / "bad-meta.safetensors"), metadata={"site": "post_rotary", "lens_focus": "{oops"})
    zero.save(d / "good.safetensors")
    plans = {"plan-string.json": {"compensation": {"taus": "0.3"}}, "plan-negative.json": {"score": {"limit": -5}},
             "plan-empty.json": {"compensation": {"taus": []}}, "plan-unknown.json": {"epoch": 2}, "plan-nan.json": {"sweep": {"alphas": [float("nan")]}},
             "plan-step.json": {"score": 3}, "plan-ks.json": {"sweep": {"ks": [5, 0]}}}  # fmt: skip
    for name, plan in plans.items():
        (d / name).write_text(json.dumps(plan, allow_nan=True))
    (d / "plan-broken.json").write_text('{"seed": 1,')
    (d / "not-a-part").mkdir()
    return d


T = "toy"
CASES = [  # (command line, with {d} the files' folder and {nq} the synthetic NQ file; what the line must name)
    ("score --data toy --limit -5", "--limit: the value must be a whole number >= 1, got -5"),
    ("score --data toy --max-new-tokens 0", "--max-new-tokens: the value must be"),
    ("score --data toy --gold-positions 1,1,1", "--gold-positions: 1 given more than once"),
    ("score --data toy --gold-positions 1,25", "--gold-positions: 25 beyond n_docs = 20"),
    ("score --data toy --n-docs 0", "--n-docs:"),
    ("score --data toy --variants gold", "--variants: long is needed"),
    ("score --data toy --variants long,answer", "--variants: 'answer' is not one of"),
    ("score --data toy --rows answer", "--rows: 'answer' is not one of 'generation', 'response'"),
    ("score --data toy --task kv", "--task: the built-in toy data is read as itself"),
    ("score --data toy --distractors bm25", "--distractors: bm25 distractors are drawn for NQ files"),
    ("score --data toy --split middle", "--split: 'middle' is not one of"),
    ("score --data toy --batch-size 0", "--batch-size:"),
    ("score --data toy --n-sink 0", "--n-sink:"),
    ("score --data toy --limit nan", "--limit: the value must be a whole number >= 1, got nan"),
    ("compensate --data toy --heads {d}/heads.json --taus nan", "--taus: every value must be a finite number > 0, got nan"),
    ("compensate --data toy --heads {d}/heads.json --taus 0.3,inf", "--taus: every value must be a finite number > 0, got inf"),
    ("compensate --data toy --heads {d}/heads.json --ks 5,0", "--ks: every value must be a whole number >= 1 (or all), got 0"),
    ("compensate --data toy --heads {d}/heads.json --ks 1.5", "--ks: every value must be a whole number"),
    ("compensate --data toy --heads {d}/heads.json --random-tau -1", "--random-tau:"),
    ("compensate --data toy", "--heads: a value is needed"),
    ("sweep --data toy --heads {d}/heads.json --directions {d}/good.safetensors --alphas nan", "--alphas: every value must be a finite number, got nan"),
    ("sweep --data toy --heads {d}/heads.json --directions {d}/good.safetensors --alphas 0.5,0.5", "--alphas: 0.5 given more than once"),
    ("sweep --data toy --heads {d}/heads.json --directions {d}/good.safetensors --table-k 0", "--table-k:"),
    ("train-directions --data toy --lr inf", "--lr: the value must be a finite number > 0, got inf"),
    ("train-directions --data toy --epochs 2.5", "--epochs: the value must be a whole number >= 1, got 2.5"),
    ("train-directions --data toy --site middle", "--site: 'middle' is not one of"),
    ("retrieval --depths 50,120", "--depths: every value must be a finite number within 0..100, got 120"),
    ("retrieval --lengths 0", "--lengths:"),
    ("retrieval --filler {d}/binary.txt", "--filler: does not apply to a toy-vocabulary model"),
    ("evaluate --heads {d}/heads.json --settings baseline,5_nan", "--settings: '5_nan' needs a whole k >= 1, a finite α"),
    ("evaluate --heads {d}/heads.json --settings baseline,baseline", "--settings: 'baseline' given more than once"),
    ("evaluate --heads {d}/heads.json --tasks nope", "--tasks: unknown tasks nope"),
    ("evaluate --heads {d}/heads.json --n 0", "--n:"),
    ("evaluate --heads {d}/heads.json --helmet-demos {d}/empty.jsonl", "--helmet-demos: 1 demo files for 0 --helmet files"),
    ("score --data {d}/missing.jsonl", "missing.jsonl"),
    ("score --data {d}/empty.jsonl", "empty.jsonl: the file is empty"),
    ("score --data {d}/broken.jsonl.gz", "broken.jsonl.gz: not a readable gzipped JSON-lines file"),
    ("score --data {d}/no-answers.jsonl.gz --task nq", "missing field 'answers'"),
    ("score --data {nq}", "--data: the model's vocabulary is the toy task's words alone"),
    ("score --model {d}/bad-config --data toy", "bad-config/config.json: not a JSON object"),
    ("score --model {d}/no-weights --data toy", "no-weights: no weights"),
    ("compensate --data toy --heads {d}/six-of-one.json", "six-of-one.json: head [1, 2] is listed twice"),
    ("compensate --data toy --heads {d}/fraction.json", "fraction.json: entry 0 is [1.5, 3], not a [layer, head] pair of whole numbers"),
    ("compensate --data toy --heads {d}/strings.json", 'strings.json: entry 0 is "1", not a [layer, head] pair'),
    ("compensate --data toy --heads {d}/not-json.json", "not-json.json: not JSON"),
    ("sweep --data toy --heads {d}/heads.json --directions {d}/nan.safetensors", "nan.safetensors: q holds 1024 values that are not finite numbers"),
    ("sweep --data toy --heads {d}/heads.json --directions {d}/bad-meta.safetensors", "bad-meta.safetensors: its metadata 'lens_focus' is not JSON"),
    ("sweep --data toy --heads {d}/heads.json --directions {d}/other.safetensors", "other.safetensors: made for three-layers"),
    ("score --data toy --out {d}/a-file", "--out: {d}/a-file is a file; a folder of results goes there"),
    ("train-directions --data toy --out {d}/a-folder", "--out: {d}/a-folder is a folder; a file goes there"),
    ("score --data toy --out {d}/a-file/below", "--out: {d}/a-file is a file, so {d}/a-file/below cannot be made"),
    ("score --data toy --shard 2/2", "--shard '2/2'"),
    ("reproduce --model toy --plan {d}/plan-string.json --out OUT", "plan-string.json: field 'compensation.taus': a list is needed (each a finite number > 0), got str '0.3'"),
    ("reproduce --model toy --plan {d}/plan-negative.json --out OUT", "plan-negative.json: field 'score.limit': the value must be a whole number >= 1, got -5"),
    ("reproduce --model toy --plan {d}/plan-empty.json --out OUT", "plan-empty.json: field 'compensation.taus': at least one value is needed"),
    ("reproduce --model toy --plan {d}/plan-nan.json --out OUT", "plan-nan.json: field 'sweep.alphas': every value must be a finite number, got nan"),
    ("reproduce --model toy --plan {d}/plan-ks.json --out OUT", "plan-ks.json: field 'sweep.ks': every value must be a whole number >= 1 (or all), got 0"),
    ("reproduce --model toy --plan {d}/plan-unknown.json --out OUT", "plan-unknown.json: unknown field 'epoch'"),
    ("reproduce --model toy --plan {d}/plan-step.json --out OUT", "plan-step.json: field 'score' should be an object of the step's fields, got int"),
    ("reproduce --model toy --plan {d}/plan-broken.json --out OUT", "plan-broken.json: not JSON"),
    ("reproduce --model toy --steps nope --out OUT", "steps: unknown steps nope"),
    ("merge {d}/not-a-part --out OUT", "not-a-part: not a part folder"),
]


@pytest.mark.parametrize("line, says", CASES, ids=[c[0].split()[0] + ": " + c[1][:40] for c in CASES])
def test_a_bad_input_ends_in_one_line_naming_it(line, says, files, nq_path, tmp_path, monkeypatch):
    assert len(CASES) >= 40
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("an earlier run's result")
    args = [a.replace("{d}", str(files)).replace("{nq}", str(nq_path)).replace("OUT", str(out)) for a in line.split()]
    if "--out" not in args:
        args += ["--out", str(out)]
    if "other.safetensors" not in line:  # directions of another model's shape are found out when the model loads
        monkeypatch.setattr("lens_focus.commands.options.load_model", _refuse)
        monkeypatch.setattr("lens_focus.commands.reproduce.load_model", _refuse)
    result = runner.invoke(app, args)
    text = result.output.strip()
    if "other.safetensors" in line:  # the model loaded (and said so) before its shape could be compared: the error is the last line
        text = text.splitlines()[-1]
    assert result.exit_code == 2, text
    assert text.startswith("error: ") and "\n" not in text and "Traceback" not in result.output, text
    assert says.replace("{d}", str(files)) in text, text
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "an earlier run's result"
    assert not list(tmp_path.glob(".out.partial-*")) and not list(tmp_path.glob(".out.old-*"))


def _refuse(*a, **k):
    raise AssertionError("the model was loaded before the bad input was refused")


def test_an_output_where_nothing_can_be_written_is_refused_before_the_model_loads(monkeypatch):
    monkeypatch.setattr("lens_focus.commands.options.load_model", _refuse)
    result = runner.invoke(app, ["score", "--data", "toy", "--out", "/proc/lens-focus-out"])
    assert result.exit_code == 2 and result.output.startswith("error: --out: cannot write beside /proc/lens-focus-out ("), result.output


def test_a_broken_cell_cache_says_what_to_do(tmp_path):
    from lens_focus.cache import RowCache

    path = tmp_path / "cells.jsonl"
    path.write_text('{"key": 1, "value": 2}\nnot json\n{"key": 3, "value": 4}\n')
    with pytest.raises(ValueError, match=r"line 2: not a cache entry; .* delete line 2 to recompute that cell alone, or the file to recompute the step"):
        RowCache(path)


def _score(out: Path, *extra: str, env=None, **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "lens_focus", "score", "--data", "toy", "--gold-positions", "1,20", "--max-new-tokens", "2", "--out", str(out), *extra]
    # SIGINT as a terminal sends it: a test runner started in the background (`nohup ... &`) ignores SIGINT, and its children would too
    return subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kw)  # fmt: skip


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 120) -> None:
    end = time.time() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < end, "the run never reached its pause"
        time.sleep(0.2)


@pytest.mark.slow
def test_an_interrupted_or_concurrent_run_never_leaves_a_mixed_folder(tmp_path):
    out = tmp_path / "M"
    first = _score(out, "--limit", "3")
    assert first.wait() == 0, first.communicate()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert json.loads(before["summary.json"])["limit"] == 3

    # stopped with SIGINT when the new set is written and about to replace the old one: the old set stays whole
    paused = {"LENS_FOCUS_PAUSE_AT": "swap", "LENS_FOCUS_PAUSE_SECONDS": "900"}  # held until the signal, however slow the machine
    second = _score(out, "--limit", "2", env=paused)
    _wait_for(tmp_path / ".M.paused", second)
    third = _score(out, "--limit", "2")  # a second run into the same folder meanwhile: refused, naming the first
    _, err = third.communicate(timeout=120)
    assert third.returncode == 2 and f"is being written by process {second.pid}" in err and "Traceback" not in err, err
    second.send_signal(signal.SIGINT)
    second.wait(timeout=300)  # winding a run down can take over a minute on a loaded machine
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not list(tmp_path.glob(".M.partial-*"))  # removed on the way out

    # killed outright at the same moment: the half-made set is left, and the next run says so and removes it
    fourth = _score(out, "--limit", "2", env=paused)
    _wait_for(tmp_path / ".M.paused", fourth)
    fourth.kill()
    fourth.wait()
    assert list(tmp_path.glob(".M.partial-*")) and {p.name: p.read_bytes() for p in out.iterdir()} == before
    fifth = _score(out, "--limit", "2")
    stdout, _ = fifth.communicate(timeout=300)
    assert fifth.returncode == 0 and "the unfinished output of an interrupted run" in stdout
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert json.loads(after["summary.json"])["limit"] == 2 and set(after) == set(before) and not list(tmp_path.glob(".M.partial-*"))
