"""The key-value cache across ``transformers`` versions, and the bridge's use of it, checked once per model.

Every cached forward pass of lens_focus on the eager path (prompts read in chunks, greedy decoding,
response rows run against the prompt's cache) relies on the bridge writing each new key and
value into the cache it is handed. ``transformers`` 5.24 renamed the cache argument of its models
and attention layers from ``past_key_values`` to ``cache``; TransformerLens 4.3's attention bridge
still looks for the old name, finds nothing, and leaves the cache empty, so every later step
attends to its own tokens only (and a cache read back holds 0 tokens).

lens_focus therefore makes each cache itself (:func:`new_cache`, a ``DynamicCache`` built from the
model's config, filled in place by every forward pass it is handed to) and passes it under the
keyword the installed model code declares (:func:`cache_keyword`): no deprecated name, and the
output's cache attribute, whose name changed too, is never read.

:func:`check_cache` runs a few tokens once with and once without the cache and compares the
logits. Where they differ it hands the cache to the bridge's attention modules under the name they
read (a forward pre-hook per attention module, registered once, kept for the model's lifetime:
it also mends the bridge's own ``generate``) and checks again; if they still differ it raises
instead of letting any result be computed on a cache that is not used.
"""
from __future__ import annotations

import functools
import inspect
import weakref

import torch

from .provenance import versions

# transformers, transformer_lens and gguf are imported inside the functions that use them: together they take
# over 10 s to import (python -X importtime), which `import lens_focus` and `lens-focus --help` should not pay.

PROBE = 4
"""Tokens the check reads, in one pass and in two."""

_CHECKED: "weakref.WeakKeyDictionary[torch.nn.Module, str]" = weakref.WeakKeyDictionary()
"""Per model, the outcome of :func:`check_cache` (kept beside the model, not on it)."""


@functools.lru_cache(maxsize=None)
def _keyword_of(cls: type) -> str:
    params = inspect.signature(cls.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def cache_keyword(model) -> str:
    """The keyword the model's ``transformers`` code takes its key-value cache by: ``cache``
    (transformers >= 5.24) or ``past_key_values`` (earlier)."""
    return _keyword_of(type(getattr(model, "original_model", model)))


def new_cache(model, *, every_position: bool = False):
    """An empty key-value cache for ``model`` (a bridge or a ``transformers`` model), laid out by its
    config (full or sliding-window layers), filled in place by the forward passes it is given to.

    ``every_position``: every layer keeps every position, sliding-window layers too (their window
    is still applied, by the attention mask), so that a prompt read in chunks shows each chunk's
    rows against all earlier positions."""
    from transformers import DynamicCache

    return DynamicCache() if every_position else DynamicCache(config=getattr(model, "original_model", model).config)


def cache_kwargs(model, cache) -> dict:
    """Keyword arguments that hand ``cache`` to a forward pass of ``model`` (bridge or ``transformers``)."""
    return {cache_keyword(model): cache, "use_cache": True}


def _hand_over_cache(module, args, kwargs):
    if "cache" in kwargs and kwargs.get("past_key_values") is None:
        return args, {**kwargs, "past_key_values": kwargs["cache"]}
    return None


def _attention_modules(model) -> list[torch.nn.Module]:
    return [m for m in model.modules() if hasattr(m, "_update_kv_cache")]


@torch.no_grad()
def _cache_gap(model) -> tuple[int, float, float]:
    """Read :data:`PROBE` tokens in one pass and in two passes with a cache: the positions the cache
    holds afterwards, the largest logit difference of the last two tokens, and the tolerance for it
    (relative to the logits' size, looser for half precision)."""
    device = next(model.parameters()).device
    vocab = int(model.cfg.d_vocab)
    ids = torch.tensor([[(7 * i + 1) % vocab for i in range(PROBE)]], device=device)
    whole = model(ids, return_type="logits")[:, -2:].float()
    cache = new_cache(model)
    model(ids[:, :-2], return_type="logits", **cache_kwargs(model, cache))
    tail = model(ids[:, -2:], return_type="logits", **cache_kwargs(model, cache)).float()
    eps = torch.finfo(next(model.parameters()).dtype).eps
    tolerance = max(1e-3, 16 * eps) * (1 + float(whole.abs().max()))
    return cache.get_seq_length(), float((tail - whole).abs().max()), tolerance


def check_cache(model) -> str:
    """Make sure the bridge's eager attention uses the key-value cache it is given (once per model).

    Returns ``"ok"`` (the bridge uses the cache as it is) or ``"mended"`` (the cache is handed to
    the attention modules under the keyword they read). Raises ``RuntimeError`` naming the installed
    versions when neither gives the uncached result."""
    if model in _CHECKED:
        return _CHECKED[model]
    if not hasattr(model, "original_model") or model.training:
        return "ok"
    state = "ok"
    held, gap, tolerance = _cache_gap(model)
    if held != PROBE or gap > tolerance:
        for module in _attention_modules(model):
            module.register_forward_pre_hook(_hand_over_cache, with_kwargs=True)
        state = "mended"
        held, gap, tolerance = _cache_gap(model)
        if held != PROBE or gap > tolerance:
            v = versions()
            raise RuntimeError(
                f"the bridge's eager attention does not use its key-value cache (after {PROBE} tokens it holds {held}; "
                f"cached and uncached logits differ by {gap:.3g}) with transformers {v['transformers']} and "
                f"transformer_lens {v['transformer_lens']}; "
                f"install the versions pyproject.toml declares (pip install -e . --constraint requirements.lock)"
            )
    _CHECKED[model] = state
    return state
