"""One declaration per experiment: an experiment declared here, inside the test, is a command, a
reproduce step with its plan fields, a mergeable part and an index section; and a value is
refused alike from the command line, a plan file and the Python API, before any model loads."""
import json
import math

import pytest
from typer.testing import CliRunner

from lens_focus.commands import options
from lens_focus.commands.cli import make_app
from lens_focus.commands.declare import REGISTRY, Context, Experiment, Sizes, Step, merge_parts, register, run_declared, unregister, write_summary
from lens_focus.commands.reproduce import plan_for, reproduce
from lens_focus.defaults import COMPENSATION_KS, GOLD_POSITIONS, TAUS
from lens_focus.params import Param, ParamError
from lens_focus.profile import Profile

runner = CliRunner()
TIMES = Param("times", int, 1, "how often each question id is written", low=1, high=9)
TOY = Profile(True, 1024)


def _work(ctx: Context) -> list[str]:
    return [e.question_id for e in ctx.examples for _ in range(ctx.args["times"])]


def _write(ids: list[str], out, record, log) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    (out / "ids.txt").write_text("\n".join(ids) + "\n")
    return write_summary(out, {**{k: v for k, v in record.items() if k != "start"}, "ids": len(ids)})


def _section(folders) -> tuple[str, list[dict]]:
    n = len((folders.step / "ids.txt").read_text().split())
    return f"Echoed {n} ids.", [{"": "ids", "ours": str(n), "paper": "—"}]


@pytest.fixture
def echo():
    experiment = register(Experiment(
        "echo", "Write every question id of the selection, each `times` times.", work=_work, write=_write, questions=("long",), params=(TIMES,),
        default_out="runs/echo",
        steps=(Step("echo", "question ids", section=_section, section_title="Echo", sizes=Sizes(full={"times": 2}, toy={"times": 3, "limit": 2})),),
    ))  # fmt: skip
    yield experiment
    unregister("echo")


def test_a_declared_experiment_is_a_command_a_step_a_part_and_a_section(echo, tmp_path):
    app = make_app()
    args = ["echo", "--data", "toy", "--limit", "3", "--gold-positions", "1,20", "--times", "2"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "one")])
    assert result.exit_code == 0, result.output
    ids = (tmp_path / "one" / "ids.txt").read_text().split()
    assert len(ids) == 3 * 2 * 2 and len(set(ids)) == 3  # questions × positions × times
    summary = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert summary["times"] == 2 and summary["gold_positions"] == [1, 20] and summary["distributed"]["world_size"] == 1
    help_text = runner.invoke(app, ["echo", "--help"]).output
    assert "--times" in help_text and "how often each question id is written" in help_text

    bad = runner.invoke(app, [*args[:-1], "10", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "--times: the value must be a whole number within 1..9, got 10" in bad.output and not (tmp_path / "bad").exists()

    for i in range(2):  # as two --shard jobs, then merged: the one process's files
        part = runner.invoke(app, [*args, "--shard", f"{i}/2", "--out", str(tmp_path / f"p{i}")])
        assert part.exit_code == 0 and "combine the parts" in part.output, part.output
    merged = runner.invoke(app, ["merge", str(tmp_path / "p1"), str(tmp_path / "p0"), "--out", str(tmp_path / "merged")])
    assert merged.exit_code == 0, merged.output
    assert (tmp_path / "merged" / "ids.txt").read_text() == (tmp_path / "one" / "ids.txt").read_text()
    assert json.loads((tmp_path / "merged" / "summary.json").read_text())["distributed"]["world_size"] == 2

    plan = plan_for(TOY, quick=True, changes={"echo": {"times": 4}})
    assert plan.to_dict()["echo"] == {"gold_positions": [1, 5, 10, 15, 20], "limit": 2, "times": 4}  # the toy's sizes, and the change
    status = reproduce("toy", tmp_path / "run", plan=plan, steps=["echo"], progress=False, log=lambda _: None)
    assert status["echo"] == "ran" and status["score"] == "skipped"
    assert len((tmp_path / "run" / "echo" / "ids.txt").read_text().split()) == 2 * 5 * 4
    index = (tmp_path / "run" / "index.md").read_text()
    assert "## Echo\n\nEchoed 40 ids." in index and "| ids | 40 | — |" in index
    with pytest.raises(ParamError, match=r"my-plan: field 'echo.times': the value must be a whole number within 1..9, got 'x'"):
        plan_for(TOY, changes={"echo": {"times": "x"}}, source="my-plan")


def test_registered_names_are_unique(echo):
    with pytest.raises(ValueError, match="named 'echo' is registered already"):
        register(echo)
    with pytest.raises(ValueError, match=r"step folders \['score'\] are taken"):
        register(Experiment("other", "x", work=_work, write=_write, steps=(Step("score", "x"),)))
    assert "other" not in REGISTRY


@pytest.fixture
def no_model(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the model was loaded before the bad value was refused")

    monkeypatch.setattr(options, "load_model", refuse)
    monkeypatch.setattr("lens_focus.commands.reproduce.load_model", refuse)


HOSTILE = [  # (experiment, step, parameter, value as written on the command line, as JSON / Python)
    ("compensate", "compensation", "taus", "nan", [math.nan]),
    ("compensate", "compensation", "taus", "0.3,inf", [0.3, math.inf]),
    ("compensate", "compensation", "taus", "-1", [-1]),
    ("compensate", "compensation", "ks", "5,0", [5, 0]),
    ("compensate", "compensation", "ks", "1.5", [1.5]),
    ("compensate", "compensation", "random_tau", "nan", math.nan),
    ("sweep", "sweep", "alphas", "nan", [math.nan]),
    ("sweep", "sweep", "alphas", "0.5,0.5", [0.5, 0.5]),
    ("sweep", "sweep", "table_k", "0", 0),
    ("score", "score", "gold_positions", "1,1,1", [1, 1, 1]),
    ("score", "score", "limit", "-5", -5),
    ("score", "score", "max_new_tokens", "0", 0),
    ("score", "score", "variants", "long,answer", ["long", "answer"]),
    ("evaluate", "evaluation", "settings", "baseline,5_nan", ["baseline", "5_nan"]),
    ("evaluate", "evaluation", "n", "0", 0),
    ("retrieval", "retrieval_heads", "depths", "50,120", [50, 120]),
    ("train-directions", "directions", "lr", "inf", math.inf),
    ("train-directions", "directions", "epochs", "2.5", 2.5),
]


@pytest.mark.parametrize("name, step, param, text, value", HOSTILE)
def test_a_bad_value_is_refused_alike_from_every_entry_before_the_model_loads(name, step, param, text, value, no_model, tmp_path):
    option = "--" + param.replace("_", "-")
    needs = {"compensate": ["--heads", "h.json"], "sweep": ["--heads", "h.json", "--directions", "d.safetensors"], "evaluate": ["--heads", "h.json"]}
    data = [] if name in ("retrieval", "evaluate") else ["--data", "toy"]
    result = runner.invoke(make_app(), [name, *data, *needs.get(name, []), option, text, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert line.startswith(f"error: {option}: ") and "\n" not in line and "Traceback" not in line and not (tmp_path / "out").exists()
    said = line.removeprefix(f"error: {option}: ")

    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps({step: {param: value}}, allow_nan=True))
    result = runner.invoke(make_app(), ["reproduce", "--model", "toy", "--plan", str(plan_file), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and result.output.strip() == f"error: {plan_file}: field '{step}.{param}': {said}", result.output
    assert not (tmp_path / "run").exists()

    with pytest.raises(ParamError) as raised:
        run_declared(name, None, tmp_path / "api", **({"data": "toy"} if data else {}), **{param: value})
    assert str(raised.value) == f"{param}: {said}"


def test_the_library_checks_with_the_same_parameters():
    from lens_focus.data.base import Selection
    from lens_focus.evaluation import parse_settings

    with pytest.raises(ParamError, match="taus: every value must be a finite number > 0, got nan"):
        TAUS.check([0.1, math.nan])
    with pytest.raises(ParamError, match="gold_positions: 1 given more than once, in 1, 1"):
        Selection(gold_positions=(1, 1))
    with pytest.raises(ValueError, match="a finite α"):
        parse_settings("5_nan")
    assert COMPENSATION_KS.check([1, "all"]) == (1, "all") and GOLD_POSITIONS.parse("1,20") == (1, 20)
    with pytest.raises(ParamError, match=r"taus: a list is needed \(each a finite number > 0\), got str '0.3'"):
        TAUS.check("0.3")
    with pytest.raises(ParamError, match="taus: at least one value is needed"):
        TAUS.check([])
