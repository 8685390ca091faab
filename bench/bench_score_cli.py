"""The whole ``lens-focus score`` command on SmolLM2-135M-Instruct with 20 NQ documents, fast
against eager attention, end to end (loading, generation, scoring, figures), each in its own process.

    python bench/bench_score_cli.py [--limit 2] [--gold-positions 1,10,20] [--out /tmp/bench_score]

Prints wall seconds and peak memory of each run, their ratio, and whether the two runs agree:
the same answers and EM, the same head ranking, scores within 1e-4.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

NQ = Path(__file__).resolve().parents[2] / "shared" / "data" / "lost_in_the_middle" / "nq-open-oracle.jsonl.gz"
CHILD = """
import resource, sys
from lens_focus.commands.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    print("PEAK_MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--limit", type=int, default=2)
    ap.add_argument("--gold-positions", default="1,10,20")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_score"))
    args = ap.parse_args()
    runs = {}
    for attention in ("fast", "eager"):
        out = args.out / attention
        cmd = [sys.executable, "-c", CHILD, "score", "--model", args.model, "--data", str(NQ), "--n-docs", "20",
               "--gold-positions", args.gold_positions, "--limit", str(args.limit), "--max-new-tokens", "12",
               "--batch-size", "2", "--attention", attention, "--out", str(out)]  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - start
        peak = float(next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("PEAK_MB")))
        runs[attention] = (seconds, peak, out)
        print(f"{attention}: {seconds:.1f} s, peak {peak:.0f} MB", file=sys.stderr, flush=True)
    import pandas as pd

    (fs, fm, fo), (es, em, eo) = runs["fast"], runs["eager"]
    answers = [[json.loads(line)["response"] for line in open(o / "examples.jsonl")] for o in (fo, eo)]
    scores = [pd.read_csv(o / "scores.csv") for o in (fo, eo)]
    heads = [json.load(open(o / "heads.json")) for o in (fo, eo)]
    diff = (scores[0].score - scores[1].score).abs().max()
    print(f"{'attention':>9} {'seconds':>8} {'peak MB':>8}")
    print(f"{'fast':>9} {fs:>8.1f} {fm:>8.0f}")
    print(f"{'eager':>9} {es:>8.1f} {em:>8.0f}")
    print(f"eager / fast: time {es / fs:.2f}x, peak memory {em / fm:.2f}x")
    print(f"same answers: {answers[0] == answers[1]} ({len(answers[0])}); same head ranking: {heads[0] == heads[1]}; max score difference {diff:.1e}")


if __name__ == "__main__":
    main()
