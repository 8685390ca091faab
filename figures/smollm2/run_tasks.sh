#!/usr/bin/env bash
# The SmolLM2 task tables (paper Tables 2, 5-13 shape), as run for figures/smollm2/tasks/: the five
# offline tasks (multi-key needle, multi-key UUID, multi-value, JSON KV from the lost-in-the-middle
# file, NQ RAG on held-out questions) at 1k and 2k context tokens, 10 prompts each, under the
# paper's five settings, with the focus directions and heads trained on NQ training questions
# (figures/smollm2/nq/). SmolLM2's context is 8k; its recall collapses well before that.
# Seed 0 ran at 1k and 2k tokens (SEED=0); seed 1, other prompts and other held-out questions, at 1k
# only (SEED=1 LENGTHS=1000), for want of time on this machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=figures/smollm2/tasks
DATA=../shared/data/lost_in_the_middle
SEED=${SEED:-0}
LENGTHS=${LENGTHS:-1000,2000}
SETTINGS=${SETTINGS:-baseline,10_0.2,20_0.2,10_-0.2,20_-0.2}
s=$SECONDS
lens-focus evaluate --model smollm2 --heads figures/smollm2/nq/heads_train/heads.json \
    --directions figures/smollm2/nq/directions.safetensors --lengths "$LENGTHS" --settings "$SETTINGS" --n 10 --seed "$SEED" \
    --nq $DATA/nq-open-oracle.jsonl.gz --kv $DATA/kv-retrieval-75_keys.jsonl.gz --out "$OUT/seed$SEED"
echo "wall $((SECONDS - s)) s: evaluate seed $SEED"
