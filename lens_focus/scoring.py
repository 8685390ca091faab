"""Contextual scores (paper Eq. 1, SPEC §2): where each head's attention goes while the model answers.

    S_C(l, h) = 1/|rows| · Σ_{i ∈ rows} Σ_{j ∈ C} W[i, j]

One teacher-forced pass per batch of labeled sequences. A hook on every layer's ``hook_pattern``
reduces the layer's pattern to span sums at once: per layer it keeps a (batch, heads, spans)
tensor, never a copy of the (q_pos × k_pos) pattern. The pass stops right after the last layer's
pattern, so the unembedding (pos × vocab) is never computed.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from .hooks import attn_hook_name, hooked
from .labels import LabeledSequence, RowsKind

SCORE_COLUMNS = ["layer", "head", "condition", "span", "score", "n"]


class _LastLayerDone(Exception):
    """Raised from the last layer's hook: everything the scores need has been computed."""


def _span_reduce(
    pattern: Float[Tensor, "batch head q_pos k_pos"],
    row_weights: Float[Tensor, "batch q_pos"],
    span_masks: Float[Tensor, "batch k_pos span"],
) -> Float[Tensor, "batch head span"]:
    """Σ_i r_i Σ_{j∈C} W[i, j] for every span C: the row-weighted attention mass on each span."""
    per_key = torch.einsum("bhqk,bq->bhk", pattern, row_weights.to(pattern.dtype))
    return torch.einsum("bhk,bks->bhs", per_key.float(), span_masks)


def _batch_tensors(seqs: Sequence[LabeledSequence], names: list[str], rows: RowsKind, pad_id: int, device):
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    row_w = torch.zeros(len(seqs), width)
    masks = torch.zeros(len(seqs), width, len(names))
    for b, seq in enumerate(seqs):
        ids[b, : len(seq)] = torch.tensor(seq.input_ids)
        r = seq.rows(rows)
        row_w[b, r.start : r.stop] = 1.0 / len(r)
        for c, name in enumerate(names):
            for start, end in seq.token_spans.get(name, []):
                masks[b, start:end, c] = 1.0
    return ids.to(device), row_w.to(device), masks.to(device)


def span_sums(
    model,
    seqs: Sequence[LabeledSequence],
    *,
    rows: RowsKind = "generation",
    batch_size: int = 4,
    progress: bool = True,
) -> Iterator[dict[str, np.ndarray]]:
    """Per sequence, ``{span: array (n_layers, n_heads)}`` of contextual scores, in input order.

    Includes every named span of the sequence and ``irrelevant_max`` (the largest single
    irrelevant document) when the sequence has irrelevant documents. Sequences are batched with
    right padding: padded keys come after every scored row, so causal attention never sees them.
    """
    n_layers = model.cfg.n_layers
    pad_id = model.tokenizer.pad_token_id or 0
    device = next(model.parameters()).device
    for seq in seqs:
        if len(seq.rows(rows)) == 0:
            raise ValueError(f"example {seq.example.id}: no rows to score (empty response)")
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    pending: dict[int, dict[str, np.ndarray]] = {}
    next_out = 0
    for batch in tqdm(batches, desc="scoring", disable=not progress, unit="batch"):
        group = [seqs[i] for i in batch]
        names = sorted({n for s in group for n in s.token_spans})
        ids, row_w, masks = _batch_tensors(group, names, rows, pad_id, device)
        per_layer: list[Tensor | None] = [None] * n_layers

        def reduce_hook(pattern, *, hook, layer):
            per_layer[layer] = _span_reduce(pattern, row_w, masks).cpu()
            if layer == n_layers - 1:
                raise _LastLayerDone

        hooks = [
            (attn_hook_name(layer, "hook_pattern"), lambda p, *, hook, layer=layer: reduce_hook(p, hook=hook, layer=layer))
            for layer in range(n_layers)
        ]
        with torch.no_grad(), hooked(model, hooks):
            try:
                model(ids, return_type=None)
            except _LastLayerDone:
                pass
        stacked = torch.stack(per_layer, dim=1).numpy()  # batch, layer, head, span
        for b, i in enumerate(batch):
            seq = seqs[i]
            out = {name: stacked[b, :, :, c] for c, name in enumerate(names) if name in seq.token_spans}
            others = [d for d in seq.example.documents if d != seq.example.relevant]
            if others:
                out["irrelevant_max"] = np.max([out[d] for d in others], axis=0)
            pending[i] = out
        while next_out in pending:
            yield pending.pop(next_out)
            next_out += 1


def score_heads(
    model,
    seqs: Sequence[LabeledSequence],
    *,
    conditions: Sequence[Sequence[str]] | None = None,
    rows: RowsKind = "generation",
    batch_size: int = 4,
    progress: bool = True,
) -> pd.DataFrame:
    """Contextual scores of every head, averaged per condition: a tidy frame with columns
    ``layer, head, condition, span, score, n`` (``n`` = sequences averaged).

    Args:
        conditions: per sequence, the conditions it counts towards (default: its example's variant,
            ``long`` / ``gold`` / ``negative``). A sequence may count towards several, e.g.
            ``["long", "correct"]``.
    """
    if not seqs:
        raise ValueError("no sequences to score")
    if conditions is None:
        conditions = [[s.example.variant] for s in seqs]
    if len(conditions) != len(seqs):
        raise ValueError(f"{len(conditions)} condition lists for {len(seqs)} sequences")
    sums: dict[tuple[str, str], np.ndarray] = {}
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for conds, scores in zip(conditions, span_sums(model, seqs, rows=rows, batch_size=batch_size, progress=progress)):
        for cond in conds:
            for span, value in scores.items():
                key = (cond, span)
                sums[key] = sums[key] + value if key in sums else value.astype(np.float64)
                counts[key] += 1
    frames = []
    for (cond, span), total in sums.items():
        n_layers, n_heads = total.shape
        layer, head = np.meshgrid(np.arange(n_layers), np.arange(n_heads), indexing="ij")
        frames.append(
            pd.DataFrame(
                {
                    "layer": layer.ravel(),
                    "head": head.ravel(),
                    "condition": cond,
                    "span": span,
                    "score": (total / counts[(cond, span)]).ravel(),
                    "n": counts[(cond, span)],
                }
            )
        )
    return pd.concat(frames, ignore_index=True).sort_values(["condition", "span", "layer", "head"], ignore_index=True)


def score_grid(scores: pd.DataFrame, *, condition: str = "long", span: str = "relevant") -> np.ndarray:
    """One condition and span of a score frame as an array (n_layers, n_heads)."""
    sel = scores[(scores.condition == condition) & (scores.span == span)]
    if sel.empty:
        raise ValueError(f"no scores for condition {condition!r}, span {span!r}")
    return sel.pivot(index="layer", columns="head", values="score").to_numpy()
