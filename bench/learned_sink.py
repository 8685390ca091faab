"""What split-softmax compensation and focus directions do to a learned sink's share, measured on a
tiny gpt-oss (docs/method.md §2–4).

    python bench/learned_sink.py [--seeds 0 1] [--questions 40]

Per seed, a tiny random-weight gpt-oss (``lens-focus tiny gpt_oss``) whose sink logits are set to
1..3 (random ones take under 1 % of a row; a trained model's take far more), on synthetic NQ
questions with gold answers (tests/data): directions are trained on the first half of the
questions and judged on the other half. Every head of every layer is intervened on. Prints, per
seed and setting, the mean over held-out prompts and heads of the learned sink's share and of the
relevant score, and the paired change with its 95% interval (whole questions resampled).
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "nq-synthetic.jsonl.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--tau", type=float, default=0.3)
    parser.add_argument("--alpha", type=float, default=1.0)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from lens_focus import load_examples, load_model
    from lens_focus.answers import gold_response_sequences
    from lens_focus.directions import train_directions
    from lens_focus.heads import Head
    from lens_focus.interventions import compensation_intervention, focus_intervention
    from lens_focus.model import hf_attention, model_info
    from lens_focus.scoring import LEARNED_SINK, span_sums
    from lens_focus.stats import difference_text, paired_difference
    from lens_focus.tiny import corpus_from_jsonl, tiny_model

    examples = load_examples(DATA, limit=args.questions, n_docs=5, gold_positions=[1, 5], variants=("long", "gold"))
    print(f"{args.questions} questions × gold at 1 and 5, τ = {args.tau}, α = {args.alpha}, every head")
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            model = load_model(str(tiny_model("gpt_oss", tmp, seed=seed, corpus=corpus_from_jsonl(DATA))), device="cpu", attention="eager")
        info = model_info(model)
        with torch.no_grad():
            for layer in info.attn_layers:
                hf_attention(model, layer).sinks.copy_(torch.linspace(1.0, 3.0, info.n_heads))
        seqs, _ = gold_response_sequences(model, examples, progress=False)
        ids = sorted({s.example.question_id for s in seqs})
        first = set(ids[: len(ids) // 2])
        train, held = [s for s in seqs if s.example.question_id in first], [s for s in seqs if s.example.question_id not in first]
        heads = [Head(l, h) for l in info.attn_layers for h in range(info.n_heads)]
        directions = train_directions(model, train, seed=seed, progress=False)
        settings = {"baseline": None, f"compensation τ={args.tau}": compensation_intervention(model, heads, tau=args.tau),
                    f"directions α={args.alpha}": focus_intervention(model, directions, heads, alpha=args.alpha)}  # fmt: skip
        means = {name: [(float(np.nanmean(s[LEARNED_SINK])), float(np.nanmean(s["relevant"]))) for s in span_sums(model, held, intervention=make, progress=False)]
                 for name, make in settings.items()}  # fmt: skip
        base = np.array(means["baseline"])
        print(f"seed {seed}: {len(held)} held-out prompts; baseline learned sink {base[:, 0].mean():.4f}, relevant {base[:, 1].mean():.4f}")
        for name, values in list(means.items())[1:]:
            v = np.array(values)
            clusters = [s.example.question_id for s in held]
            sink, rel = paired_difference(base[:, 0], v[:, 0], clusters), paired_difference(base[:, 1], v[:, 1], clusters)
            print(f"  {name}: learned sink {v[:, 0].mean():.4f} ({difference_text(sink.mean, sink.low, sink.high, n=len(v), clusters=len(set(clusters)), digits=4)}), "
                  f"relevant {v[:, 1].mean():.4f} ({difference_text(rel.mean, rel.low, rel.high, n=len(v), clusters=len(set(clusters)), digits=4)})")  # fmt: skip


if __name__ == "__main__":
    main()
