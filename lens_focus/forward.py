"""Memory-bounded forward passes: batches planned by attention size, prompts run in chunks.

Eager attention materialises a (batch, heads, q_pos, k_pos) pattern in every layer. Running a long
sequence in chunks of ``chunk`` query positions against the key-value cache bounds that to
(batch, heads, chunk, k_pos), so a 32k-token prompt needs a few GB instead of a pattern of
32k × 32k per head; the results are the same as one pass (up to float rounding).

:func:`run` is the one forward call of lens_focus: it runs the bridge (eager attention, every
TransformerLens hook) or the fast path (:mod:`lens_focus.fast`, SDPA), as the model is set.
On the fast path a prompt is read in one pass: SDPA never holds a pattern.
"""
from __future__ import annotations

import ctypes
import sys
from typing import Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from .compat import cache_kwargs, new_cache
from .fast import attention_of, fast_model
from .model import model_info

DEFAULT_CHUNK = 1024
PATTERN_BYTES = 2**28
"""Memory one layer's attention pattern may take in a batch (float32)."""


def input_device(model) -> torch.device:
    """Where a model's inputs go: the device of its token embedding (under a device map, the first
    module's; every layer's own tensors are moved to that layer's device where they are used)."""
    return model.get_input_embeddings().weight.device if hasattr(model, "get_input_embeddings") else next(model.parameters()).device


BATCH_BYTES = 2**31
"""Memory a fast-path batch on the CPU may take for what grows with its tokens: the key-value
cache of every layer and one layer's activations (the fast path keeps no pattern; its scored rows
are a few per prompt, and a padded batch keeps its mask as its padding:
:class:`lens_focus.fast.PaddedCausal`). On a GPU: half the memory free when the batches are planned."""


def batch_bytes(model) -> int:
    """:data:`BATCH_BYTES`, or on a GPU half of its free memory."""
    device = input_device(model)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free) // 2
    return BATCH_BYTES


def token_bytes(model) -> int:
    """Bytes one token of a batch holds on the fast path: its keys and values in every layer, and
    one layer's hidden state and MLP activations."""
    cfg, info = model.cfg, model_info(model)
    size = next(model.parameters()).element_size()
    cache = info.n_layers * 2 * info.n_kv_heads * info.d_head
    layer = 4 * int(cfg.d_model) + 3 * int(getattr(cfg, "d_mlp", None) or 4 * cfg.d_model)
    return size * (cache + layer)


def max_cells_for(model) -> int:
    """Attention cells (batch × q_pos × k_pos) per head that fit :data:`PATTERN_BYTES`."""
    return PATTERN_BYTES // (4 * int(model.cfg.n_heads))


def batch_budget(model, chunk: int = DEFAULT_CHUNK) -> tuple[int, int]:
    """``(max_cells, chunk)`` for :func:`plan_batches` on the model's attention path. Eager: every
    layer's pattern, batch × chunk × T float32 cells per head within :data:`PATTERN_BYTES`. Fast:
    the prompt read in one pass, batch × T tokens of :func:`token_bytes` within
    :func:`batch_bytes` (linear in T, sliding-window layers included: they read their window in
    blocks, :class:`lens_focus.fast.PaddedCausal`)."""
    if attention_of(model) == "fast":
        return batch_bytes(model) // token_bytes(model), 1
    return max_cells_for(model), chunk


def plan_batches(lengths: Sequence[int], *, batch_size: int, max_cells: int, chunk: int = DEFAULT_CHUNK) -> list[list[int]]:
    """Group indices of ``lengths`` (shortest first) into batches of at most ``batch_size``
    whose chunked attention (batch × min(len, chunk) × len) stays within ``max_cells``;
    a sequence always gets a batch, alone if need be."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches:
            b = batches[-1]
            width = lengths[i]  # the longest so far: lengths are sorted
            if len(b) < batch_size and (len(b) + 1) * min(width, chunk) * width <= max_cells:
                b.append(i)
                continue
        batches.append([i])
    return batches


def run(
    model,
    ids: Int[Tensor, "batch pos"],
    *,
    attention_mask: Int[Tensor, "batch cached_and_pos"] | None = None,
    position_ids: Int[Tensor, "batch pos"] | None = None,
    cache=None,
    logits: bool = True,
) -> tuple[Float[Tensor, "batch vocab"] | None, object]:
    """One forward pass on the model's attention path: the last position's logits (None with
    ``logits=False``) and the key-value cache (``cache``, or a new one), which the pass extends in
    place. ``attention_mask`` covers the cached positions too."""
    cache = new_cache(model) if cache is None else cache
    kwargs = cache_kwargs(model, cache)
    if attention_mask is not None:
        kwargs["attention_mask"] = attention_mask
    if position_ids is not None:
        kwargs["position_ids"] = position_ids
    if attention_of(model) == "fast":
        out = fast_model(model)(input_ids=ids, logits_to_keep=1, **kwargs)
        return (out.logits[:, -1] if logits else None), cache
    out = model(ids, return_type="logits", **kwargs)
    return (out[:, -1] if logits else None), cache


def chunked_forward(
    model,
    ids: Int[Tensor, "batch pos"],
    *,
    attention_mask: Int[Tensor, "batch pos"] | None = None,
    position_ids: Int[Tensor, "batch pos"] | None = None,
    chunk: int = DEFAULT_CHUNK,
    every_position: bool = False,
) -> tuple[Float[Tensor, "batch vocab"], object]:
    """Run ``ids`` through the model ``chunk`` positions at a time (on the fast path: in one pass);
    return the logits of the last position and the key-value cache. With ``every_position`` the
    cache keeps every position on sliding-window layers too (:func:`lens_focus.compat.new_cache`),
    so hooks see each chunk's rows against all keys so far; without it a sliding-window layer's
    cache holds only its window (what generation keeps)."""
    width = ids.shape[1]
    if attention_of(model) == "fast":
        chunk = width
    logits, cache = None, new_cache(model, every_position=every_position)
    for start in range(0, width, chunk):
        stop = min(start + chunk, width)
        logits, cache = run(
            model,
            ids[:, start:stop],
            attention_mask=None if attention_mask is None else attention_mask[:, :stop],
            position_ids=None if position_ids is None else position_ids[:, start:stop],
            cache=cache,
            logits=stop == width,
        )
    return logits, cache


def keep_freed_memory() -> bool:
    """Ask glibc to reuse freed memory instead of returning it to the system.

    Every layer allocates and frees attention patterns of hundreds of MB; by default each one is
    a fresh ``mmap`` that page-faults in again, which doubles the time of a forward pass on CPU
    (``bench/bench_fused.py`` measures it). Called by the command line, not on import.
    Returns whether the setting took effect (glibc only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**30))
