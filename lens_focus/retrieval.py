"""Retrieval scores (docs/method.md §6, Wu et al. 2024): which heads copy from the needle while the
model answers a needle-in-a-haystack question.

At decoding step ``t`` the model emits token ``w_t`` from the attention row of the position before
it. For every head take that row's top-1 key ``i``; if ``i`` lies in the copied span ``[s, e)`` and
the prompt token at ``i`` is ``w_t``, the head gets a copy credit worth ``1 / (e − s)``. Decoding
runs greedily up to 50 tokens and stops at a line break. A sample counts only when its response
recalls the span's words (ROUGE-1 recall above 0.5, with stemming, from the ``rouge-score``
library, as their code computes it); a head's retrieval score is its mean over the samples that
count. The span is one of :data:`~lens_focus.defaults.CopiedSpan`:

- ``needle`` (the default, Wu et al.'s score): the clause of the needle its question asks for, their
  "real needle" (most of the needle sentence);
- ``answer``: the short answer inside that clause (a few words), lens_focus's earlier score, kept
  to compare with.

The rows are read with :func:`lens_focus.hooks.pattern_rows`, so both attention paths work.
"""
from __future__ import annotations

from functools import cache
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from jaxtyping import Int
from torch import Tensor

from .answers import label_prompts
from .defaults import NEEDLE_NEW_TOKENS, CopiedSpan
from .errors import InputError
from .generate import generate_batches
from .hooks import hooked, last_row_from, pattern_rows
from .labels import Example

RETRIEVAL_COLUMNS = ["layer", "head", "score", "n"]


@cache
def _scorer():
    from rouge_score import rouge_scorer  # imported on first use: only the retrieval test needs it

    return rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)


def recall(response: str, target: str) -> float:
    """ROUGE-1 recall of ``target``'s words in ``response`` (``rouge-score``, with stemming), the
    gate of Wu et al.'s detector."""
    return _scorer().score(target, response)["rouge1"].recall


def target_of(example: Example, span: CopiedSpan) -> str:
    """The words ``example``'s response must recall for its sample to count: its needle's clause or its answer."""
    return example.meta.get("clause", example.answers[0]) if span == "needle" else example.answers[0]


def copy_credits(
    top: Int[Tensor, "step layer head"], generated: Sequence[int], prompt_ids: Sequence[int], span: tuple[int, int]
) -> np.ndarray:
    """Copies per head, ``(layer, head)``: steps whose top-1 key lies in the span ``[s, e)`` of the
    prompt and holds the token generated at that step."""
    start, end = span
    steps = min(len(generated), top.shape[0])
    top = top[:steps]
    tokens = torch.tensor(list(prompt_ids))
    inside = (top >= start) & (top < end)
    same = tokens[top.clamp(0, len(tokens) - 1)] == torch.tensor(list(generated[:steps]))[:, None, None]
    return (inside & same).sum(0).numpy()


def retrieval_samples(
    model,
    examples: Sequence[Example],
    *,
    span: CopiedSpan = "needle",
    max_new_tokens: int = NEEDLE_NEW_TOKENS.default,
    batch_size: int = 4,
    gate: float = 0.5,
    progress: bool = True,
) -> list[np.ndarray | None]:
    """Per example, in order, its copies per head into ``span`` over the span's length, ``(layer,
    head)``, or None when its response does not recall the span's words (ROUGE-1 recall ≤ ``gate``)
    and the sample does not count."""
    if not examples:
        raise InputError("no examples to score retrieval heads on")
    prompts = label_prompts(model, examples, max_new_tokens=max_new_tokens)
    for seq in prompts:
        if not seq.token_spans.get(span):
            raise InputError(f"example {seq.example.id}: no {span!r} span (build it with lens_focus.data.needle)")
    n_layers = model.cfg.n_layers
    samples: list[np.ndarray | None] = [None] * len(examples)
    tops: dict = {}

    def watch(batch):
        tops.clear()

        def keep(layer, positions, pattern):  # the prompt's last row, then every decoding step's
            tops.setdefault(layer, []).append(pattern[:, :, -1].argmax(-1).cpu())  # (batch, head)

        hooks, fast = pattern_rows(model, last_row_from(batch.width), keep)
        return hooked(model, hooks, **fast)

    batches = generate_batches(model, [p.input_ids for p in prompts], max_new_tokens=max_new_tokens, stop="line",
                               batch_size=batch_size, during=watch, progress=progress)  # fmt: skip
    for batch in batches:
        top = torch.stack([torch.stack(tops[layer]) for layer in range(n_layers)], dim=2)  # (step, batch, layer, head)
        for b, (i, gen) in enumerate(zip(batch.indices, batch.generations)):
            seq, ex = prompts[i], examples[i]
            if recall(gen.text, target_of(ex, span)) <= gate:
                continue
            (s, e), pad = seq.token_spans[span][0], batch.pad(b)
            samples[i] = copy_credits(top[:, b] - pad, gen.ids, seq.input_ids, (s, e)) / (e - s)
        batch.cache = None
    return samples


def retrieval_frame(samples: Sequence[np.ndarray | None], n_layers: int, n_heads: int) -> tuple[pd.DataFrame, dict]:
    """Every head's retrieval score, the mean over the samples that count of
    :func:`retrieval_samples` (of one process, or of every part of a run in order): a frame
    ``layer, head, score, n`` ranked by score, and counts (``samples``, ``counted``)."""
    counted = [x for x in samples if x is not None]
    layer, head = np.meshgrid(np.arange(n_layers), np.arange(n_heads), indexing="ij")
    mean = np.mean(counted, axis=0) if counted else np.full((n_layers, n_heads), np.nan)
    frame = pd.DataFrame({"layer": layer.ravel(), "head": head.ravel(), "score": mean.ravel(), "n": len(counted)})
    frame = frame.sort_values(["score", "layer", "head"], ascending=[False, True, True], ignore_index=True)
    return frame, {"samples": len(samples), "counted": len(counted)}


def retrieval_scores(
    model, examples: Sequence[Example], *, span: CopiedSpan = "needle", max_new_tokens: int = NEEDLE_NEW_TOKENS.default, batch_size: int = 4,
    gate: float = 0.5, progress: bool = True,
) -> tuple[pd.DataFrame, dict]:  # fmt: skip
    """Every head's retrieval score over ``examples`` (needles: :mod:`lens_focus.data.needle`): a
    frame ``layer, head, score, n`` ranked by score, and counts (``samples``, ``counted``: the
    samples whose response recalls the span's words)."""
    samples = retrieval_samples(model, examples, span=span, max_new_tokens=max_new_tokens, batch_size=batch_size, gate=gate, progress=progress)
    return retrieval_frame(samples, model.cfg.n_layers, model.cfg.n_heads)
