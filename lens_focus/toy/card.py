"""The toy model's card: the recipe, what training showed, and the report, next to the weights."""
from __future__ import annotations

import json
from pathlib import Path


def write_card(directory: str | Path, log: dict, report) -> Path:
    directory = Path(directory)
    recipe = log["recipe"]
    rows = "\n".join(
        f"| {h['step']} | {h['k']} | {h['loss']:.3f} | " + " | ".join(f"{h['acc'][n]:.2f}" for n in ("1", "5", "10", "20"))
        + f" | {h['minutes']:.1f} |"
        for h in log["history"]
    )
    text = f"""# lens_focus toy model

A {recipe['layers']}-layer Llama (width {recipe['width']}, {recipe['heads']} query heads, {recipe['kv_heads']} key-value heads,
rotary embeddings, RMSNorm) trained from scratch by `lens-focus toy train --seed {recipe['seed']}` on the synthetic
multi-document QA task of `lens_focus.toy.task`, with a word-level tokenizer (`tokenizer.json`, BOS `<bos>`).

## Recipe

```json
{json.dumps(recipe, indent=1)}
```

## Training

Quick teacher-forced accuracy on held-out prompts with 1 / 5 / 10 / 20 documents:

| step | docs up to | loss | N=1 | N=5 | N=10 | N=20 | minutes |
|---|---|---|---|---|---|---|---|
{rows}

## Report (`lens-focus toy report`)

```
{report}
```
"""
    path = directory / "README.md"
    path.write_text(text)
    (directory / "report.json").write_text(json.dumps(report.to_dict(), indent=1) + "\n")
    return path
