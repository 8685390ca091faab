"""Focus directions replicated over seeds (:mod:`analyses.seeds`): per seed the questions are split
afresh, heads re-ranked and directions retrained (on long and on gold-only prompts), judged on the
seed's held-out questions as paired differences from the unmodified model."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import pandas as pd
from tqdm.auto import tqdm

from lens_focus.analyses import seeds as seeds_table

from ...defaults import BATCH_SIZE, EPOCHS, HEADS_LIMIT, MAX_NEW_TOKENS, ROWS, SEEDS, SEEDS_ALPHA, SEEDS_K, SEEDS_PROMPTS, STOP, TEST_LIMIT, TOP, TRAIN_LIMIT
from ...directions import FocusDirections
from ...experiments import answer_records
from ...heads import Head
from ...interventions import focus_intervention
from ...labels import Example
from ..declare import Context, Experiment, Log, Sizes, Step, register, summary_of, write_summary
from .directions import train
from .score import heads_line, score_answers


def one_position_each(examples: Sequence[Example]) -> list[Example]:
    """Of each question's long prompts, the one whose relevant document sits at the question's
    turn in the positions present (question ``i``: the ``i mod n``-th of ``n`` positions), other
    variants kept: as many questions with a third of the cost of three positions each, every
    position trained on equally."""
    positions = sorted({e.meta["gold_position"] for e in examples if e.variant == "long"})
    order = list(dict.fromkeys(e.question_id for e in examples))
    turn = {q: positions[i % len(positions)] for i, q in enumerate(order)} if positions else {}
    return [e for e in examples if e.variant != "long" or e.meta["gold_position"] == turn[e.question_id]]


def _work(ctx: Context) -> pd.DataFrame:
    a, model, cache, out, log = ctx.args, ctx.model, ctx.cache, ctx.out, ctx.log
    answer_kw = ctx.answer_kw()

    def answered(seed: int, setting: str, examples, ranked, intervention=None) -> list[dict]:
        def compute():
            got = answer_records(model, examples, intervention, mean_of=ranked[: a["top"]], rows=a["rows"], **answer_kw)
            return [{"seed": seed, "setting": setting, **r} for r in got]

        return cache(["answers", seed, setting], compute)

    settings = {kind: f"{kind}-trained, k={a['k']}, α={a['alpha']:g}" for kind in a["prompts"]}

    def keys(seed: int):  # the cells of a seed: its heads, its baseline answers, each kind's directions and answers
        yield from (["heads", seed], ["answers", seed, "baseline"])
        for kind in a["prompts"]:
            yield from ([seed, kind], ["answers", seed, settings[kind]])

    cache.expect(key for seed in a["seeds"] for key in keys(seed))
    records: list[dict] = []
    trained: dict[str, dict] = {}
    for seed in tqdm(a["seeds"], desc="seeds", unit="seed"):
        def load(split: str, limit: int, variants: tuple) -> list[Example]:
            return ctx.questions(split=split, seed=seed, limit=limit, variants=variants)

        ranked = [Head(*h) for h in cache(["heads", seed], lambda: [list(h) for h in score_answers(
            model, load("train", a["heads_limit"], ("long", "gold")), rows=a["rows"], **answer_kw).ranked])]  # fmt: skip
        log(f"seed {seed}: top-{a['top']} heads {heads_line(ranked, a['top'])}")
        training = one_position_each(load("train", a["train_limit"], ("long", "gold")))
        test = load("test", a["test_limit"], ("long",))
        records += answered(seed, "baseline", test, ranked)
        for kind in a["prompts"]:
            path = out / f"seed{seed}" / f"directions_{kind}.safetensors"
            if path.exists() and [seed, kind] in cache:
                d = FocusDirections.load(path, model=model)
            else:
                meta = {"data": a["data"], "n_docs": a["n_docs"], "split": "train", "limit": a["train_limit"], "data_seed": seed}
                d = train(model, training, path, prompts=kind, rows=a["rows"], epochs=a["epochs"], seed=seed, log=log, meta=meta, **answer_kw)
                cache([seed, kind], lambda: {"relevant_score_at_init": d.meta["relevant_score_at_init"], "relevant_score_trained": d.meta["relevant_score_trained"]})
            trained[f"{seed}/{kind}"] = {"sequences": d.meta["n_sequences"], "skipped": d.meta["skipped"],
                                         "relevant_score_at_init": d.meta["relevant_score_at_init"], "relevant_score_trained": d.meta["relevant_score_trained"]}  # fmt: skip
            records += answered(seed, settings[kind], test, ranked, focus_intervention(model, d, ranked[: a["k"]], alpha=a["alpha"]))
    ctx.record["trained"] = trained
    return pd.DataFrame(records)


def _write(records: pd.DataFrame, out: Path, record: dict, log: Log) -> pd.DataFrame:
    table = seeds_table.write(records, out)
    write_summary(out, {**summary_of(record), "seconds": round(time.time() - record["start"], 1)})
    for r in table[table.metric == "em"].itertuples():
        log(f"seed {r.seed:>3}  {r.setting}: EM {r.before:.3f} -> {r.after:.3f}, {seeds_table.text(r)}")
    log(f"wrote  {out}/ (answers.csv, seeds.csv, seeds.md, seeds.html/png, summary.json, seed*/directions_*.safetensors)")
    return table


SEED_RUNS = register(Experiment(
    "seeds", "Focus directions replicated over seeds, trained on long and on gold-only prompts, judged as paired differences.",
    work=_work, write=_write, questions=("long", "gold"), unread=("split", "limit", "seed"), reads_own=True, split=False, command=False,
    params=(SEEDS, TRAIN_LIMIT, HEADS_LIMIT, TEST_LIMIT, SEEDS_ALPHA, SEEDS_K, SEEDS_PROMPTS, TOP, EPOCHS, ROWS, MAX_NEW_TOKENS, STOP, BATCH_SIZE),
    steps=(Step("seeds", "focus directions over seeds, on long and gold-only training prompts", optional_section=True,
                section_title="Focus directions over seeds, trained on long and on gold-only prompts", section=seeds_table.section, sizes=Sizes(
        full={"gold_positions": (1, 10, 20)},
        quick={"gold_positions": (1, 20), "seeds": (0, 1), "train_limit": 6, "heads_limit": 6, "test_limit": 4, "alpha": 0.3},
        toy={"train_limit": 100, "heads_limit": 50, "test_limit": 50, "alpha": 0.3},
        toy_quick={"gold_positions": (1, 20), "seeds": (0, 1), "train_limit": 10, "heads_limit": 10, "test_limit": 10},
    )),),
))  # fmt: skip
