"""Let the model answer every example, grade the answers, and label prompt + answer for scoring.

The scored sequence of an example is its prompt followed by the model's own greedy answer to that
prompt (SPEC §2). Examples whose answer is empty, or cannot be separated from the prompt after
tokenization, are kept with a ``skipped`` reason and counted, never dropped silently.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from .generate import StopAt, generate
from .labels import Example, LabeledSequence, LabelError, label
from .metrics import best_subspan_em


class ContextLengthError(ValueError):
    """A prompt (plus the tokens to generate) does not fit in the model's context."""


@dataclass(frozen=True)
class Answered:
    example: Example
    response: str
    em: float
    sequence: LabeledSequence | None
    """Prompt + response, labeled; None when skipped."""
    skipped: str | None = None


def label_prompts(model, examples: Sequence[Example], *, n_sink: int = 1, max_new_tokens: int = 0) -> list[LabeledSequence]:
    """Label each prompt (no response), checking that it fits the model's context."""
    n_ctx = int(model.cfg.n_ctx)
    seqs = []
    for ex in examples:
        seq = label(ex, model.tokenizer, n_sink=n_sink)
        if len(seq) + max_new_tokens > n_ctx:
            raise ContextLengthError(
                f"example {ex.id}: prompt of {len(seq)} tokens + {max_new_tokens} new tokens exceeds the model's "
                f"context of {n_ctx}; use fewer documents (--n-docs) or fewer new tokens"
            )
        seqs.append(seq)
    return seqs


def answer_examples(
    model,
    examples: Sequence[Example],
    *,
    max_new_tokens: int = 100,
    stop: StopAt = "line",
    batch_size: int = 8,
    n_sink: int = 1,
    progress: bool = True,
) -> list[Answered]:
    """Greedy answers to ``examples`` (in order), graded with ``best_subspan_em`` and labeled."""
    prompts = label_prompts(model, examples, n_sink=n_sink, max_new_tokens=max_new_tokens)
    gens = generate(
        model, [p.input_ids for p in prompts], max_new_tokens=max_new_tokens, stop=stop, batch_size=batch_size, progress=progress
    )
    out = []
    for ex, gen in zip(examples, gens):
        em = best_subspan_em(gen.text, ex.answers)
        if not gen.text:
            out.append(Answered(ex, gen.text, em, None, "empty response"))
            continue
        try:
            seq = label(ex, model.tokenizer, gen.text, n_sink=n_sink)
        except LabelError as e:
            out.append(Answered(ex, gen.text, em, None, f"response not separable: {e}"))
            continue
        out.append(Answered(ex, gen.text, em, seq))
    return out


def conditions(answered: Sequence[Answered]) -> list[list[str]]:
    """Scoring conditions per answer (paper Table 1): ``long`` prompts also count as ``correct``
    (exact match on the gold-only and the long prompt) or ``wrong`` (on the gold-only prompt only);
    ``gold`` and ``negative`` prompts count as themselves."""
    gold_em = {a.example.question_id: a.em for a in answered if a.example.variant == "gold"}
    out = []
    for a in answered:
        conds = [a.example.variant]
        if a.example.variant == "long" and gold_em.get(a.example.question_id) == 1.0:
            conds.append("correct" if a.em == 1.0 else "wrong")
        out.append(conds)
    return out


def skip_counts(answered: Sequence[Answered]) -> dict[str, int]:
    """How many answers were skipped, by reason (the part before any colon)."""
    return dict(Counter(a.skipped.split(":")[0] for a in answered if a.skipped))
