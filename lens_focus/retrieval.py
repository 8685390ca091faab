"""Retrieval scores (docs/method.md §6, after Wu et al. 2024): which heads copy the needle's answer while the
model answers a needle-in-a-haystack question.

At decoding step ``t`` the model emits token ``w_t`` from the attention row of the position before
it. For every head take that row's top-1 key ``i``; if ``i`` lies in the answer span ``[s, e)`` and
the prompt token at ``i`` is ``w_t``, the head gets a copy credit. Per sample a head scores
``copies / (e − s)``; only samples whose response recalls the answer (unigram recall of the answer
> 0.5, their gate) count, and a head's retrieval score is its mean over those. The rows are read
with :func:`lens_focus.hooks.pattern_rows`, so both attention paths work.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch
from jaxtyping import Int
from torch import Tensor

from .answers import label_prompts
from .generate import generate_batches
from .hooks import hooked, last_row_from, pattern_rows
from .labels import Example
from .metrics import normalize_answer
from .errors import InputError
from .defaults import NEEDLE_NEW_TOKENS

RETRIEVAL_COLUMNS = ["layer", "head", "score", "n"]


def answer_recall(response: str, answer: str) -> float:
    """The share of the answer's (normalised) words that the response contains: ROUGE-1 recall."""
    words = normalize_answer(answer).split()
    said = set(normalize_answer(response).split())
    return sum(w in said for w in words) / len(words) if words else 0.0


def copy_credits(
    top: Int[Tensor, "step layer head"], generated: Sequence[int], prompt_ids: Sequence[int], answer: tuple[int, int]
) -> np.ndarray:
    """Copies per head, ``(layer, head)``: steps whose top-1 key lies in the answer span ``[s, e)``
    of the prompt and holds the token generated at that step."""
    start, end = answer
    steps = min(len(generated), top.shape[0])
    top = top[:steps]
    tokens = torch.tensor(list(prompt_ids))
    inside = (top >= start) & (top < end)
    same = tokens[top.clamp(0, len(tokens) - 1)] == torch.tensor(list(generated[:steps]))[:, None, None]
    return (inside & same).sum(0).numpy()


def retrieval_samples(
    model, examples: Sequence[Example], *, max_new_tokens: int = NEEDLE_NEW_TOKENS.default, batch_size: int = 4, recall: float = 0.5, progress: bool = True
) -> list[np.ndarray | None]:
    """Per example, in order, its copies per head over the answer span's length, ``(layer,
    head)``, or None when its response does not recall the answer (and the sample does not count)."""
    if not examples:
        raise InputError("no examples to score retrieval heads on")
    prompts = label_prompts(model, examples, max_new_tokens=max_new_tokens)
    for seq in prompts:
        if not seq.token_spans.get("answer"):
            raise InputError(f"example {seq.example.id}: no 'answer' span (build it with lens_focus.data.needle)")
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
            if answer_recall(gen.text, ex.answers[0]) <= recall:
                continue
            (s, e), pad = seq.token_spans["answer"][0], batch.pad(b)
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
    model, examples: Sequence[Example], *, max_new_tokens: int = NEEDLE_NEW_TOKENS.default, batch_size: int = 4, recall: float = 0.5, progress: bool = True
) -> tuple[pd.DataFrame, dict]:
    """Every head's retrieval score over ``examples`` (each with an ``answer`` span): a frame
    ``layer, head, score, n`` ranked by score, and counts (``samples``, ``counted``: the samples
    whose response recalls the answer)."""
    samples = retrieval_samples(model, examples, max_new_tokens=max_new_tokens, batch_size=batch_size, recall=recall, progress=progress)
    return retrieval_frame(samples, model.cfg.n_layers, model.cfg.n_heads)
