#!/usr/bin/env bash
# The GPU benchmark (bench/bench_gpu.py): SmolLM2 and Gemma 3 in bfloat16 at 8k and 32k tokens,
# fast path against a plain SDPA forward, score throughput, direction training, torchrun with 2
# processes; writes bench/results/gpu-<date>-<device>.md. Needs a CUDA machine with lens_focus
# installed (pip install -e .); on any other machine, `bash bench/gpu.sh --dry-run` checks it on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" != "--dry-run" ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || { echo "no nvidia-smi: is this a CUDA machine? (--dry-run runs on the CPU)" >&2; exit 1; }
fi
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} TOKENIZERS_PARALLELISM=false
python bench/bench_gpu.py "$@"
