"""The paper's intervention experiments as functions returning tidy DataFrames.

- :func:`compensation_experiment` (paper Figure 3): EM under split-softmax compensation of the
  relevant document on the top-k contextual heads over τ and k, random-head controls, baselines.
- :func:`sweep_experiment` (Figure 4): EM under focus directions over α and k.
- :func:`focus_scores` (Table 3): contextual scores of chosen heads under focus directions.

Each is also there in two halves, the work and its table (:func:`compensation_cells` and
:func:`compensation_table`, :func:`sweep_cells` and :func:`sweep_table`, :func:`focus_records` and
:func:`focus_table`), so that parts of a run answered by several processes join into one table
(:mod:`lens_focus.parts`).

Every run answers the same examples greedily; ``em`` is the mean ``best_subspan_em``, ``n`` the
number of prompts it averages and ``em_low``, ``em_high`` its 95% Wilson interval. Every row that
intervenes on the long prompts also carries its paired difference from the unmodified model on
the same prompts, ``diff`` with its 95% bootstrap interval ``diff_low``, ``diff_high``
(questions resampled; :func:`lens_focus.stats.paired_difference`). Pass a list as ``answers``
to receive every prompt's answer under every setting (one dict per prompt and setting).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .answers import answer_examples
from .cache import RowCache
from .defaults import ALPHAS, COMPENSATION_KS, RANDOM_TAU, ROWS, SWEEP_KS, TABLE_ALPHAS, TAUS
from .heads import Head, random_heads
from .interventions import Intervention, compensation_intervention, focus_intervention
from .labels import Example
from .model import model_info
from .stats import em_interval, paired_difference
from .errors import InputError

INTERVAL_COLUMNS = ["em_low", "em_high", "diff", "diff_low", "diff_high"]
COMPENSATION_COLUMNS = ["method", "k", "tau", "em", "n", *INTERVAL_COLUMNS]
SWEEP_COLUMNS = ["k", "alpha", "em", "n", *INTERVAL_COLUMNS]
TABLE3_COLUMNS = ["intervened", "alpha", "layer", "head", "span", "score", "delta"]


def clip_ks(ks: Sequence[int | str], n_total: int) -> list[int]:
    """Head counts that exist in a model of ``n_total`` heads: larger ones are dropped and, when
    any was, the model's total takes their place (``"all"`` is the total)."""
    out = []
    for k in ks:
        k = n_total if k == "all" else int(k)
        if k < 1:
            raise InputError(f"head counts must be positive, got {k}")
        out.append(min(k, n_total))
    return sorted(set(out))


def _head_counts(ks: Sequence[int | str], ranked: Sequence[Head], n_total: int) -> list[int]:
    """:func:`clip_ks`, checking that ``ranked`` holds enough heads for the largest count."""
    out = clip_ks(ks, n_total)
    if len(ranked) < max(out):
        raise InputError(f"the heads file ranks {len(ranked)} heads; k up to {max(out)} needs as many")
    return out


def _split(examples: Sequence[Example]) -> dict[str, list[Example]]:
    by = {v: [e for e in examples if e.variant == v] for v in ("long", "gold", "negative")}
    if not by["long"]:
        raise InputError("no long prompts to intervene on (the dataset is empty or has only gold/negative prompts)")
    return by


def answer_records(model, examples, intervention: Intervention | None = None, *, mean_of: Sequence[Head] = (), rows: str = ROWS.default, **kw) -> list[dict]:
    """One record per prompt: ``id``, ``question_id``, ``gold_position``, ``response``, ``em``;
    with heads ``mean_of``, also ``relevant`` and ``sink``: their mean contextual score on the
    prompt's ``rows`` (None for a skipped prompt)."""
    answered = answer_examples(model, examples, intervention=intervention, progress=False, **({"score": rows} if mean_of else {}), **kw)
    picked = tuple(zip(*[(h.layer, h.head) for h in mean_of]))
    out = []
    for a in answered:
        record = {"id": a.example.id, "question_id": a.example.question_id, "gold_position": a.example.meta.get("gold_position"),
                  "response": a.response, "em": float(a.em)}  # fmt: skip
        if mean_of:
            record.update({span: float(a.scores[span][picked].mean()) if a.scores else None for span in ("relevant", "sink")})
        out.append(record)
    return out


def _cell(records: list[dict], baseline: list[dict] | None = None) -> dict:
    """``em``, ``n``, the Wilson interval and, given the baseline's records on the same prompts,
    the paired difference from it."""
    ems = [r["em"] for r in records]
    em, n = float(np.mean(ems)), len(ems)
    low, high = em_interval(em, n)
    out = {"em": em, "n": n, "em_low": low, "em_high": high, "diff": None, "diff_low": None, "diff_high": None}
    if baseline is not None:
        if [r["id"] for r in baseline] != [r["id"] for r in records]:
            raise ValueError("a setting and the baseline were run on different prompts: no paired difference")
        d = paired_difference([r["em"] for r in baseline], ems, [r["question_id"] for r in records])
        out.update(diff=d.mean, diff_low=d.low, diff_high=d.high)
    return out


Cells = list[tuple[dict, list[dict], bool]]
"""An experiment's settings in the order of its table, each with every prompt's record under it
(:func:`answer_records`) and whether it is compared with the baseline (the first cell that is not) as a paired difference."""


def compensation_cells(
    model,
    examples: Sequence[Example],
    ranked: Sequence[Head],
    *,
    taus: Sequence[float] = TAUS.default,
    ks: Sequence[int | str] = COMPENSATION_KS.default,
    random_tau: float = RANDOM_TAU.default,
    seed: int = 0,
    span: str = "relevant",
    progress: bool = True,
    cache: RowCache | None = None,
    **answer_kw,
) -> Cells:
    """Every prompt's answer in each cell of :func:`compensation_experiment` (settings ``method,
    k, tau``); its table is :func:`cells_table` of these."""
    cache = cache if cache is not None else RowCache()
    taus, ks, random_tau = TAUS.check(taus), COMPENSATION_KS.check(ks), RANDOM_TAU.check(random_tau)
    info = model_info(model)
    by = _split(examples)
    ks_ = _head_counts(ks, ranked, info.n_total_heads)
    unmodified = [(variant, method) for variant, method in (("long", "baseline"), ("gold", "gold"), ("negative", "negative")) if by[variant]]
    # contextual heads always also at the control's τ, so that random and contextual heads compare at one τ
    grid = [("contextual", k, t) for k in ks_ for t in dict.fromkeys([*taus, random_tau])] + [("random", k, random_tau) for k in ks_]
    heads_of = {(method, k): list(ranked[:k]) if method == "contextual" else random_heads(info.n_layers, info.n_heads, k, seed=seed + k, layers=info.attn_layers)
                for method, k, _ in grid}  # fmt: skip
    key = {cell: [*cell, [list(h) for h in heads_of[cell[:2]]], "per prompt"] for cell in grid}
    cache.expect([[method, "per prompt"] for _, method in unmodified] + list(key.values()))
    cells: Cells = []
    for variant, method in unmodified:
        records = cache([method, "per prompt"], lambda: answer_records(model, by[variant], **answer_kw))
        cells.append(({"method": method, "k": None, "tau": None}, records, False))
    for method, k, tau in tqdm(grid, desc="compensation", disable=not progress):
        heads = heads_of[method, k]
        compute = lambda: answer_records(model, by["long"], compensation_intervention(model, heads, tau=tau, span=span), **answer_kw)  # noqa: E731
        cells.append(({"method": method, "k": k, "tau": tau}, cache(key[method, k, tau], compute), True))
    return cells


def cells_table(cells: Cells, columns: Sequence[str]) -> tuple[pd.DataFrame, list[dict]]:
    """The table of ``cells`` (a row per setting: :func:`_cell`, paired against the first cell
    where marked) and every prompt's answer under every setting (``answers.csv``)."""
    base = cells[0][1]
    rows = [{**setting, **_cell(records, base if paired else None)} for setting, records, paired in cells]
    answers = [{**setting, **r} for setting, records, _ in cells for r in records]
    return pd.DataFrame(rows, columns=list(columns)), answers


def concat_cells(parts: Sequence[Cells]) -> Cells:
    """The cells of several parts of one run (each on its own block of questions) as one run's:
    the same settings, every prompt's record in part order."""
    first = parts[0]
    for i, other in enumerate(parts[1:], start=1):
        if [(s, p) for s, _, p in other] != [(s, p) for s, _, p in first]:
            raise InputError(f"part {i} ran other settings than part 0; not parts of one run")
    return [(setting, [r for part in parts for r in part[j][1]], paired) for j, (setting, _, paired) in enumerate(first)]


def compensation_experiment(
    model,
    examples: Sequence[Example],
    ranked: Sequence[Head],
    *,
    taus: Sequence[float] = TAUS.default,
    ks: Sequence[int | str] = COMPENSATION_KS.default,
    random_tau: float = RANDOM_TAU.default,
    seed: int = 0,
    span: str = "relevant",
    progress: bool = True,
    cache: RowCache | None = None,
    answers: list | None = None,
    **answer_kw,
) -> pd.DataFrame:
    """EM per ``method, k, tau``: ``contextual`` (top-k of ``ranked``) for every τ and for
    ``random_tau``, ``random`` (k seeded random heads) at ``random_tau``, and the ``baseline`` (long prompts, no
    intervention), ``gold`` and ``negative`` prompts (k and τ empty). With a ``cache``, cells
    already in it are not run again (see :mod:`lens_focus.cache`); ``answers`` gets every
    prompt's answer under every setting."""
    cells = compensation_cells(model, examples, ranked, taus=taus, ks=ks, random_tau=random_tau, seed=seed, span=span,
                               progress=progress, cache=cache, **answer_kw)  # fmt: skip
    table, every = compensation_table(cells)
    if answers is not None:
        answers += every
    return table


def compensation_table(cells: Cells) -> tuple[pd.DataFrame, list[dict]]:
    """:func:`cells_table` of :func:`compensation_cells`: the Figure 3 table (``k`` an integer
    column with gaps) and every prompt's answer."""
    table, answers = cells_table(cells, COMPENSATION_COLUMNS)
    return table.astype({"k": "Int64"}), answers


def sweep_cells(
    model,
    examples: Sequence[Example],
    directions,
    ranked: Sequence[Head],
    *,
    alphas: Sequence[float] = ALPHAS.default,
    ks: Sequence[int | str] = SWEEP_KS.default,
    progress: bool = True,
    cache: RowCache | None = None,
    **answer_kw,
) -> Cells:
    """Every prompt's answer in each cell of :func:`sweep_experiment` (settings ``k, alpha``, in
    the order of its table); the α = 0 cells share the unmodified model's records, run once.
    Its table is :func:`sweep_table` of these."""
    cache = cache if cache is not None else RowCache()
    alphas, ks = ALPHAS.check(alphas), SWEEP_KS.check(ks)
    info = model_info(model)
    long = _split(examples)["long"]
    ks_ = _head_counts(ks, ranked, info.n_total_heads)
    grid = [(k, a) for k in ks_ for a in sorted({0.0, *map(float, alphas)})]
    key = {(k, alpha): ["focus", alpha, [list(h) for h in ranked[:k]], "per prompt"] for k, alpha in grid if alpha}
    cache.expect([["baseline", "per prompt"], *key.values()])
    base = cache(["baseline", "per prompt"], lambda: answer_records(model, long, **answer_kw))
    cells: Cells = []
    for k, alpha in tqdm(grid, desc="focus sweep", disable=not progress):
        if alpha == 0:
            cells.append(({"k": k, "alpha": 0.0}, base, False))
            continue
        heads = list(ranked[:k])
        records = cache(key[k, alpha], lambda: answer_records(model, long, focus_intervention(model, directions, heads, alpha=alpha), **answer_kw))
        cells.append(({"k": k, "alpha": float(alpha)}, records, True))
    return cells


def sweep_table(cells: Cells) -> tuple[pd.DataFrame, list[dict]]:
    """The Figure 4 table of :func:`sweep_cells` (each α ≠ 0 paired against the unmodified model)
    and every prompt's answer, the unmodified model's once (``k = 0, alpha = 0``)."""
    base = next(records for _, records, paired in cells if not paired)
    rows = [{**setting, **_cell(records, base if paired else None)} for setting, records, paired in cells]
    answers = [{"k": 0, "alpha": 0.0, **r} for r in base] + [{**setting, **r} for setting, records, paired in cells if paired for r in records]
    return pd.DataFrame(rows, columns=SWEEP_COLUMNS), answers


def sweep_experiment(
    model,
    examples: Sequence[Example],
    directions,
    ranked: Sequence[Head],
    *,
    alphas: Sequence[float] = ALPHAS.default,
    ks: Sequence[int | str] = SWEEP_KS.default,
    progress: bool = True,
    cache: RowCache | None = None,
    answers: list | None = None,
    **answer_kw,
) -> pd.DataFrame:
    """EM per ``k, alpha`` with ``alpha · d`` on the top-k heads of ``ranked`` (long prompts).
    α = 0, the unmodified model, is always included (added when ``alphas`` lacks it): run once
    and shared by every k. With a ``cache``, cells already in it are not run again; ``answers``
    gets every prompt's answer under every setting."""
    cells = sweep_cells(model, examples, directions, ranked, alphas=alphas, ks=ks, progress=progress, cache=cache, **answer_kw)
    table, every = sweep_table(cells)
    if answers is not None:
        answers += every
    return table


def focus_records(
    model,
    examples: Sequence[Example],
    directions,
    heads: Sequence[Head],
    *,
    intervene: Sequence[Head] | None = None,
    alphas: Sequence[float] = TABLE_ALPHAS.default,
    rows: str = ROWS.default,
    progress: bool = True,
    cache: RowCache | None = None,
    **answer_kw,
) -> list[dict]:
    """The records of :func:`focus_scores` before its table: per α, intervened heads, reported
    head and span, the ``score`` averaged over ``n`` prompts (records of several parts of one
    run, each on its own questions, join by :func:`focus_table`)."""
    cache = cache if cache is not None else RowCache()
    alphas = TABLE_ALPHAS.check(alphas)
    by = _split(examples)
    intervene = list(heads if intervene is None else intervene)
    wanted = [("long", s, s) for s in ("relevant", "irrelevant", "irrelevant_max", "sink")]
    if by["gold"]:
        wanted += [("gold", "relevant", "gold_relevant"), ("gold", "sink", "gold_sink")]

    def one(alpha: float) -> list[dict]:
        make = focus_intervention(model, directions, intervene, alpha=alpha) if alpha else None
        means, counts = {}, {}
        for variant in {w[0] for w in wanted}:
            answered = [a for a in answer_examples(model, by[variant], intervention=make, score=rows, progress=False, **answer_kw) if a.scores]
            if not answered:
                raise InputError(f"no {variant} answer could be scored at alpha={alpha}")
            for span in {w[1] for w in wanted if w[0] == variant}:
                having = [a.scores[span] for a in answered if span in a.scores]
                means[variant, span], counts[variant, span] = np.mean(having, axis=0), len(having)
        return [{"intervened": len(intervene), "alpha": float(alpha), "layer": layer, "head": head, "span": name,
                 "score": float(means[variant, span][layer, head]), "n": counts[variant, span]}
                for variant, span, name in wanted for layer, head in heads]  # fmt: skip

    # α = 0 intervenes on nothing: one cell whichever heads the others intervene on
    key = {alpha: ["table3", float(alpha), [list(h) for h in heads]] + ([] if not alpha or intervene == list(heads) else [[list(h) for h in intervene]])
           + ([] if rows == "generation" else [rows]) + ["with n"] for alpha in [0.0, *[a for a in alphas if a != 0]]}  # fmt: skip
    cache.expect(key.values())
    records = []
    for alpha in tqdm(key, desc="table 3", disable=not progress):
        records += cache(key[alpha], lambda: one(alpha))
    return records


def focus_table(records: Sequence[dict]) -> pd.DataFrame:
    """The Table 3 frame of :func:`focus_records` (of one process, or of every part of a run put
    together: a head's scores from several parts are averaged weighted by their prompts), with
    ``delta`` against α = 0 (intervening on nothing: shared by every ``intervened``)."""
    keys = ["intervened", "alpha", "layer", "head", "span"]
    frame = pd.DataFrame(list(records)).assign(weighted=lambda f: f.score * f.n)
    table = frame.groupby(keys, sort=False, as_index=False)[["weighted", "n"]].sum()
    table["score"] = table.weighted / table.n
    zero = table[table.alpha == 0].drop_duplicates(["layer", "head", "span"]).set_index(["layer", "head", "span"])["score"]
    table["delta"] = [s - zero[(l, h, sp)] for l, h, sp, s in zip(table["layer"], table["head"], table["span"], table["score"])]
    return table[TABLE3_COLUMNS]


def focus_scores(
    model,
    examples: Sequence[Example],
    directions,
    heads: Sequence[Head],
    *,
    intervene: Sequence[Head] | None = None,
    alphas: Sequence[float] = TABLE_ALPHAS.default,
    rows: str = ROWS.default,
    progress: bool = True,
    cache: RowCache | None = None,
    **answer_kw,
) -> pd.DataFrame:
    """Paper Table 3: per α (0 included), the scores of ``heads`` with ``α · d`` on the heads
    ``intervene`` (default: ``heads`` themselves, the table's left half; the paper's right half
    intervenes on the top 20 and reports the top 5): ``relevant``, ``irrelevant``, ``irrelevant_max``, ``sink`` on long prompts and
    ``gold_relevant``, ``gold_sink`` on gold-only prompts; ``delta`` against α = 0. With a
    ``cache``, the α already in it are not run again."""
    return focus_table(focus_records(model, examples, directions, heads, intervene=intervene, alphas=alphas, rows=rows,
                                     progress=progress, cache=cache, **answer_kw))  # fmt: skip
