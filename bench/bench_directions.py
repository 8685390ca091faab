"""How the cost of a focus-direction training step grows with sequence length, side by side.

    python bench/bench_directions.py [--heads 24] [--layers 4] [--rows 8] [--lengths 1024,2048,4096]

Synthetic cached queries and keys of Llama-3.2-3B-like heads (head dim 128, 3 query heads per
key-value head). For each length, one forward + backward of
  rows     lens_focus.directions.relevant_scores: the answer rows against every key
  square   the same loss from the full (length × length) pattern, as a forward pass would give it
Prints seconds per step and the ratio each path grows by when the length doubles (rows: ≈2,
square: ≈4).
"""
from __future__ import annotations

import argparse
import time

import torch

from lens_focus.directions import CachedSequence, relevant_scores


def make(layers: int, heads: int, kv: int, length: int, rows: int, d_head: int = 128) -> CachedSequence:
    g = torch.Generator().manual_seed(0)
    span = torch.zeros(length, dtype=torch.bool)
    span[length // 3 : length // 3 + length // 20] = True
    return CachedSequence(
        q=torch.randn(layers, heads, rows, d_head, generator=g),
        k=torch.randn(layers, kv, length, d_head, generator=g),
        rows=torch.arange(length - rows, length),
        span=span,
    )


def square_scores(c: CachedSequence, dq, dk, group: int, q_all: torch.Tensor):
    """The relevant score from every row's pattern (what a full teacher-forced pass computes)."""
    k = c.k.repeat_interleave(group, dim=1) + dk[:, :, None]
    logits = ((q_all + dq[:, :, None]) @ k.transpose(-1, -2)) * k.shape[-1] ** -0.5
    n = k.shape[2]
    logits = logits.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    pattern = logits.softmax(-1)[:, :, c.rows]
    return (pattern * c.span).sum(-1).mean(-1)


def timed(fn, repeat: int = 3) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=24)
    ap.add_argument("--kv", type=int, default=8)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--lengths", default="1024,2048,4096")
    args = ap.parse_args()
    group = args.heads // args.kv
    results = []
    for length in [int(x) for x in args.lengths.split(",")]:
        c = make(args.layers, args.heads, args.kv, length, args.rows)
        q_all = torch.randn(args.layers, args.heads, length, c.q.shape[-1])
        dq = torch.zeros(args.layers, args.heads, c.q.shape[-1], requires_grad=True)
        dk = torch.zeros(args.layers, args.heads, c.q.shape[-1], requires_grad=True)

        def rows_step():
            relevant_scores(c, dq, dk, site="post_rotary", group=group).mean().backward()

        def square_step():
            square_scores(c, dq, dk, group, q_all).mean().backward()

        results.append((length, timed(rows_step), timed(square_step, repeat=1)))
    print(f"{'length':>8} {'rows s/step':>12} {'square s/step':>14} {'square/rows':>12}")
    for length, r, s in results:
        print(f"{length:>8} {r:>12.4f} {s:>14.4f} {s / r:>12.1f}x")
    for (l0, r0, s0), (l1, r1, s1) in zip(results, results[1:]):
        print(f"length {l0} -> {l1}: rows grew {r1 / r0:.2f}x, square grew {s1 / s0:.2f}x")


if __name__ == "__main__":
    main()
