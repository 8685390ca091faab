"""Focus directions (docs/method.md §4): per-head query and key vectors that move attention to the
relevant document, trained from cached queries and keys, saved to and loaded from safetensors.

Training sequences are long prompts followed by the *gold response* (the model's greedy answer to
the gold-only prompt). Queries and keys are cached once from the unmodified model; each head's
directions then see only its own cached ``Q`` and ``K``, so training needs no model forward and
costs ``rows × sequence length`` per head: only the rows that produce the response are scored.

At the default ``post_rotary`` site ``d_K`` is inert: it adds ``(q_i + d_Q) · d_K`` to every
score of row ``i``, a per-row constant that softmax ignores, so its gradient is exactly zero and
only ``d_Q`` moves attention (a per-key bias ``d_Q · k_j``). The ``pre_rotary`` site adds both
before the rotation, where ``d_K`` acts as a learned relative-position term.
"""
from __future__ import annotations

import json
import warnings
import weakref
import random
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from jaxtyping import Float
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor
from tqdm.auto import tqdm

from .fast import attention_of, rotary_tables
from .forward import input_device, run
from .hooks import attention_indices, attn_hook_name, hooked, runs_hook
from .labels import LabeledSequence, RowsKind
from .model import LayerAttention, ModelInfo, attention_layers, model_info, sink_logits
from .defaults import EPOCHS, LR, ROWS, Site# Site: declared with the parameters
from .errors import InputError

SITES: tuple[Site, ...] = ("post_rotary", "pre_rotary")
INERT_NOTE = (
    "post-rotary d_K is inert: it adds a constant to every score of a row, which softmax ignores; "
    "only d_Q changes attention"
)


@dataclass
class FocusDirections:
    """Per-head focus directions of one model."""

    q: Float[Tensor, "layer head d_head"]
    """``d_Q`` per query head."""
    k: Float[Tensor, "layer kv d_head"]
    """``d_K``: per query head (``post_rotary``) or per key-value head (``pre_rotary``)."""
    site: Site
    meta: dict = field(default_factory=dict)
    """``model``, ``n_layers``, ``n_heads``, ``n_kv_heads``, ``d_head`` and how they were trained
    (``data``, ``seed``, ``epochs``, ``lr``, ``losses`` per epoch, ...)."""

    def __post_init__(self) -> None:
        if self.site not in SITES:
            raise InputError(f"site must be one of {SITES}, got {self.site!r}")
        if self.q.dim() != 3 or self.k.dim() != 3 or self.q.shape[::2] != self.k.shape[::2]:
            raise InputError(f"q and k must be (layer, head, d_head) alike, got {tuple(self.q.shape)} and {tuple(self.k.shape)}")

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"site": self.site, "lens_focus": json.dumps(self.meta)}
        save_file({"q": self.q.detach().float().contiguous(), "k": self.k.detach().float().contiguous()}, str(path), metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | Path, *, model=None, strict: bool = False) -> "FocusDirections":
        """Read a directions file; with ``model``, check that they fit it (see
        :func:`check_directions`)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"directions file not found: {path}")
        try:
            with safe_open(str(path), framework="pt") as f:
                raw_meta = f.metadata() or {}
                q, k = f.get_tensor("q"), f.get_tensor("k")
        except Exception as e:  # safetensors raises its own error types for foreign files
            raise InputError(f"{path}: not a focus-directions safetensors file ({e})") from None
        if "site" not in raw_meta:
            raise InputError(f"{path}: not a focus-directions file (no 'site' in its metadata)")
        try:
            meta = json.loads(raw_meta.get("lens_focus", "{}"))
        except ValueError as e:
            raise InputError(f"{path}: its metadata 'lens_focus' is not JSON ({e})") from None
        for name, t in (("q", q), ("k", k)):
            if not torch.isfinite(t).all():
                raise InputError(f"{path}: {name} holds {int((~torch.isfinite(t)).sum())} values that are not finite numbers (NaN or ±inf)")
        out = cls(q=q, k=k, site=raw_meta["site"], meta=meta)
        if model is not None:
            check_directions(out, model, source=str(path), strict=strict)
        return out


class TransferWarning(UserWarning):
    """Directions trained on one model applied to another of the same shape (the paper steers a
    base model with its instruct model's directions)."""


def check_directions(directions: FocusDirections, model, *, source: str = "directions", strict: bool = False) -> ModelInfo:
    """The model's :class:`ModelInfo`, after checking that ``directions`` fit its shape and their site
    (:func:`check_site`). Directions trained on a model of another name (last path component, so a
    hub name and a local copy of it agree) but the same shape are applied with a
    :class:`TransferWarning` naming both models, or refused with ``strict``."""
    info = model_info(model)
    made_for = str(directions.meta.get("model", ""))
    other = bool(made_for) and _base(made_for) != _base(info.name)
    if other and strict:
        raise InputError(f"{source}: trained on {made_for!r}, not on {info.name!r} (strict: no transfer between models)")
    n_k = info.n_kv_heads if directions.site == "pre_rotary" else info.n_heads
    want_q, want_k = (info.n_layers, info.n_heads, info.d_head), (info.n_layers, n_k, info.d_head)
    if tuple(directions.q.shape) != want_q or tuple(directions.k.shape) != want_k:
        made_for = directions.meta.get("model", "another model")
        raise InputError(
            f"{source}: made for {made_for} with q {tuple(directions.q.shape)}, k {tuple(directions.k.shape)}; "
            f"{info.name} needs q {want_q}, k {want_k} (layers, heads, head dim) at site {directions.site}"
        )
    check_site(model, directions.site)
    if other:
        warnings.warn(f"{source}: trained on {made_for!r}, applied to {info.name!r} (a model of the same shape): "
                      "directions transferred between models", TransferWarning, stacklevel=2)  # fmt: skip
    return info


def _base(name: str) -> str:
    return Path(str(name).rstrip("/")).name


def zero_directions(model, site: Site = "post_rotary") -> FocusDirections:
    info = model_info(model)
    n_k = info.n_kv_heads if site == "pre_rotary" else info.n_heads
    return FocusDirections(
        q=torch.zeros(info.n_layers, info.n_heads, info.d_head),
        k=torch.zeros(info.n_layers, n_k, info.d_head),
        site=site,
        meta=_shape_meta(info),
    )


def _shape_meta(info: ModelInfo) -> dict:
    return {"model": info.name, "n_layers": info.n_layers, "n_heads": info.n_heads, "n_kv_heads": info.n_kv_heads, "d_head": info.d_head}


# --- cached activations ---------------------------------------------------------------------


@dataclass
class CachedSequence:
    """What training needs from one sequence, for every layer at once."""

    q: Float[Tensor, "layer head row d_head"]
    """Rotated queries (as the model uses them) at the scored rows, of the attention layers (``layers``)."""
    k: Float[Tensor, "layer kv key d_head"]
    """Rotated keys of positions ``0 .. last scored row``."""
    rows: Tensor
    """(row,) positions of the scored rows."""
    span: Tensor
    """(key,) bool: the relevant span."""
    cos: Tensor | None = None
    sin: Tensor | None = None
    """(key, d_head) rotary tables (``pre_rotary`` only; None for models without rotation)."""
    scaling: Tensor | None = None
    """(layer,) factor on ``q·k`` per layer (None: ``d_head ** -0.5``)."""
    window: Tensor | None = None
    """(layer,) sliding window per layer, 0 where a layer sees every earlier position (None: no window)."""
    softcap: float | None = None
    """Attention logit soft-capping (Gemma 2), None where the model has none."""
    sinks: Tensor | None = None
    """(layer, head) learned sink logits (gpt-oss): a column of the softmax that is then dropped; None: no learned sinks."""
    layers: tuple[int, ...] | None = None
    """The model layers the first axis of ``q`` and ``k`` holds (its attention layers); None: every layer."""
    rotary: Tensor | None = None
    """(layer,) bool: which layers rotate (``pre_rotary`` on a model with layers without positions); None: all."""


@torch.no_grad()
def cache_qk(
    model, seqs: Sequence[LabeledSequence], *, site: Site = "post_rotary", rows: RowsKind = ROWS.default, span: str = "relevant", progress: bool = True
) -> list[CachedSequence]:
    """Run the unmodified model once per sequence and keep the queries, keys (and rotary tables)
    that training needs."""
    info = model_info(model)
    present = info.attn_layers
    layers = [attention_layers(model)[layer] for layer in present]
    check_site(model, site)
    sinks = [sink_logits(model, layer) for layer in present] if any(a.learned_sink for a in layers) else None
    geometry = dict(scaling=torch.tensor([a.scaling for a in layers]), window=torch.tensor([a.window or 0 for a in layers]),
                    softcap=layers[0].softcap, sinks=torch.stack(sinks).float().cpu() if sinks else None,
                    layers=present if info.hybrid else None,
                    rotary=torch.tensor([a.rotary for a in layers]) if not all(a.rotary for a in layers) else None)  # fmt: skip
    # Where the bridge does not run hook_rot_q / hook_rot_k (Phi-3, GPT-NeoX), the queries and keys
    # are read before the rotation and rotated here with the bridge's own tables.
    latent = layers[0].latent  # the query and key entering attention fire hook_q / hook_k, heads first
    self_rotate = info.rotary and not latent and not runs_hook(model, "hook_rot_q")
    q_site, k_site = ("hook_rot_q", "hook_rot_k") if info.rotary and not self_rotate and not latent else ("hook_q", "hook_k")
    eager = attention_of(model) == "eager"  # the fast path hands over rotated queries and keys
    tables = info.rotary and (site == "pre_rotary" or (self_rotate and eager))
    device = input_device(model)
    out = []
    for seq in tqdm(seqs, desc="caching Q/K", disable=not progress, unit="seq"):
        if not seq.token_spans.get(span):
            raise InputError(f"example {seq.example.id}: no span {span!r} to train directions on")
        scored = torch.tensor(seq.rows(rows), dtype=torch.long)
        if len(scored) == 0:
            raise InputError(f"example {seq.example.id}: no rows to train on (empty response)")
        end = int(scored.max()) + 1
        store: dict = {}

        def keep(x, *, hook, key):
            store[key] = (x[0].transpose(0, 1) if latent else x[0]).detach().float().cpu()

        def keep_fast(call):  # the same tensors, (pos, heads, d_head), from the fast path
            store[("q", call.layer)] = call.query[0].transpose(0, 1).detach().float().cpu()
            store[("k", call.layer)] = call.key[0].transpose(0, 1).detach().float().cpu()

        hooks = []
        for layer in present:
            hooks += [(attn_hook_name(layer, q_site), partial(keep, key=("q", layer))), (attn_hook_name(layer, k_site), partial(keep, key=("k", layer)))]
        if tables:
            hooks += [(attn_hook_name(present[0], "hook_cos"), partial(keep, key="cos")), (attn_hook_name(present[0], "hook_sin"), partial(keep, key="sin"))]
        ids = torch.tensor([list(seq.input_ids[:end])], device=device)
        with hooked(model, hooks, observe={layer: keep_fast for layer in present}):
            run(model, ids, logits=False)
        if tables and "cos" not in store:
            store["cos"], store["sin"] = (t[0].float().cpu() for t in rotary_tables(model, end))
        if self_rotate and eager:
            for layer in present:
                for key in ("q", "k"):
                    store[(key, layer)] = _rotate(store[(key, layer)], store["cos"][:, None], store["sin"][:, None])
        mask = torch.zeros(end, dtype=torch.bool)
        for a, b in seq.token_spans[span]:
            mask[a : min(b, end)] = True
        q = torch.stack([store[("q", l)][scored] for l in present]).permute(0, 2, 1, 3)
        k = torch.stack([store[("k", l)] for l in present]).permute(0, 2, 1, 3)
        cos, sin = (store.get("cos"), store.get("sin")) if site == "pre_rotary" else (None, None)
        out.append(CachedSequence(q=q, k=k, rows=scored, span=mask, cos=cos, sin=sin, **geometry))
    return out


def check_site(model, site: Site) -> None:
    """Raise, saying why and what to use instead, when directions at ``site`` cannot act on ``model``
    exactly: ``pre_rotary`` on a model with query/key norms (the norm sits between ``hook_q`` and
    the rotation), ``post_rotary`` on a rotary model whose bridge never runs ``hook_rot_q``
    (Phi-3, GPT-NeoX: their bridges rotate inside their own attention)."""
    if site == "pre_rotary" and any(a and a.qk_norm for a in attention_layers(model)):
        raise InputError("pre_rotary directions do not apply to a model with query/key norms: the norm sits between "
                         "hook_q/hook_k and the rotation, so a pre-rotary vector has no fixed effect on the scores; use post_rotary")
    if site == "pre_rotary" and any(a and a.latent for a in attention_layers(model)):
        raise InputError("pre_rotary directions do not apply to latent attention: its rotary part is split off the "
                         "decompressed query and key and rotated alone; use post_rotary, which adds the directions to the "
                         "query and key that enter attention, position-free and rotated parts together")
    if site == "pre_rotary" and model_info(model).rotary and not rotation_reproduced(model):
        arch = type(getattr(model, "original_model", model)).__name__
        raise InputError(f"pre_rotary directions need the model's rotation, and the rotary embedding of {arch} pairs its "
                         "dimensions otherwise than lens_focus rotates them (measured on the bridge's own tables); use post_rotary")
    if (site == "post_rotary" and model_info(model).rotary and attention_of(model) == "eager"
            and not any(a and a.latent for a in attention_layers(model)) and not runs_hook(model, "hook_rot_q")):  # fmt: skip
        arch = type(getattr(model, "original_model", model)).__name__
        raise InputError(f"post_rotary directions need hook_rot_q, which the bridge of {arch} never runs (it rotates inside "
                         "its own attention); use site='pre_rotary' (--site pre_rotary)")


_ROTATES: "weakref.WeakKeyDictionary[torch.nn.Module, bool]" = weakref.WeakKeyDictionary()


def rotation_reproduced(model) -> bool:
    """Whether :func:`_rotate` with the bridge's own tables (``hook_cos``/``hook_sin``) turns the
    first attention layer's ``hook_q`` into its ``hook_rot_q``, as pre-rotary training assumes.
    Measured once per model on a four-token pass; True where the bridge never runs
    ``hook_rot_q`` (it rotates inside its own attention, with those tables) or the layer has a norm
    between the two. False, for instance, for rotations that pair dimensions otherwise
    (Cohere's interleaved pairs, gpt-oss's half-size tables)."""
    if model not in _ROTATES:
        first = attention_indices(model)[0]
        seen: dict = {}
        names = {site: attn_hook_name(first, site) for site in ("hook_q", "hook_rot_q", "hook_cos", "hook_sin")}
        hooks = [(name, partial(lambda x, *, hook, site: seen.__setitem__(site, x.detach().float()), site=site))
                 for site, name in names.items() if name in model.hook_dict]  # fmt: skip
        with torch.no_grad(), hooked(model, hooks):
            run(model, torch.tensor([[1, 2, 3, 4]], device=input_device(model)), logits=False)
        if not {"hook_q", "hook_rot_q", "hook_cos", "hook_sin"} <= set(seen) or (attention_layers(model)[first] or LayerAttention(1.0)).qk_norm:
            _ROTATES[model] = True
        else:
            cos, sin = seen["hook_cos"][0][:, None], seen["hook_sin"][0][:, None]
            _ROTATES[model] = bool(torch.allclose(_rotate(seen["hook_q"][0], cos, sin), seen["hook_rot_q"][0], atol=1e-5))
    return _ROTATES[model]


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotary embedding as the bridge applies it (``x cos + rotate_half(x) sin``) on the first
    ``cos.shape[-1]`` dims of ``x``; the rest pass unrotated (partial rotary, GPT-NeoX)."""
    rot = cos.shape[-1]
    if rot < x.shape[-1]:
        rotated = _rotate(x[..., :rot], cos, sin)
        return torch.cat([rotated, x[..., rot:].expand(*rotated.shape[:-1], -1)], dim=-1)
    half = rot // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


def relevant_scores(
    cached: CachedSequence, dq: Tensor, dk: Tensor, *, site: Site, group: int
) -> Float[Tensor, "layer head"]:
    """Each head's relevant score ``S_C`` on the cached rows with directions ``d_Q``, ``d_K``
    added (paper Eq. 4), computed from the cache alone: ``(layer, head, row, key)`` scores,
    never a square pattern. The layers are the cache's (its attention layers); ``dq`` and ``dk``
    hold every layer of the model. A learned sink joins each row's softmax and is dropped (docs/method.md §4)."""
    if cached.layers is not None:
        dq, dk = dq[list(cached.layers)], dk[list(cached.layers)]
    q, k = cached.q, cached.k  # (L, H, R, F), (L, KV, S, F)
    n_keys, d_head = k.shape[2], k.shape[3]
    if site == "pre_rotary" and cached.cos is not None:
        dq_rows, dk_keys = _rotate(dq[:, :, None], cached.cos[cached.rows], cached.sin[cached.rows]), _rotate(dk[:, :, None], cached.cos[:n_keys], cached.sin[:n_keys])
        if cached.rotary is not None:  # a layer without positions takes the vectors as they are
            still = ~cached.rotary[:, None, None, None]
            dq_rows, dk_keys = torch.where(still, dq[:, :, None], dq_rows), torch.where(still, dk[:, :, None], dk_keys)
        q, k = q + dq_rows, k + dk_keys
        k = k.repeat_interleave(group, dim=1)
    else:
        q = q + dq[:, :, None]
        if site == "pre_rotary":
            k = k + dk[:, :, None]
            k = k.repeat_interleave(group, dim=1)
        else:
            k = k.repeat_interleave(group, dim=1) + dk[:, :, None]
    scaling = cached.scaling[:, None, None, None] if cached.scaling is not None else d_head**-0.5
    logits = (q @ k.transpose(-1, -2)) * scaling
    if cached.softcap is not None:
        logits = cached.softcap * torch.tanh(logits / cached.softcap)
    distance = cached.rows[:, None] - torch.arange(n_keys)[None, :]  # (row, key)
    hidden = distance < 0  # (layer, 1, row, key) once a window applies
    if cached.window is not None and bool((cached.window > 0).any()):
        window = cached.window[:, None, None, None]
        hidden = hidden | ((window > 0) & (distance >= window))
    logits = logits.masked_fill(hidden, float("-inf"))
    if cached.sinks is not None:
        sink = cached.sinks[:, :, None, None].expand(*logits.shape[:-1], 1)
        pattern = torch.cat([logits, sink], dim=-1).softmax(-1)[..., :-1]
    else:
        pattern = logits.softmax(-1)
    return (pattern * cached.span).sum(-1).mean(-1)


def train_directions(
    model,
    seqs: Sequence[LabeledSequence],
    *,
    site: Site = "post_rotary",
    epochs: int = EPOCHS.default,
    lr: float = LR.default,
    init_std: float = 0.01,
    seed: int = 0,
    rows: RowsKind = ROWS.default,
    span: str = "relevant",
    meta: dict | None = None,
    progress: bool = True,
) -> FocusDirections:
    """Train ``d_Q``, ``d_K`` for every head (docs/method.md §4): loss ``−S_C`` averaged over heads and
    rows, one sequence per step (shuffled per epoch under ``seed``), AdamW, init ``N(0, init_std²)``.

    Args:
        seqs: long prompts followed by their gold responses (see :func:`lens_focus.answers.gold_response_sequences`).
    """
    epochs, lr = EPOCHS.check(epochs), LR.check(lr)
    if not seqs:
        raise InputError("no training sequences: the dataset is empty or every example was skipped")
    if site not in SITES:
        raise InputError(f"site must be one of {SITES}, got {site!r}")
    info = model_info(model)
    cache = cache_qk(model, seqs, site=site, rows=rows, span=span, progress=progress)
    n_k = info.n_kv_heads if site == "pre_rotary" else info.n_heads
    gen = torch.Generator().manual_seed(seed)
    dq = (torch.randn(info.n_layers, info.n_heads, info.d_head, generator=gen) * init_std).requires_grad_()
    dk = (torch.randn(info.n_layers, n_k, info.d_head, generator=gen) * init_std).requires_grad_()
    with torch.no_grad():  # layers without attention (a hybrid's) take no direction
        for layer in set(range(info.n_layers)) - set(info.attn_layers):
            dq[layer], dk[layer] = 0, 0
    opt = torch.optim.AdamW([dq, dk], lr=lr)
    order, rng, losses = list(range(len(cache))), random.Random(seed), []

    def mean_score() -> float:
        return float(np.mean([relevant_scores(c, dq.detach(), dk.detach(), site=site, group=info.group_size).mean() for c in cache]))

    before = mean_score()
    bar = tqdm(range(epochs), desc="training directions", disable=not progress, unit="epoch")
    for _ in bar:
        rng.shuffle(order)
        total = 0.0
        for i in order:
            loss = -relevant_scores(cache[i], dq, dk, site=site, group=info.group_size).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item()
        losses.append(total / len(order))
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    after = mean_score()
    info_meta = {
        **_shape_meta(info), "site": site, "epochs": epochs, "lr": lr, "init_std": init_std, "seed": seed,
        "rows": rows, "span": span, "n_sequences": len(seqs), "relevant_score_at_init": before, "relevant_score_trained": after,
        "losses": losses, "note": INERT_NOTE if site == "post_rotary" and cache[0].softcap is None else "",
        **(meta or {}),
    }  # fmt: skip
    return FocusDirections(q=dq.detach().clone(), k=dk.detach().clone(), site=site, meta=info_meta)
