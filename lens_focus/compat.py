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

:func:`check_cache` runs a few tokens once with and once without the cache, and checks that every
layer's state was written and that the logits agree. Where they do not, it hands the cache to the
bridge's components under the names they read: to the attention modules as ``past_key_values``,
then to the linear-attention and state-space components of a hybrid model as ``cache_params`` (a
forward pre-hook per module, registered once, kept for the model's lifetime: it also mends the
bridge's own ``generate``), and checks again; if they still differ it raises instead of letting
any result be computed on a cache that is not used. A hybrid's recurrent layers update their state
step by step under a cache and by a scan over the whole prompt without one, which round
differently: the logits are then compared to ten times the tolerance, and the written state is
what tells a used cache from an ignored one.
"""
from __future__ import annotations

import functools
import inspect
import warnings
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
    from transformers import DynamicCache, DynamicLayer
    from transformers.cache_utils import DynamicSlidingWindowLayer

    cache = DynamicCache(config=getattr(model, "original_model", model).config)
    if not every_position:
        return cache
    if not _recurrent(cache):
        return DynamicCache()
    # a hybrid's linear-attention and state-space layers keep the state its config lays out; its attention layers every position
    cache.layers = [DynamicLayer() if type(layer) is DynamicSlidingWindowLayer else layer for layer in cache.layers]
    return cache


def _recurrent(cache) -> list[int]:
    """The layers of ``cache`` that hold a recurrent state (linear attention, state spaces, convolutions) rather than keys."""
    return [i for i, layer in enumerate(cache.layers) if hasattr(layer, "has_previous_state")]


def _unwritten(cache, positions: int) -> list[int]:
    """The layers of ``cache`` that a pass over ``positions`` tokens left without their state:
    keys and values of fewer positions, or a recurrent state never set."""
    out = []
    for i, layer in enumerate(cache.layers):
        if hasattr(layer, "has_previous_state"):
            if not all(layer.has_previous_state.values()):
                out.append(i)
        elif hasattr(layer, "get_seq_length") and layer.get_seq_length() != positions:
            out.append(i)
    return out


def cache_kwargs(model, cache) -> dict:
    """Keyword arguments that hand ``cache`` to a forward pass of ``model`` (bridge or ``transformers``)."""
    return {cache_keyword(model): cache, "use_cache": True}


def _hand_over_cache(module, args, kwargs):
    if "cache" in kwargs and kwargs.get("past_key_values") is None:
        return args, {**kwargs, "past_key_values": kwargs["cache"]}
    return None


def _hand_over_state(module, args, kwargs):
    if kwargs.get("cache") is not None and kwargs.get("cache_params") is None:
        moved = dict(kwargs)
        moved["cache_params"] = moved.pop("cache")
        return args, moved
    return None


def _attention_modules(model) -> list[torch.nn.Module]:
    return [m for m in model.modules() if hasattr(m, "_update_kv_cache")]


def _mixer_modules(model) -> list[torch.nn.Module]:
    """The bridge's components that mix positions without attention (linear attention, state
    spaces): the blocks' children that are neither attention nor a norm nor an MLP."""
    from transformer_lens.model_bridge.generalized_components.base import GeneralizedComponent

    attention = set(map(id, _attention_modules(model)))
    return [m for block in getattr(model, "blocks", []) for name, m in block.named_children()
            if isinstance(m, GeneralizedComponent) and id(m) not in attention and not name.startswith(("ln", "mlp", "moe", "shared_mlp"))]  # fmt: skip


@torch.no_grad()
def _cache_gap(model) -> tuple[list[int], float, float]:
    """Read :data:`PROBE` tokens in one pass and in two passes with a cache: the layers whose state
    the cache lacks afterwards, the largest logit difference of the last two tokens, and the
    tolerance for it (relative to the logits' size, looser for half precision, and for recurrent
    layers, whose step-by-step update rounds otherwise than their scan over a whole prompt)."""
    device = next(model.parameters()).device
    vocab = int(model.cfg.d_vocab)
    ids = torch.tensor([[(7 * i + 1) % vocab for i in range(PROBE)]], device=device)
    whole = model(ids, return_type="logits")[:, -2:].float()
    cache = new_cache(model)
    model(ids[:, :-2], return_type="logits", **cache_kwargs(model, cache))
    tail = model(ids[:, -2:], return_type="logits", **cache_kwargs(model, cache)).float()
    eps = torch.finfo(next(model.parameters()).dtype).eps
    tolerance = max(1e-3, 16 * eps) * (1 + float(whole.abs().max())) * (10 if _recurrent(cache) else 1)
    return _unwritten(cache, PROBE), float((tail - whole).abs().max()), tolerance


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
    missing, gap, tolerance = _cache_gap(model)
    menders = [(_attention_modules, _hand_over_cache), (_mixer_modules, _hand_over_state)]
    while (missing or gap > tolerance) and menders:
        modules, mend = menders.pop(0)
        for module in modules(model):
            module.register_forward_pre_hook(mend, with_kwargs=True)
        if mend is _hand_over_state:  # the name those components read is the one transformers now calls deprecated
            warnings.filterwarnings("ignore", message="`cache_params` is deprecated", category=FutureWarning)
        state = "mended"
        missing, gap, tolerance = _cache_gap(model)
    if missing or gap > tolerance:
        v = versions()
        raise RuntimeError(
            f"the bridge does not use its key-value cache (after {PROBE} tokens, layers {missing} lack their state; "
            f"cached and uncached logits differ by {gap:.3g}) with transformers {v['transformers']} and "
            f"transformer_lens {v['transformer_lens']}; "
            f"install the versions pyproject.toml declares (pip install -e . --constraint requirements.lock)"
        )
    _CHECKED[model] = state
    return state
