"""The options the commands share, checked once, when the command line is read.

Three groups recur in every experiment command: the model (:class:`ModelOptions`: ``--model``,
``--device``, ``--attention``), the data (:class:`DataOptions`: ``--data``, ``--task``,
``--n-docs``, ``--gold-positions``, ``--split``, ``--limit``, ``--seed``) and the answers
(:class:`AnswerOptions`: ``--max-new-tokens``, ``--stop``, ``--batch-size``). A command names a
group by a parameter of that type and :func:`command` adds the group's options to it; the command
receives the filled dataclass. Closed sets of values are the library's own ``Literal`` types, so
typer offers and checks exactly those; lists of numbers are parsed and range-checked by
:func:`numbers`. A bad value stops the command before anything loads, naming the option.
"""
from __future__ import annotations

import functools
import inspect
import typing
from dataclasses import dataclass, fields
from typing import Annotated, Callable, Optional

import typer

from ..data.base import Distractors, Selection, Split
from ..defaults import GOLD_POSITIONS, N_DOCS, csv
from ..fast import Attention
from ..generate import StopAt
from ..labels import Example
from ..model import DType
from ..parts import Part, current_part
from ..sources import load_examples


def numbers(kind: type = float, *, low: int | float | None = None, high: int | float | None = None, above: bool = False, all_ok: bool = False):
    """A parser of comma-separated ``kind`` values, each ``>= low`` (``> low`` with ``above``) and
    ``<= high``; ``all`` passes through with ``all_ok`` (head counts)."""

    def parse(text) -> tuple:
        if isinstance(text, tuple):  # a default
            return text
        try:
            values = tuple("all" if all_ok and v.strip() == "all" else kind(v) for v in str(text).split(",") if v.strip())
        except ValueError:
            raise typer.BadParameter(f"expected comma-separated {kind.__name__}s{' or all' if all_ok else ''}, got {text!r}") from None
        nums = [v for v in values if v != "all"]
        if not values or any((low is not None and (v < low or (above and v == low))) or (high is not None and v > high) for v in nums):
            bound = f"{'>' if above else '>='} {low:g}" if high is None else f"within {low:g}..{high:g}"
            raise typer.BadParameter(f"every value must be {bound}, got {text!r}")
        return values

    return parse


def words(text) -> tuple[str, ...]:
    """A parser of comma-separated names."""
    return text if isinstance(text, tuple) else tuple(v.strip() for v in str(text).split(",") if v.strip())


def positive(value: float) -> float:
    if not value > 0:
        raise typer.BadParameter(f"must be > 0, got {value}")
    return value


def listed(name: str, parser: Callable, help: str):
    """An option of comma-separated values, parsed into a tuple by ``parser``; give its default as
    it is written on the command line (``csv(GOLD_POSITIONS)``), and it is parsed the same way."""
    return Annotated[Optional[tuple], typer.Option(name, parser=parser, metavar="A,B,...", help=help)]


@dataclass(frozen=True)
class ModelOptions:
    model: Annotated[str, typer.Option("--model", help="hub name, local save_pretrained directory, .gguf file, or an alias: toy, smollm2, gemma3-270m (see lens-focus models)")] = "toy"
    device: Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available, else cpu)")] = None
    attention: Annotated[Attention, typer.Option("--attention", help="fast (SDPA; scores from post-rotary queries and keys), eager (the bridge's attention), or auto: fast where it applies")] = "auto"
    dtype: Annotated[DType, typer.Option("--dtype", help="precision of the model's weights and activations (scores, patterns and direction training stay float32; README, Precision)")] = "float32"
    device_map: Annotated[Optional[str], typer.Option("--device-map", help="split a model across devices: auto, balanced, balanced_low_0, sequential, or a JSON file of module -> device (not with --device; README, A model larger than one GPU)")] = None
    max_memory: Annotated[Optional[str], typer.Option("--max-memory", help="per-device budgets for --device-map, e.g. 0=70GiB,1=70GiB,cpu=200GiB")] = None

    def load_kw(self) -> dict:
        """The keywords of :func:`lens_focus.load_model` these options set."""
        return {"device": self.device, "dtype": self.dtype, "attention": self.attention, "device_map": self.device_map, "max_memory": self.max_memory}


@dataclass(frozen=True)
class DataOptions:
    data: Annotated[str, typer.Option("--data", help="data file (.jsonl or .jsonl.gz), or a built-in task: facts (English facts about people) or toy")] = ...
    task: Annotated[Optional[typing.Literal["nq", "kv"]], typer.Option("--task", help="nq or kv (default: inferred from the file)")] = None
    n_docs: Annotated[int, typer.Option("--n-docs", min=1, help="documents (or key-value pairs) per long prompt")] = N_DOCS
    gold_positions: listed("--gold-positions", numbers(int, low=1), "1-based positions of the relevant document, each <= --n-docs") = csv(GOLD_POSITIONS)
    split: Annotated[Split, typer.Option("--split", help="test, train or all (a seeded 50/50 split of the questions)")] = "test"
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="number of questions (default: all of the split)")] = None
    seed: Annotated[int, typer.Option("--seed", help="seed of the data: the train/test split, the distractors and their order")] = 0
    distractors: Annotated[Distractors, typer.Option("--distractors", help="NQ oracle file: the other documents are other questions' gold passages without the answer, drawn at random or those BM25 ranks highest against the question (bm25)")] = "random"

    def __post_init__(self):
        try:
            self.selection(())
        except ValueError as e:
            raise typer.BadParameter(f"--gold-positions: {e}") from None

    def selection(self, variants: tuple[str, ...]) -> Selection:
        return Selection(n_docs=self.n_docs, gold_positions=self.gold_positions, split=self.split, seed=self.seed,
                         limit=self.limit, variants=variants, distractors=self.distractors)  # fmt: skip

    def load(self, variants: tuple[str, ...]) -> list[Example]:
        return load_examples(self.data, self.selection(variants), task=self.task)

    def meta(self) -> dict:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}


@dataclass(frozen=True)
class AnswerOptions:
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, help="most tokens generated per answer")] = 100
    stop: Annotated[StopAt, typer.Option("--stop", help="line: the answer ends at its first line break; eos: the whole response")] = "line"
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="most prompts per forward pass (fewer when long prompts would not fit the memory budget)")] = 8

    def kw(self) -> dict:
        return {"max_new_tokens": self.max_new_tokens, "stop": self.stop, "batch_size": self.batch_size}


@dataclass(frozen=True)
class WorkOptions:
    shard: Annotated[Optional[str], typer.Option("--shard", metavar="I/N", help="answer part I (0 to N-1) of the questions as an independent job and write it as a part folder; combine the parts with lens-focus merge (under torchrun the ranks split the work themselves)")] = None

    def part(self) -> Part:
        """This process's part of the work (:func:`lens_focus.parts.current_part`)."""
        return current_part(self.shard)


GROUPS = (ModelOptions, DataOptions, AnswerOptions, WorkOptions)
INPUT_ERRORS = (FileNotFoundError, ValueError, KeyError)


def fail(message: str) -> typing.NoReturn:
    """One red line on stderr, exit status 2."""
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)


def command(app: typer.Typer, name: str | None = None, **defaults):
    """Register ``fn`` as a command of ``app`` with the options of every group it takes a parameter
    of (``model: ModelOptions`` ...), those groups' defaults changed by ``defaults``; the toolkit's
    input errors (missing files, bad data) end in :func:`fail`."""

    def register(fn: Callable) -> Callable:
        hints = typing.get_type_hints(fn, include_extras=True)
        params, groups = [], {}
        for p in inspect.signature(fn).parameters.values():
            group = hints[p.name] if hints[p.name] in GROUPS else None
            if group is None:
                params.append(p.replace(annotation=hints[p.name], kind=inspect.Parameter.KEYWORD_ONLY))
                continue
            groups[p.name] = group
            group_hints = typing.get_type_hints(group, include_extras=True)
            for f in fields(group):
                default = defaults.get(f.name, f.default)
                params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=group_hints[f.name], default=default))

        @functools.wraps(fn)
        def wrapper(**kwargs):
            for pname, group in groups.items():
                kwargs[pname] = group(**{f.name: kwargs.pop(f.name) for f in fields(group)})
            try:
                return fn(**kwargs)
            except INPUT_ERRORS as e:
                fail(str(e).strip("'\""))

        wrapper.__signature__ = inspect.Signature(params)
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        del wrapper.__wrapped__  # typer reads the signature above, not fn's
        app.command(name)(wrapper)
        return fn

    return register

