"""Print the numbers figures/smollm2/README.md quotes, read from the run outputs beside it."""
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from analyses import em_positions  # noqa: E402
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
