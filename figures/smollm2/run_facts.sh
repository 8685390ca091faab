#!/usr/bin/env bash
# The SmolLM2 experiments on the facts task, as run for figures/smollm2/facts/ (see README.md there).
# Heads are ranked on training-split questions; every intervention is evaluated on held-out (test) ones.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=figures/smollm2/facts
M="--model smollm2 --data facts --max-new-tokens 8"
t() { local s=$SECONDS; "$@"; echo "wall $((SECONDS - s)) s: $*"; }

# 1. Contextual scores on 200 held-out questions (Figure 2, Table 1, EM by gold position)
[ -f $OUT/score/summary.json ] || t lens-focus score --model smollm2 --data facts --limit 200 --max-new-tokens 12 --out $OUT/score
# 2. Heads ranked on training questions
[ -f $OUT/heads_train/heads.json ] || t lens-focus score $M --split train --limit 40 --gold-positions 1,10,20 --out $OUT/heads_train
# 3. Split-softmax compensation (Figure 3)
[ -f $OUT/compensate/compensation.csv ] || t lens-focus compensate $M --heads $OUT/heads_train/heads.json --limit 24 \
    --gold-positions 1,10,20 --taus 0.1,0.3,0.6,1.5 --ks 1,5,20 --out $OUT/compensate
# 4. Focus directions from training questions, then the α × k sweep and Table 3 on held-out ones (Figure 4)
[ -f $OUT/directions.safetensors ] || t lens-focus train-directions $M --limit 24 --gold-positions 1,10,20 --out $OUT/directions.safetensors
[ -f $OUT/sweep/sweep.csv ] || t lens-focus sweep $M --directions $OUT/directions.safetensors --heads $OUT/heads_train/heads.json \
    --limit 24 --gold-positions 1,10,20 --alphas -0.5,-0.2,0.2,0.3,0.5,1.0 --ks 5,20,all --table-alphas -0.2,0.2,0.5,1.0 --out $OUT/sweep
# 5. Negative prompts (the 19 irrelevant documents only) of the same 200 held-out questions
[ -f $OUT/negative_em.json ] || t python -c "
import json, lens_focus as lf
m = lf.load_model('smollm2')
ex = lf.load_examples('facts', limit=200, variants=('negative',))
em = [a.em for a in lf.answer_examples(m, ex, max_new_tokens=8)]
json.dump({'em': sum(em) / len(em), 'n': len(em)}, open('$OUT/negative_em.json', 'w'))"
# 6. Replicates on a second seed: directions trained on other training questions (seed 1), and
#    compensation on another held-out sample (seed 1 draws other test questions and random heads)
[ -f $OUT/directions_seed1.safetensors ] || t lens-focus train-directions $M --limit 24 --gold-positions 1,10,20 --seed 1 \
    --out $OUT/directions_seed1.safetensors
[ -f $OUT/sweep_seed1/sweep.csv ] || t lens-focus sweep $M --directions $OUT/directions_seed1.safetensors \
    --heads $OUT/heads_train/heads.json --limit 24 --gold-positions 1,10,20 --alphas 0.3,0.5 --ks 20,all --table-alphas 0.5 \
    --out $OUT/sweep_seed1
[ -f $OUT/compensate_seed1/compensation.csv ] || t lens-focus compensate $M --seed 1 --heads $OUT/heads_train/heads.json \
    --limit 24 --gold-positions 1,10,20 --taus 0.1,0.3 --ks 20 --out $OUT/compensate_seed1
