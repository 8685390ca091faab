"""Print the numbers figures/smollm2/README.md quotes, read from the run outputs beside it."""
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from analyses import compensation, em_positions, sweep as sweep_analysis  # noqa: E402
from lens_focus.plots import write_figure  # noqa: E402

root = Path(__file__).parent / (sys.argv[1] if len(sys.argv) > 1 else "facts")
score = root / "score"
answers = pd.DataFrame([json.loads(line) for line in open(score / "examples.jsonl")])
answers = answers.rename(columns={"condition": "variant"})
neg = root / "negative_em.json"
table = em_positions.compute(answers[["variant", "gold_position", "em"]])
if neg.exists():  # answered by the pipeline's last step, on the same questions
    n = json.loads(neg.read_text())
    table = pd.concat([table, pd.DataFrame([{"variant": "negative", "gold_position": None, "em": n["em"], "n": n["n"]}])])
table.to_csv(score / "em.csv", index=False)
write_figure(em_positions.figure(table), score / "em_by_position")
print(table.to_string(index=False))
gold = table[table.variant == "gold"].em.item()
long = table[(table.variant == "long") & (table.gold_position == "all")].em.item()
print(f"gold {gold:.3f}  long {long:.3f}  gap {gold - long:.3f}")

scores = pd.read_csv(score / "scores.csv")
long_rel = scores[(scores.condition == "long") & (scores.span == "relevant")]
for t in (0.2, 0.1, 0.05):
    n = int((long_rel.score > t).sum())
    print(f"heads R > {t}: {n} of {len(long_rel)} ({n / len(long_rel):.1%})")
top = long_rel.nlargest(20, "score")
print("top-20 layers", sorted(top.layer.tolist()))
sink = scores[(scores.condition == "long") & (scores.span == "sink")].groupby("layer").score.mean()
print("sink per layer (long)", " ".join(f"{v:.2f}" for v in sink))
print((score / "table1.md").read_text())
summary = json.loads((score / "summary.json").read_text())
print("seconds", summary["seconds"], "skipped", summary["skipped"])


def seeds(name):
    """The run folder ``name`` and its replicate on seed 1, where they exist."""
    return [(seed, root / f"{name}{suffix}") for seed, suffix in ((0, ""), (1, "_seed1")) if (root / f"{name}{suffix}").exists()]


for seed, folder in seeds("compensate"):  # figures redrawn from the CSVs with this version's analyses
    comp = pd.read_csv(folder / "compensation.csv").astype({"k": "Int64"})
    write_figure(compensation.figure(comp), folder / "compensation")
    print(f"\ncompensation, seed {seed} (EM, n per cell = {comp.n.max()})")
    print(comp[comp.tau.notna()].pivot_table(index=["method", "k"], columns="tau", values="em").round(3).to_string())
    print(comp[comp.tau.isna()][["method", "em", "n"]].round(3).to_string(index=False))
for seed, folder in seeds("sweep"):
    sweep = pd.read_csv(folder / "sweep.csv")
    base_csv = root / "compensate" / "compensation.csv"  # every sweep answers the data-seed-0 test prompts
    if 0 not in sweep.alpha.values and base_csv.exists():
        # Runs made before sweep always included α = 0: take the no-intervention EM of the
        # compensation run on the same held-out prompts (same data seed, limit and positions).
        base = pd.read_csv(base_csv).query("method == 'baseline'").iloc[0]
        assert base.n == sweep.n.max(), "baseline and sweep must answer the same prompts"
        zero = pd.DataFrame({"k": sorted(sweep.k.unique()), "alpha": 0.0, "em": base.em, "n": base.n})
        sweep = pd.concat([sweep, zero]).sort_values(["k", "alpha"])
    write_figure(sweep_analysis.figure(sweep), folder / "sweep")
    print(f"\nsweep, directions seed {seed}, held-out prompts of data seed 0 (EM, n per cell = {sweep.n.max()})")
    print(sweep.pivot(index="alpha", columns="k", values="em").round(3).to_string())
    t3 = pd.read_csv(folder / "table3.csv")
    delta = t3[t3.alpha != 0].pivot_table(index="alpha", columns="span", values="delta", aggfunc="mean")
    print("Table 3, mean change over the top heads:")
    print(delta.round(3).to_string())
