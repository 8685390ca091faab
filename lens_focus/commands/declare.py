"""An experiment declared once; its command, its reproduce steps, its parts and its index section
derived from the declaration.

An :class:`Experiment` names its parameters (:class:`~lens_focus.params.Param` s of
:mod:`lens_focus.defaults`), the prompts it reads, the files it takes (ranked heads, focus
directions), its work on this process's share of the questions, how the shares join, and what it
writes. Each of its :class:`Step` s is one step of ``lens-focus reproduce``: its folder, the steps
whose files it reads, its sizes for each plan, and its section of ``index.md``.

- the command ``lens-focus NAME`` (:mod:`.cli`) takes an option per parameter, checks every
  value before the model loads, and runs :func:`run_experiment`;
- a reproduce step (:mod:`.reproduce`) takes its arguments from the plan, checked the same way;
- ``--shard I/N`` and ``lens-focus merge`` (:func:`merge_parts`) split and join its work;
- ``index.md`` gathers the steps' sections.

>>> register(Experiment("echo", "says what it got", params=(SEED,), work=..., write=...))
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from lens_focus.analyses.index import Section

from ..cache import RowCache
from ..defaults import DATA, DISTRACTORS, GOLD_POSITIONS, LIMIT, N_DOCS, SEED, SPLIT, TASK, Split, Variant
from ..errors import InputError
from ..labels import Example
from ..model import model_info
from ..params import Param, ParamError, checked
from ..parts import Part, combine, read_parts
from ..profile import profile_of
from ..provenance import versions
from ..sources import load_examples

Log = Callable[[str], None]
Label = Callable[[str], str]
"""How an entry names a parameter in messages: ``--n-docs`` (the command line), a plan file's field, the name itself (Python)."""
QUESTIONS: tuple[Param, ...] = (DATA, TASK, N_DOCS, GOLD_POSITIONS, SPLIT, LIMIT, SEED, DISTRACTORS)
"""The parameters of a selection of multi-document questions (:class:`~lens_focus.data.base.Selection`)."""
BUILT_IN = ("toy", "facts")
"""Question data that is built in rather than read from a file."""


def concat(parts: Sequence[list]) -> list:
    """Every part's items, in part order: the examples in the order one process has them."""
    return [item for p in parts for item in p]


@dataclass
class Context:
    """What an experiment's work reads: the model, every argument by name, and what the entry
    prepared (the questions of this process's share, ranked heads, directions)."""

    model: Any
    args: dict
    out: Path
    examples: list[Example] | None = None
    heads: list | None = None
    directions: Any = None
    part: Part = Part()
    cache: RowCache = field(default_factory=RowCache)
    log: Log = print
    inputs: dict[str, str] = field(default_factory=dict)
    """The input files it was given (``heads``, ``directions``), by name, as the record keeps them."""
    folders: dict[str, Path] = field(default_factory=dict)
    """Under reproduce: the folders of the steps this one reads (and ``"run"``, the run's own)."""
    record: dict = field(default_factory=dict)
    """The run's record (:func:`record_of`): the model and every argument; the work may add what
    its files must say (the directions' site), as ``summary.json`` and a part's ``part.json`` keep it."""
    question_ids: list[str] = field(default_factory=list)
    """The questions of this process's share (a part file records them; merge refuses two parts that share one)."""
    split_record: dict | None = None
    """How the work was split across parts, as ``summary.json`` records it (:meth:`~lens_focus.parts.Part.record`)."""

    def answer_kw(self) -> dict:
        """The keywords of :func:`~lens_focus.answers.answer_examples` among the arguments."""
        return {k: self.args[k] for k in ("max_new_tokens", "stop", "batch_size") if k in self.args}

    def questions(self, **changes) -> list[Example]:
        """The questions the arguments select, with ``changes`` (``split=``, ``seed=``, ``limit=``, ``variants=``)."""
        return load_questions({**self.args, **changes})


@dataclass(frozen=True)
class Sizes:
    """A step's plan values for each kind of run: ``full`` (a real model), ``quick`` (a real model,
    minutes), ``toy`` and ``toy_quick`` (a toy-vocabulary model); each kind changes the one it
    builds on (``quick`` and ``toy`` change ``full``, ``toy_quick`` changes ``toy``)."""

    full: dict = field(default_factory=dict)
    quick: dict = field(default_factory=dict)
    toy: dict = field(default_factory=dict)
    toy_quick: dict = field(default_factory=dict)

    def of(self, kind: str) -> dict:
        if kind == "toy_quick":
            return {**self.full, **self.toy, **self.toy_quick}
        return {**self.full, **(getattr(self, kind) if kind != "full" else {})}


@dataclass(frozen=True)
class Step:
    """One step of ``lens-focus reproduce``: the experiment run into the folder ``name`` with its
    arguments from the plan (``sizes``; ``fixed``: arguments the step sets itself), its questions
    from ``split``, after the steps ``needs`` whose files it reads."""

    name: str
    title: str
    needs: tuple[str, ...] = ()
    split: Split = "test"
    sizes: Sizes = Sizes()
    fixed: dict | Callable[[dict], dict] = field(default_factory=dict)
    """Arguments the step sets itself: a dict, or a function of the step's other arguments."""
    plan_of: str | None = None
    """Another step whose plan values this one takes (the same questions, scored another way)."""
    output: str | None = None
    """For an experiment whose output is a file: its name in the step's folder."""
    section: Section | None = None
    section_title: str | None = None
    optional_section: bool = False
    """Left out of the index when the step never ran (runs made before the step existed)."""


@dataclass(frozen=True)
class Experiment:
    """One experiment: see the module docstring. ``params``: every parameter its work reads (the
    question selection's come with ``questions``); ``inputs``: files it takes (``heads``,
    ``directions``: options of its command, earlier steps' files under reproduce); ``work(ctx)``
    returns this process's share of the results, ``join`` puts the shares together (in part order),
    ``write(result, out, record, log)`` writes the files and returns the summary; ``check(args)``
    refuses combinations of values before anything loads."""

    name: str
    title: str
    work: Callable[[Context], Any]
    write: Callable[[Any, Path, dict, Log], Any]
    params: tuple[Param, ...] = ()
    questions: tuple[Variant, ...] | None = None
    """The prompts of each question it reads (the question selection's options), or None."""
    unread: tuple[str, ...] = ()
    """Parameters of the question selection it chooses itself (seeds: each seed's split, limit and seed)."""
    reads_own: bool = False
    """Whether its work reads its questions itself (the seeds, a split per seed; the window step, only
    for a model that has windowed layers)."""
    inputs: tuple[str, ...] = ()
    optional_inputs: tuple[str, ...] = ()
    """Those of ``inputs`` its command may go without (evaluate's baseline needs no directions)."""
    join: Callable[[Sequence[Any]], Any] = concat
    check: Callable[[dict], None] | None = None
    split: bool = True
    """Whether its work splits by question across torchrun's ranks and ``--shard`` jobs."""
    uses_model: bool = True
    command: bool = True
    output: str = "folder"
    """``folder`` (``--out`` is a folder of files) or ``file`` (one file, e.g. directions)."""
    default_out: str | None = None
    steps: tuple[Step, ...] = ()
    command_defaults: dict = field(default_factory=dict)
    """Defaults of its command that differ from the parameters' own (``batch_size=4``)."""
    prepare: Callable[[dict, Any], dict] | None = None
    """``prepare(args, profile)``: the arguments with what depends on the model filled in (default
    lengths, tasks) and checked against it, from its :class:`~lens_focus.profile.Profile` (read
    from the checkpoint's config and tokenizer, before the weights load)."""

    @property
    def given_questions(self) -> bool:
        """Whether its entry reads the questions for it, before the model loads (else its work
        reads them, :meth:`Context.questions`)."""
        return self.questions is not None and not self.reads_own

    def all_params(self) -> tuple[Param, ...]:
        """Its parameters, the question selection's first (when it reads questions; one of its own
        of the same name takes the place of the selection's)."""
        own = {p.name for p in self.params} | set(self.unread)
        return tuple(p for p in (QUESTIONS if self.questions is not None else ()) if p.name not in own) + self.params

    def checked(self, values: dict, label: Label = str) -> dict:
        """``values`` (by parameter name) checked, each by its parameter and then together
        (:meth:`check_together`); ``label(name)`` names a parameter in messages (``--n-docs``,
        ``plan.json: field 'score.n_docs'``)."""
        args = checked(self.all_params(), values, label)
        self.check_together(args, label)
        return self.with_variants(args)

    def with_variants(self, args: dict) -> dict:
        """``args`` with the prompts each question gives (``variants``) where the experiment takes no ``--variants`` of its own."""
        return {**args, "variants": args.get("variants", self.questions)} if self.questions is not None else args

    def check_together(self, args: dict, label: Label = str) -> None:
        """What no single parameter can check: the question selection and the experiment's own ``check``."""
        try:
            if self.questions is not None:
                check_questions(args)
            if self.check is not None:
                self.check(args)
        except InputError as e:
            raise ParamError(relabel(str(e), label)) from None


    def prepared(self, args: dict, profile, label: Label = str) -> dict:
        """``args`` through :attr:`prepare` (as they are without one), its refusals naming the parameter by ``label``."""
        if self.prepare is None:
            return args
        try:
            return self.prepare(args, profile)
        except InputError as e:
            raise ParamError(relabel(str(e), label)) from None


def relabel(message: str, label: Label) -> str:
    """A check's message, which starts with the parameter's name (``n_docs: ...``), with the name as
    ``label`` gives it."""
    name, sep, rest = message.partition(": ")
    return f"{label(name)}: {rest}" if sep and name.isidentifier() else message


REGISTRY: dict[str, Experiment] = {}
"""Every experiment by name, in the order they were registered (reproduce's order of steps)."""


def register(experiment: Experiment) -> Experiment:
    """Add ``experiment`` to :data:`REGISTRY` (its command, its steps, its parts and index sections
    appear wherever those are listed); a name or a step folder used twice is an error."""
    if experiment.name in REGISTRY:
        raise ValueError(f"an experiment named {experiment.name!r} is registered already")
    taken = {s.name for e in REGISTRY.values() for s in e.steps}
    if clash := taken & {s.name for s in experiment.steps}:
        raise ValueError(f"step folders {sorted(clash)} are taken by another experiment")
    REGISTRY[experiment.name] = experiment
    return experiment


def unregister(name: str) -> None:
    """Remove the experiment ``name`` (tests that declare their own)."""
    REGISTRY.pop(name, None)


def steps() -> list[tuple[Experiment, Step]]:
    """Every registered step with its experiment, in the order reproduce runs them."""
    return [(e, s) for e in REGISTRY.values() for s in e.steps]


# ------------------------------------------------------------------------------ questions
def check_questions(args: dict) -> None:
    """The question selection's values together: positions within the documents, ``task`` only
    for a data file, other distractors only for NQ."""
    bad = [p for p in args["gold_positions"] if p > args["n_docs"]]
    if bad:
        raise ParamError(f"gold_positions: {', '.join(map(str, bad))} beyond n_docs = {args['n_docs']} documents")
    if "data" not in args:  # an experiment that chooses its data itself (unread)
        return
    data = str(args["data"])
    if data in BUILT_IN and args.get("task") is not None:
        raise ParamError(f"task: the built-in {data} data is read as itself; task applies to data files")
    if data in BUILT_IN and args.get("distractors", "random") != "random":
        raise ParamError(f"distractors: {args['distractors']} distractors are drawn for NQ files; {data} is built in")


def load_questions(args: dict) -> list[Example]:
    """The questions ``args`` selects (the question selection's values and ``variants``), read or built."""
    return load_examples(args["data"], task=args.get("task"), n_docs=args["n_docs"], gold_positions=args["gold_positions"],
                         split=args["split"], seed=args["seed"], limit=args["limit"], variants=args["variants"],
                         distractors=args["distractors"])  # fmt: skip


# ------------------------------------------------------------------------------ running
def record_of(experiment: Experiment, model, args: dict, inputs: dict | None = None) -> dict:
    """What ``summary.json`` and a part's ``part.json`` record of a run: the model, every argument, the input files."""
    params = {p.name: p.to_json(args[p.name]) for p in experiment.all_params() if p.name in args}
    return {"experiment": experiment.name, "model": model_info(model).to_dict() if model is not None else None, **params, **(inputs or {})}


def write_summary(out: Path, summary: dict) -> dict:
    """``out/summary.json``: ``summary`` and the versions it ran under."""
    summary = {**summary, "versions": versions()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def run_experiment(experiment: Experiment, ctx: Context) -> Any:
    """Do ``ctx.part``'s share of the work and, where the shares come together (a process alone,
    rank 0 of torchrun), write the results; a ``--shard`` job writes its part folder instead
    (None is returned where nothing is written). An experiment that does not split runs whole."""
    start = time.time()
    record = ctx.record = record_of(experiment, ctx.model, ctx.args, ctx.inputs)
    if not experiment.split:
        payload = experiment.work(ctx)
        return experiment.write(payload, Path(ctx.out), {**ctx.record, "start": start}, ctx.log)
    everything = ctx.examples
    if everything is not None:
        ctx.examples = ctx.part.take(everything)
        ctx.split_record = ctx.part.record(everything)
        ctx.question_ids = list(dict.fromkeys(e.question_id for e in ctx.examples))
    payload = experiment.work(ctx)  # an experiment that builds its own prompts splits them and records how (ctx.split_record, ctx.question_ids)
    record = ctx.record  # with what the work added (the directions' site)
    parts = combine(ctx.part, ctx.out, experiment.name, record, payload, split=ctx.split_record, question_ids=ctx.question_ids)
    if parts is None:
        if ctx.part.launcher == "shard":
            ctx.log(f"wrote  part {ctx.part.index} of {ctx.part.count} into {ctx.out}/ (combine the parts with lens-focus merge PART_DIR... --out DIR)")
        return None
    return experiment.write(experiment.join(parts), Path(ctx.out), {**record, "distributed": ctx.split_record, "start": start}, ctx.log)


def run_declared(
    name: str,
    model,
    out: str | Path,
    *,
    examples: Sequence[Example] | None = None,
    heads: Sequence | None = None,
    directions=None,
    part: Part = Part(),
    cache: RowCache | None = None,
    log: Log = print,
    **values,
) -> Any:
    """Run the registered experiment ``name`` from Python as its command does: ``values`` by
    parameter name (the rest at their defaults), checked alike (a :class:`~lens_focus.params.ParamError`
    naming the parameter), into ``out``. ``examples`` replace the questions the values select."""
    experiment = REGISTRY[name]
    defaults = {p.name: p.default for p in experiment.all_params()} | experiment.command_defaults
    args = experiment.prepared(experiment.checked({**defaults, **values}), profile_of(model) if model is not None else None)
    if experiment.given_questions and examples is None:
        examples = load_questions(args)
    ctx = Context(model=model, args=args, out=Path(out), examples=None if examples is None else list(examples), heads=None if heads is None else list(heads),
                  directions=directions, part=part, cache=cache if cache is not None else RowCache(), log=log)  # fmt: skip
    return run_experiment(experiment, ctx)


def merge_parts(folders: Sequence[str | Path], out: str | Path, *, log: Log = print):
    """Combine the part folders of one split run (``--shard I/N``) into the folder one process writes."""
    start = time.time()
    meta, payloads = read_parts(folders)
    experiment = REGISTRY.get(meta["command"])
    if experiment is None or not experiment.split:
        mergeable = ", ".join(e.name for e in REGISTRY.values() if e.split and e.command)
        raise InputError(f"parts of {meta['command']!r}: merge combines {mergeable}")
    log(f"merge  {len(payloads)} parts of {experiment.name}")
    return experiment.write(experiment.join(payloads), Path(out), {**meta["params"], "distributed": meta["split"], "start": start}, log)


def seconds_since(record: dict) -> float:
    return round(time.time() - record["start"], 1)


def summary_of(record: dict) -> dict:
    """A run's record as ``summary.json`` keeps it (without its start time)."""
    return {k: v for k, v in record.items() if k != "start"}
