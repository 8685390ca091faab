"""Interventions on attention, each a context manager over the model's hook points.

- :func:`compensation`: split-softmax compensation on ``hook_pattern`` (docs/method.md §3, paper
  Eq. 2–3) while the model reads labeled sequences; :func:`split_softmax` below it takes the masks.
- :func:`focus`: focus directions added to queries and keys (docs/method.md §4, paper Eq. 5); the
  directions themselves live in :mod:`lens_focus.directions`.

Each context manager has its :data:`Intervention`, the same thing for functions that run many
padded batches (:func:`compensation_intervention`, :func:`focus_intervention`).

Both register through :func:`lens_focus.hooks.add_hooks` and remove exactly their own hooks on
exit, errors included; hooks the user registered stay. Both work for a plain forward pass and
during generation with a key-value cache: a pattern of ``q`` query rows against ``k`` keys holds
the rows at absolute positions ``k - q .. k - 1``.

Experiments that run many padded batches take an :data:`Intervention`: a function from a
:class:`Placement` (where each row's sequence sits in the batch) to a context manager.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Callable, ContextManager, Iterator, Sequence

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from .directions import check_directions
from .fast import AttnCall, Patch, attention_of, fast_unsupported
from .heads import Head
from .hooks import HookHandle, add_hooks, attn_hook_name, pattern_edits_count
from .labels import LabeledSequence
from .model import ModelInfo, attention_layers, model_info
from .errors import InputError


@dataclass(frozen=True)
class Placement:
    """Where each row of a padded batch keeps its sequence."""

    seqs: Sequence[LabeledSequence]
    """Per row, the labeled prompt (or prompt + response)."""
    offsets: Sequence[int]
    """Per row, the batch position of the sequence's first token (its left padding)."""


Intervention = Callable[[Placement], ContextManager]
"""Builds the intervention for one batch; see :func:`compensation` and :func:`focus_intervention`."""


def _by_layer(heads: Sequence[Head], info: ModelInfo) -> dict[int, list[int]]:
    layers: dict[int, list[int]] = {}
    for layer, head in heads:
        if not (0 <= layer < info.n_layers and 0 <= head < info.n_heads):
            raise InputError(f"head ({layer}, {head}) does not exist in a model of {info.n_layers} layers × {info.n_heads} heads")
        if layer not in info.attn_layers:
            raise InputError(f"head ({layer}, {head}): layer {layer} has no attention (the layers with attention: {', '.join(map(str, info.attn_layers))})")
        layers.setdefault(int(layer), []).append(int(head))
    return {layer: sorted(set(hs)) for layer, hs in sorted(layers.items())}


# --- split-softmax compensation -------------------------------------------------------------


def split_softmax_pattern(
    pattern: Float[Tensor, "batch head q_pos k_pos"],
    span: Bool[Tensor, "batch k_pos"],
    rows: Bool[Tensor, "batch q_pos"],
    tau: float,
    *,
    learned_sink: bool = False,
) -> Float[Tensor, "batch head q_pos k_pos"]:
    """docs/method.md §3 on the chosen ``rows``: with ``π`` the row's mass on ``span``, weights inside the
    span are scaled by ``π^τ / π`` and the others by ``(1 − π^τ) / (1 − π)``; rows with ``π = 0``
    or ``π = 1``, and rows not chosen, are returned unchanged. Computed in float32 whatever the
    pattern's dtype (a bfloat16 ``π`` is off by up to 0.4 %, and ``π^τ`` of a tiny one underflows) and
    returned in it.

    ``learned_sink``: the rows are those of heads with a learned sink, which sum to 1 minus the
    sink's share; the sink counts as outside the span (``1 − π`` includes it), so it gives up its
    share in proportion like every other position outside."""
    if not tau > 0:
        raise InputError(f"tau must be positive, got {tau}")
    if tau == 1:
        return pattern  # the identity, exactly
    if pattern.dtype not in (torch.float32, torch.float64):
        return split_softmax_pattern(pattern.float(), span, rows, tau, learned_sink=learned_sink).to(pattern.dtype)
    inside = span[:, None, None, :]
    pi = (pattern * inside).sum(-1, keepdim=True)
    # 1 − π: the mass outside the span (without the rounding of 1 − π), or with a learned sink everything but π
    rest = 1 - pi if learned_sink else (pattern * ~inside).sum(-1, keepdim=True)
    act = (pi > 0) & (rest > 0) & rows[:, None, :, None]
    pi, rest = torch.where(act, pi, 0.5), torch.where(act, rest, 0.5)
    scaled = pi.pow(tau)
    factor = torch.where(inside, scaled / pi, (1 - scaled) / rest)
    return torch.where(act, pattern * factor, pattern)


def _split_softmax_rows(pattern, positions: Tensor, *, heads: list[int], span: Tensor, first_row: Tensor, tau: float, learned_sink: bool = False):
    """:func:`split_softmax_pattern` on ``heads`` of a pattern whose rows sit at batch positions
    ``positions``: rows from ``first_row`` on are patched; span columns past its width count as outside."""
    k = pattern.shape[-1]
    rows = positions.to(pattern.device)[None, :] >= first_row[:, None].to(pattern.device)
    cols = torch.zeros(pattern.shape[0], k, dtype=torch.bool, device=pattern.device)
    width = min(k, span.shape[1])
    cols[:, :width] = span[:, :width].to(pattern.device)
    out = pattern.clone()
    out[:, heads] = split_softmax_pattern(pattern[:, heads], cols, rows, tau, learned_sink=learned_sink)
    return out


def _split_softmax_hook(pattern, *, hook, **kw):
    q, k = pattern.shape[-2:]
    return _split_softmax_rows(pattern, torch.arange(k - q, k), **kw)


def add_split_softmax(
    model,
    heads: Sequence[Head],
    *,
    span: Bool[Tensor, "batch k_pos"],
    first_row: Int[Tensor, " batch"] | int,
    tau: float,
) -> HookHandle:
    """Register split-softmax compensation on ``heads``; returns the handle to remove it.

    Args:
        span: per batch row, the key positions of the span ``C`` (columns past its width count as
            outside the span, e.g. generated tokens).
        first_row: per batch row (or for all rows), the first query position patched; every
            later row is patched too. For the rows that produce the response, the position of
            the last prompt token.
        tau: the exponent τ (< 1 raises attention on the span, 1 is the identity).
    """
    if not tau > 0:
        raise InputError(f"tau must be positive, got {tau}")
    if span.dim() != 2:
        raise ValueError(f"span must be a (batch, k_pos) mask, got shape {tuple(span.shape)}")
    first = torch.as_tensor(first_row).long().reshape(-1).expand(span.shape[0])
    layers = _by_layer(heads, model_info(model))
    _check_pattern_edits(model)
    sinks = {layer: bool(a and a.learned_sink) for layer, a in enumerate(attention_layers(model))}
    hooks = [
        (attn_hook_name(layer, "hook_pattern"),
         partial(_split_softmax_hook, heads=hs, span=span.bool(), first_row=first, tau=tau, learned_sink=sinks[layer]))
        for layer, hs in layers.items()
    ]  # fmt: skip
    patches = {layer: _split_softmax_patch(hs, span.bool(), first, tau) for layer, hs in layers.items()}
    return add_hooks(model, hooks, patch=patches)


def _split_softmax_patch(heads: list[int], span: Tensor, first_row: Tensor, tau: float) -> Patch:
    """:func:`_split_softmax_rows` for the fast path: it patches only the rows from ``first_row`` on."""

    def rows(call: AttnCall) -> Tensor:
        positions = torch.arange(call.first_position, call.n_keys, device=first_row.device)
        return positions[None, :] >= first_row[:, None]

    def fn(call: AttnCall, positions: Tensor, pattern: Tensor) -> Tensor:
        return _split_softmax_rows(pattern, positions, heads=heads, span=span, first_row=first_row, tau=tau)

    return Patch(rows=rows, fn=fn)


@contextmanager
def split_softmax(model, heads: Sequence[Head], *, span, first_row, tau: float) -> Iterator[HookHandle]:
    """Context manager around :func:`add_split_softmax`; the hooks go on exit, errors included."""
    handle = add_split_softmax(model, heads, span=span, first_row=first_row, tau=tau)
    try:
        yield handle
    finally:
        handle.remove()


def placement_span(placement: Placement, span: str = "relevant") -> tuple[Tensor, Tensor]:
    """``(span mask (batch, width), first response row (batch,))`` of a placement, in batch
    positions. A sequence without the span is an error naming the example."""
    width = max(off + len(s) for s, off in zip(placement.seqs, placement.offsets))
    mask = torch.zeros(len(placement.seqs), width, dtype=torch.bool)
    first = torch.zeros(len(placement.seqs), dtype=torch.long)
    for b, (seq, off) in enumerate(zip(placement.seqs, placement.offsets)):
        ranges = seq.token_spans.get(span)
        if not ranges:
            raise InputError(f"example {seq.example.id}: no span {span!r} to compensate (spans: {sorted(seq.token_spans)})")
        for start, end in ranges:
            mask[b, off + start : off + end] = True
        first[b] = off + seq.n_prompt - 1
    return mask, first


def _check_pattern_edits(model) -> None:
    """Refuse compensation on the eager path of a bridge that discards edits of ``hook_pattern``
    (:func:`lens_focus.hooks.pattern_edits_count`), saying what runs it instead."""
    if attention_of(model) == "eager" and not pattern_edits_count(model):
        arch = type(getattr(model, "original_model", model)).__name__
        way = ("load it with attention='fast' (--attention fast)" if fast_unsupported(model) is None
               else "this family has no fast path either, so compensation is not available for it")  # fmt: skip
        raise InputError(f"{arch}: the bridge runs attention inside the transformers module and discards edits of "
                         f"hook_pattern, so split-softmax compensation would change nothing; {way}")


def compensation_intervention(model, heads: Sequence[Head], *, tau: float, span: str = "relevant") -> Intervention:
    """:func:`compensation` as an :data:`Intervention`, for functions that run many padded batches
    (:func:`~lens_focus.answers.answer_examples`): the span of every row's sequence, wherever the
    batch places it."""
    _by_layer(heads, model_info(model))
    _check_pattern_edits(model)

    def make(placement: Placement) -> ContextManager:
        mask, first = placement_span(placement, span)
        return split_softmax(model, heads, span=mask, first_row=first, tau=tau)

    return make


@contextmanager
def compensation(
    model, seqs: LabeledSequence | Sequence[LabeledSequence], heads: Sequence[Head], *, tau: float, span: str = "relevant", offsets: Sequence[int] | None = None
) -> Iterator[HookHandle]:
    """Split-softmax compensation of ``span`` on ``heads`` (docs/method.md §3) while ``model``
    reads the labeled sequence ``seqs`` (or a batch of them, each at its ``offsets``: its left
    padding, none by default), on the rows that produce the response; the hooks go on exit,
    errors included.

    >>> with lf.compensation(model, seq, lf.top_heads(scores, 20), tau=0.1):
    ...     logits = model(torch.tensor([seq.input_ids]))
    """
    seqs = [seqs] if isinstance(seqs, LabeledSequence) else list(seqs)
    with compensation_intervention(model, heads, tau=tau, span=span)(Placement(seqs, list(offsets) if offsets is not None else [0] * len(seqs))) as handle:
        yield handle


# --- focus directions -----------------------------------------------------------------------


def _add_rows(x, *, hook, heads: list[int], vec: Tensor, alpha: float, keep: dict | None = None, heads_first: bool = False):
    """Add ``alpha * vec[i]`` to head ``heads[i]`` of a (batch, pos, head, d_head) activation, or
    of a (batch, head, pos, d_head) one when ``heads_first`` (latent attention's ``hook_q``)."""
    if heads_first:
        return _add_rows(x.transpose(1, 2), hook=hook, heads=heads, vec=vec, alpha=alpha, keep=keep).transpose(1, 2)
    out = x.clone()
    out[:, :, heads] = x[:, :, heads] + alpha * vec.to(x.device, x.dtype)
    if keep is not None:
        keep["q"] = out
    return out


def _add_key_term(scores, *, hook, heads: list[int], vec: Tensor, alpha: float, scale: float, keep: dict):
    """Post-rotary ``d_K`` on attention scores: ``(q_i + α d_Q) · α d_K`` added to every key of
    row ``i`` (what adding ``α d_K`` to every key does); constant along each row, so inert."""
    q = keep["q"][:, -scores.shape[-2]:, heads]  # (batch, q_pos, heads, d_head)
    term = torch.einsum("bqhf,hf->bhq", q, alpha * vec.to(q.device, q.dtype)) * scale
    out = scores.clone()
    out[:, heads] = scores[:, heads] + term[..., None]
    return out


def add_focus(model, directions, heads: Sequence[Head], *, alpha: float) -> HookHandle:
    """Register focus directions ``alpha * d`` on ``heads`` (docs/method.md §4, Eq. 5); returns the handle.

    ``post_rotary``: ``d_Q`` on ``hook_rot_q``; ``d_K`` (per query head) as its exact effect on
    the scores, a constant per row, which leaves every pattern unchanged (docs/method.md §4: post-rotary
    ``d_K`` is inert). ``pre_rotary``: ``d_Q`` on ``hook_q`` and ``d_K`` on ``hook_k`` of the
    key-value head each chosen query head reads (``h // group size``); under grouped-query
    attention that key vector is also seen by the other query heads of its group.

    Every position gets the directions, left padding included: padded keys are masked out of
    every real row's attention and padded rows feed nothing else, so a padded batch gives each
    row exactly what it gets alone (tested).
    """
    info = check_directions(directions, model)
    return _register_focus(model, directions, heads, alpha, info, attention_layers(model))


def _register_focus(model, directions, heads: Sequence[Head], alpha: float, info, geometry) -> HookHandle:
    """:func:`add_focus` for directions already checked against the model (``info``: its
    :class:`~lens_focus.model.ModelInfo`; ``geometry``: its :func:`~lens_focus.model.attention_layers`)."""
    layers = _by_layer(heads, info)
    rotary = info.rotary
    hooks, query, pre = [], {}, {}
    for layer, hs in layers.items():
        dq = directions.q[layer, hs]
        if directions.site == "post_rotary":
            keep: dict = {}
            latent = geometry[layer].latent  # the query entering attention: hook_q, heads first
            q_site = "hook_rot_q" if rotary and not latent else "hook_q"
            hooks.append((attn_hook_name(layer, q_site), partial(_add_rows, heads=hs, vec=dq, alpha=alpha, keep=keep, heads_first=latent)))
            hooks.append((attn_hook_name(layer, "hook_attn_scores"), partial(
                _add_key_term, heads=hs, vec=directions.k[layer, hs], alpha=alpha, scale=geometry[layer].scaling, keep=keep)))  # fmt: skip
            query[layer] = partial(_add_to_query, heads=hs, vec=dq, alpha=alpha)
        else:
            kvs = sorted({info.kv_head(h) for h in hs})
            hooks.append((attn_hook_name(layer, "hook_q"), partial(_add_rows, heads=hs, vec=dq, alpha=alpha)))
            hooks.append((attn_hook_name(layer, "hook_k"), partial(_add_rows, heads=kvs, vec=directions.k[layer, kvs], alpha=alpha)))
            pre[(layer, "q")] = partial(_add_to_projection, heads=hs, vec=dq, alpha=alpha, d_head=info.d_head)
            pre[(layer, "k")] = partial(_add_to_projection, heads=kvs, vec=directions.k[layer, kvs], alpha=alpha, d_head=info.d_head)
    return add_hooks(model, hooks, query=query, pre=pre)


def _add_to_query(call: AttnCall, *, heads: list[int], vec: Tensor, alpha: float) -> Tensor:
    """Fast path, post-rotary ``d_Q``: ``alpha * vec[i]`` added to head ``heads[i]`` of the (batch, head, q_pos, d_head) queries."""
    q = call.query.clone()
    q[:, heads] = call.query[:, heads] + alpha * vec.to(q.device, q.dtype)[:, None]
    return q


def _add_to_projection(x: Tensor, *, heads: list[int], vec: Tensor, alpha: float, d_head: int) -> Tensor:
    """Fast path, pre-rotary: ``alpha * vec[i]`` added to head ``heads[i]`` of a (batch, pos, heads × d_head) projection."""
    out = x.view(*x.shape[:-1], -1, d_head).clone()
    out[..., heads, :] = out[..., heads, :] + alpha * vec.to(x.device, x.dtype)
    return out.view(x.shape)


@contextmanager
def focus(model, directions, heads: Sequence[Head], *, alpha: float) -> Iterator[HookHandle]:
    """Context manager around :func:`add_focus`: ``alpha = 0`` is the unmodified model."""
    handle = add_focus(model, directions, heads, alpha=alpha)
    try:
        yield handle
    finally:
        handle.remove()


def focus_intervention(model, directions, heads: Sequence[Head], *, alpha: float) -> Intervention:
    """:func:`focus` as an :data:`Intervention` (the same at every position of every row); the
    directions are checked against the model once, here, not at every batch."""
    info, geometry = check_directions(directions, model), attention_layers(model)
    _by_layer(heads, info)

    @contextmanager
    def placed(placement):
        handle = _register_focus(model, directions, heads, alpha, info, geometry)
        try:
            yield handle
        finally:
            handle.remove()

    return placed
