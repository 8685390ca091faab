"""A padded batch on the fast path, side by side in one run: one forward pass of SmolLM2 (fast path,
float32) over a batch of needle prompts of about T tokens, left-padded to the longest, with the
mask ``transformers`` builds ((batch, 1, T, T) booleans, what the fast path ran before) and with the
mask kept as the batch's padding (:class:`lens_focus.fast.PaddedCausal`, what it runs now).

    python bench/bench_padding.py [--lengths 2048,7680] [--batch 4] [--repeat 2]

Each variant runs in its own process; the time is the best of ``--repeat`` passes in that process,
the peak memory the process's max resident set (the smallest over ``--repeat`` processes). Prints
seconds, peak MB, the mask's own size, and the ratios padding / built.
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
    import torch

    import lens_focus.fast as fast
    from lens_focus import label, load_model
    from lens_focus.forward import run
    from lens_focus.profile import profile_of

    if args.mask == "built":
        from transformers.masking_utils import sdpa_mask

        fast._mask = sdpa_mask
    model = load_model(args.model, device="cpu", attention="fast")
    examples = profile_of(model).needles(model.tokenizer, lengths=[args.length - 64 * i for i in range(args.batch)], depths=[50.0])
    prompts = [label(e, model.tokenizer).input_ids for e in examples[: args.batch]]
    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + list(p) for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    best = float("inf")
    with torch.no_grad():
        for _ in range(args.passes):
            start = time.perf_counter()
            logits, _ = run(model, ids, attention_mask=mask, position_ids=positions)
            best = min(best, time.perf_counter() - start)
    print(json.dumps({"seconds": best, "width": width, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "last": logits.float().tolist()}))  # fmt: skip


def measure(args, length: int, mask: str) -> dict:
    runs = []
    for _ in range(args.repeat):
        cmd = [sys.executable, __file__, "--child", "--mask", mask, "--length", str(length), "--batch", str(args.batch), "--passes", str(args.passes), "--model", args.model]
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        if done.returncode:
            return {"error": done.stderr.strip().splitlines()[-1:]}
        runs.append(json.loads([x for x in done.stdout.splitlines() if x.startswith("{")][-1]))
    return {"seconds": min(r["seconds"] for r in runs), "peak_mb": min(r["peak_mb"] for r in runs), "width": runs[0]["width"], "last": runs[0]["last"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", default="2048,7680")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--mask", default="padding")
    ap.add_argument("--length", type=int)
    args = ap.parse_args()
    if args.child:
        return child(args)
    print(f"{'T':>6} {'mask':>8} {'seconds':>8} {'peak MB':>8}")
    for length in [int(x) for x in args.lengths.split(",")]:
        got = {mask: measure(args, length, mask) for mask in ("built", "padding")}
        for mask, r in got.items():
            print(f"{length:>6} {mask:>8} " + (f"{r['seconds']:>8.2f} {r['peak_mb']:>8.0f}" if "error" not in r else f"  {r['error']}"))
        if all("error" not in r for r in got.values()):
            built, new = got["built"], got["padding"]
            diff = max(abs(a - b) for x, y in zip(built["last"], new["last"]) for a, b in zip(x, y))
            print(f"{length:>6} padding / built: time {new['seconds'] / built['seconds']:.2f}x, peak memory {new['peak_mb'] / built['peak_mb']:.2f}x "
                  f"(the built mask: {args.batch} × {built['width']}² booleans = {args.batch * built['width'] ** 2 / 2**20:.0f} MB); "
                  f"largest difference of the last logits {diff:.1e}")


if __name__ == "__main__":
    main()
