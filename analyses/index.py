"""``index.md`` of a ``lens-focus reproduce`` folder: every artefact, linked, beside the result of
the paper it corresponds to, with our number next to the paper's where both exist.

The paper's numbers are those of Llama-3.2-3B-Instruct on NaturalQuestions with 20 documents
(docs/method.md §2–7); ours come from the model and data of the run, read back from the step folders.
A section whose step has not run yet says so instead of failing.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from lens_focus.directions import FocusDirections
from lens_focus.stats import difference_text, em_text, overlap_chance

from . import markdown_table, top_k

PAPER = {
    "sparsity": "2 (0.3%) > 0.2, 37 (5.5%) > 0.1, 113 (16.8%) > 0.05 of 672 heads",
    "locations": "most heads > 0.1 in layers 8–18 of 0–27",
    "top5": "(13,23) (12,1) (15,18) (15,22) (14,2)",
    "em": {"long": 0.594, "gold": 0.847, "negative": 0.276},
    "compensation": "0.916 at top-20, τ = 0.1 (baseline 0.59); τ = 1000 falls to 0.320",
    "sweep": "0.671 at k = 20, α = 0.3 (baseline 0.594); α = 1.0 gives 0.458; more than 20 heads always worse",
    "table3": "α = 0.2: R +0.11, sink −0.11; α = 0.5: R +0.26, sink −0.19 (mean of the top 5)",
    "retrieval": "3–6% of heads score > 0.1 (Wu et al., on their models)",
    "figure9": "5 of the top 20 shared; retrieval heads in every layer, contextual heads in middle and late layers",
    "categories": "34 of 48 task categories improved by some setting (32k and 64k, Table 2)",
    "sink_std": "4.4–9.3 percentage points across 16 tasks (8k and 16k, Tables 12–13)",
}


def _link(out: Path, rel: str, label: str | None = None) -> str:
    return f"[{label or Path(rel).name}]({rel})" if (out / rel).exists() else f"{label or Path(rel).name} (missing)"


def _links(out: Path, *rels: str, optional: tuple[str, ...] = ()) -> str:
    """Links to ``rels`` (a missing one is said missing) and to those of ``optional`` that exist
    (files a step writes only since a later version)."""
    return ", ".join([_link(out, r) for r in rels] + [_link(out, r) for r in optional if (out / r).exists()])


def _heads(pairs) -> str:
    return " ".join(f"({int(l)},{int(h)})" for l, h in pairs)


def _row(what: str, ours: str, paper: str) -> dict:
    return {"": what, "ours": ours, "paper": paper}


ROWS_NOTE = {
    "generation": "Scores average the rows that produce the answer (last prompt token to second-to-last answer token, `rows = generation`); "
                  "the paper's Eq. 1 averages the answer's own rows (`rows = response`), so rankings and counts set beside its numbers differ by that convention.",
    "response": "Scores average the answer's own rows (`rows = response`), the paper's Eq. 1.",
}  # fmt: skip


def _diff_text(r) -> str:
    """A row's paired difference from the unmodified model, when the table has one."""
    r = r.to_dict() if isinstance(r, pd.Series) else r._asdict()  # a row by label or from itertuples
    d = r.get("diff")
    if d is None or pd.isna(d):
        return ""
    return "; paired difference " + difference_text(d, r["diff_low"], r["diff_high"])


def _score_section(out: Path) -> tuple[str, list[dict]]:
    summary = json.loads((out / "score/summary.json").read_text())
    n_total = summary["model"]["n_layers"] * summary["model"]["n_heads"]
    spars = ", ".join(f"{r['n_heads']} ({100 * r['fraction']:.1f}%) > {r['threshold']:g}" for r in summary["sparsity"])
    k = top_k(n_total)
    top = summary["top_heads"][:k]
    layers = sorted(int(l) for l, _ in top)
    rows = [
        _row("heads by relevant score (long prompts)", f"{spars} of {n_total} heads", PAPER["sparsity"]),
        _row(f"where the top {k} sit", f"layers {layers[0]}–{layers[-1]} of 0–{summary['model']['n_layers'] - 1}, median {int(np.median(layers))}", PAPER["locations"]),
        _row("top 5", _heads(top[:5]), PAPER["top5"]),
    ]  # fmt: skip
    t1 = pd.read_csv(out / "score/table1.csv")
    checks = [
        ("R > IR max on correct answers", (t1.correct_R > t1.correct_IR_max).sum(), t1.correct_R.notna().sum()),
        ("R < IR max on wrong answers", (t1.wrong_R < t1.wrong_IR_max).sum(), t1.wrong_R.notna().sum()),
        ("sink higher on gold-only than on long prompts", (t1.gold_sink > t1.long_sink).sum(), t1.gold_sink.notna().sum()),
    ]
    rows += [_row(f"Table 1: {what}", f"{int(k)} of {int(n)} top heads", "5 of 5") for what, k, n in checks]
    em = pd.read_csv(out / "score/em.csv")
    by = {(r.variant, str(r.gold_position)): (r.em, r.n) for r in em.itertuples()}
    positions = [(p, v) for (var, p), v in by.items() if var == "long" and p != "all"]
    curve = " / ".join(f"{float(p):g}: {e:.2f}" for p, (e, _) in sorted(positions, key=lambda x: float(x[0])))
    for variant, label in (("long", "long prompts"), ("gold", "gold only"), ("negative", "negative (no relevant document)")):
        key = (variant, "all") if variant == "long" else next((k for k in by if k[0] == variant), None)
        if key in by:
            e, n = by[key]
            rows.append(_row(f"EM, {label}", em_text(e, int(n)), f"{PAPER['em'][variant]:.3f}"))
    rows.append(_row("EM by position of the relevant document", curve, "U-shaped (lost in the middle)"))
    links = _links(out, "score/head_locations.png", "score/head_locations.html", "score/sparsity.csv", "score/table1.md",
                   "score/em_by_position.png", "score/em.csv", "score/scores.csv", "score/heads.json")  # fmt: skip
    text = (f"Figure 2, Table 1 and EM by position: {summary['examples']} prompts, {summary['scored']} scored, "
            f"skipped {sum(summary['skipped'].values())}. {ROWS_NOTE[summary.get('rows', 'generation')]} "
            "EM with a 95% Wilson interval and its n. "
            f"Files: {links}.\n\n![head locations](score/head_locations.png)\n\n"
            "![EM by position](score/em_by_position.png)")  # fmt: skip
    return text, rows


def _compensation_section(out: Path) -> tuple[str, list[dict]]:
    t = pd.read_csv(out / "compensation/compensation.csv")
    ctx = t[t.method == "contextual"]
    best = ctx.loc[ctx.em.idxmax()]
    rnd = t[t.method == "random"]  # every control, each beside the contextual heads at its k and τ
    high = ctx[(ctx.tau > 1) & (ctx.k == best.k)]
    b = t[t.method == "baseline"].iloc[0]
    rows = [_row("baseline (long prompts, no intervention)", em_text(b.em, int(b.n)), "0.59"),
            _row(f"best EM under compensation: top-{int(best.k)}, τ = {best.tau:g}", em_text(best.em, int(best.n)) + _diff_text(best), PAPER["compensation"])]  # fmt: skip
    for r in rnd.itertuples():  # the control beside contextual heads at the same k and the same τ
        same = ctx[(ctx.k == r.k) & (ctx.tau == r.tau)]
        if not same.empty:
            c = same.iloc[0]
            rows.append(_row(f"top-{int(c.k)} contextual heads, τ = {c.tau:g}", em_text(c.em, int(c.n)) + _diff_text(c), "—"))
        rows.append(_row(f"{int(r.k)} random heads, τ = {r.tau:g}", em_text(r.em, int(r.n)) + _diff_text(r), "near the baseline"))
    if not high.empty:
        h = high.loc[high.tau.idxmax()]
        rows.append(_row(f"top-{int(h.k)}, τ = {h.tau:g} (less attention on the relevant document)", em_text(h.em, int(h.n)) + _diff_text(h), "0.320 at τ = 1000"))
    files = _links(out, "compensation/compensation.png", "compensation/compensation.html", "compensation/compensation.csv", optional=("compensation/answers.csv",))
    text = (f"Figure 3. EM with a 95% Wilson interval; where every prompt's answer was kept (`answers.csv`), each setting's paired difference "
            f"from the baseline on the same prompts with a 95% bootstrap interval over questions. Files: {files}.\n\n![compensation](compensation/compensation.png)")  # fmt: skip
    return text, rows


def _sweep_section(out: Path) -> tuple[str, list[dict]]:
    t = pd.read_csv(out / "sweep/sweep.csv")
    base = t[t.alpha == 0].em.iloc[0]
    steered = t[t.alpha != 0]
    best = steered.loc[steered.em.idxmax()]
    b = t[t.alpha == 0].iloc[0]
    rows = [_row("baseline (α = 0)", em_text(base, int(b.n)), "0.594"),
            _row(f"best EM with focus directions: k = {int(best.k)}, α = {best.alpha:g}", em_text(best.em, int(best.n)) + _diff_text(best), PAPER["sweep"])]  # fmt: skip
    strong = steered[steered.alpha == steered.alpha.max()]
    if not strong.empty and strong.alpha.iloc[0] >= 1:
        rows += [_row(f"α = {r.alpha:g}, k = {int(r.k)}", em_text(r.em, int(r.n)) + _diff_text(r), "0.458 (k = 20)" if r.k == 20 else "—") for r in strong.itertuples()]
    t3 = pd.read_csv(out / "sweep/table3.csv")
    if "intervened" not in t3.columns:  # tables written before the right half existed
        t3 = t3.assign(intervened=t3[["layer", "head"]].drop_duplicates().shape[0])
    for (k, alpha), g in t3[t3.alpha != 0].groupby(["intervened", "alpha"]):
        d = g.groupby("span").delta.mean()
        rows.append(_row(f"Table 3, α = {alpha:g} on the top {k}: mean change over the top {g[['layer', 'head']].drop_duplicates().shape[0]}",
                         f"R {d.get('relevant', np.nan):+.3f}, IR max {d.get('irrelevant_max', np.nan):+.3f}, sink {d.get('sink', np.nan):+.3f}",
                         PAPER["table3"]))  # fmt: skip
    meta = _directions_meta(out)
    if meta:
        prompts = meta.get("prompts", "long")
        rows.append(_row(f"directions: mean relevant score on training rows ({prompts} prompts + gold responses)",
                         f"{meta['relevant_score_at_init']:.3f} → {meta['relevant_score_trained']:.3f} (site {meta.get('site', '?')})",
                         "trained on the gold-only prompt (§3.1); the reference code trains on the long prompt"))  # fmt: skip
    links = _links(out, "sweep/sweep.png", "sweep/sweep.html", "sweep/sweep.csv", "sweep/table3.md", "directions/directions.safetensors", optional=("sweep/answers.csv",))
    return (f"Figure 4 and Table 3 (its left half intervenes on the heads it reports, its right half on the top 20). EM with a 95% Wilson "
            f"interval and, where every answer was kept, the paired difference from α = 0. Files: {links}.\n\n![sweep](sweep/sweep.png)"), rows  # fmt: skip


def _directions_meta(out: Path) -> dict:
    path = out / "directions/directions.safetensors"
    if not path.exists():
        return {}
    d = FocusDirections.load(path)
    return {**d.meta, "site": d.site}


def _retrieval_section(out: Path) -> tuple[str, list[dict]]:
    s = json.loads((out / "retrieval_heads/summary.json").read_text())
    n_total = s["model"]["n_layers"] * s["model"]["n_heads"]
    rows = [
        _row("needle prompts recalled (counted)", f"{s['counted']} of {s['samples']}", "—"),
        _row("retrieval heads (score > 0.1)", f"{s['retrieval_heads']} of {n_total} ({100 * s['retrieval_heads'] / n_total:.1f}%)", PAPER["retrieval"]),
        _row("top 5 retrieval heads", _heads(s["top_heads"][:5]) if s["retrieval_heads"] else "none (no head scores > 0.1)", "—"),
    ]
    j = json.loads((out / "figure9/figure9.json").read_text()) if (out / "figure9/figure9.json").exists() else {}
    if "skipped" in j:
        rows.append(_row("Figure 9", f"not drawn: {j['skipped']}", PAPER["figure9"]))
    if "overlap" in j:
        span = lambda ls: f"layers {min(ls)}–{max(ls)}" if ls else "—"  # noqa: E731
        chance = overlap_chance(j["overlap"], j["k"], n_total)
        rows.append(_row(f"Figure 9: top {j['k']} shared", f"{j['overlap']} of {j['k']} (two random top-{j['k']} sets of {n_total} heads share "
                         f"{chance.chance:.1f}; p = {chance.p_value:.1g}); contextual {span(j['contextual_layers'])}, "
                         f"retrieval {span(j['retrieval_layers'])}", PAPER["figure9"] + " (of 672 heads: chance 0.6)"))  # fmt: skip
    drawn = ("figure9/figure9.png", "figure9/figure9.html", "figure9/figure9.csv") if "overlap" in j else ()
    links = _links(out, "retrieval_heads/retrieval_scores.csv", "retrieval_heads/retrieval_heads.json", *drawn, "figure9/figure9.json")
    image = "\n\n![figure 9](figure9/figure9.png)" if drawn else ""
    return f"Retrieval heads and Figure 9. Files: {links}.{image}", rows


def _tasks_section(out: Path) -> tuple[str, list[dict]]:
    cat = pd.read_csv(out / "evaluation/category_scores.csv")
    cells = cat[cat.category != "overall"]
    base = cells[cells.setting == "baseline"].set_index(["category", "length"]).score
    steered = cells[cells.setting != "baseline"]
    best = steered.groupby(["category", "length"]).score.max()
    improved = int(sum(best[k] > base[k] for k in best.index if k in base.index))
    overall = cat[cat.category == "overall"].pivot_table(index="length", columns="setting", values="score")
    rows = [_row("category × length cells improved by some setting", f"{improved} of {len(best)}", PAPER["categories"])]
    for length, r in overall.iterrows():
        others = ", ".join(f"{s} {r[s] - r['baseline']:+.3f}" for s in overall.columns if s != "baseline")
        rows.append(_row(f"overall score at {length} tokens", f"baseline {r['baseline']:.3f}; {others}", "—"))
    sink = pd.read_csv(out / "evaluation/sink_scores.csv")
    std = sink[sink.task == "STD"]
    if not std.empty:
        ours = ", ".join(f"{100 * r.sink:.1f} points at {int(r.length)} tokens" for r in std.itertuples())
        rows.append(_row("sink score of the top-5 heads: STD across tasks", ours, PAPER["sink_std"]))
    links = _links(out, "evaluation/task_scores.md", "evaluation/category_scores.md", "evaluation/sink_scores.md", "evaluation/scores_vs_length.png",
                   "evaluation/scores_vs_length.html", "evaluation/answers.csv")  # fmt: skip
    n = pd.read_csv(out / "evaluation/task_scores.csv").n
    return (f"Tables 2, 5–13 ({int(n.min())}–{int(n.max())} prompts per task, length and setting). The overall score is the mean of the "
            f"category means, as the paper's; the STD is the sample deviation (ddof 1) across tasks. Files: {links}."), rows  # fmt: skip


def _table1_checks(t1: pd.DataFrame) -> str:
    return (f"R > IR max on correct {(t1.correct_R > t1.correct_IR_max).sum()} of {t1.correct_R.notna().sum()}, "
            f"R < IR max on wrong {(t1.wrong_R < t1.wrong_IR_max).sum()} of {t1.wrong_R.notna().sum()}, "
            f"gold sink > long sink {(t1.gold_sink > t1.long_sink).sum()} of {t1.gold_sink.notna().sum()}")  # fmt: skip


def _rows_section(out: Path) -> tuple[str, list[dict]]:
    runs = {}
    for step in [s for s in ("score", "rows") if (out / s / "summary.json").exists()]:
        summary = json.loads((out / step / "summary.json").read_text())
        runs[summary["rows"]] = (step, summary, pd.read_csv(out / step / "table1.csv"))
    rows = []
    for kind, (step, summary, t1) in sorted(runs.items(), key=lambda kv: kv[0] != "response"):
        n_total = summary["model"]["n_layers"] * summary["model"]["n_heads"]
        spars = ", ".join(f"{r['n_heads']} > {r['threshold']:g}" for r in summary["sparsity"])
        paper = kind == "response"
        rows += [_row(f"`{kind}`: heads by relevant score", f"{spars} of {n_total}", PAPER["sparsity"] if paper else "—"),
                 _row(f"`{kind}`: top 5", _heads(summary["top_heads"][:5]), PAPER["top5"] if paper else "—"),
                 _row(f"`{kind}`: Table 1 over the top heads", _table1_checks(t1), "5 of 5 each" if paper else "—")]  # fmt: skip
    tops = [set(map(tuple, s["top_heads"][:20])) for _, s, _ in runs.values()]
    if len(tops) == 2:
        rows.append(_row("top 20 shared by the two conventions", f"{len(tops[0] & tops[1])} of 20", "—"))
    text = ("The same prompts and answers scored under both row conventions: `response` averages the answer's own rows (the paper's Eq. 1), "
            "`generation` the rows that produce the answer (the last prompt token to the second-to-last answer token). "
            f"Files: {_links(out, 'score/table1.md', 'score/sparsity.csv', 'rows/table1.md', 'rows/sparsity.csv', 'rows/scores.csv')}.")  # fmt: skip
    return text, rows


def _seeds_section(out: Path) -> tuple[str, list[dict]]:
    t = pd.read_csv(out / "seeds/seeds.csv", dtype={"seed": str})
    s = json.loads((out / "seeds/summary.json").read_text())
    rows = []
    for r in t.itertuples():
        if r.metric == "em":
            ours = f"{r.before:.3f} [{r.before_low:.3f}, {r.before_high:.3f}] → {r.after:.3f} [{r.after_low:.3f}, {r.after_high:.3f}]"
        else:
            ours = f"{r.before:.4f} → {r.after:.4f}"
        ours += "; paired difference " + difference_text(r.diff, r.diff_low, r.diff_high, n=r.n, clusters=r.questions)
        rows.append(_row(f"seed {r.seed}, {r.setting}: {r.metric}", ours, "EM 0.594 → 0.671 (k = 20, α = 0.3, one run)" if r.metric == "em" else "—"))
    text = (f"Seeds {', '.join(map(str, s['seeds']))}: per seed the questions are drawn afresh, the heads ranked on {s['heads_limit']} "
            f"training questions, directions trained on {s['train_limit']} training questions, one sequence each ({' and '.join(s['prompts'])} prompts "
            f"+ gold responses; `long`: one long prompt per question, the relevant document's position rotating, as the reference code trains; "
            f"`gold`: the gold-only prompt, as the paper's §3.1 describes), and α = {s['alpha']:g} on the "
            f"top {s['k']} heads judged on {s['test_limit']} held-out questions per seed. Relevant and sink: mean over each seed's top {s['top']} heads. "
            "Differences are paired (same prompts) with a 95% bootstrap interval over questions; EM with 95% Wilson intervals. "
            f"Files: {_links(out, 'seeds/seeds.md', 'seeds/seeds.csv', 'seeds/answers.csv', 'seeds/seeds.html')}.\n\n![seeds](seeds/seeds.png)")  # fmt: skip
    return text, rows


def _window_section(out: Path) -> tuple[str, list[dict]]:
    j = json.loads((out / "window/window.json").read_text())
    if "windows" not in j:  # the step's reason for not drawing it
        return f"Not drawn: {j['skipped']}.", []
    t = pd.read_csv(out / "window/window.csv")
    window = min(w for w in j["windows"] if w)
    kinds = f"{sum(1 for w in j['windows'] if w)} windowed and {sum(1 for w in j['windows'] if not w)} full-attention layers"
    text = (f"The relevant document at positions {', '.join(map(str, t.gold_position))} of {j['n_docs']} documents "
            f"(prompts of {t.tokens.min()}–{t.tokens.max()} tokens; the model has {kinds}, window {window}). "
            "*inside* / *outside*: all / none of the relevant document within the window of the first answer row. "
            "Scores: mean over the kind's heads, and its best head. EM with a 95% Wilson interval. "
            f"Files: {_links(out, 'window/window.csv', 'window/window.html', 'window/window.json', 'window/em.csv', 'window/scores.csv')}."
            "\n\n![window](window/window.png)")  # fmt: skip
    rows = [
        _row(f"position {r.gold_position} (inside {r.inside}, partly {r.partly}, outside {r.outside} of {r.scored})",
             f"EM {r.em:.3f} [{r.em_low:.2f}, {r.em_high:.2f}] (n = {r.n}); relevant: windowed {r.relevant_windowed_mean:.4f} / best {r.relevant_windowed_max:.3f}, "
             f"full {r.relevant_full_mean:.4f} / best {r.relevant_full_max:.3f}; sink: windowed {r.sink_windowed_mean:.3f}, full {r.sink_full_mean:.3f}", "—")
        for r in t.itertuples()
    ]  # fmt: skip
    return text, rows


SECTIONS: list[tuple[str, str, Callable[[Path], tuple[str, list[dict]]]]] = [
    ("Contextual heads (Figure 2, Table 1, EM by position)", "score", _score_section),
    ("Which rows a score averages: both conventions side by side", "rows", _rows_section),
    ("Attention compensation (Figure 3)", "compensation", _compensation_section),
    ("Focus directions (Figure 4, Table 3)", "sweep", _sweep_section),
    ("Retrieval heads (Figure 9)", "retrieval_heads", _retrieval_section),
    ("Long-context tasks (Table 2 shape, Tables 12–13)", "evaluation", _tasks_section),
    ("Focus directions over seeds, trained on long and on gold-only prompts", "seeds", _seeds_section),
    ("Sliding-window layers: the relevant document inside and beyond the window", "window", _window_section),
]
OPTIONAL = {"rows", "seeds", "window"}
"""Sections left out of the index when their step was never run (runs made before the step existed)."""


def versions_line(versions: dict) -> str:
    """``python 3.11.7, torch 2.13.0, ..., lens_focus 0.1.0 (commit 1a2b3c4d)`` from a versions record."""
    names = [f"{k} {v}" for k, v in versions.items() if k != "commit" and v]
    commit = versions.get("commit")
    return ", ".join(names) + (f" (commit {commit[:12]}{'+dirty' if commit.endswith('+dirty') else ''})" if commit else "")


def _versions_section(out: Path, versions: dict) -> str:
    """The versions the index is written under, and any step folder whose summary records others."""
    text = f"Made with {versions_line(versions)}."
    for summary in sorted(out.glob("*/summary.json")):
        theirs = json.loads(summary.read_text()).get("versions")
        if theirs is None:
            text += f" Step `{summary.parent.name}` records no versions (run before they were recorded)."
        elif {k: v for k, v in theirs.items() if k != "commit"} != {k: v for k, v in versions.items() if k != "commit"}:
            text += f" Step `{summary.parent.name}` ran under {versions_line(theirs)}."
    return text + "\n"


def write_index(out: str | Path, *, model_name: str, plan=None, versions: dict | None = None) -> Path:
    """Write ``out/index.md`` from what the step folders hold; returns its path. ``versions`` (see
    :func:`lens_focus.provenance.versions`) is the environment the run is finished in."""
    out = Path(out)
    parts = [f"# Reproduction: {model_name}\n",
             "Every figure and table of the paper regenerated by `lens-focus reproduce`; each section links the files and "
             "puts our number beside the paper's (Llama-3.2-3B-Instruct, NaturalQuestions, 20 documents). "
             "The plan of the run (sizes, data, seed) is in [plan.json](plan.json)"
             + (f"; data `{plan.data}`" if plan is not None else "") + ".\n"]  # fmt: skip
    if versions is not None:
        parts.append(_versions_section(out, versions))
    if (out / "explore.html").exists():
        parts.append("**Explore the run:** [explore.html](explore.html), one page that works offline: click a head on the map, "
                     "read its attention over an example's prompt and documents, without and with compensation and focus "
                     "directions, with each answer and its EM.\n")  # fmt: skip
    for title, step, section in SECTIONS:
        if step in OPTIONAL and not (out / step).exists():
            continue
        parts.append(f"## {title}\n")
        if not (out / step / "done.json").exists():
            parts.append(f"Not run yet (step `{step}`).\n")
            continue
        seconds = json.loads((out / step / "done.json").read_text()).get("seconds")
        text, rows = section(out)
        parts.append(text + (f"\n\nStep `{step}`: {seconds} s." if seconds is not None else "") + "\n")
        parts.append(markdown_table(pd.DataFrame(rows, columns=["", "ours", "paper"])))
    path = out / "index.md"
    path.write_text("\n".join(parts))
    return path
