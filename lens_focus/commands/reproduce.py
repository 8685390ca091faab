"""Every figure and table of the paper from one call: :func:`reproduce` runs the steps of every
registered experiment (:mod:`.experiments`) in order into one folder and writes ``index.md``
beside them.

The plan. A :class:`Plan` holds the values every step shares (:data:`SHARED`: the data, the seed,
the row convention, the answers' length and batch) and, per step, the values of its experiment's
other parameters. Its defaults are each step's declared sizes (:class:`~.declare.Sizes`) for the
kind of run (a real model or a toy-vocabulary one, full or quick); a plan file changes any of them
(``{"seed": 1, "compensation": {"taus": [0.1, 0.3]}}``), each value checked by its parameter
before anything runs. ``plan.json`` records the whole plan of a run.

Resuming. Each step writes into its own sub-folder and, when it has finished, ``done.json`` with
the parameters it ran under (the model, its prompt format for the steps that run it, the step's
arguments, a data file by its name and contents, and the stamps of the steps it read from). The
prompt format is a hash of a fixed prompt as the model's tokenizer renders it
(:func:`lens_focus.labels.format_stamp`): a changed chat template or rendering marks the steps
changed; records made before steps recorded it are taken as made under the format of now. A
step whose ``done.json`` matches is not run again; one that changed is redone, and so is every
step after it that reads its files (the log names the fields that changed, and the earlier folder
is moved to ``OUT/.previous/STEP``, not deleted). Inside the long steps, every finished cell (a
compensation or sweep setting, a Table 3 strength, a task under a setting) is kept in
``cells.jsonl`` as it completes, so an interrupted step resumes at the cell where it stopped;
``done.json`` gives the last run's seconds and, under ``cells``, how many cells it found done and
what every cell's computing took over all runs. The model is loaded only when some step has work
to do.

Under ``torchrun`` (``torchrun --nproc-per-node N -m lens_focus reproduce ...``) the steps that
answer questions split them across the ranks and rank 0 writes their files; the other steps run
on rank 0 while the rest wait. Each rank keeps its own cell cache (``cells.IofN.jsonl``), so a
split run resumes with the same number of ranks.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd
from tqdm.auto import tqdm

from lens_focus.analyses.index import Folders, IndexSection, write_index

from ..cache import RowCache, cell_files, cell_seconds, kept_files
from ..defaults import BATCH_SIZE, DATA, DISTRACTORS, MAX_NEW_TOKENS, N_DOCS, ROWS, SEED, STOP, TASK
from ..directions import FocusDirections
from ..errors import InputError
from ..fast import attention_of
from ..heads import load_heads
from ..labels import format_stamp
from ..model import load_model, locate_model, model_info
from ..outputs import check_out, lock
from ..params import Param, ParamError
from ..parts import Part, barrier, broadcast, current_part
from ..plots import plotlyjs_for
from ..profile import Profile, profile_of, profile_of_checkpoint
from ..provenance import versions
from .declare import BUILT_IN, Context, Experiment, Log, Sizes, Step, load_questions, run_experiment
from .declare import steps as registered
from . import experiments  # noqa: F401  (registers every experiment)

DONE, PARAMS, CELLS, PLAN = "done.json", "params.json", "cells.jsonl", "plan.json"
SHARED: tuple[Param, ...] = (DATA, TASK, N_DOCS, DISTRACTORS, SEED, ROWS, MAX_NEW_TOKENS, STOP, BATCH_SIZE)
"""Plan values every step that has the parameter takes (a step's own values may change them for it)."""
SHARED_SIZES = Sizes(full={"data": "facts", "max_new_tokens": 8, "batch_size": 8}, toy={"data": "toy", "max_new_tokens": 4, "batch_size": 32})
INPUTS = {"heads": ("heads", "heads.json"), "directions": ("directions", "directions.safetensors")}
"""The step that writes each input file of an experiment, and the file's name in its folder."""
KINDS = ("full", "quick", "toy", "toy_quick")


def kind_of(profile: Profile, quick: bool) -> str:
    """The sizes a model of ``profile`` gets: a toy-vocabulary model's or a real model's, full or quick."""
    if profile.toy_vocabulary:
        return "toy_quick" if quick else "toy"
    return "quick" if quick else "full"


def _shared_names() -> set[str]:
    return {p.name for p in SHARED}


def planned(experiment: Experiment, step: Step) -> tuple[Param, ...]:
    """The parameters of ``step`` that its section of the plan holds: its experiment's, but for
    the shared ones, the question split (the step's own) and what the step fixes."""
    fixed = step.fixed if isinstance(step.fixed, dict) else {}
    return tuple(p for p in experiment.all_params() if p.name not in _shared_names() and p.name != "split" and p.name not in fixed)


@dataclass(frozen=True)
class Plan:
    """How large every step is: ``shared`` values (:data:`SHARED`) and each step's own
    (``steps[name]``: its values, and any shared value it changes for itself)."""

    shared: dict
    steps: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        by_name = {p.name: p for p in SHARED}
        out = {k: by_name[k].to_json(v) for k, v in self.shared.items()}
        for (experiment, step) in registered():
            if step.name in self.steps:
                params = {p.name: p for p in (*experiment.all_params(), *SHARED)}
                out[step.name] = {k: params[k].to_json(v) for k, v in self.steps[step.name].items()}
        return json.loads(json.dumps(out))

    @property
    def data(self) -> str:
        return self.shared["data"]

    def args(self, experiment: Experiment, step: Step) -> dict:
        """The arguments ``step`` runs with: the shared values its experiment takes, its own,
        its question split, and what it fixes."""
        names = {p.name for p in experiment.all_params()}
        own = self.steps.get(step.plan_of or step.name, {})
        args = {**{k: v for k, v in self.shared.items() if k in names}, **{k: v for k, v in own.items() if k in names}}
        if experiment.questions is not None:
            args["split"] = step.split
        fixed = step.fixed(args) if callable(step.fixed) else step.fixed
        return experiment.with_variants({**args, **fixed})


def plan_for(profile: Profile, *, quick: bool = False, changes: dict | None = None, source: str = "plan") -> Plan:
    """The plan for a model of ``profile``: each step's sizes for its kind (:func:`kind_of`), with
    ``changes`` (a plan file's fields: shared values by name, a step's as ``{"step": {...}}``),
    every value checked by its parameter (``source`` names where they came from in errors)."""
    kind = kind_of(profile, quick)
    changes = dict(changes or {})
    by_step = {s.name: (e, s) for e, s in registered()}
    shared_params = {p.name: p for p in SHARED}
    unknown = sorted(k for k in changes if k not in shared_params and k not in by_step)  # a shared field before a step of its name ("rows")
    if unknown:
        raise ParamError(f"{source}: unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; a plan holds the shared fields "
                         f"{', '.join(shared_params)} and one object per step: {', '.join(by_step)}")  # fmt: skip
    shared = {p.name: p.default for p in SHARED} | SHARED_SIZES.of(kind)
    shared |= {k: shared_params[k].check(v, f"{source}: field {k!r}") for k, v in changes.items() if k in shared_params}
    plan_steps: dict[str, dict] = {}
    for experiment, step in registered():
        if step.plan_of:
            if step.name in changes and step.name not in shared_params:
                raise ParamError(f"{source}: field {step.name!r}: step {step.name} takes the values of step {step.plan_of}; change those")
            continue
        own = {p.name: p for p in planned(experiment, step)}
        takes = own | {p.name: p for p in experiment.all_params() if p.name in shared_params}
        values = {name: p.default for name, p in own.items()} | step.sizes.of(kind)
        given = changes.get(step.name, {})
        if not isinstance(given, dict):
            raise ParamError(f"{source}: field {step.name!r} should be an object of the step's fields, got {type(given).__name__}")
        for name, value in given.items():
            if name not in takes:
                raise ParamError(f"{source}: field '{step.name}.{name}' is not a field of step {step.name}; its fields are {', '.join(takes)}")
            values[name] = takes[name].check(value, f"{source}: field '{step.name}.{name}'")
        plan_steps[step.name] = {name: takes[name].check(v, f"the plan of {kind}: field '{step.name}.{name}'") for name, v in values.items()}
    plan = Plan(shared, plan_steps)
    for experiment, step in registered():  # the values of each step together, and against the model, before any work
        args, label = plan.args(experiment, step), (lambda n, step=step: f"{source}: field '{step.name}.{n}'")
        experiment.check_together(args, label)
        experiment.prepared(args, profile, label)
    return plan


def _file_fields() -> dict[str, set[str]]:
    """Per step, its plan fields that name files (and the shared ``data``, under the key ``""``)."""
    out = {"": {"data"}}
    for experiment, step in registered():
        out[step.name] = {p.name for p in experiment.all_params() if p.kind is Path or p.name == "data"}
    return out


def _moved(fields: dict, move) -> dict:
    """``fields`` (a plan file's) with every file path passed through ``move`` (a built-in data name left as it is)."""
    files = _file_fields()

    def one(value):
        if value is None or (isinstance(value, str) and value in BUILT_IN):
            return value
        return [one(v) for v in value] if isinstance(value, list) else move(str(value))

    out = {}
    for key, value in fields.items():
        if isinstance(value, dict):
            out[key] = {k: one(v) if k in files.get(key, ()) else v for k, v in value.items()}
        else:
            out[key] = one(value) if key in files[""] else value
    return out


def with_files(changes: dict, files: dict[str, str]) -> dict:
    """``changes`` (plan fields) with each file of ``files`` (``{"nq": path, "kv": path}``) given to
    every step that reads a file of that name, as one command line gives one NQ file to them all."""
    out = dict(changes)
    planned_elsewhere = {step.name for _, step in registered() if step.plan_of}
    for step, fields in _file_fields().items():
        if (names := fields & files.keys()) and step and step not in planned_elsewhere:
            out[step] = {**out.get(step, {}), **{name: files[name] for name in names}}
    return out


def check_files(plan: Plan, source: str) -> None:
    """An :class:`InputError` naming the field of ``plan`` (read from ``source``) that names a data
    file which is not there (a committed run's ``plan.json`` names its files where they lay when it
    ran), and the option that gives its path, before anything runs."""
    fields = _file_fields()
    named = [("data", plan.shared.get("data"))]
    named += [(f"{step}.{name}", value) for step, values in plan.steps.items() for name, value in values.items() if name in fields.get(step, ())]
    for field_name, value in named:
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is None or str(v) in BUILT_IN or Path(v).is_file():
                continue
            name = field_name.rpartition(".")[2]
            hint = {"nq": "give the file with --nq FILE (every step that reads an NQ file then reads it)",
                    "kv": "give the file with --kv FILE (every step that reads a key-value file then reads it)",
                    "data": "give the file with --data FILE"}.get(name, "change the field")  # fmt: skip
            raise InputError(f"{source}: field {field_name!r} names {v}, which is not there; {hint}")


def read_plan_file(path: Path) -> dict:
    """A plan file's fields, its file paths taken relative to the plan file's folder (as
    :func:`reproduce` writes them into ``plan.json``); an error naming the file when it is not a
    JSON object."""
    try:
        fields = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such plan file") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not JSON ({e.msg}, line {e.lineno} column {e.colno})") from None
    if not isinstance(fields, dict):
        raise InputError(f"{path}: a plan is a JSON object of fields, got {type(fields).__name__}")
    for key in ("model", "quick", "dtype"):  # what a run's own plan.json records beside the plan
        fields.pop(key, None)
    base = Path(path).parent
    return _moved(fields, lambda v: str(Path(os.path.normpath(base / v))) if not Path(v).is_absolute() else v)


def plan_record(plan: Plan, out: Path) -> dict:
    """``plan`` as ``out/plan.json`` records it: file paths relative to ``out``, so that a run's
    plan names no folder of the machine it ran on."""
    return _moved(plan.to_dict(), lambda v: os.path.relpath(Path(v).resolve(), out.resolve()))


def _stamp(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def _file_stamp(value):
    """A data file as a step's parameters record it: its name and the start of its SHA-256 (a step
    depends on the file's contents, not on where it lies)."""
    path = Path(value)
    if not path.is_file():
        raise InputError(f"data file not found: {path}")
    return {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:16]}


def _stamped(param: Param, value):
    if value is None:
        return None
    if param.kind is Path:
        return [_file_stamp(v) for v in value] if param.many else _file_stamp(value)
    if param.name == "data" and str(value) not in BUILT_IN:
        return _file_stamp(value)
    return param.to_json(value)


def step_params(
    experiment: Experiment, step: Step, model_name: str, plan: Plan, stamps: dict[str, str], dtype: str = "float32", prompt: str | None = None
) -> dict:
    """What a step's results depend on: the model (its dtype, when not float32, and its prompt
    format ``prompt``, :func:`lens_focus.labels.format_stamp`, for the steps that run it), its
    arguments (data files by their contents), its inputs' stamps."""
    args = plan.args(experiment, step)
    params = {p.name: p for p in experiment.all_params()}
    precision = {"dtype": dtype} if dtype != "float32" and experiment.uses_model else {}
    fmt = {"prompt": prompt} if prompt and experiment.uses_model else {}
    values = {k: _stamped(params[k], v) for k, v in sorted(args.items()) if k in params}
    return {"step": step.name, "model": model_name, **precision, **fmt, "args": values, "inputs": {n: stamps[n] for n in step.needs}}


def _chain(every, plan: Plan, model_name: str, dtype: str, prompt: str | None):
    """Each ``(experiment, step)`` of ``every`` with its parameters (:func:`step_params`, each
    step's inputs named by their stamps) and the same without the prompt format (how records
    made before steps recorded it read)."""
    stamps: dict[str, str] = {}
    unstamped_stamps: dict[str, str] = {}
    for experiment, step in every:
        params = step_params(experiment, step, model_name, plan, stamps, dtype, prompt=prompt)
        unstamped = step_params(experiment, step, model_name, plan, unstamped_stamps, dtype)
        stamps[step.name], unstamped_stamps[step.name] = _stamp(params), _stamp(unstamped)
        yield experiment, step, params, unstamped


def step_states(model_name: str, out: str | Path, *, plan: Plan, steps: Sequence[str] | None = None, dtype: str = "float32") -> pd.DataFrame:
    """What :func:`reproduce` would find in ``out``, one row per step: ``state`` (``done``;
    ``unfinished``, its cells kept; ``changed``, made under other parameters, named in ``detail``;
    ``grid changed``, its cells kept; ``not run``), ``cells`` (finished cells), ``of`` (the cells
    of its grid, as its last run declared them: a step of several loops, as the sweep and its
    Table 3, declares each as it starts; unknown for a run from before cells were declared),
    ``seconds`` (a done step's last run; for an unfinished one what its timed cells took),
    ``left`` (an unfinished step's cells still to compute times the mean time of its timed cells:
    an estimate of the seconds to go), and ``runs`` (whether a run with ``steps`` would compute
    it). Reads the folder only: no model is loaded (the prompt format needs the tokenizer alone)
    and a run in progress there is not disturbed."""
    out, wanted = Path(out), wanted_steps(steps)
    prompt = Run(model_name, out, plan, load_kw={}).prompt
    rows = []
    for experiment, step, params, unstamped in _chain(registered(), plan, model_name, dtype, prompt):
        folder = out / step.name
        done, earlier = _read(folder / DONE), _read(folder / PARAMS)
        cells = cell_seconds(cell_files(folder))
        detail, seconds, left = "", None, None
        if done is not None and done.get("params") in (params, unstamped):
            state, seconds = "done", done.get("seconds")
        elif earlier is None or earlier in (params, unstamped):
            state = "unfinished" if cells.n or earlier is not None else "not run"
            seconds = cells.seconds if cells.timed else None
            if cells.left is not None and cells.timed:
                left = round(cells.left * cells.seconds / cells.timed)
        elif grid := grid_changes(experiment, earlier, params):
            state, detail = "grid changed", "; ".join(grid) + " (the cells already computed are kept)"
        else:
            state, detail = "changed", "; ".join(_differences(earlier, params)[:4])
        planned = cells.planned if state in ("done", "unfinished") else None  # a changed grid's declaration is the earlier one
        rows.append({"step": step.name, "state": state, "cells": cells.n, "of": planned, "seconds": seconds, "left": left,
                     "runs": step.name in wanted and state != "done", "detail": detail})  # fmt: skip
    return pd.DataFrame(rows, columns=["step", "state", "cells", "of", "seconds", "left", "runs", "detail"]).astype({"of": "Int64", "left": "Int64"})


def _adopt(folder: Path, params: dict, unstamped: dict) -> bool:
    """Give a step's records made before steps recorded the prompt format (``unstamped``: the
    same parameters without it, down the chain of inputs) the format of now: they are taken as
    made under it. Returns whether a record was rewritten."""
    if params == unstamped:
        return False
    rewrote = False
    if _read(folder / PARAMS) == unstamped:
        (folder / PARAMS).write_text(json.dumps(params, indent=2) + "\n")
        rewrote = True
    done = _read(folder / DONE)
    if done is not None and done.get("params") == unstamped:
        (folder / DONE).write_text(json.dumps({**done, "params": params}, indent=2) + "\n")
        rewrote = True
    return rewrote


PREVIOUS = ".previous"
"""Where a step redone under other parameters leaves its earlier folder (one per step, the latest)."""


def _set_aside(folder: Path) -> Path:
    """Move a step's folder to ``OUT/.previous/STEP`` (replacing an older one there): the finished
    cells of a long step are hours of work, never deleted because a plan changed."""
    kept = folder.parent / PREVIOUS / folder.name
    if kept.exists():
        shutil.rmtree(kept)
    kept.parent.mkdir(exist_ok=True)
    folder.rename(kept)
    return kept


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """The dotted names of the fields where two parameter records differ, each as ``name: a → b``."""
    out = []
    for key in sorted(set(a) | set(b), key=str):
        x, y, name = a.get(key), b.get(key), f"{prefix}{key}"
        if isinstance(x, dict) and isinstance(y, dict):
            out += _differences(x, y, name + ".")
        elif x != y:
            out.append(f"{name}: {json.dumps(x)} → {json.dumps(y)}")
    return out


def grid_changes(experiment: Experiment, earlier: dict | None, params: dict) -> list[str]:
    """The arguments in which a step's ``params`` differ from its ``earlier`` ones when every one of
    them is keyed (:attr:`Param.keyed`: a grid whose cells' keys name their values) and nothing else
    differs (model, dtype, inputs, the other arguments); else none. The cells computed under the
    earlier parameters then hold under the new ones."""
    if not earlier:
        return []
    keyed = {p.name for p in experiment.all_params() if p.keyed}
    a, b = earlier.get("args", {}), params.get("args", {})
    changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    same_rest = {k: v for k, v in earlier.items() if k != "args"} == {k: v for k, v in params.items() if k != "args"}
    return changed if changed and same_rest and set(changed) <= keyed else []


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def wanted_steps(steps: Sequence[str] | None, redo: Sequence[str] = ()) -> set[str]:
    """The steps to run for ``steps`` and ``redo`` (all when neither names any): those named and
    every step they read from; an unknown name is an error listing the steps."""
    every = registered()
    known = [s.name for _, s in every]
    named = [*(steps or ()), *redo]
    wanted = set(named) if named else set(known)
    if wanted - set(known):
        raise InputError(f"steps: unknown steps {', '.join(sorted(wanted - set(known)))}; the steps are {', '.join(known)}")
    for _, s in reversed(every):  # what a wanted step reads is wanted too
        if s.name in wanted:
            wanted |= set(s.needs)
    return wanted


class Run:
    """What one :func:`reproduce` call shares between steps: the plan, the folder, the model
    (loaded on first use), and a log that prints above the progress bar."""

    def __init__(self, model_name: str, out: Path, plan: Plan, *, load_kw: dict, log: Log | None = None, part: Part = Part()):
        self.model_name, self.out, self.plan, self.load_kw, self.part = model_name, out, plan, load_kw, part
        self.log = (log or tqdm.write) if part.main else _quiet
        self._model = None
        self._prompt: str | None = None

    @property
    def prompt(self) -> str:
        """The model's prompt format (:func:`lens_focus.labels.format_stamp`), from its tokenizer alone."""
        if self._prompt is None:
            from transformers import AutoTokenizer

            tokenizer = self._model.tokenizer if self._model is not None else AutoTokenizer.from_pretrained(locate_model(self.model_name))
            self._prompt = format_stamp(tokenizer)
        return self._prompt

    @property
    def model(self):
        if self._model is None:
            self._model = load_model(self.model_name, **self.load_kw)
            self.log(f"model  {model_info(self._model)}; {attention_of(self._model)} attention")
        return self._model

    def cache(self, step: str) -> RowCache:
        """The step's cell cache; a part of a split run keeps its own (its cells hold its questions only)."""
        own = CELLS if self.part.count == 1 else f"cells.{self.part.index}of{self.part.count}.jsonl"
        return RowCache(self.out / step / own)

    def context(self, experiment: Experiment, step: Step) -> Context:
        args = self.plan.args(experiment, step)
        model = self.model if experiment.uses_model else None
        if experiment.prepare is not None:
            args = experiment.prepared(args, profile_of(model))
        folder = self.out / step.name
        ctx = Context(model=model, args=args, out=folder / step.output if step.output else folder, part=self.part, cache=self.cache(step.name),
                      log=self.log, folders={"run": self.out, **{n: self.out / n for n in step.needs}})  # fmt: skip
        if experiment.given_questions:
            ctx.examples = load_questions(args)
        if "heads" in experiment.inputs:
            info = model_info(model)
            ctx.heads = load_heads(self.out / "/".join(INPUTS["heads"]), n_layers=info.n_layers, n_heads=info.n_heads)
        if "directions" in experiment.inputs:
            ctx.directions = FocusDirections.load(self.out / "/".join(INPUTS["directions"]), model=model)
        return ctx


def _quiet(_: str) -> None:
    pass


def reproduce(
    model_name: str,
    out: str | Path,
    *,
    plan: Plan | None = None,
    quick: bool = False,
    steps: Sequence[str] | None = None,
    redo: Sequence[str] = (),
    load_kw: dict | None = None,
    log: Log | None = None,
    progress: bool = True,
) -> dict[str, str]:
    """Run every step not yet done (or only ``steps``, with what they need) into ``out``
    and write ``out/index.md``. The steps ``redo`` run even when done (with what they need, and
    ``steps``, if named, alone otherwise), under the same parameters: their kept cells are read back,
    not computed, so a step with cells only rewrites its tables and figures (a step without cells is
    computed again). Returns each step's status: ``done`` (already there), ``ran``, or ``skipped``
    (not asked for). Deterministic under the plan's seed. Under torchrun the steps that answer
    questions split them across the ranks (:mod:`lens_focus.parts`); the others run on rank 0 while
    the rest wait. ``load_kw``: the keywords of :func:`~lens_focus.model.load_model`."""
    out = Path(out)
    part = current_part()
    plan = plan or plan_for(profile_of_checkpoint(model_name), quick=quick)
    load_kw = {"device": None, "dtype": "float32", "attention": "auto", **(load_kw or {})}
    dtype = load_kw["dtype"]
    every = registered()
    wanted = wanted_steps(steps, redo)
    run = Run(model_name, out, plan, load_kw=load_kw, log=log, part=part)
    with lock(check_out(out)) if part.main else nullcontext():  # one run at a time into a folder
        return _run_steps(run, plan, every, wanted, set(redo), model_name=model_name, quick=quick, dtype=dtype, progress=progress)


def _run_steps(run: Run, plan: Plan, every: list, wanted: set[str], redo: set[str], *, model_name: str, quick: bool, dtype: str,
               progress: bool) -> dict[str, str]:  # fmt: skip
    """The steps of :func:`reproduce`, in order, then ``index.md`` (under the run's lock)."""
    out, part = run.out, run.part
    if part.main:
        out.mkdir(parents=True, exist_ok=True)
        plotlyjs_for(out)  # one plotly.js for every step's pages (or the one above that they share)
        recorded = {"model": model_name, "quick": quick, **({"dtype": dtype} if dtype != "float32" else {}), **plan_record(plan, out)}
        (out / PLAN).write_text(json.dumps(recorded, indent=2) + "\n")
    status: dict[str, str] = {}
    bar = tqdm(every, desc="reproduce", unit="step", disable=not progress or not part.main)
    for experiment, step, params, unstamped in _chain(bar, plan, model_name, dtype, run.prompt):
        folder = out / step.name
        if part.main and _adopt(folder, params, unstamped):
            run.log(f"   {step.name}: recorded before the prompt format was; taken as made under this one ({run.prompt})")
        done = _read(folder / DONE)
        # rank 0 decides for every rank of torchrun (they would read the folder at different moments)
        same = done is not None and done.get("params") == params and step.name not in redo
        status[step.name] = broadcast(part, "skipped" if step.name not in wanted else "done" if same else "ran")
        if status[step.name] != "ran":
            continue
        bar.set_postfix_str(step.name)
        run.log(f"── {step.name}: {step.title}" + (" (rank 0 alone; the others wait)" if part.count > 1 and not experiment.split else ""))
        if part.main:
            earlier = _read(folder / PARAMS)
            if earlier != params and folder.exists():  # made under other parameters: its cells do not apply, unless only a grid changed
                kept = _set_aside(folder)
                changed = ", ".join(_differences(earlier or {}, params)[:4]) or "unrecorded"
                run.log(f"   {step.name}: parameters changed ({changed}); the earlier results are kept in {kept}")
                if grid := grid_changes(experiment, earlier, params):
                    folder.mkdir(parents=True)
                    for cells in kept_files(kept):
                        shutil.copyfile(cells, folder / cells.name)
                    run.log(f"   {step.name}: only its grid changed ({', '.join(grid)}): the cells already computed are kept")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / DONE).unlink(missing_ok=True)  # a step redone: unfinished until it ends
            (folder / PARAMS).write_text(json.dumps(params, indent=2) + "\n")
        barrier(part)
        start, found = time.time(), 0
        if experiment.split or part.main:
            ctx = run.context(experiment, step)
            found = len(ctx.cache)  # cells done by an earlier run
            run_experiment(experiment, ctx)
        seconds = round(time.time() - start, 1)
        if part.main:
            record = {"params": params, "seconds": seconds}
            if cells := cell_files(folder):  # a resumed step: what its cells cost over every run
                record["cells"] = {"found": found, **cell_seconds(cells)._asdict()}
            (folder / DONE).write_text(json.dumps(record, indent=2) + "\n")
        barrier(part)  # the next step reads this one's files
        run.log(f"   {step.name} done in {seconds} s")
    if not part.main:
        return status
    run.log(f"wrote  {run_index(out, model_name, plan)}")
    return status


def run_index(out: str | Path, model_name: str, plan: Plan) -> Path:
    """Write ``OUT/index.md`` from what the step folders hold now (a step still running shows as
    unfinished, with its cells); what :func:`reproduce` does last, and ``--index`` alone."""
    out, every = Path(out), registered()
    folders = {s.name: out / s.name for _, s in every}
    sections = [IndexSection(step.section_title, Folders(out, out / step.name, folders), step.section, step.optional_section)
                for _, step in every if step.section_title]  # fmt: skip
    return write_index(out, sections, model_name=model_name, data=plan.data, versions=versions())
