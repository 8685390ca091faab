"""Contextual scores (paper Eq. 1, docs/method.md §2): where each head's attention goes while the model answers.

    S_C(l, h) = 1/|rows| · Σ_{i ∈ rows} Σ_{j ∈ C} W[i, j]

One teacher-forced pass per batch of labeled sequences. Every layer's attention rows that are
scored are reduced to span sums at once (:func:`lens_focus.hooks.pattern_rows`): per layer a
(batch, heads, spans) tensor is kept, never a copy of the (q_pos × k_pos) pattern. On the fast path
(:mod:`lens_focus.fast`) only the scored rows' pattern is ever computed, ``rows × k_pos`` per head;
on the bridge path long sequences run in chunks of query positions so no layer holds more than
(chunk × k_pos) per head. The pass stops right after the last layer's attention, so the
unembedding is never computed.
"""
from __future__ import annotations

from collections import defaultdict
from contextlib import nullcontext
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from .forward import DEFAULT_CHUNK, batch_budget, chunked_forward, input_device, plan_batches, run
from .hooks import RowsOf, attention_indices, hooked, last_row_from, pattern_rows
from .interventions import Intervention, Placement
from .labels import LabeledSequence, RowsKind
from .model import attention_layers
from .errors import InputError
from .defaults import ROWS

SCORE_COLUMNS = ["layer", "head", "condition", "span", "score", "n"]


class _LastLayerDone(Exception):
    """Raised from the last layer's hook: everything the scores need has been computed."""


def _span_reduce(
    pattern: Float[Tensor, "batch head row k_pos"],
    row_weights: Float[Tensor, "batch row"],
    span_masks: Float[Tensor, "batch k_pos span"],
) -> Float[Tensor, "batch head span"]:
    """Σ_i r_i Σ_{j∈C} W[i, j] for every span C: the row-weighted attention mass on each span."""
    per_key = (row_weights.to(pattern.dtype)[:, None, None, :] @ pattern).squeeze(2)
    return per_key.float() @ span_masks.to(per_key.device)


def _wanted(row_weights: Tensor) -> RowsOf:
    """The rows of an attention call that carry weight for some sequence of the batch."""
    any_row = row_weights.cpu().gt(0).any(0)
    return lambda first, n: any_row[first : first + n].nonzero().flatten()


LEARNED_SINK = "learned_sink"
"""The span of a learned sink (gpt-oss): the share of each row that its softmax gives the sink
logit, which the model then drops; ``1 −`` the row's sum over every position (docs/method.md §2)."""


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
            spans = [(0, len(seq))] if name == LEARNED_SINK else seq.token_spans.get(name, [])  # the sink: what the row keeps
            for start, end in spans:
                masks[b, start:end, c] = 1.0
    return ids.to(device), row_w.to(device), masks.to(device)


def _sink_share(totals: Tensor, names: list[str], weight: Tensor) -> None:
    """Turn the :data:`LEARNED_SINK` column of (batch, layer, head, span) totals, which holds the
    scored rows' mass on every position, into the learned sink's share: each sequence's total row
    ``weight`` (batch,) less that mass."""
    if LEARNED_SINK in names:
        c = names.index(LEARNED_SINK)
        totals[..., c] = weight[:, None, None] - totals[..., c]


def _per_sequence(totals: Tensor, names: list[str], seqs: Sequence[LabeledSequence]) -> list[dict[str, np.ndarray]]:
    """Split (batch, layer, head, span) totals into one ``{span: (layer, head)}`` dict per sequence,
    adding ``irrelevant_max``."""
    stacked = totals.numpy()
    outs = []
    for b, seq in enumerate(seqs):
        out = {name: stacked[b, :, :, c] for c, name in enumerate(names) if name in seq.token_spans or name == LEARNED_SINK}
        others = seq.example.irrelevant_names
        if others:
            out["irrelevant_max"] = np.max([out[d] for d in others], axis=0)
        outs.append(out)
    return outs


def span_sums(
    model,
    seqs: Sequence[LabeledSequence],
    *,
    rows: RowsKind = ROWS.default,
    batch_size: int = 4,
    chunk: int = DEFAULT_CHUNK,
    intervention: Intervention | None = None,
    progress: bool = True,
) -> Iterator[dict[str, np.ndarray]]:
    """Per sequence, ``{span: array (n_layers, n_heads)}`` of contextual scores, in input order; NaN
    on the layers without attention of a hybrid model.

    Under ``intervention`` (see :mod:`lens_focus.interventions`) the scores are those of the
    patched model; its hooks run before the scoring hooks.

    Includes every named span of the sequence, ``irrelevant_max`` (the largest single
    irrelevant document) when the sequence has irrelevant documents, and :data:`LEARNED_SINK`
    when the model's heads have learned sinks. Sequences are batched with
    right padding (padded keys come after every scored row, so causal attention never sees them)
    and run ``chunk`` query positions at a time (see :mod:`lens_focus.forward`).
    """
    n_layers = model.cfg.n_layers
    present = attention_indices(model)
    sinks = any(a and a.learned_sink for a in attention_layers(model))
    pad_id = model.tokenizer.pad_token_id or 0
    device = input_device(model)
    for seq in seqs:
        if len(seq.rows(rows)) == 0:
            raise InputError(f"example {seq.example.id}: no rows to score (empty response)")
    max_cells, span = batch_budget(model, chunk)
    batches = plan_batches([len(s) for s in seqs], batch_size=batch_size, max_cells=max_cells, chunk=span)
    pending: dict[int, dict[str, np.ndarray]] = {}
    next_out = 0
    for batch in tqdm(batches, desc="scoring", disable=not progress, unit="batch"):
        group = [seqs[i] for i in batch]
        names = sorted({n for s in group for n in s.token_spans} | ({LEARNED_SINK} if sinks else set()))
        ids, row_w, masks = _batch_tensors(group, names, rows, pad_id, device)
        width = ids.shape[1]
        totals = torch.full((len(group), n_layers, model.cfg.n_heads, len(names)), float("nan"))
        totals[:, list(present)] = 0.0

        def reduce(layer, positions, pattern):
            totals[:, layer] += _span_reduce(pattern, row_w[:, positions], masks[:, : pattern.shape[-1]]).cpu()

        def stop_after_last(layer, end):
            if layer == present[-1] and end == width:
                raise _LastLayerDone

        hooks, fast = pattern_rows(model, _wanted(row_w), reduce, stop_after_last)
        active = intervention(Placement(group, [0] * len(group))) if intervention else nullcontext()
        with torch.no_grad(), active, hooked(model, hooks, **fast):
            try:
                chunked_forward(model, ids, chunk=chunk, every_position=True)
            except _LastLayerDone:
                pass
        _sink_share(totals, names, row_w.sum(-1).cpu())
        for i, out in zip(batch, _per_sequence(totals, names, group)):
            pending[i] = out
        while next_out in pending:
            yield pending.pop(next_out)
            next_out += 1


def score_heads(
    model,
    seqs: Sequence[LabeledSequence],
    *,
    conditions: Sequence[Sequence[str]] | None = None,
    rows: RowsKind = ROWS.default,
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
        raise InputError("no sequences to score")
    if conditions is None:
        conditions = [[s.example.variant] for s in seqs]
    return aggregate_scores(span_sums(model, seqs, rows=rows, batch_size=batch_size, progress=progress), conditions)


def aggregate_scores(per_sequence: Iterable[dict[str, np.ndarray]], conditions: Sequence[Sequence[str]]) -> pd.DataFrame:
    """Average per-sequence ``{span: (layer, head)}`` scores per condition into the tidy frame of
    :func:`score_heads`."""
    sums: dict[tuple[str, str], np.ndarray] = {}
    counts: dict[tuple[str, str], int] = defaultdict(int)
    n_seen = 0
    for conds, scores in zip(conditions, per_sequence, strict=True):
        n_seen += 1
        for cond in conds:
            for span, value in scores.items():
                key = (cond, span)
                sums[key] = sums[key] + value if key in sums else value.astype(np.float64)
                counts[key] += 1
    if not n_seen:
        raise InputError("no sequences to score")
    frames = []
    for (cond, span), total in sums.items():
        n_layers, n_heads = total.shape
        layer, head = np.meshgrid(np.arange(n_layers), np.arange(n_heads), indexing="ij")
        kept = ~np.isnan(total).ravel()  # a hybrid's layers without attention have no score, not a score of 0
        frames.append(
            pd.DataFrame(
                {
                    "layer": layer.ravel()[kept],
                    "head": head.ravel()[kept],
                    "condition": cond,
                    "span": span,
                    "score": (total / counts[(cond, span)]).ravel()[kept],
                    "n": counts[(cond, span)],
                }
            )
        )
    return pd.concat(frames, ignore_index=True).sort_values(["condition", "span", "layer", "head"], ignore_index=True)


def score_grid(scores: pd.DataFrame, *, condition: str = "long", span: str = "relevant", n_layers: int | None = None) -> np.ndarray:
    """One condition and span of a score frame as an array (n_layers, n_heads): NaN on the layers
    the frame has no scores for (a hybrid's layers without attention, up to ``n_layers`` when given)."""
    sel = scores[(scores.condition == condition) & (scores.span == span)]
    if sel.empty:
        raise InputError(f"no scores for condition {condition!r}, span {span!r}")
    grid = sel.pivot(index="layer", columns="head", values="score")
    return grid.reindex(range(max(n_layers or 0, int(grid.index.max()) + 1))).to_numpy()


def head_pattern(
    model, seq: LabeledSequence, layer: int, head: int, *, rows: RowsKind = ROWS.default, intervention: Intervention | None = None
) -> Float[np.ndarray, "rows k_pos"]:
    """One head's attention rows on one sequence: ``W[i, :]`` for the scored rows ``i`` of
    ``seq.rows(rows)`` against every position of ``seq`` (float32, each row sums to 1 over the
    keys it can see). Summing a row over a span's positions and averaging over rows gives that
    span's contextual score (Eq. 1). On either attention path; under ``intervention`` the
    pattern of the patched model."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    if not (0 <= layer < n_layers and 0 <= head < n_heads):
        raise InputError(f"no head ({layer}, {head}) in a model of {n_layers} layers × {n_heads} heads")
    if layer not in attention_indices(model):
        raise InputError(f"layer {layer} has no attention (the layers with attention: {', '.join(map(str, attention_indices(model)))})")
    wanted = _rows_to_show(seq, rows)
    out = np.zeros((len(wanted), len(seq)), dtype=np.float32)

    def keep(at, positions, pattern):
        if at == layer:
            for p, row in zip(positions.tolist(), pattern[0, head].cpu().numpy()):
                out[p - wanted.start, : row.shape[-1]] = row

    _pattern_pass(model, seq, wanted, keep, intervention)
    return out


def mean_attention(
    model, seq: LabeledSequence, *, rows: RowsKind = ROWS.default, intervention: Intervention | None = None
) -> Float[np.ndarray, "layer head k_pos"]:
    """Every head's attention on each position of ``seq``, averaged over the scored rows
    ``seq.rows(rows)`` (float32): summed over a span's positions, a head's contextual score of
    that span on this sequence (Eq. 1). What the explorer colours a prompt by. NaN on the layers
    without attention of a hybrid model."""
    wanted = _rows_to_show(seq, rows)
    out = np.full((model.cfg.n_layers, model.cfg.n_heads, len(seq)), np.nan)
    out[list(attention_indices(model))] = 0.0

    def keep(at, positions, pattern):
        out[at, :, : pattern.shape[-1]] += pattern[0].sum(1).double().cpu().numpy()

    _pattern_pass(model, seq, wanted, keep, intervention)
    return (out / len(wanted)).astype(np.float32)


def _rows_to_show(seq: LabeledSequence, rows: RowsKind) -> range:
    wanted = seq.rows(rows)
    if not len(wanted):
        raise InputError(f"example {seq.example.id}: no rows to show (empty response)")
    return wanted


def _pattern_pass(model, seq: LabeledSequence, wanted: range, keep: Callable, intervention: Intervention | None) -> None:
    """One forward pass of ``seq`` calling ``keep(layer, positions, pattern)`` with the rows ``wanted``."""

    def rows_of(first, n):
        positions = torch.arange(first, first + n)
        return ((positions >= wanted.start) & (positions < wanted.stop)).nonzero().flatten()

    hooks, fast = pattern_rows(model, rows_of, keep)
    active = intervention(Placement([seq], [0])) if intervention else nullcontext()
    with torch.no_grad(), active, hooked(model, hooks, **fast):
        chunked_forward(model, torch.tensor([seq.input_ids], device=input_device(model)), every_position=True)


def last_rows(model, store: dict):
    """For :func:`~lens_focus.generate.generate_batches` ``prefill``: while a
    :class:`~lens_focus.generate.PromptBatch` is read, keep each layer's attention row of the last
    prompt position, ``store[layer]`` = (batch, heads, width)."""

    def keep(layer, positions, pattern):
        # A copy: a view of one row would keep the whole (batch, heads, q_pos, k_pos) pattern alive.
        store[layer] = pattern[:, :, -1].detach().to(device="cpu", dtype=torch.float32, copy=True)

    def prefill(batch):
        hooks, fast = pattern_rows(model, last_row_from(batch.width), keep)
        return hooked(model, hooks, **fast)

    return prefill


def second_pass_reason(batch, b: int, seq: LabeledSequence | None) -> str | None:
    """Why row ``b`` of a generated :class:`~lens_focus.generate.PromptBatch` cannot be scored
    against the batch's key-value cache (see :func:`score_after_generation`), or None when it can."""
    if seq is None:
        return None
    if list(seq.input_ids[: seq.n_prompt]) != batch.prompts[b]:
        return "prompt re-tokenized with the response"
    if any(hasattr(layer, "has_previous_state") for layer in getattr(batch.cache, "layers", [])):
        return "recurrent layers (a hybrid model's state cannot be cut back to the prompt)"
    if not _keeps_every_position(batch.cache, batch.cached):
        return "sliding-window cache past its window"
    return None


def _keeps_every_position(cache, length: int) -> bool:
    """Whether every layer of ``cache``, holding ``length`` positions, still keeps all of them: then
    ``crop`` can cut it back to the prompt and its keys line up with absolute positions. A
    sliding-window layer past its window has dropped the oldest ones."""
    layers = getattr(cache, "layers", None)
    if layers is None:
        return False
    return all(not getattr(layer, "is_sliding", False) or length < getattr(layer, "sliding_window", 0) for layer in layers)


def score_after_generation(
    model,
    batch,
    seqs: Sequence[LabeledSequence | None],
    last_rows: dict[int, Tensor],
    *,
    rows: RowsKind = ROWS.default,
    intervention: Intervention | None = None,
) -> list[dict[str, np.ndarray] | None]:
    """Contextual scores of freshly generated answers, reusing the prompt's key-value cache.

    The teacher-forced pass over ``prompt + response`` is split in two: the prompt part is the
    generation's own prefill (its cache, and its last row kept by :func:`last_rows`), and the
    response tokens run against that cache, cut back to the prompt. Same numbers as
    :func:`span_sums`, without reading the prompt twice; the batch's cache is used up. A sequence
    for which :func:`second_pass_reason` gives a reason (its prompt tokens differ from those it was
    generated from, a hybrid's recurrent state, or a sliding-window layer past its window in a
    cache that kept only the window: generation with hooks keeps every position) is scored by
    :func:`span_sums` instead.

    Args:
        batch: the :class:`~lens_focus.generate.PromptBatch` the answers came from.
        seqs: per row of the batch, the labeled ``prompt + response`` (None: not scored).
    """
    out: list[dict[str, np.ndarray] | None] = [None] * len(seqs)
    fused = []
    for b, s in enumerate(seqs):
        if s is None:
            continue
        if second_pass_reason(batch, b, s) is None:
            fused.append(b)
        else:
            out[b] = next(span_sums(model, [s], rows=rows, intervention=intervention, progress=False))
    if fused:
        for b, scores in zip(fused, _score_against_cache(model, batch, fused, [seqs[b] for b in fused], last_rows, rows, intervention)):
            out[b] = scores
    return out


def _response_tensors(batch, fused: list[int], group: Sequence[LabeledSequence], names: list[str], rows: RowsKind, pad_id: int):
    """The responses of ``group`` (rows ``fused`` of ``batch``) right-padded, their positions, and
    the span masks and row weights over ``width + longest`` keys (the prompt part left-padded as in
    the batch, the response part after ``width``)."""
    width, longest = batch.width, max(s.n_response for s in group)
    ids = torch.full((len(fused), longest), pad_id, dtype=torch.long)
    resp_mask = torch.zeros(len(fused), longest, dtype=torch.long)
    positions = torch.zeros(len(fused), longest, dtype=torch.long)
    masks = torch.zeros(len(fused), width + longest, len(names))
    row_w = torch.zeros(len(fused), longest)
    last_w = torch.zeros(len(fused))
    for g, (b, s) in enumerate(zip(fused, group)):
        n, pad = s.n_prompt, batch.pad(b)
        ids[g, : s.n_response] = torch.tensor(s.input_ids[n:])
        resp_mask[g, : s.n_response] = 1
        positions[g] = n + torch.arange(longest)
        scored = s.rows(rows)
        for t in scored:
            if t < n:
                last_w[g] = 1.0 / len(scored)
            else:
                row_w[g, t - n] = 1.0 / len(scored)
        for c, name in enumerate(names):
            for start, end in [(0, len(s))] if name == LEARNED_SINK else s.token_spans.get(name, []):
                masks[g, pad + start : pad + min(end, n), c] = 1.0
                masks[g, width + max(start, n) - n : width + end - n, c] = 1.0
    return ids, resp_mask, positions, masks, row_w, last_w


def _score_against_cache(model, batch, fused, group, last_rows, rows, intervention) -> list[dict[str, np.ndarray]]:
    """Scores of the rows ``fused`` of ``batch``: the response tokens of ``group`` teacher-forced
    against the prompt's cache, plus the last prompt row kept from the prefill."""
    n_layers, n_heads, width = model.cfg.n_layers, model.cfg.n_heads, batch.width
    sinks = any(a and a.learned_sink for a in attention_layers(model))
    names = sorted({n for s in group for n in s.token_spans} | ({LEARNED_SINK} if sinks else set()))
    ids, resp_mask, positions, masks, row_w, last_w = _response_tensors(batch, fused, group, names, rows, model.tokenizer.pad_token_id or 0)
    cache, device = batch.cache, batch.mask.device
    if batch.cached > width:
        cache.crop(width - batch.cached)  # back to the prompt; the response is fed teacher-forced below
    keep = torch.tensor(fused)
    if len(fused) < len(batch.prompts):
        cache.batch_select_indices(keep.to(device))
    totals = torch.full((len(fused), n_layers, n_heads, len(names)), float("nan"))
    totals[:, list(attention_indices(model))] = 0.0
    for layer in attention_indices(model):
        totals[:, layer] += last_w[:, None, None] * (last_rows[layer][keep] @ masks[:, :width])

    def reduce(layer, positions, pattern):
        totals[:, layer] += _span_reduce(pattern, row_w[:, positions - width].to(device), masks).cpu()

    hooks, fast = pattern_rows(model, _wanted(torch.cat([torch.zeros(len(fused), width), row_w], dim=1)), reduce)
    active = intervention(Placement(group, [batch.pad(b) for b in fused])) if intervention else nullcontext()
    with torch.no_grad(), active, hooked(model, hooks, **fast):
        run(
            model,
            ids.to(device),
            attention_mask=torch.cat([batch.mask[keep.to(device)], resp_mask.to(device)], dim=1),
            position_ids=positions.to(device),
            cache=cache,
            logits=False,
        )
    batch.cache = None
    _sink_share(totals, names, last_w + row_w.sum(-1))
    return _per_sequence(totals, names, group)
