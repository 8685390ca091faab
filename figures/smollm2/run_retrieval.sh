#!/usr/bin/env bash
# Retrieval heads of SmolLM2 from the needle-in-a-haystack test (built-in filler, 3 needles,
# 1k and 2k tokens, depths 0, 11, ..., 100), then Figure 9 against the contextual heads of the
# facts task and of NQ (see README.md here).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=figures/smollm2/retrieval
[ -f $OUT/retrieval_scores.csv ] || lens-focus retrieval --model smollm2 --lengths 1000,2000 --max-new-tokens 24 --out $OUT
python - <<'PY'
import pandas as pd
from analyses import figure9
retrieval = pd.read_csv("figures/smollm2/retrieval/retrieval_scores.csv")
for task in ("facts", "nq"):
    scores = pd.read_csv(f"figures/smollm2/{task}/score/scores.csv")
    figure9.write(scores, retrieval, f"figures/smollm2/retrieval/figure9_{task}", k=20)
PY
