"""Each experiment of the paper as one step on a loaded model: run it, write its files into a
folder, return a summary. The command line (one step per command) and ``lens-focus reproduce``
(every step in order, one model load) both call these, so a step's files are the same either way.

Every function takes ``log`` (a one-line printer; ``print`` by default) and, where its loop is
long, a :class:`~lens_focus.cache.RowCache` so that an interrupted step resumes.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
from tqdm.auto import tqdm

from analyses import compensation as fig3
from analyses import em_positions, head_locations, table1, table3, task_tables
from analyses import seeds as seeds_table
from analyses import sweep as fig4

from ..answers import Answered, answer_examples, conditions, gold_response_sequences, second_pass_counts, skip_counts
from ..cache import RowCache
from ..directions import INERT_NOTE, FocusDirections, train_directions
from ..evaluation import concat_evaluation, evaluation_cells, evaluation_tables, split_record, split_sets
from ..experiments import answer_records, compensation_cells, compensation_table, concat_cells, focus_records, focus_table, sweep_cells, sweep_table
from ..interventions import focusing
from ..heads import Head, rank_heads, save_heads
from ..labels import Example
from ..model import model_info
from ..parts import Part, combine, read_parts
from ..provenance import versions
from ..retrieval import retrieval_frame, retrieval_samples
from ..scoring import aggregate_scores

Log = Callable[[str], None]


def _summary(out: Path, summary: dict) -> dict:
    """Write ``out/summary.json``: ``summary`` and the versions it ran under."""
    summary = {**summary, "versions": versions()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _heads_line(ranked: Sequence[Head], k: int = 5) -> str:
    return " ".join(f"({h.layer},{h.head})" for h in ranked[:k])


@dataclass(frozen=True)
class Scored:
    """Answers and head scores of one set of examples (:func:`score_answers`)."""

    answered: list[Answered]
    kept: list[tuple[Answered, list[str]]]
    """The answers that were scored, each with the conditions it counts in."""
    scores: pd.DataFrame
    ranked: list[Head]
    em: pd.DataFrame
    """One row per answer: ``variant``, ``gold_position``, ``em``."""


def score_answers(model, examples: Sequence[Example], *, rows: str = "generation", **answer_kw) -> Scored:
    """Answer every example and score every head on the rows ``rows`` (paper §2.2); an error
    when every example was skipped."""
    return scored_from(answer_examples(model, examples, score=rows, **answer_kw))


def scored_from(answered: list[Answered]) -> Scored:
    """:class:`Scored` of answers given with their scores."""
    kept = [(a, c) for a, c in zip(answered, conditions(answered)) if a.sequence is not None]
    if not kept:
        raise ValueError(f"every example was skipped ({skip_counts(answered)}); nothing to score")
    scores = aggregate_scores([a.scores for a, _ in kept], [c for _, c in kept])
    em = pd.DataFrame([{"variant": a.example.variant, "gold_position": a.example.meta.get("gold_position"), "em": a.em} for a in answered])
    return Scored(answered, kept, scores, rank_heads(scores), em)


def _example_record(a: Answered, conds: list[str]) -> dict:
    """One line of ``examples.jsonl``: the prompt, its spans (characters and tokens), the answer."""
    seq = a.sequence
    return {
        "id": a.example.id, "condition": a.example.variant, "conditions": conds,
        "gold_position": a.example.meta.get("gold_position"), "prompt": seq.prompt, "response": a.response,
        "answers": list(a.example.answers), "em": a.em, "input_ids": list(seq.input_ids),
        "spans": {k: [list(s) for s in v] for k, v in seq.char_spans.items()},
        "token_spans": {k: [list(s) for s in v] for k, v in seq.token_spans.items()},
    }  # fmt: skip


def write_scored(scored: Scored, out: Path, *, model_name: str) -> None:
    """``scores.csv``, ``heads.json``, ``examples.jsonl``, ``em.csv`` and the figures and table of
    :mod:`analyses.em_positions`, :mod:`analyses.head_locations` and :mod:`analyses.table1`."""
    out.mkdir(parents=True, exist_ok=True)
    scored.scores.to_csv(out / "scores.csv", index=False)
    save_heads(scored.ranked, out / "heads.json")
    with open(out / "examples.jsonl", "w") as f:
        f.writelines(json.dumps(_example_record(a, conds), ensure_ascii=False) + "\n" for a, conds in scored.kept)
    em_positions.write(scored.em, out)
    head_locations.write(scored.scores, out, model_name=model_name)
    table1.write(scored.scores, out)


def score_run(
    model,
    examples: Sequence[Example],
    out: str | Path,
    *,
    max_new_tokens: int = 100,
    stop: str = "line",
    rows: str = "generation",
    n_sink: int = 1,
    batch_size: int = 8,
    meta: dict | None = None,
    part: Part = Part(),
    log: Log = print,
) -> dict | None:
    """Answer and score every example (paper §2.2): ``scores.csv``, ``heads.json`` (all heads by
    relevant score), ``examples.jsonl`` (prompts, spans, answers), ``em.csv`` and
    ``em_by_position``, ``head_locations`` (Figure 2), ``table1`` and ``summary.json``. Under a
    split (``part``, :mod:`lens_focus.parts`) this process answers its block of questions and the
    files are written once, where the parts come together (None returned elsewhere)."""
    start = time.time()
    params = {"model": model_info(model).to_dict(), "data": meta or {}, "rows": rows, "n_sink": n_sink, "stop": stop,
              "max_new_tokens": max_new_tokens}  # fmt: skip
    answered = answer_examples(model, part.take(examples), score=rows, max_new_tokens=max_new_tokens, stop=stop, batch_size=batch_size, n_sink=n_sink)
    split = part.record(examples)
    parts = combine(part, out, "score", params, answered, split=split)
    if parts is None:
        return _part_written(part, out, log)
    return finish_score(concat_parts(parts), out, params=params, split=split, seconds=time.time() - start, log=log)


def concat_parts(parts: Sequence[list]) -> list:
    """Every part's items (answers, samples), in part order: the examples in the order one process has them."""
    return [a for p in parts for a in p]


def _part_written(part: Part, out: str | Path, log: Log) -> None:
    if part.launcher == "shard":
        log(f"wrote  part {part.index} of {part.count} into {out}/ (combine the parts with lens-focus merge PART_DIR... --out DIR)")


def finish_score(answered: list[Answered], out: str | Path, *, params: dict, split: dict, seconds: float, log: Log = print) -> dict:
    """The files of :func:`score_run` from every example's answer and scores (one process's, or
    every part's in order)."""
    out = Path(out)
    scored = scored_from(answered)
    write_scored(scored, out, model_name=params["model"]["name"])
    spars, skipped = head_locations.sparsity(scored.scores), skip_counts(answered)
    summary = _summary(out, {
        **params, "variants": sorted({a.example.variant for a in answered}),
        "examples": len(answered), "scored": len(scored.kept), "skipped": skipped, "second_pass": second_pass_counts(answered),
        "skipped_ids": {a.example.id: a.skipped for a in answered if a.skipped},
        "em": {v: float(g.em.mean()) for v, g in scored.em.groupby("variant")},
        "sparsity": spars.to_dict(orient="records"), "top_heads": [list(h) for h in scored.ranked[:20]],
        "distributed": split, "seconds": round(seconds, 1),
    })  # fmt: skip
    log(f"scored {len(scored.kept)} sequences; skipped {sum(skipped.values())} {skipped if skipped else ''}".rstrip())
    if summary["second_pass"]:
        log(f"note   {sum(summary['second_pass'].values())} scored in a second teacher-forced pass: {summary['second_pass']}")
    log("EM     " + ", ".join(f"{k} {v:.3f}" for k, v in summary["em"].items()))
    log(head_locations.sparsity_line(spars))
    log("top-5  " + _heads_line(scored.ranked))
    log(f"wrote  {out}/ (scores.csv, heads.json, examples.jsonl, em.csv, em_by_position, table1, head_locations) in {summary['seconds']}s")
    return summary


def compensate_run(
    model,
    examples: Sequence[Example],
    ranked: Sequence[Head],
    out: str | Path,
    *,
    taus: Sequence[float],
    ks: Sequence[int | str],
    random_tau: float = 0.3,
    seed: int = 0,
    cache: RowCache | None = None,
    part: Part = Part(),
    log: Log = print,
    **answer_kw,
) -> pd.DataFrame | None:
    """Split-softmax compensation over τ and k (Figure 3): ``compensation.csv``, ``.html``, ``.png``, and
    every prompt's answer under every setting in ``answers.csv``. Under a split (``part``) as
    :func:`score_run`."""
    start = time.time()
    params = {"model": model_info(model).to_dict(), "prompts": len(examples), "taus": list(taus), "ks": [str(k) for k in ks],
              "random_tau": random_tau, "seed": seed, **answer_kw}  # fmt: skip
    cells = compensation_cells(model, part.take(examples), ranked, taus=taus, ks=ks, random_tau=random_tau, seed=seed, cache=cache, **answer_kw)
    split = part.record(examples)
    parts = combine(part, out, "compensate", params, cells, split=split)
    if parts is None:
        return _part_written(part, out, log)
    return finish_compensate(concat_cells(parts), out, params=params, split=split, seconds=time.time() - start, log=log)


def finish_compensate(cells, out: str | Path, *, params: dict, split: dict, seconds: float, log: Log = print) -> pd.DataFrame:
    """The files of :func:`compensate_run` from its cells (one process's, or every part's put together)."""
    table, answers = compensation_table(cells)
    fig3.write(table, out)
    pd.DataFrame(answers).to_csv(Path(out) / "answers.csv", index=False)
    _summary(Path(out), {**params, "distributed": split, "seconds": round(seconds, 1)})
    log(table.to_string(index=False))
    log(f"wrote  {out}/ (compensation.csv, compensation.html/png, answers.csv, summary.json)")
    return table


def directions_run(
    model,
    examples: Sequence[Example],
    out: str | Path,
    *,
    site: str = "post_rotary",
    prompts: str = "long",
    rows: str = "generation",
    epochs: int = 10,
    lr: float = 1e-3,
    seed: int = 0,
    meta: dict | None = None,
    log: Log = print,
    **answer_kw,
):
    """Train focus directions on ``prompts`` (``long`` or ``gold``) + gold responses (docs/method.md §4)
    and save them to ``out`` (its metadata records the prompts and the versions it was trained under)."""
    seqs, skipped = gold_response_sequences(model, examples, prompts=prompts, **answer_kw)
    if not seqs:
        raise ValueError(f"no training sequence (skipped: {skipped})")
    log(f"train  {len(seqs)} sequences ({prompts} prompt + gold response); skipped {sum(skipped.values())} {skipped or ''}".rstrip())
    meta = {**(meta or {}), "prompts": prompts, "skipped": skipped, "versions": versions()}
    d = train_directions(model, seqs, site=site, rows=rows, epochs=epochs, lr=lr, seed=seed, meta=meta)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    d.save(out)
    m = d.meta
    log(f"relevant score (all heads, training rows): {m['relevant_score_at_init']:.4f} -> {m['relevant_score_trained']:.4f}")
    if site == "post_rotary":
        log(f"note   {m['note']}")
    log(f"wrote  {out}")
    return d


def sweep_run(
    model,
    examples: Sequence[Example],
    directions,
    ranked: Sequence[Head],
    out: str | Path,
    *,
    alphas: Sequence[float],
    ks: Sequence[int | str],
    table_alphas: Sequence[float],
    table_k: int = 5,
    intervene_k: int = 20,
    rows: str = "generation",
    cache: RowCache | None = None,
    part: Part = Part(),
    log: Log = print,
    **answer_kw,
) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """EM over α and k (Figure 4: ``sweep.*``, every prompt's answer in ``answers.csv``) and the top
    ``table_k`` heads' scores under α (Table 3: ``table3.*``), with α·d on those heads (its left
    half) and on the top ``intervene_k`` (its right half). Under a split (``part``) as :func:`score_run`."""
    start = time.time()
    params = {"model": model_info(model).to_dict(), "prompts": len(examples), "site": directions.site, "alphas": list(alphas),
              "ks": [str(k) for k in ks], "table_alphas": list(table_alphas), "table_k": table_k, "intervene_k": intervene_k, "rows": rows, **answer_kw}  # fmt: skip
    mine = part.take(examples)
    cells = sweep_cells(model, mine, directions, ranked, alphas=alphas, ks=ks, cache=cache, **answer_kw)
    halves = sorted({table_k, min(intervene_k, len(ranked))})
    records = [r for k in halves for r in focus_records(model, mine, directions, ranked[:table_k], intervene=ranked[:k], alphas=table_alphas, rows=rows, cache=cache, **answer_kw)]
    split = part.record(examples)
    parts = combine(part, out, "sweep", params, (cells, records), split=split)
    if parts is None:
        return _part_written(part, out, log)
    return finish_sweep(concat_sweep(parts), out, params=params, split=split, seconds=time.time() - start, log=log)


def concat_sweep(parts: Sequence[tuple]) -> tuple:
    """The sweep's cells and Table 3 records of every part, as one run's."""
    return concat_cells([cells for cells, _ in parts]), [r for _, records in parts for r in records]


def finish_sweep(work: tuple, out: str | Path, *, params: dict, split: dict, seconds: float, log: Log = print) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The files of :func:`sweep_run` from its cells and Table 3 records (one process's, or every part's put together)."""
    cells, records = work
    table, answers = sweep_table(cells)
    fig4.write(table, out)
    pd.DataFrame(answers).to_csv(Path(out) / "answers.csv", index=False)
    scores = focus_table(records)
    inert = params["site"] == "post_rotary"
    table3.write(scores, out, note=f"Directions at site {params['site']}" + (f"; {INERT_NOTE}." if inert else "."))
    _summary(Path(out), {**params, "distributed": split, "seconds": round(seconds, 1)})
    log(table.pivot(index="alpha", columns="k", values="em").to_string())
    log(f"site   {params['site']}" + (f" ({INERT_NOTE})" if inert else ""))
    log(f"wrote  {out}/ (sweep.csv, sweep.html/png, answers.csv, table3.csv, table3.md, summary.json)")
    return table, scores


def retrieval_run(
    model,
    examples: Sequence[Example],
    out: str | Path,
    *,
    max_new_tokens: int = 50,
    batch_size: int = 4,
    meta: dict | None = None,
    part: Part = Part(),
    log: Log = print,
) -> dict | None:
    """Retrieval scores from the needle test (docs/method.md §6): ``retrieval_scores.csv``,
    ``retrieval_heads.json``. Under a split (``part``) as :func:`score_run`."""
    start = time.time()
    info = model_info(model)
    params = {"model": info.to_dict(), **(meta or {}), "max_new_tokens": max_new_tokens}
    samples = retrieval_samples(model, part.take(examples), max_new_tokens=max_new_tokens, batch_size=batch_size)
    split = part.record(examples)
    parts = combine(part, out, "retrieval", params, samples, split=split)
    if parts is None:
        return _part_written(part, out, log)
    return finish_retrieval(concat_parts(parts), out, params=params, split=split, seconds=time.time() - start, log=log)


def finish_retrieval(samples: list, out: str | Path, *, params: dict, split: dict, seconds: float, log: Log = print) -> dict:
    """The files of :func:`retrieval_run` from every sample's copies (one process's, or every part's in order)."""
    out = Path(out)
    frame, counts = retrieval_frame(samples, params["model"]["n_layers"], params["model"]["n_heads"])
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "retrieval_scores.csv", index=False)
    ranked = [Head(int(r.layer), int(r.head)) for r in frame.itertuples()] if counts["counted"] else []
    save_heads(ranked, out / "retrieval_heads.json")
    summary = _summary(out, {
        **params, **counts, "retrieval_heads": int((frame.score > 0.1).sum()), "top_heads": [list(h) for h in ranked[:20]],
        "distributed": split, "seconds": round(seconds, 1),
    })  # fmt: skip
    log(f"counted {counts['counted']} of {counts['samples']} samples (those whose answer recalls the needle)")
    if counts["counted"]:
        log(f"heads with retrieval score > 0.1: {summary['retrieval_heads']} of {len(frame)}")
        log("top-5  " + _heads_line(ranked))
    else:
        log("no response recalled the needle: no retrieval scores (retrieval_scores.csv holds NaN)")
    log(f"wrote  {out}/ (retrieval_scores.csv, retrieval_heads.json, summary.json) in {summary['seconds']}s")
    return summary


def evaluate_run(
    model,
    sets,
    out: str | Path,
    *,
    settings,
    directions,
    ranked: Sequence[Head],
    sink_k: int = 5,
    batch_size: int = 4,
    rows: str = "generation",
    meta: dict | None = None,
    cache: RowCache | None = None,
    part: Part = Part(),
    log: Log = print,
) -> dict | None:
    """The task suite under every setting (Tables 2, 5–13): ``task_scores``, ``category_scores``,
    ``sink_scores`` (.csv/.md), ``scores_vs_length``, ``answers.csv``, ``summary.json``. Under a
    split (``part``) as :func:`score_run`: each part answers its block of every set's questions."""
    start = time.time()
    log(f"tasks  {', '.join(dict.fromkeys(s.task.name for s in sets))} at {sorted({s.length for s in sets})} tokens, "
        f"{sum(len(s.examples) for s in sets)} prompts; settings {', '.join(s.name for s in settings)}")  # fmt: skip
    params = {"model": model_info(model).to_dict(), **(meta or {}), "settings": [s.name for s in settings], "sink_k": sink_k, "rows": rows}
    cells = evaluation_cells(model, split_sets(sets, part), settings=settings, directions=directions, ranked=ranked, sink_k=sink_k,
                             batch_size=batch_size, rows=rows, cache=cache)  # fmt: skip
    split = split_record(sets, part)
    parts = combine(part, out, "evaluate", params, cells, split=split)
    if parts is None:
        return _part_written(part, out, log)
    return finish_evaluate(concat_evaluation(parts), out, params=params, split=split, seconds=time.time() - start, log=log)


def finish_evaluate(cells: list[dict], out: str | Path, *, params: dict, split: dict, seconds: float, log: Log = print) -> dict:
    """The files of :func:`evaluate_run` from its cells (one process's, or every part's put together)."""
    out = Path(out)
    task_scores, sink_scores, answers = evaluation_tables(cells)
    task_tables.write(task_scores, sink_scores, out, sink_k=params["sink_k"])
    answers.to_csv(out / "answers.csv", index=False)
    summary = _summary(out, {**params, "distributed": split, "seconds": round(seconds, 1)})
    table = task_tables.wide(task_scores.assign(col=task_scores.task + "@" + task_scores.length.astype(str)), index="setting", columns="col", values="score")
    log(table.to_string(index=False))
    log(f"wrote  {out}/ (task_scores, category_scores, sink_scores .csv/.md, scores_vs_length.html/png, answers.csv, summary.json) in {summary['seconds']}s")
    return summary


MERGERS = {"score": (concat_parts, finish_score), "compensate": (concat_cells, finish_compensate), "sweep": (concat_sweep, finish_sweep),
           "retrieval": (concat_parts, finish_retrieval), "evaluate": (concat_evaluation, finish_evaluate)}  # fmt: skip
"""The commands whose parts :func:`merge_run` combines: how their parts' results join, and what writes their files."""


def merge_run(folders: Sequence[str | Path], out: str | Path, *, log: Log = print):
    """Combine the part folders of one split run (``--shard I/N``) into the folder one process writes."""
    start = time.time()
    meta, payloads = read_parts(folders)
    command = meta["command"]
    if command not in MERGERS:
        raise ValueError(f"parts of {command!r}: merge combines {', '.join(MERGERS)}")
    join, finish = MERGERS[command]
    log(f"merge  {len(payloads)} parts of {command}")
    return finish(join(payloads), out, params=meta["params"], split=meta["split"], seconds=time.time() - start, log=log)


def one_position_each(examples: Sequence[Example]) -> list[Example]:
    """Of each question's long prompts, the one whose relevant document sits at the question's
    turn in the positions present (question ``i``: the ``i mod n``-th of ``n`` positions), other
    variants kept: as many questions with a third of the cost of three positions each, every
    position trained on equally."""
    positions = sorted({e.meta["gold_position"] for e in examples if e.variant == "long"})
    order = list(dict.fromkeys(e.question_id for e in examples))
    turn = {q: positions[i % len(positions)] for i, q in enumerate(order)} if positions else {}
    return [e for e in examples if e.variant != "long" or e.meta["gold_position"] == turn[e.question_id]]


Loader = Callable[..., list[Example]]
"""``load(split=, seed=, limit=, variants=)``: the examples of one split of a seeded question split."""


def seeds_run(
    model,
    load: Loader,
    out: str | Path,
    *,
    seeds: Sequence[int],
    train_limit: int,
    heads_limit: int,
    test_limit: int,
    alpha: float,
    k: int,
    prompts: Sequence[str] = ("long", "gold"),
    top: int = 5,
    epochs: int = 10,
    rows: str = "generation",
    cache: RowCache | None = None,
    meta: dict | None = None,
    log: Log = print,
    **answer_kw,
) -> pd.DataFrame:
    """Focus directions replicated over ``seeds`` (:mod:`analyses.seeds`). Per seed the questions
    are split afresh (``load(..., seed=s)``); heads are ranked on ``heads_limit`` training
    questions, directions trained on ``train_limit`` training questions, one long prompt each
    (:func:`one_position_each`), once per kind of ``prompts``
    (``seed{s}/directions_{prompts}.safetensors``), and the unmodified model and
    ``α · d`` on the top ``k`` heads answer ``test_limit`` held-out questions, scored on
    ``rows``. Writes ``answers.csv``, ``seeds.csv``/``.md``/``.html``/``.png``, ``summary.json``."""
    start, out = time.time(), Path(out)
    cache = cache if cache is not None else RowCache()
    info = model_info(model)

    def answered(seed: int, setting: str, examples, ranked, intervention=None) -> list[dict]:
        def compute():
            got = answer_records(model, examples, intervention, mean_of=ranked[:top], rows=rows, **answer_kw)
            return [{"seed": seed, "setting": setting, **r} for r in got]

        return cache(["answers", seed, setting], compute)

    records: list[dict] = []
    trained: dict[str, dict] = {}
    for seed in tqdm(seeds, desc="seeds", unit="seed"):
        ranked = [Head(*h) for h in cache(["heads", seed], lambda: [list(h) for h in score_answers(
            model, load(split="train", seed=seed, limit=heads_limit, variants=("long", "gold")), rows=rows, **answer_kw).ranked])]  # fmt: skip
        log(f"seed {seed}: top-{top} heads {_heads_line(ranked, top)}")
        train = one_position_each(load(split="train", seed=seed, limit=train_limit, variants=("long", "gold")))
        test = load(split="test", seed=seed, limit=test_limit, variants=("long",))
        records += answered(seed, "baseline", test, ranked)
        for kind in prompts:
            path = out / f"seed{seed}" / f"directions_{kind}.safetensors"
            if path.exists() and [seed, kind] in cache:
                d = FocusDirections.load(path, model=model)
            else:
                d = directions_run(model, train, path, prompts=kind, rows=rows, epochs=epochs, seed=seed, log=log,
                                   meta={**(meta or {}), "split": "train", "limit": train_limit, "data_seed": seed}, **answer_kw)  # fmt: skip
                cache([seed, kind], lambda: {"relevant_score_at_init": d.meta["relevant_score_at_init"], "relevant_score_trained": d.meta["relevant_score_trained"]})
            trained[f"{seed}/{kind}"] = {"sequences": d.meta["n_sequences"], "skipped": d.meta["skipped"],
                                         "relevant_score_at_init": d.meta["relevant_score_at_init"], "relevant_score_trained": d.meta["relevant_score_trained"]}  # fmt: skip
            setting = f"{kind}-trained, k={k}, α={alpha:g}"
            records += answered(seed, setting, test, ranked, focusing(model, d, ranked[:k], alpha=alpha))
    table = seeds_table.write(pd.DataFrame(records), out)
    _summary(out, {
        "model": info.to_dict(), **(meta or {}), "seeds": list(seeds), "train_limit": train_limit, "heads_limit": heads_limit,
        "test_limit": test_limit, "alpha": alpha, "k": k, "prompts": list(prompts), "top": top, "epochs": epochs, "rows": rows,
        "trained": trained, **answer_kw, "seconds": round(time.time() - start, 1),
    })  # fmt: skip
    for r in table[table.metric == "em"].itertuples():
        log(f"seed {r.seed:>3}  {r.setting}: EM {r.before:.3f} -> {r.after:.3f}, {seeds_table.text(r)}")
    log(f"wrote  {out}/ (answers.csv, seeds.csv, seeds.md, seeds.html/png, summary.json, seed*/directions_*.safetensors)")
    return table
