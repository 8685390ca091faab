"""The ``lens-focus`` command line."""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Contextual heads and focus directions on TransformerLens.")

ModelOpt = Annotated[str, typer.Option("--model", help="hub name, local save_pretrained directory, or 'toy'")]
DataOpt = Annotated[str, typer.Option("--data", help="data file (.jsonl or .jsonl.gz), or toy for the synthetic task")]
TaskOpt = Annotated[Optional[str], typer.Option("--task", help="nq or kv (default: inferred from the file)")]
NDocsOpt = Annotated[int, typer.Option("--n-docs", help="documents (or key-value pairs) per long prompt")]
PositionsOpt = Annotated[str, typer.Option("--gold-positions", help="1-based positions of the relevant document")]
SplitOpt = Annotated[str, typer.Option("--split", help="test, train or all (seeded 50/50 split of questions)")]
LimitOpt = Annotated[Optional[int], typer.Option("--limit", help="number of questions")]
SeedOpt = Annotated[int, typer.Option("--seed")]
NewTokensOpt = Annotated[int, typer.Option("--max-new-tokens")]
StopOpt = Annotated[str, typer.Option("--stop", help="line: answer ends at the first line break; eos: whole response")]
BatchOpt = Annotated[int, typer.Option("--batch-size")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device")]


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


def _positions(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}") from None


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)


def _run(fn):
    """Turn the toolkit's input errors into a one-line message and exit status 2."""
    try:
        return fn()
    except (FileNotFoundError, ValueError, KeyError) as e:
        _fail(str(e).strip("'\""))


@app.command()
def score(
    model: ModelOpt = "toy",
    data: DataOpt = ...,
    task: TaskOpt = None,
    n_docs: NDocsOpt = 20,
    gold_positions: PositionsOpt = "1,5,10,15,20",
    split: SplitOpt = "test",
    limit: LimitOpt = None,
    seed: SeedOpt = 0,
    max_new_tokens: NewTokensOpt = 100,
    stop: StopOpt = "line",
    rows: Annotated[str, typer.Option("--rows", help="generation (rows that produce the answer) or response")] = "generation",
    n_sink: Annotated[int, typer.Option("--n-sink", help="leading tokens that form the sink")] = 1,
    batch_size: BatchOpt = 8,
    device: DeviceOpt = None,
    out: Annotated[Path, typer.Option("--out")] = Path("runs/score"),
) -> None:
    """Score every head by where its attention goes while the model answers (paper §2.2, Table 1, Figure 2)."""
    opts = DataOptions(data, task, n_docs, _positions(gold_positions), split, limit, seed)
    _run(lambda: _score(model, opts, max_new_tokens, stop, rows, n_sink, batch_size, device, out))


def _score(model_name, opts: DataOptions, max_new_tokens, stop, rows, n_sink, batch_size, device, out: Path) -> None:
    import pandas as pd

    from analyses import head_locations, table1

    from .answers import answer_examples, conditions, skip_counts
    from .heads import rank_heads, save_heads
    from .model import load_model, model_info
    from .scoring import aggregate_scores

    if rows not in ("generation", "response"):
        raise ValueError(f"--rows must be 'generation' or 'response', got {rows!r}")
    start = time.time()
    examples = opts.load()
    lm = load_model(model_name, device=device)
    info = model_info(lm)
    typer.echo(f"model  {info}")
    typer.echo(f"data   {opts.data}: {len(examples)} prompts from {len({e.question_id for e in examples})} questions ({opts.split} split)")
    answered = answer_examples(
        lm, examples, max_new_tokens=max_new_tokens, stop=stop, batch_size=batch_size, n_sink=n_sink, score=rows
    )
    kept = [(a, c) for a, c in zip(answered, conditions(answered)) if a.sequence is not None]
    skipped = skip_counts(answered)
    if not kept:
        raise ValueError(f"every example was skipped ({skipped}); nothing to score")
    scores = aggregate_scores([a.scores for a, _ in kept], [c for _, c in kept])

    out.mkdir(parents=True, exist_ok=True)
    scores.to_csv(out / "scores.csv", index=False)
    ranked = rank_heads(scores)
    save_heads(ranked, out / "heads.json")
    with open(out / "examples.jsonl", "w") as f:
        for a, conds in kept:
            seq = a.sequence
            f.write(json.dumps({
                "id": a.example.id, "condition": a.example.variant, "conditions": conds,
                "gold_position": a.example.meta.get("gold_position"), "prompt": seq.prompt, "response": a.response,
                "answers": list(a.example.answers), "em": a.em, "input_ids": list(seq.input_ids),
                "spans": {k: [list(s) for s in v] for k, v in seq.char_spans.items()},
                "token_spans": {k: [list(s) for s in v] for k, v in seq.token_spans.items()},
            }, ensure_ascii=False) + "\n")  # fmt: skip
    em = pd.DataFrame(
        [{"variant": a.example.variant, "gold_position": a.example.meta.get("gold_position"), "em": a.em} for a in answered]
    )
    em_table = em.groupby(["variant", "gold_position"], dropna=False)["em"].agg(["mean", "count"]).reset_index()
    em_table.columns = ["variant", "gold_position", "em", "n"]
    em_table.to_csv(out / "em.csv", index=False)
    head_locations.write(scores, out, model_name=info.name)
    table1.write(scores, out)
    spars = head_locations.sparsity(scores)
    summary = {
        "model": info.to_dict(), "data": {**opts.__dict__, "gold_positions": list(opts.gold_positions)},
        "rows": rows, "n_sink": n_sink, "stop": stop, "max_new_tokens": max_new_tokens,
        "examples": len(answered), "scored": len(kept), "skipped": skipped,
        "skipped_ids": {a.example.id: a.skipped for a in answered if a.skipped},
        "em": {v: float(g.em.mean()) for v, g in em.groupby("variant")},
        "sparsity": spars.to_dict(orient="records"), "top_heads": [list(h) for h in ranked[:20]],
        "seconds": round(time.time() - start, 1),
    }  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    typer.echo(f"scored {len(kept)} sequences; skipped {sum(skipped.values())} {skipped if skipped else ''}".rstrip())
    typer.echo("EM     " + ", ".join(f"{k} {v:.3f}" for k, v in summary["em"].items()))
    typer.echo(head_locations.sparsity_line(spars))
    typer.echo("top-5  " + " ".join(f"({h.layer},{h.head})" for h in ranked[:5]))
    typer.echo(f"wrote  {out}/ (scores.csv, heads.json, examples.jsonl, em.csv, table1, head_locations) in {summary['seconds']}s")


@app.command("tiny-model")
def tiny_model_cmd(
    arch: Annotated[str, typer.Argument(help="llama, qwen2, mistral or gpt2")],
    out: Annotated[Path, typer.Argument(help="directory to save the model in")],
    corpus: Annotated[Optional[Path], typer.Option("--corpus", help="jsonl(.gz) data whose text trains the tokenizer")] = None,
    vocab_size: Annotated[int, typer.Option("--vocab-size")] = 512,
    seed: SeedOpt = 0,
) -> None:
    """Build and save a tiny random-weight model (for smoke runs and demos without a network)."""
    from .tiny import ARCHS, corpus_from_jsonl, tiny_model

    if arch not in ARCHS:
        _fail(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    text = _run(lambda: corpus_from_jsonl(corpus)) if corpus else None
    path = tiny_model(arch, out, seed=seed, corpus=text, vocab_size=vocab_size)
    typer.echo(f"saved a tiny {arch} model to {path}")


toy_app = typer.Typer(no_args_is_help=True, help="The embedded toy model: train it, report how it behaves.")
app.add_typer(toy_app, name="toy")


@toy_app.command("train")
def toy_train(
    seed: SeedOpt = 0,
    out: Annotated[Optional[Path], typer.Option("--out", help="default: the package's shipped checkpoint directory")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="override the recipe's step count (smoke runs)")] = None,
    report_n: Annotated[int, typer.Option("--report-n", help="held-out questions for the model card's report")] = 500,
) -> None:
    """Train the toy model from scratch with the shipped recipe and write its model card."""
    from .model import TOY_DIR, load_model
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
    n: Annotated[int, typer.Option("--n", help="held-out questions")] = 500,
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

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    keep_freed_memory()
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
