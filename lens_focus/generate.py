"""Greedy generation through the bridge, batched with left padding and a key-value cache.

Hooks registered on the model (interventions) run at every step: the prompt pass sees all prompt
positions, each later step one new position per row.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from contextlib import nullcontext
from typing import Callable, ContextManager, Iterator, Literal, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .forward import DEFAULT_CHUNK, batch_budget, chunked_forward, input_device, plan_batches, run
from .defaults import BATCH_SIZE, MAX_NEW_TOKENS, STOP, StopAt# noqa: F401  (declared with the parameters)
from .errors import InputError


_FIRST_LINE = re.compile(r"\s*[^\n]*")


@dataclass(frozen=True)
class Generation:
    text: str
    """The response text (for ``stop="line"``: up to, not including, the line break)."""
    ids: tuple[int, ...]
    """Every token generated, the stop token included."""
    stopped: Literal["eos", "line", "length"]


def eos_ids(model) -> set[int]:
    """End-of-sequence ids of the tokenizer and of the model's generation config."""
    ids = {model.tokenizer.eos_token_id}
    hf = getattr(model, "original_model", None)
    gen_eos = getattr(getattr(hf, "generation_config", None), "eos_token_id", None)
    ids.update(gen_eos if isinstance(gen_eos, (list, tuple)) else [gen_eos])
    return {i for i in ids if i is not None}


def _decode_continuation(tokenizer, anchor: int, ids: list[int]) -> str:
    """Decode ``ids`` as they continue a text ending in token ``anchor`` (keeps leading spaces
    that tokenizers drop when a slice is decoded on its own)."""
    head = tokenizer.decode([anchor], skip_special_tokens=True)
    full = tokenizer.decode([anchor, *ids], skip_special_tokens=True)
    return full[len(head):] if full.startswith(head) else tokenizer.decode(ids, skip_special_tokens=True)


def _cut(text: str, stop: StopAt) -> tuple[str, bool]:
    if stop == "line":
        line = _FIRST_LINE.match(text).group(0)
        return line, len(line) < len(text) and bool(line.strip())
    return text, False


@dataclass
class PromptBatch:
    """One left-padded batch of prompts and what generating from it left behind."""

    indices: list[int]
    """Positions of these prompts in the caller's list."""
    prompts: list[list[int]]
    mask: Tensor
    """(batch, width) 1 for real prompt tokens, 0 for left padding."""
    cache: object = None
    """The key-value cache after generation (prompt + generated tokens)."""
    cached: int = 0
    """Positions the cache holds, counted as they were fed (the cache is never asked)."""
    generations: list[Generation] = field(default_factory=list)

    @property
    def width(self) -> int:
        return self.mask.shape[1]

    def pad(self, b: int) -> int:
        """Left padding of row ``b``."""
        return self.width - len(self.prompts[b])


@torch.no_grad()
def generate(
    model,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int = MAX_NEW_TOKENS.default,
    stop: StopAt = STOP.default,
    batch_size: int = BATCH_SIZE.default,
    chunk: int = DEFAULT_CHUNK,
    progress: bool = True,
) -> list[Generation]:
    """Greedy responses to token-id prompts, in the order given.

    Prompts of a batch are left-padded; the attention mask and position ids make each row's
    result equal to generating it alone. Prompts are read ``chunk`` tokens at a time.
    """
    results: dict[int, Generation] = {}
    for batch in generate_batches(
        model, prompts, max_new_tokens=max_new_tokens, stop=stop, batch_size=batch_size, chunk=chunk, progress=progress
    ):
        results.update(zip(batch.indices, batch.generations))
    return [results[i] for i in range(len(prompts))]


def batch_plan(model, prompts: Sequence[Sequence[int]], *, batch_size: int = BATCH_SIZE.default, chunk: int = DEFAULT_CHUNK) -> list[list[int]]:
    """The indices of ``prompts`` that :func:`generate_batches` reads together, batch by batch."""
    max_cells, span = batch_budget(model, chunk)
    return plan_batches([len(p) for p in prompts], batch_size=batch_size, max_cells=max_cells, chunk=span)


def generate_batches(
    model,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int = MAX_NEW_TOKENS.default,
    stop: StopAt = STOP.default,
    batch_size: int = BATCH_SIZE.default,
    chunk: int = DEFAULT_CHUNK,
    prefill: Callable[[PromptBatch], ContextManager] | None = None,
    during: Callable[[PromptBatch], ContextManager] | None = None,
    progress: bool = True,
) -> Iterator[PromptBatch]:
    """Like :func:`generate`, one :class:`PromptBatch` at a time, its key-value cache included.

    ``during(batch)`` may return a context manager (an intervention) held while the batch is
    read and decoded; ``prefill(batch)`` may return another, entered after it, held while the
    prompts are read (not while decoding): e.g. :func:`lens_focus.scoring.last_rows`. While
    either is given, the cache keeps every position on sliding-window layers too
    (:func:`lens_focus.compat.new_cache`): hooks then see each row's keys at their positions in
    the batch, as in a forward pass over the whole sequence, also past a layer's window."""
    if stop not in ("line", "eos"):
        raise InputError(f"stop must be 'line' or 'eos', got {stop!r}")
    tokenizer = model.tokenizer
    stops = eos_ids(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(stops, default=0)
    device = input_device(model)
    for indices in tqdm(batch_plan(model, prompts, batch_size=batch_size, chunk=chunk), desc="generating", disable=not progress, unit="batch"):
        rows = [list(prompts[i]) for i in indices]
        if any(not r for r in rows):
            raise InputError("cannot generate from an empty prompt")
        width = max(map(len, rows))
        ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows], device=device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        batch = PromptBatch(indices=list(indices), prompts=rows, mask=mask)
        with during(batch) if during else nullcontext():
            _decode(model, batch, ids, positions, prefill, max_new_tokens, stop, stops, chunk, every_position=bool(prefill or during))
        yield batch


def _decode(
    model, batch: PromptBatch, ids, positions, prefill, max_new_tokens: int, stop: StopAt, stops: set[int], chunk: int, *, every_position: bool
) -> None:
    """Read the prompts of ``batch``, then decode greedily; fills ``batch.generations`` and ``batch.cache``."""
    tokenizer, rows, mask = model.tokenizer, batch.prompts, batch.mask
    with torch.no_grad(), prefill(batch) if prefill else nullcontext():
        last, cache = chunked_forward(model, ids, attention_mask=mask, position_ids=positions, chunk=chunk, every_position=every_position)
    batch.cached = batch.width
    generated: list[list[int]] = [[] for _ in rows]
    outcome: list[str | None] = [None] * len(rows)
    for step in range(max_new_tokens):
        if step:
            with torch.no_grad():
                last, cache = run(model, ids, attention_mask=mask, position_ids=positions, cache=cache)
            batch.cached += 1
        nxt = last.argmax(-1)
        for j, tok in enumerate(nxt.tolist()):
            if outcome[j] is not None:
                continue
            generated[j].append(tok)
            if tok in stops:
                outcome[j] = "eos"
            elif stop == "line" and "\n" in tokenizer.decode([tok]):
                text = _decode_continuation(tokenizer, rows[j][-1], generated[j])
                if _cut(text, stop)[1]:
                    outcome[j] = "line"
        if all(o is not None for o in outcome):
            break
        ids = nxt[:, None].to(mask.device)  # under a device map the logits sit on the last layer's device
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        positions = positions[:, -1:] + 1
    for j in range(len(rows)):
        body = generated[j][:-1] if outcome[j] == "eos" else generated[j]
        text, _ = _cut(_decode_continuation(tokenizer, rows[j][-1], body), stop)
        batch.generations.append(Generation(text=text, ids=tuple(generated[j]), stopped=outcome[j] or "length"))
    batch.cache = cache
