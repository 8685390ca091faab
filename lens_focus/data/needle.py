"""Needle in a haystack (docs/method.md §6): a needle sentence that holds an answer, inserted into filler
text at chosen depths of a context of chosen length, with exact spans.

The context is cut from the filler at a sentence end so that filler and needle make about
``length`` tokens of the model's tokenizer; the needle goes in at ``depth`` percent of the filler,
moved back to the sentence end before that point (sentence ends are found in the text, never by
token ids). Each prompt names the filler before the needle ``doc_1``, the needle ``doc_2`` (the
``relevant`` span) and the filler after it ``doc_3`` (a part that would be empty, at depth 0 or
100, is left out), and labels inside the needle the clause its question asks for as the span
``needle`` and the short answer inside that clause as the span ``answer``.

>>> examples = needle_examples(model.tokenizer, lengths=[1000, 2000])                # built-in filler
>>> examples = needle_examples(model.tokenizer, lengths=[4000], filler="essays.txt")  # any text file
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from ..defaults import NEEDLE_DEPTHS
from ..labels import Example, Segment
from .base import DataError, assemble
from ..errors import InputError

"""0, 11, 22, …, 100 percent, as in the retrieval-head study."""
INSTRUCTION = "Read the text below. A question about it follows at the end.\n\n"
_SENTENCE_END = re.compile(r"[.!?][\"')\]]?\s")


@dataclass(frozen=True)
class Needle:
    sentence: str
    answer: str
    """A short substring of ``sentence``: the answer in a few words."""
    question: str
    clause: str = ""
    """The part of ``sentence`` the question asks for (Wu et al.'s "real needle": the words a
    retrieval head copies, which hold ``answer``); empty: the answer itself."""

    @property
    def copied(self) -> str:
        """The words a retrieval head is expected to copy: :attr:`clause`, or the answer."""
        return self.clause or self.answer


NEEDLES = (
    Needle("The secret of Grandma Lotte's apple cake is a spoonful of cardamom and a pinch of sea salt in the dough.",
           "a spoonful of cardamom", "What is the secret of Grandma Lotte's apple cake?",
           "a spoonful of cardamom and a pinch of sea salt in the dough"),
    Needle("The keeper of the lighthouse on Vessel Island painted his front door a bright turquoise so that the fishing boats could see it from the bay.",
           "a bright turquoise", "What did the keeper of the lighthouse on Vessel Island do to his front door, and why?",
           "painted his front door a bright turquoise so that the fishing boats could see it from the bay"),
    Needle("The password to the old observatory archive is silver heron forty two, written on a card behind the third telescope.",
           "silver heron forty two", "What is the password to the old observatory archive, and where is it written?",
           "silver heron forty two, written on a card behind the third telescope"),
)  # fmt: skip
"""Each needle's clause is most of its sentence and the whole of what its question asks, as in the
retrieval-head study's needles; the short answer sits inside the clause."""

_SUBJECTS = ("The old mill", "A quiet harbour", "The village school", "The northern road", "An early train",
             "The market square", "A small orchard", "The river bank", "The stone bridge", "An autumn storm")  # fmt: skip
_VERBS = ("stood near", "looked out over", "was built beside", "slowly changed", "was remembered by",
          "drew visitors to", "lay beyond", "was painted by", "gave its name to", "was cleared for")  # fmt: skip
_OBJECTS = ("the fields in spring", "the families of the valley", "a row of chestnut trees", "the long winter evenings",
            "the workshop by the canal", "the farmers on market day", "an empty chapel", "the hills to the west",
            "the children after school", "a line of fishing boats")  # fmt: skip
_CODAS = ("", " for many years", " in the morning light", " without much notice", " as it always had")


def builtin_filler(n_sentences: int = 2000, seed: int = 0) -> str:
    """Plain English sentences about an imaginary village, seeded; nothing in them answers a needle."""
    rng = random.Random(seed)
    return " ".join(
        f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}{rng.choice(_CODAS)}." for _ in range(n_sentences)
    )


def _filler_text(filler: str | Path | None, text: str | None = None) -> str:
    if text is not None:
        if not _SENTENCE_END.search(text + " "):
            raise DataError("the filler text needs at least one sentence ending in '.', '!' or '?'")
        return " ".join(text.split())
    if filler is None:
        return builtin_filler()
    path = Path(filler)
    if not path.exists():
        raise FileNotFoundError(f"filler file not found: {path}")
    try:
        text = " ".join(path.read_text(encoding="utf-8").split())
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start} is {e.object[e.start:e.start + 1]!r}); a filler is a text file") from None
    if not _SENTENCE_END.search(text + " "):
        raise DataError(f"{path}: the filler needs at least one sentence ending in '.', '!' or '?'")
    return text


def sentence_ends(text: str) -> list[int]:
    """Character offsets just after each sentence end (the start of the next sentence)."""
    return [min(m.end(), len(text)) for m in _SENTENCE_END.finditer(text + " ")]


def cut_at_sentence(text: str, tokenizer, n_tokens: int) -> str:
    """The longest prefix of ``text`` ending at a sentence end with at most ``n_tokens`` tokens
    (``text`` repeated as often as needed)."""
    if n_tokens < 1:
        raise InputError(f"context of {n_tokens} tokens leaves no room for filler")
    pieces = [text]
    while len(tokenizer(" ".join(pieces), add_special_tokens=False).input_ids) <= n_tokens:
        pieces.append(text)
    long = " ".join(pieces)
    offsets = tokenizer(long, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    limit = offsets[n_tokens][0] if n_tokens < len(offsets) else len(long)
    ends = [e for e in sentence_ends(long) if e <= limit]
    if not ends:
        raise DataError(f"no sentence end within the first {n_tokens} tokens of the filler")
    return long[: ends[-1]].rstrip()


def insert_at_depths(context: str, needles: Sequence[tuple[int | float, str]]) -> tuple[list[str], list[int]]:
    """Cut ``context`` at the sentence end at or before each needle's depth (percent of the
    characters) and put the needle sentence there. Returns the parts in order (filler pieces
    and needles; empty filler pieces left out) and each needle's 1-based index among them, in
    the order the needles were given."""
    ends = [0, *sentence_ends(context)]
    cuts = [max(e for e in ends if e <= depth / 100 * len(context)) for depth, _ in needles]
    order = sorted(range(len(needles)), key=lambda i: (cuts[i], i))
    parts, where, at = [], [0] * len(needles), 0
    for i in order:
        piece = context[at : cuts[i]].strip()
        if piece:
            parts.append(piece)
        parts.append(needles[i][1])
        where[i], at = len(parts), cuts[i]
    if context[at:].strip():
        parts.append(context[at:].strip())
    return parts, where


def needle_examples(
    tokenizer,
    *,
    lengths: Sequence[int] = (1000,),
    depths: Sequence[int | float] = NEEDLE_DEPTHS.default,
    needles: Sequence[Needle] = NEEDLES,
    filler: str | Path | None = None,
    reply_start: str = "",
    filler_text: str | None = None,
    instruction: str = INSTRUCTION,
    question_format: str = "\n\nQuestion: {}\nAnswer:",
) -> list[Example]:
    """One prompt per needle × length × depth: filler and needle of about ``length`` tokens,
    the needle at ``depth`` percent, then the question. ``answers`` is the needle's answer.

    Args:
        filler: a text file to cut the haystack from (default: :func:`builtin_filler`);
            ``filler_text`` gives the text itself instead.
        instruction: the text before the haystack.
        question_format: the text after it, ``{}`` standing for the needle's question (labeled
            as the span ``question``).
    """
    if question_format.count("{}") != 1:
        raise InputError(f"question_format must hold one '{{}}' for the question, got {question_format!r}")
    bad = [d for d in depths if not 0 <= d <= 100]
    if bad or not depths:
        raise InputError(f"depths must be percentages in 0..100, got {list(depths)}")
    if not needles:
        raise InputError("no needles")
    text = _filler_text(filler, filler_text)
    q_before, q_after = question_format.split("{}")
    out = []
    for k, needle in enumerate(needles):
        if needle.copied not in needle.sentence or needle.answer not in needle.copied:
            raise InputError(f"needle {k}: its answer {needle.answer!r} must lie in its clause {needle.copied!r}, and the clause in its sentence")
        needle_tokens = len(tokenizer(needle.sentence, add_special_tokens=False).input_ids)
        for length in lengths:
            context = cut_at_sentence(text, tokenizer, int(length) - needle_tokens)
            for depth in depths:
                parts, (relevant,) = insert_at_depths(context, [(depth, needle.sentence)])
                ex = assemble(
                    example_id=f"needle-{k}-L{length}-d{depth:g}",
                    head=[Segment(instruction, "instruction")],
                    documents=parts,
                    sep=" ",
                    tail=[seg for seg in (Segment(q_before), Segment(needle.question, "question"), Segment(q_after)) if seg.text],
                    relevant_index=relevant,
                    answers=[needle.answer],
                    variant="long",
                    meta={"task": "needle", "question_id": f"needle-{k}-L{length}", "needle": k, "length": int(length), "depth": depth,
                          "clause": needle.copied},
                    reply_start=reply_start,
                )
                clause = needle.sentence.index(needle.copied)
                start = clause + needle.copied.index(needle.answer)
                out.append(replace(ex, inner=(("needle", f"doc_{relevant}", clause, clause + len(needle.copied)),
                                              ("answer", f"doc_{relevant}", start, start + len(needle.answer)))))  # fmt: skip
    return out
