"""Print (and write to tasks/combined.md) the task-table numbers figures/smollm2/README.md quotes:
every seed's scores side by side, their mean, and each setting's change against the baseline."""
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from analyses import markdown_table  # noqa: E402
from analyses.task_tables import category_scores  # noqa: E402

root = Path(__file__).parent / "tasks"
seeds = sorted(p for p in root.glob("seed*") if (p / "task_scores.csv").exists())
tasks = pd.concat([pd.read_csv(p / "task_scores.csv").assign(seed=p.name) for p in seeds])
sinks = pd.concat([pd.read_csv(p / "sink_scores.csv").assign(seed=p.name) for p in seeds])  # STD rows included
cats = pd.concat([category_scores(tasks[tasks.seed == s]).assign(seed=s) for s in tasks.seed.unique()])

out = [f"# SmolLM2 task tables, {len(seeds)} seed(s): {', '.join(p.name for p in seeds)}\n"]
per_task = tasks.pivot_table(index=["task", "length", "setting"], columns="seed", values="score").reset_index()
per_task["mean"] = per_task[[p.name for p in seeds]].mean(axis=1)
out += ["## Task scores per seed\n", markdown_table(per_task)]
overall = cats[cats.category.isin(["overall", "recall", "rag"])].pivot_table(index=["category", "length", "setting"], columns="seed", values="score").reset_index()
cols = [p.name for p in seeds]
overall["mean"] = overall[cols].mean(axis=1)
base = overall[overall.setting == "baseline"].set_index(["category", "length"])
for c in cols:
    overall[f"Δ {c}"] = [r[c] - base.loc[(r.category, r.length), c] for _, r in overall.iterrows()]
out += ["## Category and overall scores, and the change against the baseline per seed\n", markdown_table(overall)]
sink = sinks.pivot_table(index=["length", "seed"], columns="task", values="sink", sort=False).reset_index()
out += ["## Sink score of the top-5 NQ contextual heads (baseline) and its STD across tasks\n", markdown_table(sink)]
n = tasks.groupby("seed").n.sum() // tasks.setting.nunique()
out.append(f"\nPrompts per seed and setting: { {k: int(v) for k, v in n.items()} }; per task and length: {sorted(int(v) for v in tasks.n.unique())}\n")
text = "\n".join(out)
(root / "combined.md").write_text(text)
print(text)
