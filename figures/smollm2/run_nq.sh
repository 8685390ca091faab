#!/usr/bin/env bash
# The SmolLM2 experiments on NaturalQuestions (lost-in-the-middle oracle file, distractors drawn
# from other questions' gold documents), as run for figures/smollm2/nq/ (see README.md there).
# Much smaller than the facts runs (a 20-document NQ prompt is ~2.8k tokens, ~6x the cost of a facts
# prompt), so its numbers rest on a few dozen prompts each. Batches of 2: at batch 8 the eager
# attention of 20-document prompts ran out of the machine's 24 GiB.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=figures/smollm2/nq
NQ=../shared/data/lost_in_the_middle/nq-open-oracle.jsonl.gz
M="--model smollm2 --data $NQ --max-new-tokens 12"
t() { local s=$SECONDS; "$@"; echo "wall $((SECONDS - s)) s: $*"; }

# 1. Contextual scores on 10 held-out questions at all five positions (Figure 2, Table 1, EM by position)
[ -f $OUT/score/summary.json ] || t lens-focus score $M --limit 10 --variants long,gold,negative --batch-size 2 --out $OUT/score
# 2. Heads ranked on training questions
[ -f $OUT/heads_train/heads.json ] || t lens-focus score $M --split train --limit 8 --gold-positions 1,10,20 --batch-size 2 --out $OUT/heads_train
# 3. Compensation on the top-20 heads and on 20 random heads (Figure 3)
[ -f $OUT/compensate/compensation.csv ] || t lens-focus compensate $M --heads $OUT/heads_train/heads.json --limit 8 \
    --gold-positions 1,10,20 --taus 0.1,1.5 --ks 20 --batch-size 2 --out $OUT/compensate
# 4. Focus directions from training questions; sweep and Table 3 on held-out ones (Figure 4)
[ -f $OUT/directions.safetensors ] || t lens-focus train-directions $M --limit 8 --gold-positions 1,10,20 --out $OUT/directions.safetensors
[ -f $OUT/sweep/sweep.csv ] || t lens-focus sweep $M --directions $OUT/directions.safetensors --heads $OUT/heads_train/heads.json \
    --limit 8 --gold-positions 1,10,20 --alphas 0.5 --ks 20 --table-alphas 0.5 --batch-size 2 --out $OUT/sweep
