"""Generation speed with focus directions against unmodified generation, on each attention path,
side by side on SmolLM2-135M-Instruct.

    python bench/bench_generation.py [--model smollm2] [--prompts 4] [--n-docs 10] [--new-tokens 32]

The same NQ prompts are answered greedily (batch of all prompts, key-value cache, ``--new-tokens``
tokens each: no early stop, so every run decodes the same number of tokens) four times: fast and
eager attention, each without and with the committed SmolLM2 focus directions on the top-20 heads
at α = 0.5. Prints tokens per second and the ratio with / without directions (target ≥ 0.9).
"""
from __future__ import annotations

import argparse
import importlib
import os
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
NQ = REPO.parent / "shared" / "data" / "lost_in_the_middle" / "nq-open-oracle.jsonl.gz"
DIRECTIONS = REPO / "figures" / "smollm2" / "facts" / "directions.safetensors"
HEADS = REPO / "figures" / "smollm2" / "facts" / "heads_train" / "heads.json"


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--n-docs", type=int, default=10)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    from lens_focus import FocusDirections, label, load_examples, load_model
    from lens_focus.heads import load_heads
    from lens_focus.fast import attention_path
    from lens_focus.generate import generate_batches
    from lens_focus.interventions import focus

    model = load_model(args.model, device="cpu")
    directions = FocusDirections.load(DIRECTIONS, model=model)
    heads = load_heads(HEADS)[:20]
    examples = load_examples(NQ, limit=args.prompts, n_docs=args.n_docs, gold_positions=[1], variants=("long",))
    prompts = [label(e, model.tokenizer).input_ids for e in examples]
    never = object()  # no token ends a response: every run decodes the same number of tokens

    def answer(steer: bool) -> tuple[float, list]:
        gen = importlib.import_module("lens_focus.generate")  # the module, not the function of that name
        stops, gen.eos_ids = gen.eos_ids, lambda m: {never}
        try:
            start = time.perf_counter()
            batches = list(generate_batches(model, prompts, max_new_tokens=args.new_tokens, stop="eos", batch_size=len(prompts),
                                            during=(lambda b: focus(model, directions, heads, alpha=0.5)) if steer else None,
                                            progress=False))  # fmt: skip
            return time.perf_counter() - start, [g.ids for b in batches for g in b.generations]
        finally:
            gen.eos_ids = stops

    results = {}
    for path in ("fast", "eager"):
        with attention_path(model, path):
            answer(False)  # warm-up
            for steer in (False, True):
                best, ids = min(answer(steer) for _ in range(args.repeat))
                results[(path, steer)] = (sum(map(len, ids)) / best, ids)
    tokens = len(prompts) * args.new_tokens
    print(f"{len(prompts)} prompts of {min(map(len, prompts))}-{max(map(len, prompts))} tokens, {args.new_tokens} new tokens each ({tokens} per run)")
    print(f"{'attention':>9} {'plain tok/s':>12} {'focus tok/s':>12} {'focus/plain':>12}")
    for path in ("fast", "eager"):
        plain, steered = results[(path, False)][0], results[(path, True)][0]
        print(f"{path:>9} {plain:>12.1f} {steered:>12.1f} {steered / plain:>11.2f}x")
    print(f"fast / eager, unmodified: {results[('fast', False)][0] / results[('eager', False)][0]:.2f}x")
    same = results[("fast", True)][1] == results[("eager", True)][1]
    print(f"steered tokens identical on both paths: {same}")


if __name__ == "__main__":
    main()
