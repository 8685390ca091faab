"""The fast attention path: the bridge's own weights run through PyTorch SDPA, and lens_focus reads
and edits attention from post-rotary queries and keys instead of from T × T patterns.

The bridge re-implements attention eagerly, so that ``hook_pattern`` can show every layer's
(q_pos × k_pos) pattern. Contextual scores and split-softmax compensation need only the rows that
produce the response, and a post-rotary ``d_Q`` needs no pattern at all. For the decoders of
:data:`FAST_ARCHITECTURES` (Llama, Mistral, Mixtral, Qwen2, Qwen3, OLMo 2, Gemma 3) the fast path runs a plain ``transformers`` model that *shares the
bridge's parameters* (no copy) with a registered attention function that

1. lets :attr:`FastHooks.query` edit the post-rotary queries (focus directions),
2. runs SDPA,
3. recomputes the rows that :attr:`FastHooks.patch` changes (split-softmax compensation) from
   their explicit pattern, ``rows × k_pos`` per head, and
4. hands :attr:`FastHooks.observe` an :class:`AttnCall` that computes the (patched) pattern of
   any rows on request (contextual scores),

so the extra memory is O(rows × k_pos) per head, never O(k_pos²). A left-padded batch keeps its
mask as its padding (:class:`PaddedCausal`, batch × k_pos) rather than the (batch, 1, T, T)
booleans ``transformers`` builds, and SDPA runs per prompt on its unpadded slice, so a padded
batch too stays linear in T (layers with a sliding window still get the built mask). Which path a model runs is set
by :func:`set_attention` (``load_model(..., attention=...)``) and kept beside the model, not on it
(:func:`state_of`); :func:`lens_focus.forward.run` dispatches on it. Hooks for the fast path are
registered with :func:`add_fast_hooks`, which returns removers, so interventions register for both
paths and whichever runs sees them.
"""
from __future__ import annotations

import copy
import weakref
from contextlib import contextmanager
import warnings
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Iterator

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from .compat import check_cache
from .defaults import Attention  # noqa: F401  (declared with the parameters)
from .errors import InputError

# transformers, transformer_lens and gguf are imported inside the functions that use them: together they take
# over 10 s to import (python -X importtime), which `import lens_focus` and `lens-focus --help` should not pay.

ATTENTIONS = ("eager", "fast", "auto")
FAST_ARCHITECTURES = (
    "LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM",
    "Olmo2ForCausalLM", "Gemma3ForCausalLM", "Gemma4ForCausalLM",
)  # fmt: skip
"""The decoders whose attention the fast path reproduces exactly (tests/test_families.py): separate
query and key projections, SDPA-expressible attention (sliding windows, query/key norms and
Gemma's query scaling included)."""
NOT_FAST = {
    "Gemma2ForCausalLM": "attention logit soft-capping has no SDPA kernel",
    "Phi3ForCausalLM": "its query, key and value come from one fused projection",
    "GPTNeoXForCausalLM": "its query, key and value come from one fused projection",
    "GPT2LMHeadModel": "its query, key and value come from one fused projection and it has no rotation",
    "GptOssForCausalLM": "its learned sinks join the softmax, which SDPA does not take",
    "DeepseekV2ForCausalLM": "latent attention assembles its queries and keys inside the attention module",
    "DeepseekV3ForCausalLM": "latent attention assembles its queries and keys inside the attention module",
    "Llama4ForCausalLM": "chunked attention, which the fast path's patterns do not reproduce",
}
"""Why the fast path leaves a tested family to the eager path."""
IMPLEMENTATION = "lens_focus_sdpa"
PATTERN_CELLS = 2**25
"""Pattern cells (batch × heads × rows × k_pos) one chunk of explicit rows may hold (128 MB in float32)."""


# --- what one layer's attention sees ----------------------------------------------------------


@dataclass(frozen=True)
class PaddedCausal:
    """The causal mask of a left-padded batch read in one pass, kept as its padding: ``keep``
    (batch, k_pos), True on a prompt's tokens, and the layer's sliding ``window``. It stands for the
    (batch, 1, T, T) boolean mask that ``transformers`` would build, so memory stays linear in T:
    SDPA runs per prompt on its unpadded slice (causal, no mask; a windowed layer in query blocks
    against only the keys of their window) and explicit rows read their masks from it."""

    keep: Bool[Tensor, "batch k_pos"]
    starts: list[int]
    """Each prompt's first token: its left padding's length (read once, not in every layer)."""
    window: int | None = None
    """A row sees only its last ``window`` positions, itself included; None: every earlier one."""

    @classmethod
    def of(cls, keep: Bool[Tensor, "batch k_pos"], window: int | None = None) -> "PaddedCausal":
        return cls(keep, (~keep).sum(1).tolist(), window)

    def to(self, *args, **kwargs) -> "PaddedCausal":  # moved with the other inputs across a device map
        return PaddedCausal(self.keep.to(*args, **kwargs), self.starts, self.window)

    def rows(self, positions: Int[Tensor, " r"]) -> Bool[Tensor, "batch 1 r k_pos"]:
        """The mask of the rows at batch positions ``positions``."""
        keys = torch.arange(self.keep.shape[1], device=positions.device)
        distance = positions[:, None] - keys[None, :]
        seen = (distance >= 0) & (distance < self.window) if self.window else distance >= 0
        return seen[None, None] & self.keep.to(positions.device)[:, None, None, :]



@dataclass
class AttnCall:
    """One layer's attention call on the fast path, in the model's own tensors.

    Rows of the call are the query positions ``k_pos - q_pos .. k_pos - 1`` (batch positions,
    left padding included, as in :mod:`lens_focus.interventions`)."""

    layer: int
    query: Float[Tensor, "batch head q_pos d_head"]
    """Post-rotary queries (after :attr:`FastHooks.query` edits)."""
    key: Float[Tensor, "batch kv k_pos d_head"]
    """Post-rotary keys, the cached ones included."""
    value: Float[Tensor, "batch kv k_pos d_head"]
    mask: "Tensor | PaddedCausal | None"
    """(batch, 1, q_pos, k_pos): bool (True = may attend) or additive float; a :class:`PaddedCausal`;
    None = causal."""
    scaling: float
    patches: list = field(default_factory=list)
    window: int | None = None
    """Sliding window of the layer (a row sees its last ``window`` positions), None for full attention."""

    @property
    def n_rows(self) -> int:
        return self.query.shape[2]

    @property
    def n_keys(self) -> int:
        return self.key.shape[2]

    @property
    def first_position(self) -> int:
        """Batch position of the call's first row."""
        return self.n_keys - self.n_rows

    def pattern(self, rows: Int[Tensor, " r"]) -> Float[Tensor, "batch head r k_pos"]:
        """The attention pattern (float32) of ``rows`` (indices into this call's rows), with every
        registered patch applied: what the bridge's ``hook_pattern`` would show for those rows."""
        q = self.query[:, :, rows].float()
        group = q.shape[1] // self.key.shape[1]
        k = self.key.float().repeat_interleave(group, dim=1) if group > 1 else self.key.float()
        scores = (q @ k.transpose(-1, -2)) * self.scaling
        positions = self.first_position + rows.to(scores.device)
        if self.mask is None:
            distance = positions[:, None] - torch.arange(self.n_keys, device=scores.device)[None, :]
            keep = (distance >= 0) & (distance < self.window) if self.window else distance >= 0
            scores = scores.masked_fill(~keep, float("-inf"))
        elif isinstance(self.mask, PaddedCausal):
            scores = scores.masked_fill(~self.mask.rows(positions), float("-inf"))
        elif self.mask.dtype == torch.bool:
            scores = scores.masked_fill(~self.mask[:, :, rows], float("-inf"))
        else:
            scores = scores + self.mask[:, :, rows].float()
        pattern = scores.softmax(-1).nan_to_num(0.0)  # fully masked rows (padding) attend nowhere
        for patch in self.patches:
            pattern = patch.fn(self, positions, pattern)
        return pattern

    def row_chunks(self, rows: Int[Tensor, " r"]) -> Iterator[Int[Tensor, " c"]]:
        """``rows`` split so that one chunk's pattern stays within :data:`PATTERN_CELLS`."""
        per_row = self.query.shape[0] * self.query.shape[1] * self.n_keys
        size = max(1, PATTERN_CELLS // per_row)
        for start in range(0, len(rows), size):
            yield rows[start : start + size]


@dataclass(frozen=True)
class Patch:
    """A change to some rows' attention pattern (split-softmax compensation): ``rows(call)`` gives
    the (batch, q_pos) bool rows it changes, ``fn(call, positions, pattern)`` the changed pattern
    of the rows at batch positions ``positions``."""

    rows: Callable[[AttnCall], Bool[Tensor, "batch q_pos"]]
    fn: Callable[[AttnCall, Tensor, Tensor], Tensor]


@dataclass
class FastHooks:
    """Per layer, what the fast attention function runs (see the module docstring)."""

    query: dict[int, list[Callable[[AttnCall], Tensor]]] = field(default_factory=dict)
    patch: dict[int, list[Patch]] = field(default_factory=dict)
    observe: dict[int, list[Callable[[AttnCall], None]]] = field(default_factory=dict)
    pre: dict[tuple[int, str], list[Callable[[Tensor], Tensor]]] = field(default_factory=dict)
    """Per ``(layer, "q" | "k")``, edits of the pre-rotary projection output (batch, pos, heads × d_head)."""

    def __bool__(self) -> bool:
        return any(any(v.values()) for v in (self.query, self.patch, self.observe, self.pre))


@dataclass
class FastState:
    """What lens_focus keeps per model for its attention paths: beside the bridge (:func:`state_of`), not on it."""

    attention: str = "eager"
    """The path the model runs: ``fast`` or ``eager``."""
    hooks: FastHooks = field(default_factory=FastHooks)
    twin: object = None
    """The plain ``transformers`` model of the fast path, built on first use."""


_STATES: "weakref.WeakKeyDictionary[torch.nn.Module, FastState]" = weakref.WeakKeyDictionary()


def state_of(model) -> FastState:
    """The :class:`FastState` of ``model``, created on first use and dropped with the model."""
    state = _STATES.get(model)
    if state is None:
        state = _STATES[model] = FastState()
    return state


def fast_hooks(model) -> FastHooks:
    """The fast-path hook registry of a bridge (created on first use; works for any model)."""
    return state_of(model).hooks


def add_fast_hooks(
    model,
    *,
    query: dict[int, Callable] | None = None,
    patch: dict[int, Patch] | None = None,
    observe: dict[int, Callable] | None = None,
    pre: dict[tuple[int, str], Callable] | None = None,
) -> list[Callable[[], None]]:
    """Register fast-path hooks by layer (``pre`` by ``(layer, "q" | "k")``); returns one remover per hook.
    Later registrations run after earlier ones."""
    registry = fast_hooks(model)
    removers = []
    for table, new in ((registry.query, query), (registry.patch, patch), (registry.observe, observe), (registry.pre, pre)):
        for key, fn in (new or {}).items():
            table.setdefault(key, []).append(fn)
            removers.append(_remover(table, key, fn))
    return removers


def _remover(table: dict, key, fn) -> Callable[[], None]:
    def remove() -> None:
        entries = table.get(key, [])
        for i, x in enumerate(entries):
            if x is fn:
                del entries[i]
                break

    return remove


# --- which path a model runs ------------------------------------------------------------------


def fast_unsupported(model) -> str | None:
    """Why the fast path cannot run this model, or None when it can."""
    hf = getattr(model, "original_model", None)
    if hf is None:
        return "not a TransformerBridge"
    arch = type(hf).__name__
    if arch in NOT_FAST:
        return f"{arch}: {NOT_FAST[arch]}"
    if arch not in FAST_ARCHITECTURES:
        return f"{arch} is not one of the decoders the fast path is tested on ({', '.join(FAST_ARCHITECTURES)})"
    placed = {str(v) for v in (getattr(hf, "hf_device_map", None) or {}).values()}
    offloaded = placed & {"cpu", "disk"}
    if offloaded and len(placed) > 1:
        return f"weights offloaded to {' and '.join(sorted(offloaded))} by the device map (the fast path runs on devices that hold their weights)"
    return None


def set_attention(model, attention: str = "auto") -> str:
    """Choose the attention path of ``model``; returns the one in effect.

    ``auto``: ``fast`` where it applies, else ``eager``. ``fast`` on a model the fast path does not
    cover falls back to ``eager`` with a warning saying why."""
    if attention not in ATTENTIONS:
        raise InputError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
    check_cache(model)
    reason = fast_unsupported(model)
    if attention == "fast" and reason:
        warnings.warn(f"fast attention not available, using the bridge's eager attention: {reason}", stacklevel=2)
    state_of(model).attention = "eager" if attention == "eager" or reason else "fast"
    return state_of(model).attention


@contextmanager
def attention_path(model, attention: Attention) -> Iterator[str]:
    """Run ``model`` on another attention path inside the block (see :func:`set_attention`)."""
    before = attention_of(model)
    try:
        yield set_attention(model, attention)
    finally:
        state_of(model).attention = before


def attention_of(model) -> str:
    """The attention path ``model`` runs: ``fast`` or ``eager`` (bridges loaded elsewhere: eager)."""
    state = _STATES.get(model)
    return state.attention if state is not None else "eager"


# --- the fast model ---------------------------------------------------------------------------


def _hf_name(bridge_name: str) -> str:
    return bridge_name.replace("._original_component", "").replace("_original_component.", "")


def fast_model(model):
    """The plain ``transformers`` model behind ``model``'s fast path, sharing its parameters
    (built once, kept on the bridge). Raises when the fast path does not cover the model."""
    state = state_of(model)
    if state.twin is not None:
        return state.twin
    reason = fast_unsupported(model)
    if reason:
        raise InputError(f"no fast attention path: {reason}")
    from transformers import AutoModelForCausalLM

    _register()
    hf = model.original_model
    config = copy.deepcopy(hf.config)
    config._attn_implementation = IMPLEMENTATION
    config.output_attentions = False  # the bridge turns it on; SDPA has no patterns to return
    with torch.device("meta"):
        twin = AutoModelForCausalLM.from_config(config, attn_implementation=IMPLEMENTATION)
    tensors = {_hf_name(n): p for n, p in hf.named_parameters(remove_duplicate=False)}
    buffers = {_hf_name(n): b for n, b in hf.named_buffers(remove_duplicate=False)}
    missing = [n for n, _ in twin.named_parameters(remove_duplicate=False) if n not in tensors]
    if missing:
        raise RuntimeError(f"fast path: parameters {missing[:3]} not found in the bridge")
    twin.load_state_dict(tensors, strict=False, assign=True)
    for name, _ in list(twin.named_parameters(remove_duplicate=False)):  # tied weights: same tensor
        owner, attr = _owner(twin, name)
        if getattr(owner, attr) is not tensors[name]:
            setattr(owner, attr, tensors[name])
    for name, buf in list(twin.named_buffers(remove_duplicate=False)):
        if name not in buffers:
            raise RuntimeError(f"fast path: buffer {name} not found in the bridge")
        owner, attr = _owner(twin, name)
        owner._buffers[attr] = buffers[name]
    if hasattr(hf.model, "rotary_emb") and hasattr(twin.model.rotary_emb, "attention_scaling"):
        twin.model.rotary_emb.attention_scaling = _original(hf.model.rotary_emb).attention_scaling
    generation = copy.deepcopy(hf.generation_config)
    generation.output_attentions = generation.return_dict_in_generate = False
    twin.generation_config = generation
    twin.eval()
    placement = getattr(hf, "hf_device_map", None)
    if placement and len(set(map(str, placement.values()))) > 1:  # split across devices: move activations as the bridge's model does
        from accelerate import dispatch_model

        dispatch_model(twin, device_map=placement)
    registry = state.hooks
    for layer, block in enumerate(twin.model.layers):
        attn = block.self_attn
        attn._lens = (layer, registry)
        for proj, name in ((attn.q_proj, "q"), (attn.k_proj, "k")):
            proj.register_forward_hook(partial(_pre_rotary, registry=registry, key=(layer, name)))
    state.twin = twin
    return twin


def _owner(root, dotted: str):
    *path, attr = dotted.split(".")
    mod = root
    for p in path:
        mod = getattr(mod, p)
    return mod, attr


def _original(module):
    return getattr(module, "original_component", None) or module


def _pre_rotary(module, args, output, *, registry: FastHooks, key):
    for edit in registry.pre.get(key, []):
        output = edit(output)
    return output


def rotary_tables(model, length: int) -> tuple[Tensor, Tensor]:
    """``(cos, sin)``, each (1, length, d_head): the fast model's rotary tables for positions ``0 .. length - 1``."""
    twin = fast_model(model)
    param = next(twin.parameters())
    positions = torch.arange(length, device=param.device)[None]
    return twin.model.rotary_emb(torch.zeros(1, device=param.device, dtype=param.dtype), positions)


# --- the attention function -------------------------------------------------------------------


WINDOW_BLOCK = 1024
"""Query rows per block of a sliding-window layer read in one pass (at least the window)."""


def _sdpa(module, query, key, value, mask, **kwargs):
    """``transformers``' SDPA attention; with a :class:`PaddedCausal` mask, per prompt on its
    unpadded slice (causal), the padding rows left at zero, and on a sliding-window layer in
    blocks of query rows against the keys of their window only: no (T × T) mask, memory linear in T."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if not isinstance(mask, PaddedCausal):
        return sdpa_attention_forward(module, query, key, value, mask, **kwargs)
    kwargs.pop("sliding_window", None)  # the blocks below are the window
    out = query.new_zeros(query.shape[0], query.shape[2], query.shape[1], value.shape[-1])  # (batch, q_pos, head, d_head)
    for b, start in enumerate(mask.starts):
        q, k, v = query[b : b + 1, :, start:], key[b : b + 1, :, start:], value[b : b + 1, :, start:]
        if mask.window is None or mask.window >= q.shape[2]:  # a window longer than the prompt cuts nothing
            row, _ = sdpa_attention_forward(module, q, k, v, None, **kwargs)
            out[b, start:] = row[0]
            continue
        size = max(WINDOW_BLOCK, mask.window)
        for first in range(0, q.shape[2], size):
            last = min(first + size, q.shape[2])
            low = max(0, first - mask.window + 1)
            rows = torch.arange(first, last, device=q.device)
            distance = rows[:, None] - torch.arange(low, last, device=q.device)[None, :]
            block = ((distance >= 0) & (distance < mask.window))[None, None]
            row, _ = sdpa_attention_forward(module, q[:, :, first:last], k[:, :, low:last], v[:, :, low:last], block, **kwargs)
            out[b, start + first : start + last] = row[0]
    return out, None


def _attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None, **kwargs):
    layer, hooks = getattr(module, "_lens", (None, None))
    if not hooks:  # nothing registered (or a module outside lens_focus): plain SDPA
        return _sdpa(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    if kwargs.get("softcap"):
        raise RuntimeError(f"layer {layer}: soft-capped attention reached the fast path, which cannot compute it")
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    call = AttnCall(layer, query, key, value, attention_mask, scale, patches=list(hooks.patch.get(layer, [])), window=kwargs.get("sliding_window"))
    for edit in hooks.query.get(layer, []):
        call.query = edit(call)
    out, weights = _sdpa(module, call.query, key, value, attention_mask, dropout=dropout, scaling=scale, **kwargs)
    if call.patches:
        changed = torch.zeros(call.query.shape[0], call.n_rows, dtype=torch.bool, device=query.device)
        for patch in call.patches:
            changed |= patch.rows(call).to(query.device)
        rows = changed.any(0).nonzero().flatten()
        if len(rows):
            group = query.shape[1] // value.shape[1]
            v = value.float().repeat_interleave(group, dim=1) if group > 1 else value.float()
            out = out.clone()
            for chunk in call.row_chunks(rows):
                new = (call.pattern(chunk) @ v).transpose(1, 2)  # (batch, rows, head, d_head)
                out[:, chunk] = new.to(out.dtype)
    for observer in hooks.observe.get(layer, []):
        observer(call)
    return out, weights


def _mask(batch_size: int, q_length: int, kv_length: int, q_offset: int = 0, kv_offset: int = 0, mask_function=None,
          attention_mask=None, local_size: int | None = None, **kwargs):
    """The fast path's mask function (``transformers``' ``AttentionMaskInterface``): a left-padded
    batch read in one pass under full causal attention gets a :class:`PaddedCausal`; anything
    else (cached steps, sliding windows, masks of other shapes) what ``sdpa_mask`` builds."""
    from transformers.masking_utils import causal_mask_function, sdpa_mask

    mask_function = mask_function or causal_mask_function
    one_pass = q_length == kv_length > 1 and q_offset == 0 and kv_offset == 0
    if one_pass and (attention_mask is None or attention_mask.dim() == 2) and (mask_function is causal_mask_function or local_size):
        keep = attention_mask[:, :kv_length].bool() if attention_mask is not None else torch.ones(batch_size, kv_length, dtype=torch.bool)
        left = bool((keep[:, 1:] >= keep[:, :-1]).all()) and bool(keep[:, -1].all())  # padding on the left only
        if left and (local_size or not bool(keep.all())):
            return PaddedCausal.of(keep, int(local_size) if local_size else None)
    return sdpa_mask(batch_size=batch_size, q_length=q_length, kv_length=kv_length, q_offset=q_offset, kv_offset=kv_offset,
                     mask_function=mask_function, attention_mask=attention_mask, local_size=local_size, **kwargs)  # fmt: skip


_REGISTERED = False


def _register() -> None:
    global _REGISTERED
    if _REGISTERED:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(IMPLEMENTATION, _attention)
    AttentionMaskInterface.register(IMPLEMENTATION, _mask)
    _REGISTERED = True
