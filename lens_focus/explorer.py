"""The explorer: one self-contained HTML page for the walk a researcher does by hand. Find a head on
the layer × head map, pick an example, read which documents the head attends to while the answer
is produced, and see what compensation or a focus direction changes.

>>> page = lf.explore(model, examples, scores=scores, ranked=ranked, directions=directions)
>>> page                       # in a notebook: the page inline
>>> page.save("explore.html")  # the same page as a file; it works offline, opened from disk

The page holds everything it shows (no network, no other file): the map of every head's
relevant, irrelevant (max) and sink score, the top heads, and per example the prompt's tokens cut
into segments (each document, and each run of one other part: sink, instruction, question, ...)
and, under each setting (the unmodified model, split-softmax compensation, focus directions), the
answer, its EM and every head's attention on the prompt, averaged over the answer rows of the
run's row convention (:func:`lens_focus.scoring.mean_attention`), stored twice:

- per segment, exact (float32): a document's bar is the head's contextual score of that document
  on this example, and every segment of the prompt, at any length, is listed with its share;
- per token, as a colour: levels 0–255 of the head's largest weight off the first token (uint8,
  deflated), decoded in the browser only for the segments one opens.

A prompt of 8k tokens thus costs about a byte per token and head before compression (float16 for
every token would be two, and a page that drew every token would not open in seconds). Prompts of
up to :data:`OPEN_ALL` tokens open with every segment shown; longer ones with the relevant
documents and the question. Permalink: ``#head=L,H&example=I``.
"""
from __future__ import annotations

import base64
import html
import json
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from jaxtyping import Float
from tqdm.auto import tqdm

from .answers import answer_examples
from .heads import Head, rank_heads
from .interventions import compensation_intervention, focus_intervention
from .labels import Example, LabeledSequence, RowsKind
from .model import model_info
from .scoring import LEARNED_SINK, mean_attention
from .errors import InputError
from .defaults import ROWS

MAPS = ("relevant", "irrelevant_max", "sink")
PARTS = ("sink", "instruction", "relevant", "irrelevant", "question", "reply_start")
"""A prompt token's part is the first of these spans that holds it (``other``: none of them)."""


@dataclass(frozen=True)
class Explorer:
    """The explorer page: ``data`` (what it shows, :func:`explorer_data`); renders in a notebook
    and saves as one offline HTML file."""

    data: dict

    def html(self) -> str:
        template = resources.files("lens_focus").joinpath("explorer.html").read_text(encoding="utf-8")
        payload = json.dumps(self.data, separators=(",", ":")).replace("</", "<\\/")
        return template.replace("/*__DATA__*/null", payload, 1)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.html(), encoding="utf-8")
        return path

    def _repr_html_(self) -> str:
        return f'<iframe srcdoc="{html.escape(self.html(), quote=True)}" style="width:100%;height:860px;border:0"></iframe>'


LEVELS = 255
"""A token's stored weight is a level 0..LEVELS of its head's largest weight off the first token."""
OPEN_ALL = 2048
"""Prompts of at most this many tokens open with every segment's tokens shown (the page's own rule)."""


def _b64(array: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


def _array(text: str, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype).reshape(shape)


def encode_run(weights: np.ndarray, segments: Sequence[dict], sink_tokens: int) -> dict:
    """The stored attention of one example under one setting, from ``weights`` (layer, head,
    prompt token; NaN on layers without attention): ``segments`` (float32 sums per segment,
    exact), ``scale`` (float32 per head, its largest weight after the first ``sink_tokens``) and
    ``levels`` (uint8 per token, ``round(LEVELS · w / scale)`` clipped, deflated)."""
    w = np.nan_to_num(weights.astype(np.float64), nan=0.0)
    sums = np.stack([weights[:, :, s["start"] : s["end"]].astype(np.float64).sum(-1) for s in segments], -1)
    scale = w[:, :, sink_tokens:].max(-1) if w.shape[-1] > sink_tokens else np.zeros(w.shape[:2])
    levels = np.clip(np.round(LEVELS * w / np.where(scale > 0, scale, 1.0)[..., None]), 0, LEVELS)
    return {"segments": _b64(sums, "<f4"), "scale": _b64(scale, "<f4"),
            "levels": base64.b64encode(zlib.compress(levels.astype(np.uint8).tobytes(), 9)).decode("ascii")}  # fmt: skip


def attention_of(data: dict, example: int, setting: str) -> Float[np.ndarray, "layer head token"]:
    """The page's per-token weights of ``example`` under ``setting`` (what its colours show):
    levels times scale, within ``scale / (2 · LEVELS)`` of the head's weight (the first token's
    clipped at the scale)."""
    run, shape = data["examples"][example]["runs"][setting], (data["n_layers"], data["n_heads"])
    levels = np.frombuffer(zlib.decompress(base64.b64decode(run["levels"])), dtype=np.uint8).reshape(*shape, -1)
    scale = _array(run["scale"], "<f4", shape)
    return (levels.astype(np.float64) / LEVELS * scale[..., None]).astype(np.float32)


def segment_sums(data: dict, example: int, setting: str) -> Float[np.ndarray, "layer head segment"]:
    """The exact sum of each head's weights over each segment of ``example`` under ``setting``."""
    ex = data["examples"][example]
    return _array(ex["runs"][setting]["segments"], "<f4", (data["n_layers"], data["n_heads"], len(ex["segments"])))


def _grid(values: np.ndarray) -> list:
    """A (layer, head) array as JSON lists, rounded, with None where a layer has no attention."""
    return [[None if np.isnan(v) else float(v) for v in row] for row in np.round(values, 6)]


def _token_texts(tokenizer, ids: Sequence[int]) -> list[str]:
    return [tokenizer.decode([i]) for i in ids]


def _parts(seq: LabeledSequence) -> list[str]:
    out = ["other"] * seq.n_prompt
    for name in reversed(PARTS):
        for i in seq.tokens_of(name):
            if i < seq.n_prompt:
                out[i] = name
    return out


def _documents(seq: LabeledSequence) -> list[dict]:
    relevant = set(seq.example.relevant_names)
    docs = []
    for name in seq.example.documents:
        spans = [s for s in seq.token_spans.get(name, []) if s[0] < seq.n_prompt]
        if spans:
            docs.append({"name": name, "start": spans[0][0], "end": min(spans[-1][1], seq.n_prompt), "relevant": name in relevant})
    return docs


def segments_of(parts: Sequence[str], documents: Sequence[dict]) -> list[dict]:
    """The prompt cut into consecutive segments that cover it: each document, and each run of
    tokens of one other part, as ``{"name", "part", "start", "end"}`` (end exclusive)."""
    name_at = list(parts)
    for d in documents:
        name_at[d["start"] : d["end"]] = [d["name"]] * (d["end"] - d["start"])
    out: list[dict] = []
    for i, name in enumerate(name_at):
        if out and out[-1]["name"] == name:
            out[-1]["end"] = i + 1
        else:
            out.append({"name": name, "part": parts[i], "start": i, "end": i + 1})
    return out


def explorer_data(
    model,
    examples: Sequence[Example],
    *,
    scores: pd.DataFrame,
    settings: dict[str, tuple[str, object]],
    rows: RowsKind = ROWS.default,
    title: str = "",
    sample: str = "",
    progress: bool = True,
    **answer_kw,
) -> dict:
    """What the explorer shows (see the module docstring). ``scores``: a score table
    (:func:`lens_focus.score_heads`; the map reads condition ``long``); ``settings``: name ->
    (label, intervention or None), the first the unmodified model; ``sample``: what the examples
    are a sample of, said on the page (e.g. "3 of the run's 50 test questions")."""
    info = model_info(model)
    long = scores[scores.condition == "long"]
    spans = MAPS + ((LEARNED_SINK,) if (long.span == LEARNED_SINK).any() else ())
    maps = {span: _grid(long[long.span == span].pivot(index="layer", columns="head", values="score").reindex(
        index=range(info.n_layers), columns=range(info.n_heads)).to_numpy()) for span in spans}  # fmt: skip
    out = {
        "title": title or f"{info.name}: contextual heads", "model": info.name, "rows": rows, "n_layers": info.n_layers,
        "n_heads": info.n_heads, "maps": maps, "top": [list(h) for h in rank_heads(scores)[:20]],
        "settings": [{"name": name, "label": label} for name, (label, _) in settings.items()], "sample": sample, "open_all": OPEN_ALL, "examples": [],
    }  # fmt: skip
    answered = {name: answer_examples(model, examples, intervention=make, progress=False, **answer_kw) for name, (_, make) in settings.items()}
    for i, ex in enumerate(tqdm(examples, desc="explorer", disable=not progress)):
        first = answered[next(iter(settings))][i]
        if first.sequence is None:
            raise InputError(f"example {ex.id}: skipped ({first.skipped}); the explorer shows answered examples only")
        seq0 = first.sequence
        parts, documents = _parts(seq0), _documents(seq0)
        record = {
            "id": ex.id, "gold_position": ex.meta.get("gold_position"), "answers": list(ex.answers),
            "tokens": _token_texts(model.tokenizer, seq0.input_ids[: seq0.n_prompt]), "documents": documents,
            "segments": segments_of(parts, documents), "runs": {},
        }  # fmt: skip
        sink_tokens = next((i for i, p in enumerate(parts) if p != "sink"), len(parts))
        for name, (_, make) in settings.items():
            a = answered[name][i]
            if a.sequence is None or a.sequence.n_response == 0:
                record["runs"][name] = {"response": a.response, "em": float(a.em), "levels": None}
                continue
            every = mean_attention(model, a.sequence, rows=rows, intervention=make)
            record["runs"][name] = {"response": a.response, "em": float(a.em), **encode_run(every[:, :, : seq0.n_prompt], record["segments"], sink_tokens)}
            if LEARNED_SINK in spans:  # what the rows leave to the learned sinks on this example
                record["runs"][name][LEARNED_SINK] = _grid(1.0 - every.astype(np.float64).sum(-1))
        out["examples"].append(record)
    return out


def explore(
    model,
    examples: Sequence[Example],
    *,
    scores: pd.DataFrame,
    ranked: Sequence[Head] | None = None,
    directions=None,
    tau: float = 0.1,
    compensation_k: int = 5,
    alpha: float = 0.5,
    focus_k: int = 20,
    rows: RowsKind = ROWS.default,
    title: str = "",
    sample: str = "",
    progress: bool = True,
    **answer_kw,
) -> Explorer:
    """The explorer page for ``examples`` (long prompts): the unmodified model, split-softmax
    compensation at ``tau`` on the top ``compensation_k`` of ``ranked`` (default: ranked by
    ``scores``) and, given ``directions``, ``alpha · d`` on the top ``focus_k``."""
    if not examples:
        raise InputError("no examples to explore")
    ranked = rank_heads(scores) if ranked is None else ranked
    settings: dict[str, tuple[str, object]] = {
        "baseline": ("unmodified", None),
        "compensation": (f"split-softmax, τ = {tau:g}, top {compensation_k}", compensation_intervention(model, list(ranked[:compensation_k]), tau=tau)),
    }
    if directions is not None:
        settings["focus"] = (f"focus directions, α = {alpha:g}, top {focus_k}", focus_intervention(model, directions, list(ranked[:focus_k]), alpha=alpha))
    data = explorer_data(model, examples, scores=scores, settings=settings, rows=rows, title=title, sample=sample, progress=progress, **answer_kw)
    return Explorer(data)
