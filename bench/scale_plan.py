"""The scale plan of bench/README.md, modelled (no GPU measured it): hours for the whole NQ set and
for the task suite, for 3B, 8B and 70B models on 1, 8 and 64 GPUs.

    python bench/scale_plan.py

Time per prompt = prefill FLOPs (2·N·T + 2·L·d·T², causal attention) at an assumed sustained
300 TFLOP/s in bfloat16 per GPU, plus 20 answer tokens decoded at the speed of reading the weights
(2·N bytes at 3.35 TB/s per GPU). A model larger than one GPU runs split over ``gpus_per_model``
GPUs (``--device-map auto``), which together count as one replica; replicas take whole questions
(``torchrun`` or ``--shard``), so the hours divide by the number of replicas. Memory per replica:
weights (2·N bytes) + KV cache (2·L·kv·dh·T·2 bytes) + the fast path's scored rows.
"""
from __future__ import annotations

from dataclasses import dataclass

FLOPS = 300e12  # sustained bfloat16 FLOP/s per GPU (assumed: ~30% of an H100's dense peak)
HBM = 3.35e12  # bytes/s per GPU
GPU_GB = 80
NEW_TOKENS = 20


@dataclass(frozen=True)
class Model:
    name: str
    params: float
    layers: int
    d_model: int
    kv_heads: int
    d_head: int


MODELS = [
    Model("Llama-3.2-3B", 3.21e9, 28, 3072, 8, 128),
    Model("Llama-3.1-8B", 8.03e9, 32, 4096, 8, 128),
    Model("Llama-3.1-70B", 70.6e9, 80, 8192, 8, 128),
]
WORKLOADS = [  # name, prompts, tokens per prompt
    ("NQ, 2,655 questions × 5 positions, 20 documents", 2655 * 5, 3_000),
    ("task suite, 9 tasks × 100 prompts × 5 settings, 32k", 9 * 100 * 5, 32_768),
    ("task suite, 9 tasks × 100 prompts × 5 settings, 128k", 9 * 100 * 5, 131_072),
]


def memory_gb(m: Model, tokens: int) -> float:
    weights = 2 * m.params
    kv = 2 * m.layers * m.kv_heads * m.d_head * tokens * 2
    return (weights + kv) / 1e9 * 1.15  # activations and the scored rows: ~15% on top


def gpus_per_model(m: Model, tokens: int) -> int:
    n = 1
    while memory_gb(m, tokens) > 0.9 * GPU_GB * n:
        n *= 2
    return n


def seconds_per_prompt(m: Model, tokens: int, gpus: int) -> float:
    prefill = (2 * m.params * tokens + 2 * m.layers * m.d_model * tokens**2) / (FLOPS * gpus)
    decode = NEW_TOKENS * (2 * m.params) / (HBM * gpus)
    return prefill + decode


def main() -> None:
    print("| workload | model | GPUs per replica | memory per replica | 1 GPU | 8 GPUs | 64 GPUs |")
    print("|---|---|---|---|---|---|---|")
    for workload, n, tokens in WORKLOADS:
        for m in MODELS:
            per = gpus_per_model(m, tokens)
            # a split model runs its layers one after another: its GPUs add memory, not speed
            total = n * seconds_per_prompt(m, tokens, 1)
            cells = []
            for gpus in (1, 8, 64):
                replicas = gpus // per
                hours = total / max(replicas, 1) / 3600
                cells.append("does not fit" if replicas == 0 else f"{hours:,.1f} h" if hours >= 1 else f"{hours * 60:.0f} min")
            print(f"| {workload} | {m.name} | {per} | {memory_gb(m, tokens):,.0f} GB | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
