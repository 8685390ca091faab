"""Focus directions trained for every head from cached queries and keys (paper §3; docs/method.md §4)."""
from __future__ import annotations

from pathlib import Path

from ...answers import gold_response_sequences
from ...defaults import BATCH_SIZE, EPOCHS, LR, MAX_NEW_TOKENS, PROMPTS, ROWS, SITE, STOP
from ...directions import FocusDirections, train_directions
from ...errors import InputError
from ...provenance import versions
from ..declare import Context, Experiment, Log, Sizes, Step, register, summary_of


def train(model, examples, out: str | Path, *, prompts: str, rows: str, site: str = SITE.default, epochs: int, lr: float = LR.default, seed: int,
          meta: dict, log: Log = print, **answer_kw) -> FocusDirections:  # fmt: skip
    """Focus directions trained on ``prompts`` (``long`` or ``gold``) + gold responses and saved
    to ``out`` (its metadata records ``meta``, the prompts, what was skipped and the versions)."""
    seqs, skipped = gold_response_sequences(model, examples, prompts=prompts, **answer_kw)
    if not seqs:
        raise InputError(f"no training sequence: every example was skipped ({skipped})")
    log(f"train  {len(seqs)} sequences ({prompts} prompt + gold response); skipped {sum(skipped.values())} {skipped or ''}".rstrip())
    meta = {**meta, "prompts": prompts, "skipped": skipped, "versions": versions()}
    d = train_directions(model, seqs, site=site, rows=rows, epochs=epochs, lr=lr, seed=seed, meta=meta)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    d.save(out)
    m = d.meta
    log(f"relevant score (all heads, training rows): {m['relevant_score_at_init']:.4f} -> {m['relevant_score_trained']:.4f}")
    if site == "post_rotary":
        log(f"note   {m['note']}")
    log(f"wrote  {out}")
    return d


def _work(ctx: Context) -> FocusDirections:
    a = ctx.args
    meta = {k: v for k, v in summary_of(ctx.record).items() if k not in ("model",)} if ctx.record else {}
    return train(ctx.model, ctx.examples, ctx.out, prompts=a["prompts"], rows=a["rows"], site=a["site"], epochs=a["epochs"], lr=a["lr"],
                 seed=a["seed"], meta=meta, log=ctx.log, **ctx.answer_kw())  # fmt: skip


def _write(d: FocusDirections, out: Path, record: dict, log: Log) -> FocusDirections:
    return d  # the work saved it


TRAIN_DIRECTIONS = register(Experiment(
    "train-directions", "Train focus directions for every head from cached queries and keys (paper §3; docs/method.md §4). "
    "--split is train by default: the directions are evaluated on test.",
    work=_work, write=_write, questions=("long", "gold"), split=False, output="file",
    params=(SITE, PROMPTS, ROWS, EPOCHS, LR, MAX_NEW_TOKENS, STOP, BATCH_SIZE),
    default_out="runs/directions.safetensors", command_defaults={"split": "train"},
    steps=(Step("directions", "focus directions", split="train", output="directions.safetensors", sizes=Sizes(
        full={"limit": 24, "gold_positions": (1, 10, 20)},
        quick={"limit": 6, "gold_positions": (1, 20)},
        toy={"limit": 50},
        toy_quick={"limit": 10, "gold_positions": (1, 20)},
    )),),
))  # fmt: skip
