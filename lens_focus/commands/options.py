"""Commands made from declarations: an option per :class:`~lens_focus.params.Param`, every value
read through the parameter's own check, and the one way a command fails.

:func:`experiment_command` gives a registered experiment its ``lens-focus NAME``: the model's
options, the experiment's parameters (the question selection's first, when it reads questions),
its input files, ``--out``, and ``--shard`` when its work splits. Every option is read as text and
parsed by :meth:`Param.parse`, so the command line refuses exactly what a plan file and the Python
API refuse, with the same message, before anything loads.

Errors: bad input (:class:`~lens_focus.errors.InputError`, a missing file) ends in one line,
``error: ...``, and exit status 2; anything else is a bug and keeps its traceback (:func:`main`
in :mod:`.cli` adds one line saying so).
"""
from __future__ import annotations

import functools
import inspect
import typing
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer

from ..defaults import ATTENTION, DEVICE, DEVICE_MAP, DIRECTIONS, DTYPE, HEADS, MAX_MEMORY, MODEL
from ..directions import FocusDirections, TransferWarning, check_directions
from ..errors import InputError
from ..fast import attention_of
from ..heads import load_heads
from ..model import load_model, model_info
from ..outputs import written
from ..params import Param, ParamError
from ..parts import current_part
from ..profile import profile_of_checkpoint
from .declare import Context, Experiment, load_questions, run_experiment

MODEL_OPTIONS: tuple[Param, ...] = (MODEL, DEVICE, ATTENTION, DTYPE, DEVICE_MAP, MAX_MEMORY)
SHARD = Param("shard", str, None, "answer part I (0 to N-1) of the questions as an independent job and write it as a part folder; combine the parts "
              "with lens-focus merge (under torchrun the ranks split the work themselves)", optional=True)  # fmt: skip
INPUT_PARAMS = {"heads": HEADS, "directions": DIRECTIONS}


def fail(message: str) -> typing.NoReturn:
    """One red line on stderr, exit status 2."""
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)


def option_label(name: str) -> str:
    """A parameter's name as its option: ``n_docs`` → ``--n-docs``."""
    return "--" + name.replace("_", "-")


def _metavar(p: Param) -> str:
    one = "[" + "|".join(p.kind) + "]" if isinstance(p.kind, tuple) else {int: "INT", float: "FLOAT", str: "TEXT", bool: "BOOL", Path: "PATH"}[p.kind]
    return f"{one},..." if p.many else one


def option(p: Param, default=None, *, help: str | None = None) -> inspect.Parameter:
    """The typer option of ``p``: read as text (parsed later by :meth:`Param.parse`), its default
    written as the command line writes it."""
    text = p.text(default) if default is not None else p.text() if p.default is not None else None
    opt = typer.Option(p.option, help=help or p.help, metavar=_metavar(p), show_default=text is not None)
    return inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[Optional[str], opt], default=text)


def read(params: typing.Iterable[Param], given: dict) -> dict:
    """The option texts ``given`` as values, each parsed by its parameter (absent ones None)."""
    return {p.name: None if given.get(p.name) is None else p.parse(given[p.name]) for p in params}


def model_kw(values: dict) -> dict:
    """The keywords of :func:`~lens_focus.model.load_model` from the model options' values."""
    return {k: values[k] for k in ("device", "dtype", "attention", "device_map", "max_memory")}


def checked_directions(directions: FocusDirections, path: Path, model) -> FocusDirections:
    """Directions read from ``path`` checked against the model; a transfer from another model of
    the same shape is said once, on a line of its own (and applied)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TransferWarning)
        check_directions(directions, model, source=str(path))
    for w in dict.fromkeys(str(w.message) for w in caught):
        typer.echo(f"note   {w}")
    return directions


def guarded(fn: Callable) -> Callable:
    """``fn`` with bad input ending in :func:`fail` (one line, exit 2) and every other error left to
    travel, with its traceback, as a bug."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as e:
            fail(str(e))
        except FileNotFoundError as e:
            fail(f"{e.filename}: no such file" if e.filename else str(e))

    return run


def experiment_command(app: typer.Typer, experiment: Experiment) -> None:
    """Register ``lens-focus NAME`` for ``experiment`` on ``app`` (see the module docstring)."""
    params = experiment.all_params()
    own_inputs = [INPUT_PARAMS[name] for name in experiment.inputs]
    out_help = ("file to write" if experiment.output == "file" else "folder to write the results into") + (
        " when the run ends (an interrupted run starts afresh; lens-focus reproduce keeps each finished cell and resumes)")
    signature = [option(p) for p in MODEL_OPTIONS]
    signature += [option(p, experiment.command_defaults.get(p.name)) for p in params]
    signature += [option(p) for p in own_inputs]
    signature.append(inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[Optional[str], typer.Option("--out", help=out_help)],
                                       default=experiment.default_out))  # fmt: skip
    if experiment.split:
        signature.append(option(SHARD))

    @guarded
    def body(**given):
        values = read(MODEL_OPTIONS, given)
        args = experiment.checked(read(params, given), option_label)
        inputs = read(own_inputs, given)
        for name, path in inputs.items():
            if path is None and name not in experiment.optional_inputs:
                raise ParamError(f"{option_label(name)}: a value is needed ({INPUT_PARAMS[name].help})")
        part = current_part(given.get("shard"))
        examples = None
        if experiment.given_questions:  # the data are read before the model loads, so bad data stop first
            examples = load_questions(args)
        profile = profile_of_checkpoint(values["model"])
        if experiment.questions is not None and profile.toy_vocabulary and args["data"] != "toy":
            raise ParamError(f"--data: the model's vocabulary is the toy task's words alone, which cannot spell {args['data']}; use --data toy")
        args = experiment.prepared(args, profile, option_label)
        heads = load_heads(inputs["heads"]) if inputs.get("heads") is not None else None  # files checked before the model loads,
        directions = FocusDirections.load(inputs["directions"]) if inputs.get("directions") is not None else None  # against it after
        out = Path(given["out"])
        writes = part.main or part.launcher == "shard"  # a torchrun rank other than 0 hands its share to rank 0
        with written(out, "file" if experiment.output == "file" and part.launcher != "shard" else "folder", log=typer.echo) if writes else nullcontext(out) as into:
            log = (lambda line: typer.echo(line.replace(str(into), str(out)))) if writes else typer.echo
            model = load_model(values["model"], **model_kw(values))
            log(f"model  {model_info(model)}; {attention_of(model)} attention")
            if examples is not None:
                log(f"data   {args['data']}: {len(examples)} prompts from {len({e.question_id for e in examples})} questions ({args['split']} split)")
            ctx = Context(model=model, args=args, out=Path(into), examples=examples, part=part, log=log,
                          inputs={k: str(v) for k, v in inputs.items() if v is not None})  # fmt: skip
            if heads is not None:
                info = model_info(model)
                ctx.heads = load_heads(inputs["heads"], n_layers=info.n_layers, n_heads=info.n_heads)
            if directions is not None:
                ctx.directions = checked_directions(directions, inputs["directions"], model)
            run_experiment(experiment, ctx)

    body.__signature__ = inspect.Signature(signature)
    body.__annotations__ = {p.name: p.annotation for p in signature}
    body.__doc__ = experiment.title + (" Splits its questions across torchrun's ranks, or takes one part of them with --shard." if experiment.split else "")
    del body.__wrapped__  # typer reads the signature above
    app.command(experiment.name)(body)
