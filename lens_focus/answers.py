"""Let the model answer every example, grade the answers, and label prompt + answer for scoring.

The scored sequence of an example is its prompt followed by the model's own greedy answer to that
prompt (docs/method.md §2). Examples whose answer is empty, or cannot be separated from the prompt after
tokenization, are kept with a ``skipped`` reason and counted, never dropped silently.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Sequence, get_args

import numpy as np

from .generate import StopAt, batch_plan, generate_batches
from .interventions import Intervention, Placement
from .labels import Example, LabeledSequence, LabelError, RowsKind, label
from .metrics import best_subspan_em
from .scoring import last_rows, score_after_generation, second_pass_reason
from .defaults import BATCH_SIZE, MAX_NEW_TOKENS, N_SINK, STOP, TrainingPrompts# TrainingPrompts: declared with the parameters
from .errors import InputError


class ContextLengthError(InputError):
    """A prompt (plus the tokens to generate) does not fit in the model's context."""


@dataclass(frozen=True)
class Answered:
    example: Example
    response: str
    em: float
    sequence: LabeledSequence | None
    """Prompt + response, labeled; None when skipped."""
    skipped: str | None = None
    scores: dict[str, np.ndarray] | None = field(default=None, repr=False)
    """Contextual scores ``{span: (layer, head)}`` when answered with ``score=...``."""
    second_pass: str | None = None
    """Why the scores came from a second teacher-forced pass instead of the generation's own cache
    (:func:`~lens_focus.scoring.second_pass_reason`); None when they did not."""


def label_prompts(model, examples: Sequence[Example], *, n_sink: int = N_SINK.default, max_new_tokens: int = 0) -> list[LabeledSequence]:
    """Label each prompt (no response), checking that it fits the model's context."""
    n_ctx = int(model.cfg.n_ctx)
    seqs = []
    for ex in examples:
        seq = label(ex, model.tokenizer, n_sink=n_sink)
        if len(seq) + max_new_tokens > n_ctx:
            raise ContextLengthError(
                f"example {ex.id}: prompt of {len(seq)} tokens + {max_new_tokens} new tokens exceeds the model's "
                f"context of {n_ctx}; use fewer documents (--n-docs) or fewer new tokens"
            )
        seqs.append(seq)
    return seqs


def answer_batches(model, examples: Sequence[Example], *, max_new_tokens: int = MAX_NEW_TOKENS.default, batch_size: int = BATCH_SIZE.default,
                   n_sink: int = N_SINK.default) -> list[list[int]]:  # fmt: skip
    """The indices of ``examples`` that :func:`answer_examples` reads together, batch by batch.
    The examples of one batch, answered on their own, form that batch again: the same answers."""
    prompts = label_prompts(model, examples, n_sink=N_SINK.check(n_sink), max_new_tokens=MAX_NEW_TOKENS.check(max_new_tokens))
    return batch_plan(model, [p.input_ids for p in prompts], batch_size=BATCH_SIZE.check(batch_size))


def answer_examples(
    model,
    examples: Sequence[Example],
    *,
    max_new_tokens: int = MAX_NEW_TOKENS.default,
    stop: StopAt = STOP.default,
    batch_size: int = BATCH_SIZE.default,
    n_sink: int = N_SINK.default,
    score: RowsKind | None = None,
    intervention: Intervention | None = None,
    progress: bool = True,
) -> list[Answered]:
    """Greedy answers to ``examples`` (in order), graded with ``best_subspan_em`` and labeled.

    With ``score="generation"`` or ``"response"``, each answer's contextual scores are computed on
    the way (:func:`~lens_focus.scoring.score_after_generation`: the prompt is read once, for
    generating and scoring alike) and kept in :attr:`Answered.scores`.

    ``intervention`` (:func:`~lens_focus.interventions.compensation`,
    :func:`~lens_focus.interventions.focus_intervention`, or any function of a
    :class:`~lens_focus.interventions.Placement`) is active while each batch is read, decoded
    and scored.
    """
    if score is not None and score not in get_args(RowsKind):
        raise InputError(f"score must be None or one of {get_args(RowsKind)}, got {score!r}")
    max_new_tokens, batch_size, n_sink = MAX_NEW_TOKENS.check(max_new_tokens), BATCH_SIZE.check(batch_size), N_SINK.check(n_sink)
    prompts = label_prompts(model, examples, n_sink=n_sink, max_new_tokens=max_new_tokens)
    out: dict[int, Answered] = {}
    store: dict = {}
    batches = generate_batches(
        model,
        [p.input_ids for p in prompts],
        max_new_tokens=max_new_tokens,
        stop=stop,
        batch_size=batch_size,
        prefill=last_rows(model, store) if score else None,
        during=(lambda batch: intervention(Placement([prompts[i] for i in batch.indices], [batch.pad(b) for b in range(len(batch.indices))])))
        if intervention
        else None,
        progress=progress,
    )
    for batch in batches:
        answered = [_grade(examples[i], gen, n_sink, model.tokenizer) for i, gen in zip(batch.indices, batch.generations)]
        if score:
            seqs = [a.sequence for a in answered]
            why = [second_pass_reason(batch, b, s) for b, s in enumerate(seqs)]
            per_seq = score_after_generation(model, batch, seqs, store, rows=score, intervention=intervention)
            answered = [replace(a, scores=sc, second_pass=w) for a, sc, w in zip(answered, per_seq, why)]
        out.update(zip(batch.indices, answered))
        batch.cache = None
    return [out[i] for i in range(len(examples))]


def _grade(ex: Example, gen, n_sink: int, tokenizer) -> Answered:
    em = best_subspan_em(gen.text, ex.answers)
    if not gen.text:
        return Answered(ex, gen.text, em, None, "empty response")
    try:
        return Answered(ex, gen.text, em, label(ex, tokenizer, gen.text, n_sink=n_sink))
    except LabelError as e:
        return Answered(ex, gen.text, em, None, f"response not separable: {e}")


def conditions(answered: Sequence[Answered]) -> list[list[str]]:
    """Scoring conditions per answer (paper Table 1): ``long`` prompts also count as ``correct``
    (exact match on the gold-only and the long prompt) or ``wrong`` (on the gold-only prompt only);
    ``gold`` and ``negative`` prompts count as themselves."""
    gold_em = {a.example.question_id: a.em for a in answered if a.example.variant == "gold"}
    out = []
    for a in answered:
        conds = [a.example.variant]
        if a.example.variant == "long" and gold_em.get(a.example.question_id) == 1.0:
            conds.append("correct" if a.em == 1.0 else "wrong")
        out.append(conds)
    return out


def skip_counts(answered: Sequence[Answered]) -> dict[str, int]:
    """How many answers were skipped, by reason (the part before any colon)."""
    return dict(Counter(a.skipped.split(":")[0] for a in answered if a.skipped))


def second_pass_counts(answered: Sequence[Answered]) -> dict[str, int]:
    """How many answers were scored in a second teacher-forced pass, by reason."""
    return dict(Counter(a.second_pass for a in answered if a.second_pass))


"""Which prompt a direction-training sequence reads before the gold response: ``long`` (every
document, as the reference code trains) or ``gold`` (the relevant document alone, as the paper's
§3.1 states). See docs/method.md §4."""


def gold_response_sequences(
    model,
    examples,
    *,
    prompts: TrainingPrompts = "long",
    n_sink: int = N_SINK.default,
    max_new_tokens: int = MAX_NEW_TOKENS.default,
    stop="line",
    batch_size: int = BATCH_SIZE.default,
    progress: bool = True,
) -> tuple[list[LabeledSequence], dict[str, int]]:
    """Training sequences (docs/method.md §4): the model's greedy answer to each question's ``gold``
    prompt, placed after the question's ``long`` prompts (``prompts="long"``, one sequence per long
    example) or after the gold prompt itself (``prompts="gold"``, one per question that has long
    examples). Returns the sequences and the number skipped, by reason (no gold prompt, empty gold
    answer, not separable)."""
    if prompts not in get_args(TrainingPrompts):
        raise InputError(f"prompts must be one of {get_args(TrainingPrompts)}, got {prompts!r}")
    gold = [e for e in examples if e.variant == "gold"]
    long = [e for e in examples if e.variant == "long"]
    if not long:
        raise InputError("no long examples to train directions on (the dataset is empty or has only gold/negative prompts)")
    answers = {
        a.example.question_id: a.response
        for a in answer_examples(model, gold, max_new_tokens=max_new_tokens, stop=stop, batch_size=batch_size, n_sink=n_sink, progress=progress)
    }
    if prompts == "gold":
        by_question = {e.question_id: e for e in gold}
        targets = [by_question.get(q) for q in dict.fromkeys(e.question_id for e in long)]  # None: no gold prompt
    else:
        targets = long
    seqs, skipped = [], Counter()
    for ex in targets:
        response = None if ex is None else answers.get(ex.question_id)
        if response is None:
            skipped["no gold prompt"] += 1
        elif not response.strip():
            skipped["empty gold response"] += 1
        else:
            try:
                seqs.append(label(ex, model.tokenizer, response, n_sink=n_sink))
            except LabelError:
                skipped["response not separable"] += 1
    return seqs, dict(skipped)
