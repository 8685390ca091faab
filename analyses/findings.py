"""What a committed run shows, in a few paragraphs written from its files: the README's results
are these paragraphs (``python -m lens_focus.commands.docs`` writes them, a test keeps them current).

Every number is read from the run's step folders; every stated change follows one rule
(:func:`lens_focus.stats.verdict`: a rise or a fall only when its paired 95% interval excludes 0,
else "no measurable effect", with the numbers); every number set beside the paper's names what
differs (model and head count, data and documents, row convention, k, τ, length).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from lens_focus.stats import difference_text, em_interval, overlap_chance, paired_difference, verdict

from . import top_k
from .task_tables import STD, paired_differences, prompts_per_cell

PAPER_MODEL = "Llama-3.2-3B-Instruct (672 heads; NaturalQuestions, 20 documents, the answer's own rows)"


def _done(folder: Path) -> bool:
    return (folder / "done.json").exists()


def _em(e: float, n: int) -> str:
    lo, hi = em_interval(e, n)
    return f"{e:.2f} [{lo:.2f}, {hi:.2f}]"


def _plan(run: Path) -> dict:
    return json.loads((run / "plan.json").read_text()) if (run / "plan.json").exists() else {}


def _setting(summary: dict, run: Path) -> str:
    m, plan = summary["model"], _plan(run)
    data = summary.get("data")
    data = data.get("data") if isinstance(data, dict) else data  # summaries written before the arguments were recorded flat
    n_docs = summary.get("n_docs", plan.get("n_docs"))
    return f"{m['name']} ({m['n_layers'] * m['n_heads']} heads; {Path(str(data)).name}, {n_docs} documents, rows `{summary.get('rows', 'generation')}`)"


def _change(mean: float, low: float, high: float) -> str:
    """A paired difference with its interval and verdict, to sit in a list: ``+0.111 [+0.056, +0.181] a rise``."""
    return difference_text(mean, low, high).replace("; ", " ")


def _grid(t: pd.DataFrame, index: str, columns: str, label) -> str:
    """A Markdown table of paired differences (``diff [low, high]`` and its verdict) with ``index`` down and ``columns`` across."""
    cols = sorted(t[columns].unique())
    lines = [f"| {index} | " + " | ".join(label(c) for c in cols) + " |", "|---|" + "---|" * len(cols)]
    for i, g in t.groupby(index, sort=True):
        by = {r[columns]: r for _, r in g.iterrows()}
        cells = [_change(by[c]["diff"], by[c]["diff_low"], by[c]["diff_high"]) if c in by else "" for c in cols]
        lines.append(f"| {i:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _between(answers: pd.DataFrame, before: dict, after: dict):
    """The paired difference of EM from the setting ``before`` to ``after`` (column values picking
    each setting's rows of ``answers.csv``), over the prompts both answered."""
    def pick(where: dict) -> pd.DataFrame:
        rows = answers
        for col, value in where.items():
            rows = rows[np.isclose(rows[col].astype(float), value)] if isinstance(value, float) else rows[rows[col] == value]
        return rows.set_index("id")

    a, b = pick(before), pick(after)
    ids = a.index.intersection(b.index)
    return paired_difference(a.em.loc[ids].to_numpy(), b.em.loc[ids].to_numpy(), a.question_id.loc[ids].to_numpy())


def _shape_of_compensation(t: pd.DataFrame, answers: pd.DataFrame) -> str:
    """Where the curves of Figure 3 take the paper's shape: EM over k at each τ < 1 (up to its peak,
    then beyond it), τ > 1, random heads."""
    ctx = t[t.method == "contextual"]
    lines = []
    at = lambda k, tau: {"method": "contextual", "k": float(k), "tau": float(tau)}  # noqa: E731
    for tau in sorted(ctx.tau[ctx.tau < 1].unique()):
        curve = ctx[np.isclose(ctx.tau, tau)].sort_values("k")
        first, peak, last = curve.iloc[0], curve.loc[curve.em.idxmax()], curve.iloc[-1]
        parts = []
        if int(peak.k) != int(first.k):
            d = _between(answers, at(first.k, tau), at(peak.k, tau))
            parts.append(f"the top {int(first.k)} → the top {int(peak.k)} (its peak): {_change(d.mean, d.low, d.high)}")
        if int(last.k) != int(peak.k):
            d = _between(answers, at(peak.k, tau), at(last.k, tau))
            parts.append(f"the top {int(peak.k)} → the top {int(last.k)}: {_change(d.mean, d.low, d.high)}")
        if parts:
            lines.append(f"at τ = {tau:g}, " + ", ".join(parts))
    if lines:
        lines[-1] += " (the paper: EM rises from the top 1 to the top 20 heads at every τ < 1 and falls with more; at τ = 0.1 on 600 heads below the baseline)"
    high = ctx[ctx.tau > 1]
    if not high.empty:
        falls = sum(r.diff_high < 0 for r in high.itertuples())
        lines.append(f"τ > 1 lowers EM measurably in {falls} of its {len(high)} settings (the paper: it falls toward the negative baseline)")
    rnd = t[t.method == "random"]
    for r in rnd.itertuples():
        if int(r.k) > 1 and not ctx[(ctx.k == r.k) & np.isclose(ctx.tau, r.tau)].empty:
            d = _between(answers, {"method": "random", "k": float(r.k), "tau": float(r.tau)}, {"method": "contextual", "k": float(r.k), "tau": float(r.tau)})
            lines.append(f"the top {int(r.k)} against {int(r.k)} random heads at τ = {r.tau:g}: {_change(d.mean, d.low, d.high)}")
    return ("Paired between settings: " + "; ".join(lines) + ".") if lines else ""


def _shape_of_sweep(t: pd.DataFrame, answers: pd.DataFrame) -> str:
    """Where Figure 4 takes the paper's shape: more than 20 heads, gentle positive α, α = 1, negative α."""
    steered = t[t.alpha != 0]
    lines = []
    ks = sorted(int(k) for k in steered.k.unique())
    if 20 in ks and ks[-1] > 20:
        alpha = steered[steered.k == 20].loc[lambda f: f.em.idxmax()].alpha
        d = _between(answers, {"k": 20, "alpha": float(alpha)}, {"k": ks[-1], "alpha": float(alpha)})
        lines.append(f"at α = {alpha:g}, {ks[-1]} heads against the top 20: {_change(d.mean, d.low, d.high)} (the paper: more than 20 heads always worse)")
    if (steered.alpha == 1.0).any() and 20 in ks:
        r = steered[(steered.k == 20) & (steered.alpha == 1.0)].iloc[0]
        lines.append(f"α = 1 on the top 20 against the unmodified model: {_change(r['diff'], r.diff_low, r.diff_high)} (the paper: 0.594 → 0.458)")
    gentle = steered[(steered.alpha > 0) & (steered.alpha <= 0.5) & (steered.k <= 20)]
    if not gentle.empty:
        rises = sum(r.diff_low > 0 for r in gentle.itertuples())
        lines.append(f"0 < α ≤ 0.5 on the top 1–20 heads raises EM measurably in {rises} of its {len(gentle)} settings (the paper: a consistent rise)")
    negative = steered[steered.alpha < 0]
    if not negative.empty:
        falls = sum(r.diff_high < 0 for r in negative.itertuples())
        lines.append(f"negative α lowers EM measurably in {falls} of its {len(negative)} settings (the paper: below the baseline)")
    return ("Paired between settings: " + "; ".join(lines) + ".") if lines else ""


def heads(run: Path) -> str | None:
    """Figure 2 and EM by position (step ``score``)."""
    step = run / "score"
    if not _done(step):
        return None
    s = json.loads((step / "summary.json").read_text())
    n_total = s["model"]["n_layers"] * s["model"]["n_heads"]
    spars = {r["threshold"]: r["n_heads"] for r in s["sparsity"]}
    k = top_k(n_total)
    layers = sorted(int(l) for l, _ in s["top_heads"][:k])
    em = pd.read_csv(step / "em.csv")
    long = em[(em.variant == "long") & (em.gold_position.astype(str) != "all")].assign(p=lambda f: f.gold_position.astype(float)).sort_values("p")
    mean = em[(em.variant == "long") & (em.gold_position.astype(str) == "all")].iloc[0]
    gold = em[em.variant == "gold"]
    neg = em[em.variant == "negative"]
    curve = " / ".join(_em(r.em, int(r.n)) for r in long.itertuples())
    positions = " / ".join(f"{int(p)}" for p in long.p)
    ends, middle = (long.em.iloc[0], long.em.iloc[-1]), long.em.iloc[1:-1]
    shape = "a U: both ends above every middle position" if len(long) > 2 and min(ends) > middle.max() else "no U"
    text = (f"**Where the contextual heads sit (Figure 2).** {spars.get(0.1, 0)} of {n_total} heads "
            f"({100 * spars.get(0.1, 0) / n_total:.1f}%) score above 0.1 on the relevant document and {spars.get(0.2, 0)} above 0.2; "
            f"the top {k} sit in layers {layers[0]}–{layers[-1]} of 0–{s['model']['n_layers'] - 1} (median {int(np.median(layers))}). "
            f"The paper, on {PAPER_MODEL}: 37 (5.5%) above 0.1 and 2 (0.3%) above 0.2, most in layers 8–18 of 0–27; "
            f"here {_setting(s, run)}.\n\n"
            f"**Lost in the middle.** EM on {int(mean.n / len(long))} held-out questions")  # fmt: skip
    if not gold.empty:
        text += f" is {_em(gold.em.iloc[0], int(gold.n.iloc[0]))} with the relevant document alone and"
    text += (f" {curve} with it at position {positions} of {s.get('n_docs', _plan(run).get('n_docs'))} (mean {_em(mean.em, int(mean.n))}, n = {int(mean.n)}"
             + (f"; without it {neg.em.iloc[0]:.2f}" if not neg.empty else "") + f"): {shape}. The paper's means: 0.847 gold only, 0.594 long, 0.276 without it.")
    return text


def compensation(run: Path) -> str | None:
    """Figure 3 (step ``compensation``)."""
    step = run / "compensation"
    if not _done(step):
        return None
    t = pd.read_csv(step / "compensation.csv")
    base = t[t.method == "baseline"].iloc[0]
    ctx, rnd = t[t.method == "contextual"], t[t.method == "random"]
    best = ctx.loc[ctx.em.idxmax()]
    taus = ", ".join(f"{x:g}" for x in sorted(ctx.tau.unique()))
    ks = ", ".join(str(int(k)) for k in sorted(ctx.k.unique()))
    paper = (f"The paper, over τ ∈ {{0.1, 0.3, 0.6, 1.5, 1000}} and k from 1 to 600 on {PAPER_MODEL}: 0.594 → 0.916 at the top 20, τ = 0.1; "
             f"τ = 1000 falls to 0.320; here τ ∈ {{{taus}}}, k ∈ {{{ks}}}.")  # fmt: skip
    head = f"**Attention compensation (Figure 3).** On {int(base.n)} held-out prompts the unmodified model's EM is {_em(base.em, int(base.n))}"
    if "diff" not in t.columns or ctx["diff"].isna().all():  # a run that kept no answer per prompt: EMs only
        controls = "; ".join(f"{int(r.k)} random heads at τ = {r.tau:g}: {_em(r.em, int(r.n))}" for r in rnd.itertuples())
        return (f"{head}; on the top {int(best.k)} contextual heads at τ = {best.tau:g}, {_em(best.em, int(best.n))}; {controls}. This run kept no "
                f"answer per prompt, so no paired difference says whether a change is a rise. {paper}")  # fmt: skip
    gold = t[t.method == "gold"]
    text = (f"{head}" + (f" ({_em(gold.em.iloc[0], int(gold.n.iloc[0]))} with the relevant document alone)" if not gold.empty else "")
            + f"; the best setting, the top {int(best.k)} contextual heads at τ = {best.tau:g}, gives {_em(best.em, int(best.n))}. "
            "Paired differences from the unmodified model on the same prompts, contextual heads by τ:\n\n"
            + _grid(ctx.assign(k=ctx.k.astype(float)), "k", "tau", lambda c: f"τ = {c:g}")
            + "\n\nand as many random heads at τ = " + ", ".join(f"{x:g}" for x in sorted(rnd.tau.unique())) + ": "
            + ", ".join(f"k = {int(r.k)}: {_change(r.diff, r.diff_low, r.diff_high)}" for r in rnd.itertuples()) + ". ")  # fmt: skip
    if (step / "answers.csv").exists():
        text += _shape_of_compensation(t, pd.read_csv(step / "answers.csv")) + " "
    return text + paper


def directions(run: Path) -> str | None:
    """Figure 4 and Table 3 (step ``sweep``)."""
    step = run / "sweep"
    if not _done(step):
        return None
    t = pd.read_csv(step / "sweep.csv")
    base = t[t.alpha == 0].iloc[0]
    steered = t[t.alpha != 0]
    best = steered.loc[steered.em.idxmax()]
    parts = [f"**Focus directions (Figure 4, Table 3).** On {int(base.n)} held-out prompts (EM {_em(base.em, int(base.n))} unmodified), "
             f"the best setting is α = {best.alpha:g} on the top {int(best.k)} heads: {_em(best.em, int(best.n))}."]  # fmt: skip
    if "diff" in t.columns and not steered["diff"].isna().all():
        parts.append("Paired differences from the unmodified model on the same prompts:\n\n"
                     + _grid(steered.assign(k=steered.k.astype(float)), "k", "alpha", lambda c: f"α = {c:g}") + "\n\n")  # the next part starts a paragraph
        if (step / "answers.csv").exists():
            parts.append(_shape_of_sweep(t, pd.read_csv(step / "answers.csv")))
    else:
        parts.append("This run kept no answer per prompt, so no paired difference says whether a change is a rise.")
    t3 = pd.read_csv(step / "table3.csv")
    positive = t3[t3.alpha > 0]
    if "intervened" in t3.columns and not positive.empty:
        alpha = positive.alpha.iloc[(positive.alpha - 0.5).abs().argmin()]  # the paper's α = 0.5, or the nearest the run has
        for k, g in positive[positive.alpha == alpha].groupby("intervened"):
            d = g.groupby("span").delta.mean()
            parts.append(f"Table 3 at α = {alpha:g}, the top {k} steered: the top 5 heads' relevant score {d.get('relevant', np.nan):+.3f}, "
                         f"sink {d.get('sink', np.nan):+.3f}, largest irrelevant document {d.get('irrelevant_max', np.nan):+.3f} (means over five heads, "
                         "one run, no interval).")  # fmt: skip
    ks = ", ".join(str(int(k)) for k in sorted(t.k.unique()))
    alphas = ", ".join(f"{a:g}" for a in sorted(steered.alpha.unique()))
    parts.append(f"The paper, on {PAPER_MODEL} with α from −0.5 to 1.0: 0.594 → 0.671 at k = 20, α = 0.3, 0.458 at α = 1.0, more than 20 heads always worse; "
                 f"here k ∈ {{{ks}}}, α ∈ {{{alphas}}}.")  # fmt: skip
    return " ".join(parts).replace("\n\n ", "\n\n")


def seeds(run: Path) -> str | None:
    """Focus directions over seeds (step ``seeds``)."""
    step = run / "seeds"
    if not _done(step):
        return None
    t = pd.read_csv(step / "seeds.csv", dtype={"seed": str})
    s = json.loads((step / "summary.json").read_text())
    parts = [f"**Focus directions over seeds.** Per seed ({', '.join(map(str, s['seeds']))}) the questions are split afresh, heads ranked on "
             f"{s['heads_limit']} training questions, directions trained on {s['train_limit']}, and α = {s['alpha']:g} on the top {s['k']} heads judged "
             f"on {s['test_limit']} held-out questions."]  # fmt: skip
    for setting, g in t.groupby("setting", sort=False):
        em = g[g.metric == "em"].set_index("seed")
        per_seed = ", ".join(f"seed {seed}: {_change(r['diff'], r['diff_low'], r['diff_high'])}" for seed, r in em.drop("all").iterrows())
        pooled = em.loc["all"]
        line = (f"{setting.split(',')[0].capitalize()} directions: EM {pooled.before:.3f} → {pooled.after:.3f} pooled, "
                f"{difference_text(pooled['diff'], pooled.diff_low, pooled.diff_high, n=int(pooled.n), clusters=int(pooled.questions))}; {per_seed}.")
        moved = g[(g.seed == "all") & (g.metric != "em")].set_index("metric")
        if not moved.empty:
            line += " The top heads' " + ", ".join(f"{m} score {r.before:.3f} → {r.after:.3f} ({verdict(r.diff_low, r.diff_high)})" for m, r in moved.iterrows()) + "."
        parts.append(line)
    return " ".join(parts)


def retrieval(run: Path) -> str | None:
    """Retrieval heads and Figure 9 (steps ``retrieval_heads``, ``figure9``)."""
    if not _done(run / "retrieval_heads"):
        return None
    s = json.loads((run / "retrieval_heads" / "summary.json").read_text())
    n_total = s["model"]["n_layers"] * s["model"]["n_heads"]
    span = s.get("span", "answer")  # runs before the span was recorded counted copies into the short answer
    how = "Wu et al.'s score: copies into the clause the question asks for" if span == "needle" else "copies into the short answer (not Wu et al.'s clause)"
    text = (f"**Retrieval heads (Figure 9).** {s['retrieval_heads']} of {n_total} heads ({100 * s['retrieval_heads'] / n_total:.1f}%) score above "
            f"0.1 on the needle test ({how}; {s['counted']} of {s['samples']} needles recalled; Wu et al. find 3–6% on their models).")  # fmt: skip
    j = json.loads((run / "figure9" / "figure9.json").read_text()) if (run / "figure9" / "figure9.json").exists() else {}
    if "overlap" in j:
        chance = overlap_chance(j["overlap"], j["k"], n_total)
        text += (f" {j['overlap']} of the top {j['k']} retrieval heads are also top-{j['k']} contextual heads; two random top-{j['k']} sets of "
                 f"{n_total} heads share {chance.chance:.1f} (p = {chance.p_value:.1g}). The paper: 5 of 20 among 672 heads (chance 0.6).")  # fmt: skip
    elif "skipped" in j:
        text += f" Figure 9 is not drawn: {j['skipped']}."
    return text


def tasks(run: Path) -> str | None:
    """The long-context tasks (step ``evaluation``)."""
    step = run / "evaluation"
    if not _done(step):
        return None
    t = pd.read_csv(step / "task_scores.csv")
    parts = [f"**Long-context tasks (Tables 2, 5–13).** {', '.join(dict.fromkeys(t.task))} at "
             f"{', '.join(str(x) for x in sorted(t.length.unique()))} tokens, {prompts_per_cell(t.n)} per task, length and setting."]
    answers = step / "answers.csv"
    if answers.exists():
        d = paired_differences(pd.read_csv(answers, keep_default_na=False, na_values=[""]))
        for length, g in d[d.task == "all"].groupby("length"):
            parts.append(f"At {length} tokens, each setting against the baseline over every prompt: "
                         + "; ".join(f"{r.setting} {_change(r.diff, r.diff_low, r.diff_high)}" for r in g.itertuples()) + ".")
        cells = d[d.task != "all"]
        rises, falls = int((cells.diff_low > 0).sum()), int((cells.diff_high < 0).sum())
        parts.append(f"The {len(cells)} changes per task, length and setting (evaluation/changes.md): rises {rises}, falls {falls}, "
                     f"no measurable effect {len(cells) - rises - falls}.")
    bounds = t[(t.setting == "baseline") & t.score.isin([0.0, 1.0])]  # every metric scores a prompt in [0, 1]
    if not bounds.empty:
        parts.append("At the baseline " + "; ".join(
            f"{r.task} at {r.length} tokens scores {r.score:g} on every prompt ({'its floor: a setting can only raise it' if r.score == 0 else 'its ceiling: a setting can only lower it'})"
            for r in bounds.itertuples()) + ".")  # fmt: skip
    sink = pd.read_csv(step / "sink_scores.csv")
    std = sink[(sink.task == STD) & sink.sink.notna()]
    if not std.empty:
        n_tasks = sink[sink.task != STD].groupby("length").task.nunique()
        parts.append("The top-5 heads' sink score varies across tasks by " + ", ".join(
            f"{100 * r.sink:.1f} points at {int(r.length)} tokens ({n_tasks[r.length]} tasks)" for r in std.itertuples())
            + " (sample deviation; the paper: 4.4–9.3 points across 16 tasks at 8k and 16k).")  # fmt: skip
    return " ".join(parts)


def window(run: Path) -> str | None:
    """Sliding-window layers (step ``window``)."""
    step = run / "window"
    if not _done(step):
        return None
    j = json.loads((step / "window.json").read_text())
    if "windows" not in j:
        return None
    t = pd.read_csv(step / "window.csv")
    w = min(x for x in j["windows"] if x)
    cells = "; ".join(f"position {r.gold_position}: EM {_em(r.em, int(r.n))}, {r.outside} of {r.scored} outside the window, relevant score of the "
                      f"windowed layers' best head {r.relevant_windowed_max:.3f}, of the full layers' {r.relevant_full_max:.3f}" for r in t.itertuples())  # fmt: skip
    return (f"**Beyond the window.** {sum(1 for x in j['windows'] if x)} of {len(j['windows'])} layers see only their last {w} tokens; "
            f"with {j['n_docs']} documents (prompts of about {int(t.tokens.mean())} tokens): {cells}.")


def task_directions(run: Path) -> str | None:
    """Focus directions for each task category (step ``task_directions``)."""
    step = run / "task_directions"
    if not _done(step):
        return None
    j = json.loads((step / "summary.json").read_text())
    t, own = pd.read_csv(step / "matrix.csv"), pd.read_csv(step / "own_vs_general.csv")
    moved = t[(t.diff_low > 0) | (t.diff_high < 0)]
    trained = ", ".join(f"{r['category']}: {r['tasks']}" for r in j["training"])
    baselines = ", ".join(f"{task} {before:.3f}" for task, before in t.groupby("task", sort=False).before.first().items())
    parts = [f"**Focus directions for each task category (the paper's open question).** Directions trained on each category's own prompts "
             f"({trained}; {j['train_n']} per task at {j['length']} tokens) and the "
             f"general ones, each as {j['setting']} on {j['n']} held-out prompts per task (baseline scores: {baselines}): {len(moved)} of {len(t)} cells of the matrix move "
             "the task's score from the baseline (paired interval excluding 0)"
             + (": " + "; ".join(f"{r.directions} on {r.task} {_change(r.diff, r.diff_low, r.diff_high)}" for r in moved.itertuples()) if len(moved) else "")
             + "."]  # fmt: skip
    if len(own):
        parts.append("A task's own directions against the general ones: "
                     + "; ".join(f"{r.task} {_change(r.diff, r.diff_low, r.diff_high)}" for r in own.itertuples())
                     + f" — own directions beat the general ones on {int((own.diff_low > 0).sum())} of {len(own)} tasks.")  # fmt: skip
    return " ".join(parts)


def distractor_kinds(run: Path) -> str | None:
    """Random against on-topic distractors (step ``distractor_kinds``)."""
    step = run / "distractor_kinds"
    if not _done(step) or not (step / "paired.csv").exists():
        return None
    j = json.loads((step / "summary.json").read_text())
    pair = pd.read_csv(step / "paired.csv", dtype={"gold_position": str}).set_index("gold_position")
    hd, o = pd.read_csv(step / "heads.csv").set_index("distractors"), pd.read_csv(step / "overlap.csv").iloc[0]
    a = pair.loc["all"]
    by_position = "; ".join(f"position {p} {_change(r['diff'], r.diff_low, r.diff_high)}" for p, r in pair.drop(index="all").iterrows())
    k = int(o.k)
    return (f"**Random against on-topic distractors.** The same {int(a.questions)} NQ questions at gold positions "
            f"{', '.join(map(str, j['gold_positions']))} among {j['n_docs']} documents: EM {a.random:.3f} with random distractors, {a.bm25:.3f} with "
            f"BM25's, {_change(a['diff'], a.diff_low, a.diff_high)} (n {int(a.n)}; {by_position}). The top {k} heads share {int(o.shared)} of {k} "
            f"between the two (chance {o.chance:.1f}, p = {o.p_value:.1g}; Spearman ρ of every head's relevant score {o.spearman_relevant:.2f}); "
            f"their relevant score {hd.loc['random', 'top_relevant']:.3f} → {hd.loc['bm25', 'top_relevant']:.3f}, the most attended irrelevant "
            f"document's {hd.loc['random', 'top_irrelevant_max']:.3f} → {hd.loc['bm25', 'top_irrelevant_max']:.3f}, sink "
            f"{hd.loc['random', 'top_sink']:.3f} → {hd.loc['bm25', 'top_sink']:.3f} (means over prompts, no interval).")


SECTIONS = (heads, compensation, directions, seeds, retrieval, tasks, task_directions, distractor_kinds, window)


def findings(run: str | Path) -> str:
    """Every paragraph of ``run`` (a ``lens-focus reproduce`` folder) whose step has finished, in order."""
    run = Path(run)
    return "\n\n".join(p for p in (section(run) for section in SECTIONS) if p)
