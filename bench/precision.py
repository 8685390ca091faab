"""bfloat16 against float32 on one model, side by side in one run: contextual scores, compensation,
focus directions (applied and trained) and greedy answers. Prints the differences and writes them
as a dated markdown file; README "Precision" states the tolerances this measures.

    python bench/precision.py --model smollm2 --questions 8 --heads figures/smollm2/heads/heads.json \
        --directions figures/smollm2/directions/directions.safetensors --out bench/results
"""
from __future__ import annotations

import argparse
import datetime
import platform
import time
from pathlib import Path

import numpy as np
import torch

from lens_focus import answer_examples, load_examples, load_model
from lens_focus.answers import gold_response_sequences
from lens_focus.directions import FocusDirections, train_directions
from lens_focus.fast import attention_of
from lens_focus.heads import load_heads
from lens_focus.interventions import compensation_intervention, focus_intervention
from lens_focus.model import model_info
from lens_focus.scoring import span_sums


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--questions", type=int, default=8)
    ap.add_argument("--heads", type=Path, required=True)
    ap.add_argument("--directions", type=Path, required=True)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path("bench/results"))
    args = ap.parse_args()

    models = {d: load_model(args.model, device="cpu", dtype=d) for d in ("float32", "bfloat16")}
    info = model_info(models["float32"])
    heads = load_heads(args.heads, n_layers=info.n_layers, n_heads=info.n_heads)[: args.k]
    examples = load_examples("facts", n_docs=20, gold_positions=[1, 10, 20], split="test", limit=args.questions, variants=("long",))
    training = load_examples("facts", n_docs=20, gold_positions=[1, 20], split="train", limit=max(3, args.questions // 2), variants=("long", "gold"))
    rows, answers, seconds, seqs = {}, {}, {}, None
    for dtype, model in models.items():
        start = time.time()
        answered = answer_examples(model, examples, max_new_tokens=8, batch_size=8, progress=False)
        answers[dtype] = answered
        seqs = seqs or [a.sequence for a in answered if a.sequence is not None]  # float32's answers: the same sequences for both
        plain = list(span_sums(model, seqs, progress=False))
        d = FocusDirections.load(args.directions, model=model)
        comp = list(span_sums(model, seqs, intervention=compensation_intervention(model, heads, tau=0.3), progress=False))
        steer = list(span_sums(model, seqs, intervention=focus_intervention(model, d, heads, alpha=0.5), progress=False))
        train, _ = gold_response_sequences(model, training, max_new_tokens=8, progress=False)
        trained = train_directions(model, train, epochs=3, seed=0, progress=False)
        rows[dtype] = {
            "scores": np.stack([p["relevant"] for p in plain]),
            "sink": np.stack([p["sink"] for p in plain]),
            "compensated": np.stack([c["relevant"] for c in comp]),
            "steered": np.stack([s["relevant"] for s in steer]),
            "trained": trained.meta["relevant_score_trained"],
        }
        seconds[dtype] = time.time() - start
        print(f"{dtype}: {time.time() - start:.0f} s ({attention_of(model)} attention)")

    full, half = rows["float32"], rows["bfloat16"]
    top = lambda x: {tuple(map(int, i)) for i in np.argwhere(x.mean(0) >= np.sort(x.mean(0).ravel())[-args.k])}  # noqa: E731
    same_answers = np.mean([a.response == b.response for a, b in zip(answers["float32"], answers["bfloat16"])])
    em = {d: np.mean([a.em for a in answers[d]]) for d in answers}
    lines = [
        f"# bfloat16 vs float32 on {args.model} ({datetime.date.today()})",
        "",
        f"`python bench/precision.py --model {args.model} --questions {args.questions} --heads {args.heads} --directions {args.directions}`",
        f"on {platform.processor() or platform.machine()}, torch {torch.__version__}, CPU. {len(examples)} long prompts of the facts task "
        f"(20 documents, gold at 1, 10, 20); heads: the top {args.k} of `{args.heads}`.",
        "",
        "Scores of the same sequences (each prompt with float32's greedy answer) in both precisions.",
        "",
        "| quantity (per head, per prompt) | max abs difference | 99th percentile | mean abs difference |",
        "|---|---:|---:|---:|",
    ]
    for key, name in [("scores", "relevant score"), ("sink", "sink score"), ("compensated", f"relevant score, compensation τ=0.3 on {args.k} heads"),
                      ("steered", f"relevant score, focus directions α=0.5 on {args.k} heads")]:  # fmt: skip
        diff = np.abs(full[key] - half[key])
        lines.append(f"| {name} | {diff.max():.4f} | {np.quantile(diff, 0.99):.4f} | {diff.mean():.5f} |")
        print(f"{name}: max {diff.max():.4f} mean {diff.mean():.5f}")
    lines += [
        "",
        f"- top-{args.k} heads by mean relevant score: {len(top(full['scores']) & top(half['scores']))} of {args.k} shared",
        f"- directions trained on the same prompts (3 epochs): relevant score reached {full['trained']:.4f} (float32) vs {half['trained']:.4f} (bfloat16)",
        f"- greedy answers identical on {same_answers:.0%} of prompts; EM {em['float32']:.3f} (float32) vs {em['bfloat16']:.3f} (bfloat16)",
        f"- time for all of the above: {seconds['float32']:.0f} s (float32) vs {seconds['bfloat16']:.0f} s (bfloat16) on this CPU",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"precision-{args.model}-{datetime.date.today()}.md"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
