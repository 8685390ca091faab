"""How the toy model behaves: accuracy with and without distractors, its sink, its contextual heads.

The targets of the shipped model (:data:`TARGETS`) are checked on fresh held-out examples.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..answers import answer_examples, conditions
from ..sources import load_examples
from ..defaults import GOLD_POSITIONS
from ..scoring import aggregate_scores


@dataclass
class ToyReport:
    checkpoint: str
    n: int
    gold_accuracy: float
    long_accuracy: dict
    """Accuracy on 20-document prompts by gold position, and ``overall``."""
    negative_accuracy: float
    sink_by_layer: list
    """Mean attention on the first token at the answer rows, per layer (long prompts)."""
    heads_above_0_1: int
    n_heads: int
    skipped: int

    def checks(self) -> dict[str, bool]:
        """The shipped model's targets (issue: embedded default model)."""
        later = [s or 0.0 for s in self.sink_by_layer[1:]]
        return {
            "gold-only accuracy >= 0.95": self.gold_accuracy >= 0.95,
            "20-document accuracy at least 20 points below gold-only": self.long_accuracy["overall"] <= self.gold_accuracy - 0.20,
            "20-document accuracy >= 0.25": self.long_accuracy["overall"] >= 0.25,
            "negative accuracy <= 0.10": self.negative_accuracy <= 0.10,
            "sink >= 0.2 in at least half the layers after the first": sum(s >= 0.2 for s in later) >= len(later) / 2,
            "at most 15% of heads with relevant score > 0.1": self.heads_above_0_1 <= 0.15 * self.n_heads,
        }

    def to_dict(self) -> dict:
        return {**asdict(self), "checks": self.checks()}

    def __str__(self) -> str:
        lines = [
            f"toy model report ({self.n} held-out questions; checkpoint {self.checkpoint})",
            f"  gold-only accuracy        {self.gold_accuracy:.3f}",
            "  20-document accuracy      "
            + ", ".join(f"pos {p}: {self.long_accuracy[str(p)]:.3f}" for p in GOLD_POSITIONS.default)
            + f"; overall {self.long_accuracy['overall']:.3f}",
            f"  negative accuracy         {self.negative_accuracy:.3f}",
            "  sink attention per layer  " + " ".join("n/a" if s is None else f"{s:.3f}" for s in self.sink_by_layer),
            f"  heads with relevant > 0.1 {self.heads_above_0_1} of {self.n_heads}",
        ]
        if self.skipped:
            lines.append(f"  skipped answers           {self.skipped}")
        lines += [f"  [{'x' if ok else ' '}] {name}" for name, ok in self.checks().items()]
        return "\n".join(lines)


def toy_report(model, *, n: int = 500, seed: int = 12345, checkpoint: str = "", progress: bool = True) -> ToyReport:
    """Evaluate ``model`` on ``n`` fresh held-out toy questions (test split, seeded)."""

    examples = load_examples(
        "toy", n_docs=20, gold_positions=GOLD_POSITIONS.default, split="test", seed=seed, limit=n, variants=("long", "gold", "negative")
    )
    scored = [e for e in examples if e.variant != "negative"]
    answered = answer_examples(model, scored, max_new_tokens=4, batch_size=64, score="generation", progress=progress)
    negatives = answer_examples(
        model, [e for e in examples if e.variant == "negative"], max_new_tokens=4, batch_size=64, progress=progress
    )
    em = lambda variant, pos=None: float(  # noqa: E731
        np.mean([a.em for a in answered if a.example.variant == variant and (pos is None or a.example.meta["gold_position"] == pos)])
    )
    kept = [(a, c) for a, c in zip(answered, conditions(answered)) if a.scores is not None and "long" in c]
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    if kept:  # an untrained model may answer nothing scorable
        scores = aggregate_scores([a.scores for a, _ in kept], [c for _, c in kept])
        long = scores[scores.condition == "long"]
        sink = [round(float(s), 4) for s in long[long.span == "sink"].groupby("layer").score.mean()]
        relevant = long[long.span == "relevant"].score
    else:
        sink, relevant = [None] * n_layers, np.zeros(0)
    return ToyReport(
        checkpoint=checkpoint,
        n=n,
        gold_accuracy=em("gold"),
        long_accuracy={**{str(p): em("long", p) for p in GOLD_POSITIONS.default}, "overall": em("long")},
        negative_accuracy=float(np.mean([a.em for a in negatives])),
        sink_by_layer=sink,
        heads_above_0_1=int((relevant > 0.1).sum()),
        n_heads=n_layers * n_heads,
        skipped=sum(a.skipped is not None for a in answered),
    )
