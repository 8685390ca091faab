"""Contextual scoring on SmolLM2-135M-Instruct's real weights, four ways, side by side.

    python bench/bench_scoring.py [--lengths 1024,2048,4096,8192] [--model smollm2] [--repeat 2]

For one NaturalQuestions prompt of about T tokens (documents added until T is reached) followed by
a short response, each method scores every head's attention on the response rows:
  reference  transformers, eager attention, output_attentions=True: every layer's full pattern
             kept, then Eq. 1 from them (what a script written against the model would do)
  bridge     lens_focus span_sums on the bridge's eager attention (chunks of 1024 query rows)
  fast       lens_focus span_sums on the fast path (SDPA; only the scored rows' pattern)
  floor      a plain transformers SDPA forward of the same tokens, no scoring
Each (method, T) runs in its own process, so peak memory (max resident set) is its own; the
time is the best of ``--repeat`` calls after a short warm-up. The reference is not run where its
kept patterns alone (layers × heads × T² × 4 bytes) would not fit in the machine's memory.
Prints seconds and peak memory per method, and the ratios the issue sets targets for.
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

NQ = Path(__file__).resolve().parents[2] / "shared" / "data" / "lost_in_the_middle" / "nq-open-oracle.jsonl.gz"
METHODS = ("reference", "bridge", "fast", "floor")
RESPONSE = " The answer is Wilhelm Conrad Röntgen."


def sequence(tokenizer, length: int):
    """A labeled NQ prompt of about ``length`` tokens plus :data:`RESPONSE`."""
    from lens_focus import label, load_examples

    n = max(2, length // 140)
    while True:
        ex = load_examples(NQ, limit=1, n_docs=n, gold_positions=[max(1, n // 2)], variants=("long",))[0]
        seq = label(ex, tokenizer, RESPONSE)
        if len(seq) >= length:
            return seq
        n = n + max(1, (length - len(seq)) // 120)


def reference_scores(hf, seq):
    import torch

    with torch.no_grad():
        att = hf(torch.tensor([seq.input_ids]), output_attentions=True).attentions  # every layer kept
    rows = list(seq.rows("generation"))
    out = {}
    for name in seq.token_spans:
        cols = torch.tensor(seq.tokens_of(name))
        out[name] = torch.stack([a[0][:, rows][:, :, cols].sum(-1).mean(-1) for a in att])
    return out


def child(method: str, model: str, length: int, repeat: int) -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch

    from lens_focus.forward import keep_freed_memory

    keep_freed_memory()
    torch.manual_seed(0)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lens_focus import load_model
    from lens_focus.aliases import resolve
    from lens_focus.scoring import span_sums

    path = resolve(model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    seq, warm = sequence(tokenizer, length), sequence(tokenizer, 256)
    if method in ("bridge", "fast"):
        lm = load_model(model, device="cpu", attention="eager" if method == "bridge" else "fast")
        fn = lambda s: list(span_sums(lm, [s], batch_size=1, progress=False))  # noqa: E731
    else:
        hf = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager" if method == "reference" else "sdpa").eval()
        if method == "reference":
            fn = lambda s: reference_scores(hf, s)  # noqa: E731
        else:

            def fn(s):
                with torch.no_grad():
                    return hf(torch.tensor([s.input_ids]), logits_to_keep=1).logits

    fn(warm)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(seq)
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MB
    print(json.dumps({"method": method, "tokens": len(seq), "seconds": min(times), "peak_mb": peak}))


def fits(model_layers: int, heads: int, length: int) -> bool:
    pattern_bytes = model_layers * heads * length * length * 4
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return pattern_bytes < 0.75 * available


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", default="1024,2048,4096,8192")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--child")
    ap.add_argument("--length", type=int)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.model, args.length, args.repeat)
    from transformers import AutoConfig

    from lens_focus.aliases import resolve

    config = AutoConfig.from_pretrained(resolve(args.model))
    rows = []
    for length in [int(x) for x in args.lengths.split(",")]:
        result = {}
        for method in METHODS:
            if method == "reference" and not fits(config.num_hidden_layers, config.num_attention_heads, length):
                need = config.num_hidden_layers * config.num_attention_heads * length**2 * 4 / 2**30
                result[method] = {"skipped": f"its patterns alone need {need:.0f} GiB"}
                continue
            cmd = [sys.executable, __file__, "--child", method, "--model", args.model, "--length", str(length), "--repeat", str(args.repeat)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                result[method] = {"skipped": f"exit {done.returncode}" + (" (killed: out of memory)" if done.returncode in (-9, 137) else "")}
            else:
                result[method] = json.loads(done.stdout.strip().splitlines()[-1])
            print(length, method, result[method], file=sys.stderr, flush=True)
        rows.append((length, result))
    print(f"{'T':>6} {'method':>10} {'tokens':>7} {'seconds':>9} {'peak MB':>9} {'time/floor':>11} {'extra MB':>9}")
    for length, result in rows:
        floor = result["floor"]
        for method in METHODS:
            r = result[method]
            if "skipped" in r:
                print(f"{length:>6} {method:>10}   {r['skipped']}")
                continue
            ratio = r["seconds"] / floor["seconds"]
            extra = r["peak_mb"] - floor["peak_mb"]
            print(f"{length:>6} {method:>10} {r['tokens']:>7} {r['seconds']:>9.2f} {r['peak_mb']:>9.0f} {ratio:>10.2f}x {extra:>9.0f}")
        if "skipped" not in result["reference"]:
            print(f"{length:>6} fast peak / reference peak = {result['fast']['peak_mb'] / result['reference']['peak_mb']:.3f}")
    print(json.dumps({str(length): result for length, result in rows}))


if __name__ == "__main__":
    main()
