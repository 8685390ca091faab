"""Hook names and hook handles: the one place where lens_focus touches the bridge's hook points.

Every intervention registers through :func:`add_hooks`, which keeps its own handles and removes
exactly those, so hooks the user added stay in place. ``add_hooks`` also takes hooks for the fast
attention path (:mod:`lens_focus.fast`); an intervention registers for both paths and whichever
the model runs sees it (the bridge's own ``hooks()`` context
removes every hook on the points it touched). Unknown hook names raise instead of being skipped.
"""
from __future__ import annotations

import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Iterator, Literal, Sequence

import torch
from torch import Tensor

from .errors import InputError
from .fast import AttnCall, add_fast_hooks

AttnSite = Literal[
    "hook_q", "hook_k", "hook_v", "hook_rot_q", "hook_rot_k", "hook_cos", "hook_sin", "hook_attn_scores", "hook_pattern", "hook_z"
]
HookFn = Callable  # (tensor, *, hook) -> tensor | None


def attn_hook_name(layer: int, site: AttnSite) -> str:
    """``blocks.{layer}.attn.{site}``, the name TransformerLens gives an attention hook point."""
    return f"blocks.{layer}.attn.{site}"


def hook_point(model, name: str):
    """The model's hook point called ``name``; a clear error when the model has none."""
    point = model.hook_dict.get(name)
    if point is None:
        site = name.rsplit(".", 1)[-1]
        similar = sorted(n for n in model.hook_dict if n.endswith(site))[:3]
        hint = f" (hook points ending in {site!r}: {similar})" if similar else f" (this model has no {site!r} hook points)"
        raise KeyError(f"no hook point {name!r} in this model{hint}")
    return point


_LAYERS: "weakref.WeakKeyDictionary[torch.nn.Module, tuple[int, ...]]" = weakref.WeakKeyDictionary()


def attention_indices(model) -> tuple[int, ...]:
    """The layers whose block has attention, by their real indices: every layer of most decoders;
    in a hybrid model (Qwen3.5, Qwen3-Next, Granite 4, Jamba, ...) only those the bridge gives an
    attention pattern hook, the others mixing positions by linear attention, a state space or a
    convolution. A model with no such layer is an error: lens_focus has nothing to read there."""
    if model not in _LAYERS:
        found = tuple(layer for layer in range(int(model.cfg.n_layers)) if attn_hook_name(layer, "hook_pattern") in model.hook_dict)
        if not found:
            raise InputError(
                f"{type(getattr(model, 'original_model', model)).__name__}: no layer of this model exposes an attention "
                "pattern (blocks.L.attn.hook_pattern), so there is no attention for lens_focus to read or patch"
            )
        _LAYERS[model] = found
    return _LAYERS[model]


_RUNS: "weakref.WeakKeyDictionary[torch.nn.Module, dict[str, bool]]" = weakref.WeakKeyDictionary()


def runs_hook(model, site: AttnSite) -> bool:
    """Whether the bridge's eager attention runs hook point ``site`` at all: some families' bridges
    rotate queries and keys inside their own attention (Phi-3, GPT-NeoX), so ``hook_rot_q`` and
    ``hook_rot_k`` exist but never fire. Found once per model, by a two-token forward pass."""
    known = _RUNS.setdefault(model, {})
    if site not in known:
        fired = []
        name = attn_hook_name(attention_indices(model)[0], site)
        if name in model.hook_dict:
            with torch.no_grad(), hooked(model, [(name, lambda x, *, hook: fired.append(True))]):
                model(torch.zeros(1, 2, dtype=torch.long, device=next(model.parameters()).device), return_type=None)
        known[site] = bool(fired)
    return known[site]


_EDITS: "weakref.WeakKeyDictionary[torch.nn.Module, bool]" = weakref.WeakKeyDictionary()


def pattern_edits_count(model) -> bool:
    """Whether an edit of ``hook_pattern`` changes what the model computes. Most bridges compute
    attention themselves and use the pattern the hook returns; some (Gemma 4, Llama 4) hand the
    computation to the ``transformers`` module and fire ``hook_pattern`` afterwards, on a copy, so
    an edit there is discarded. Found once per model, by a three-token forward pass with and
    without the first attention layer's pattern reversed along its keys."""
    if model not in _EDITS:
        import warnings

        ids = torch.tensor([[1, 2, 3]], device=next(model.parameters()).device)
        name = attn_hook_name(attention_indices(model)[0], "hook_pattern")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the bridge warns of a discarded edit: that is what is asked here
            plain = model(ids, return_type="logits")
            with hooked(model, [(name, lambda x, *, hook: x.flip(-1))]):
                edited = model(ids, return_type="logits")
        _EDITS[model] = not torch.equal(plain, edited)
    return _EDITS[model]


@dataclass
class HookHandle:
    """The hooks one intervention registered; ``remove()`` takes exactly these away again."""

    entries: list = field(default_factory=list)  # (hook point, LensHandle)
    removers: list = field(default_factory=list)  # fast-path hooks: one callable each

    def remove(self) -> None:
        while self.entries:
            point, handle = self.entries.pop()
            handle.hook.remove()
            if handle in point.fwd_hooks:
                point.fwd_hooks.remove(handle)
        while self.removers:
            self.removers.pop()()

    def __len__(self) -> int:
        return len(self.entries) + len(self.removers)


def add_hooks(model, hooks: Sequence[tuple[str, HookFn]], **fast) -> HookHandle:
    """Register forward hooks ``[(name, fn), ...]`` and return their handle; ``fast`` holds the
    same intervention for the fast path (keyword arguments of :func:`lens_focus.fast.add_fast_hooks`).

    All names are resolved before anything is registered, so an unknown name leaves the model
    untouched.
    """
    points = [(hook_point(model, name), fn) for name, fn in hooks]
    handle = HookHandle()
    try:
        for point, fn in points:
            handle.entries.append((point, point.add_hook(fn, dir="fwd")))
        handle.removers.extend(add_fast_hooks(model, **fast) if fast else [])
    except BaseException:
        handle.remove()
        raise
    return handle


@contextmanager
def hooked(model, hooks: Sequence[tuple[str, HookFn]], **fast) -> Iterator[HookHandle]:
    """Context manager around :func:`add_hooks`: the hooks are removed on exit, errors included."""
    handle = add_hooks(model, hooks, **fast)
    try:
        yield handle
    finally:
        handle.remove()


RowsOf = Callable[[int, int], Tensor]
"""``(first batch position, n rows) -> indices`` of the rows of one attention call that are wanted."""


def last_row_from(width: int) -> RowsOf:
    """The row at batch position ``width - 1`` (the prompt's last, in whichever chunk holds it) and
    every row after it: during decoding, each step's single row."""
    return lambda first, n: torch.arange(n - 1, n) if first + n >= width else torch.arange(0)


def pattern_rows(model, rows_of: RowsOf, fn: Callable, after: Callable | None = None) -> tuple[list, dict]:
    """Hooks that show every layer's attention pattern, restricted to the wanted rows, on either
    attention path: ``hooks, fast = pattern_rows(...)``, then ``hooked(model, hooks, **fast)``.

    ``fn(layer, positions, pattern)`` gets the float32 pattern (batch, head, r, k_pos) of the rows
    at batch positions ``positions`` (r,), possibly in several calls of fewer rows on the fast
    path, and ``after(layer, end)`` runs once per call with ``end`` = k_pos. The bridge path reads
    ``hook_pattern`` (after interventions' hooks); the fast path computes the rows from
    post-rotary queries and keys (:meth:`lens_focus.fast.AttnCall.pattern`)."""

    def eager(pattern, *, hook, layer):
        q, k = pattern.shape[-2:]
        idx = rows_of(k - q, q)
        if len(idx):
            fn(layer, k - q + idx, pattern[:, :, idx.to(pattern.device)].float())
        if after:
            after(layer, k)

    def fast(call: AttnCall):
        idx = rows_of(call.first_position, call.n_rows)
        for chunk in call.row_chunks(idx):
            fn(call.layer, call.first_position + chunk, call.pattern(chunk))
        if after:
            after(call.layer, call.n_keys)

    layers = attention_indices(model)
    hooks = [(attn_hook_name(layer, "hook_pattern"), partial(eager, layer=layer)) for layer in layers]
    return hooks, {"observe": {layer: fast for layer in layers}}
