"""Batches on the fast path, side by side in one run: answering and scoring needle prompts of about
T tokens on SmolLM2 (fast path) with the old batch planning (the eager path's pattern budget, the
(batch, 1, T, T) mask ``transformers`` builds), the new planning (batch × T tokens of key-value
cache and activations) with that built mask and with the mask kept as the batch's padding (what
the fast path does now), and the new in one process against two under torchrun.

    python bench/bench_batches.py [--lengths 2048,8192] [--prompts 8] [--batch-size 8] [--repeat 2]

Each variant runs in its own process(es); the time is the best of ``--repeat`` runs, the peak
memory (max resident set of the process, the largest rank's under torchrun) the smallest of them,
which takes out most of the allocator's run-to-run noise on the CPU. Prints prompts per second,
peak MB, and the ratios new/old and torchrun/one process.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child(args) -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    from lens_focus import forward, load_model
    from lens_focus.answers import answer_examples
    from lens_focus.parts import current_part
    from lens_focus.profile import profile_of

    part = current_part()
    if args.mask == "built":  # the (batch, 1, T, T) booleans of transformers' sdpa_mask, as the fast path had before
        import lens_focus.fast as fast
        from transformers.masking_utils import sdpa_mask

        fast._mask = sdpa_mask
    model = load_model(args.model, device="cpu", attention="fast")
    if args.planning == "old":  # the eager path's budget, as every path planned before
        forward.batch_budget = lambda m, chunk=forward.DEFAULT_CHUNK: (forward.max_cells_for(m), chunk)
        import lens_focus.generate as generate

        generate.batch_budget = forward.batch_budget
    examples = profile_of(model).needles(model.tokenizer, lengths=[args.length], depths=[100 * i / max(args.prompts - 1, 1) for i in range(args.prompts)])
    mine = part.take(examples)
    answer_examples(model, mine[:1], score="generation", max_new_tokens=2, batch_size=1, progress=False)  # warm-up
    start = time.perf_counter()
    answer_examples(model, mine, score="generation", max_new_tokens=8, batch_size=args.batch_size, progress=False)
    seconds = time.perf_counter() - start
    print(json.dumps({"rank": part.index, "seconds": seconds, "prompts": len(mine), "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure(args, length: int, planning: str, mask: str, ranks: int) -> dict:
    runs = []
    for _ in range(args.repeat):
        cmd = [sys.executable, *(["-m", "torch.distributed.run", "--nproc-per-node", str(ranks)] if ranks > 1 else []), __file__, "--child",
               "--planning", planning, "--mask", mask, "--length", str(length), "--prompts", str(args.prompts), "--batch-size", str(args.batch_size), "--model", args.model]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // ranks))}
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        if done.returncode:
            return {"error": done.stderr.strip().splitlines()[-1:]}
        lines = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
        runs.append({"seconds": max(r["seconds"] for r in lines), "wall": wall, "peak_mb": max(r["peak_mb"] for r in lines)})
    best = min(runs, key=lambda r: r["seconds"])
    return {"prompts_per_s": args.prompts / best["seconds"], "peak_mb": min(r["peak_mb"] for r in runs), "wall_s": best["wall"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", default="2048,8192")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--planning", default="new")
    ap.add_argument("--mask", default="padding")
    ap.add_argument("--length", type=int)
    args = ap.parse_args()
    if args.child:
        return child(args)
    print(f"{'T':>6} {'variant':>26} {'prompts/s':>10} {'peak MB':>8}")
    for length in [int(x) for x in args.lengths.split(",")]:
        got = {name: measure(args, length, planning, mask, ranks) for name, planning, mask, ranks in
               (("old planning, built mask", "old", "built", 1), ("new planning, built mask", "new", "built", 1),
                ("new planning, padding", "new", "padding", 1), ("new, torchrun 2", "new", "padding", 2))}  # fmt: skip
        for name, r in got.items():
            print(f"{length:>6} {name:>26} " + (f"{r['prompts_per_s']:>10.3f} {r['peak_mb']:>8.0f}" if "error" not in r else f"  {r['error']}"))
        if all("error" not in r for r in got.values()):
            old, built, new, two = got.values()
            print(f"{length:>6} padding / built mask (same batches): throughput {new['prompts_per_s'] / built['prompts_per_s']:.2f}x, peak memory "
                  f"{new['peak_mb'] / built['peak_mb']:.2f}x; new / old: throughput {new['prompts_per_s'] / old['prompts_per_s']:.2f}x, peak memory "
                  f"{new['peak_mb'] / old['peak_mb']:.2f}x; torchrun 2 / one process: throughput {two['prompts_per_s'] / new['prompts_per_s']:.2f}x")


if __name__ == "__main__":
    main()
