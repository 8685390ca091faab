"""Side-by-side timings and peak memory of the scoring paths, each variant in its own process.

    python bench/bench_fused.py [--limit 4] [--data PATH]

Builds a tiny Llama (tokenizer trained on the data), then measures for the same long prompts:
  separate   generate, then a teacher-forced pass over prompt + answer (span_sums)
  fused      answer_examples(score=...): the prompt's cache is reused for scoring
  whole      the teacher-forced pass in one chunk (the full q × k pattern per layer)
and the glibc setting of lens_focus.forward.keep_freed_memory on and off. Prints ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lost_in_the_middle" / "nq-open-oracle.jsonl.gz"


def child(mode: str, model_dir: str, data: str, limit: int, malloc: bool) -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    from lens_focus.forward import keep_freed_memory

    if malloc:
        keep_freed_memory()
    from lens_focus import answer_examples, label, load_examples, load_model
    from lens_focus.generate import generate
    from lens_focus.scoring import span_sums

    model = load_model(model_dir, device="cpu")
    examples = load_examples(data, limit=limit, variants=("long",))
    start = time.perf_counter()
    if mode == "fused":
        answer_examples(model, examples, max_new_tokens=20, score="generation", progress=False)
    else:
        prompts = [label(e, model.tokenizer).input_ids for e in examples]
        gens = generate(model, prompts, max_new_tokens=20, progress=False)
        seqs = [label(e, model.tokenizer, g.text or " x") for e, g in zip(examples, gens)]
        list(span_sums(model, seqs, chunk=1024 if mode == "separate" else 1 << 30, batch_size=1, progress=False))
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb}))


def run(mode: str, model_dir: str, data: str, limit: int, malloc: bool = True) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--model", model_dir, "--data", data, "--limit", str(limit)]
    if not malloc:
        cmd.append("--no-malloc")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=4)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--child")
    ap.add_argument("--model")
    ap.add_argument("--no-malloc", action="store_true")
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.model, args.data, args.limit, not args.no_malloc)
    from lens_focus.tiny import corpus_from_jsonl, tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(tiny_model("llama", Path(tmp) / "m", corpus=corpus_from_jsonl(args.data), vocab_size=8192))
        r = {m: run(m, model_dir, args.data, args.limit) for m in ("fused", "separate", "whole")}
        r["separate, malloc default"] = run("separate", model_dir, args.data, args.limit, malloc=False)
    print(f"{args.limit} questions × 5 gold positions, 20 documents, tiny Llama, CPU")
    for name, v in r.items():
        print(f"  {name:26s} {v['seconds']:7.2f} s   peak {v['peak_mb']:7.0f} MB")
    print(f"separate / fused time:            {r['separate']['seconds'] / r['fused']['seconds']:.2f}x")
    print(f"whole / chunked peak memory:      {r['whole']['peak_mb'] / r['separate']['peak_mb']:.2f}x")
    print(f"malloc default / kept-freed time: {r['separate, malloc default']['seconds'] / r['separate']['seconds']:.2f}x")


if __name__ == "__main__":
    main()
