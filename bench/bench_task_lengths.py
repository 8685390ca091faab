"""What one long-context task prompt costs as it grows, and so how long a whole task table takes:
seconds and peak memory per prompt at each length, on one model, on this machine's CPU.

    python bench/bench_task_lengths.py [--model gemma3-270m] [--task mv] [--lengths 8000,16000,32000] [--threads 1]

Each length runs in a process of its own (peak = its maximum resident set, the model included):
one prompt of the task, built as the evaluation step of ``lens-focus reproduce`` builds it, answered
as a baseline cell answers it (greedy, the task's answer length, the heads' scores on the answer
rows, the fast path where it applies); the time is the best of ``--repeat`` answers (no warm-up:
at these lengths the first call's setting-up is under a second). Prints the seconds per prompt,
the ratio to the first length, and what a task table of 5 tasks × 5 settings × 30 prompts would
take at that length, in core-hours when ``--threads 1`` (the background runs use one core each).
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
NQ = REPO.parent / "shared" / "data" / "lost_in_the_middle" / "nq-open-oracle.jsonl.gz"
TABLE = 5 * 5 * 30  # prompts of a task table: tasks × settings × prompts per cell


def one(model_name: str, task_name: str, length: int, repeat: int) -> dict:
    """One length, in this process."""
    from lens_focus import label, load_model
    from lens_focus.answers import answer_examples
    from lens_focus.tasks import TASKS, build_task

    model = load_model(model_name, device="cpu")
    task = TASKS[task_name]
    [example] = build_task(task_name, model.tokenizer, lengths=[length], n=1, seed=0, nq=NQ, distractors="bm25")

    def answer() -> float:
        start = time.perf_counter()
        answer_examples(model, [example], max_new_tokens=task.max_new_tokens, stop=task.stop, batch_size=1, score="generation", progress=False)
        return time.perf_counter() - start

    seconds = min(answer() for _ in range(repeat))
    tokens = len(label(example, model.tokenizer).input_ids)
    return {"length": length, "tokens": tokens, "seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--task", default="mv")
    ap.add_argument("--lengths", default="8000,16000,32000")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child process: this length alone
    args = ap.parse_args()
    if args.one is not None:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(one(args.model, args.task, args.one, args.repeat)))
        return
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    print(f"{args.model}, task {args.task}, {args.threads} thread(s); a table = {TABLE} prompts (5 tasks × 5 settings × 30)")
    print(f"{'length':>7} {'tokens':>7} {'seconds':>8} {'ratio':>6} {'peak MB':>8} {'table hours':>12}")
    first = None
    for length in map(int, args.lengths.split(",")):
        cmd = [sys.executable, __file__, "--model", args.model, "--task", args.task, "--threads", str(args.threads), "--repeat", str(args.repeat), "--one", str(length)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            why = "killed: out of memory" if done.returncode == -9 else done.stderr.strip().splitlines()[-1]
            print(f"{length:>7} exit {done.returncode} ({why})")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        first = first or r["seconds"]
        print(f"{length:>7} {r['tokens']:>7} {r['seconds']:>8.1f} {r['seconds'] / first:>5.2f}x {r['peak_mb']:>8.0f} {r['seconds'] * TABLE / 3600:>12.1f}", flush=True)


if __name__ == "__main__":
    main()
