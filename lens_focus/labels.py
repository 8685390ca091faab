"""Prompts with named parts, rendered for a model and labeled at the token level (docs/method.md §1).

An :class:`Example` is the user message as a list of :class:`Segment` s, some named (``instruction``,
``doc_1`` … ``doc_N``, ``question``), plus which document is relevant. :func:`label` renders it
(chat template or plain text), appends a response, tokenizes, and turns every character span into
the exact token span that covers it through the tokenizer's offset mapping, which it validates.
"""
from __future__ import annotations

import bisect
import hashlib
import json
import re
from dataclasses import dataclass, field

from .errors import InputError
from .defaults import N_SINK, RowsKind, Variant# noqa: F401  (the closed sets are declared with the parameters)

Span = tuple[int, int]
"""A half-open range ``[start, end)`` of characters or tokens."""


class LabelError(InputError):
    """A prompt could not be labeled exactly; the message names the example and the span."""


@dataclass(frozen=True)
class Segment:
    text: str
    name: str | None = None
    """``instruction``, ``doc_<i>`` (1-based), ``question``, or None for glue text."""


@dataclass(frozen=True)
class Example:
    """One prompt: the user message in named parts, the relevant document, and the gold answers."""

    id: str
    segments: tuple[Segment, ...]
    relevant: str | tuple[str, ...] | None
    """Name of the relevant document segment (``doc_<i>``), several names when more than one
    document is relevant (the span ``relevant`` then covers them all), or None (negative prompts)."""
    answers: tuple[str, ...]
    variant: Variant = "long"
    reply_start: str = ""
    """A fixed start of the model's reply, part of the prompt (labeled as span ``reply_start``):
    rendered after the chat template's generation prompt, or after the message of a base model."""
    meta: dict = field(default_factory=dict, compare=False)
    """Free-form facts: ``question_id``, ``gold_position``, ``n_docs``, ``task``, ..."""
    inner: tuple[tuple[str, str, int, int], ...] = ()
    """Spans inside a segment, ``(span name, segment name, start, end)`` in characters of that
    segment's text: e.g. the answer inside a needle sentence."""

    def __post_init__(self) -> None:
        names = [s.name for s in self.segments if s.name]
        if len(names) != len(set(names)):
            raise LabelError(f"example {self.id}: segment names repeat: {names}")
        missing = [r for r in self.relevant_names if r not in names]
        if missing:
            raise LabelError(f"example {self.id}: relevant document {missing[0]!r} is not a segment")
        texts = {s.name: s.text for s in self.segments if s.name}
        for name, segment, start, end in self.inner:
            if segment not in texts or not 0 <= start < end <= len(texts[segment]) or name in texts:
                raise LabelError(f"example {self.id}: inner span {name!r} {(start, end)} does not lie inside a segment {segment!r}")

    @property
    def text(self) -> str:
        """The user message."""
        return "".join(s.text for s in self.segments)

    @property
    def relevant_names(self) -> tuple[str, ...]:
        """The relevant segments' names (empty for a negative prompt)."""
        if self.relevant is None:
            return ()
        return (self.relevant,) if isinstance(self.relevant, str) else tuple(self.relevant)

    @property
    def irrelevant_names(self) -> list[str]:
        """The documents that are not relevant."""
        return [d for d in self.documents if d not in self.relevant_names]

    @property
    def documents(self) -> list[str]:
        return [s.name for s in self.segments if s.name and s.name.startswith("doc_")]

    @property
    def question_id(self) -> str:
        return str(self.meta.get("question_id", self.id))


def render_prompt(example: Example, tokenizer, *, chat: bool | None = None) -> tuple[str, int]:
    """The prompt string a model sees and the character offset of the user message inside it.

    Chat models (tokenizers with a chat template): the user message rendered by the template with
    the generation prompt, then the example's ``reply_start``. Base models: the BOS text (when the
    tokenizer has one) + the message, then a line break and the ``reply_start`` when there is one
    (HELMET's ``user_template + "\n" + system_template``).
    """
    message = example.text
    chat = getattr(tokenizer, "chat_template", None) is not None if chat is None else chat
    if chat:
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True
        )
        start = prompt.find(message)
        if start < 0:
            raise LabelError(f"example {example.id}: the chat template changed the user message; cannot locate spans")
        return prompt + example.reply_start, start
    bos = tokenizer.bos_token or ""
    return bos + message + ("\n" + example.reply_start if example.reply_start else ""), len(bos)


@dataclass(frozen=True)
class LabeledSequence:
    """Token ids of ``prompt + response`` with every named span as token ranges.

    ``token_spans[name]`` is a list of ``[start, end)`` token ranges (several for ``irrelevant``);
    ``char_spans`` the same in characters of ``text``.
    """

    example: Example
    text: str
    prompt: str
    input_ids: tuple[int, ...]
    char_spans: dict[str, list[Span]]
    token_spans: dict[str, list[Span]]
    n_prompt: int
    """Tokens of the prompt; the response occupies ``input_ids[n_prompt:]``."""

    @property
    def response(self) -> str:
        return self.text[len(self.prompt):]

    @property
    def n_response(self) -> int:
        return len(self.input_ids) - self.n_prompt

    def __len__(self) -> int:
        return len(self.input_ids)

    def rows(self, kind: RowsKind = "generation") -> range:
        """Query positions scored: ``generation`` = the rows that produced the response tokens
        (last prompt token … second-to-last response token); ``response`` = the response tokens."""
        if kind == "generation":
            return range(self.n_prompt - 1, len(self.input_ids) - 1)
        if kind == "response":
            return range(self.n_prompt, len(self.input_ids))
        raise InputError(f"rows must be 'generation' or 'response', got {kind!r}")

    def tokens_of(self, name: str) -> list[int]:
        """Token positions of span ``name`` (empty when the span is absent)."""
        return [i for start, end in self.token_spans.get(name, []) for i in range(start, end)]


def _normalise_ws(text: str) -> str:
    return " ".join(text.split())


def _offsets(tokenizer, text: str, ids: list[int], raw: list[tuple[int, int]], example_id: str) -> list[Span]:
    """Validate (and where a special token reports an empty range, repair) the offset mapping."""
    special = set(getattr(tokenizer, "all_special_ids", []))
    offsets: list[Span] = []
    cursor = 0
    for i, (tok_id, (start, end)) in enumerate(zip(ids, raw)):
        if start == end and tok_id in special:  # some tokenizers give special tokens (0, 0)
            piece = tokenizer.convert_ids_to_tokens(tok_id)
            if text.startswith(piece, cursor):
                start, end = cursor, cursor + len(piece)
        if not (0 <= start <= end <= len(text)) or (offsets and (start < offsets[-1][0] or end < offsets[-1][1])):
            raise LabelError(
                f"example {example_id}: the tokenizer returned an invalid offset {(start, end)} for token {i}; "
                "offsets must be increasing ranges inside the text"
            )
        offsets.append((start, end))
        cursor = max(cursor, end)
    covered = bytearray(len(text))
    for start, end in offsets:
        covered[start:end] = b"\x01" * (end - start)
    missing = [i for i, c in enumerate(text) if not covered[i] and not c.isspace()]
    if missing:
        i = missing[0]
        raise LabelError(
            f"example {example_id}: the tokenizer's offsets do not cover character {i} ({text[i:i + 20]!r}); "
            "this tokenizer's offset mapping cannot be trusted"
        )
    return offsets


def _token_span(starts: list[int], ends: list[int], char_span: Span) -> Span | None:
    """The contiguous tokens overlapping ``char_span`` (a token that overlaps belongs); offsets
    are validated non-decreasing, so both ends are found by bisection."""
    cs, ce = char_span
    first = bisect.bisect_right(ends, cs)
    last = bisect.bisect_left(starts, ce)
    return (first, last) if first < last else None


def label(
    example: Example,
    tokenizer,
    response: str = "",
    *,
    chat: bool | None = None,
    n_sink: int = N_SINK.default,
) -> LabeledSequence:
    """Render ``example``, append ``response`` and label every span at the token level.

    The token ids are exactly the tokenization of ``prompt + response`` (no special tokens added
    beyond those the rendered text spells out). Raises :class:`LabelError` naming the example and
    the span when a span cannot be located or comes out empty.
    """
    prompt, msg_start = render_prompt(example, tokenizer, chat=chat)
    text = prompt + response
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    if not ids:
        raise LabelError(f"example {example.id}: the prompt tokenizes to nothing")
    offsets = _offsets(tokenizer, text, ids, [tuple(o) for o in enc["offset_mapping"]], example.id)

    n_prompt = sum(1 for start, _ in offsets if start < len(prompt))
    if n_prompt == 0:
        raise LabelError(f"example {example.id}: the prompt has no tokens")
    if offsets[n_prompt - 1][1] > len(prompt):
        raise LabelError(
            f"example {example.id}: token {n_prompt - 1} straddles the end of the prompt and the start of "
            f"the response {response[:20]!r}; the response cannot be separated from the prompt"
        )
    if chat or (chat is None and getattr(tokenizer, "chat_template", None) is not None):
        _check_chat_tokens(example, tokenizer, ids[:n_prompt])

    char_spans: dict[str, list[Span]] = {}
    cursor = msg_start
    for seg in example.segments:
        if seg.name:
            char_spans[seg.name] = [(cursor, cursor + len(seg.text))]
        cursor += len(seg.text)
    for name, segment, start, end in example.inner:
        offset = char_spans[segment][0][0]
        char_spans[name] = [(offset + start, offset + end)]
    if example.reply_start:
        char_spans["reply_start"] = [(len(prompt) - len(example.reply_start), len(prompt))]
    if example.relevant_names:
        char_spans["relevant"] = [char_spans[r][0] for r in example.relevant_names]
    irrelevant = example.irrelevant_names
    if irrelevant:
        char_spans["irrelevant"] = [char_spans[d][0] for d in irrelevant]

    starts, ends = [s for s, _ in offsets], [e for _, e in offsets]
    token_spans: dict[str, list[Span]] = {}
    for name, spans in char_spans.items():
        token_spans[name] = []
        for span in spans:
            tspan = _token_span(starts, ends, span)
            if tspan is None:
                raise LabelError(f"example {example.id}: span {name!r} {span} is empty after tokenization")
            wanted = _normalise_ws(text[span[0]:span[1]])
            got = _normalise_ws(tokenizer.decode(ids[tspan[0]:tspan[1]], clean_up_tokenization_spaces=False))
            if wanted not in got:
                raise LabelError(
                    f"example {example.id}: tokens {tspan} of span {name!r} decode to {got[:60]!r}, "
                    f"which does not contain the span text {wanted[:60]!r}"
                )
            token_spans[name].append(tspan)

    if not 1 <= n_sink <= n_prompt:
        raise LabelError(f"example {example.id}: n_sink={n_sink} must lie in 1..{n_prompt} (prompt tokens)")
    token_spans["sink"] = [(0, n_sink)]
    char_spans["sink"] = [(offsets[0][0], offsets[n_sink - 1][1])]
    if response:
        token_spans["response"] = [(n_prompt, len(ids))]
        char_spans["response"] = [(len(prompt), len(text))]

    return LabeledSequence(
        example=example,
        text=text,
        prompt=prompt,
        input_ids=tuple(ids),
        char_spans=char_spans,
        token_spans=token_spans,
        n_prompt=n_prompt,
    )


def _check_chat_tokens(example: Example, tokenizer, prompt_ids: list[int]) -> None:
    """The prompt's token ids must begin with the chat template's own tokenization (the reply
    start, if any, follows it)."""
    template_ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": example.text}], tokenize=True, add_generation_prompt=True
    )
    if not isinstance(template_ids, list):
        template_ids = template_ids["input_ids"]
    n = len(template_ids)
    if list(template_ids) != list(prompt_ids[:n]) or (n == len(prompt_ids)) == bool(example.reply_start):
        raise LabelError(
            f"example {example.id}: the rendered prompt does not re-tokenize to the chat template's "
            "own token ids; spans would be misplaced"
        )


_SPECIMEN = Example(
    id="format-specimen",
    segments=(Segment("answer the question from the documents.\n", "instruction"), Segment("doc 1: the color is red.", "doc_1"), Segment("\n"),
              Segment("doc 2: the city is rome.", "doc_2"), Segment("\nquestion: the color?", "question")),
    relevant="doc_1", answers=("red",), reply_start="answer:",
)  # fmt: skip
"""A fixed prompt in which every part of the prompt format shows: instruction, documents, question, reply start."""


def format_stamp(tokenizer) -> str:
    """The prompt format of ``tokenizer`` as a short hash: the text :func:`render_prompt` makes of a
    fixed prompt and its token ids. A changed chat template, BOS text or rendering changes it;
    ``lens-focus reproduce`` records it with every step that reads prompts."""
    text, start = render_prompt(_SPECIMEN, tokenizer)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return hashlib.sha256(json.dumps({"text": text, "start": start, "ids": list(ids)}).encode()).hexdigest()[:16]


_DOC_NAME = re.compile(r"doc_(\d+)$")


def doc_index(name: str) -> int:
    """``doc_7`` -> 7."""
    m = _DOC_NAME.match(name)
    if not m:
        raise InputError(f"{name!r} is not a document span name")
    return int(m.group(1))
