"""What a model can be asked, read from the model itself, never from the name it was loaded by.

A :class:`Profile` says whether a model's vocabulary is the toy task's word list (the shipped toy,
or one retrained with ``lens-focus toy train``, wherever it is loaded from), how long its context
is, and whether it has a chat template. From that it chooses the built-in data, the long-context
tasks and their lengths, and the needle prompts of the retrieval test; the commands and
``lens-focus reproduce`` ask it instead of testing a model's name.

>>> profile = profile_of(model)              # a loaded model
>>> profile = profile_of_checkpoint("toy")   # from its tokenizer and config, without the weights
>>> profile.data, profile.task_lengths
('toy', (80, 160))
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .labels import Example
from .model import locate_model
from .sources import Request, build
from .toy.task import vocabulary
from .errors import InputError

# transformers, transformer_lens and gguf are imported inside the functions that use them: together they take
# over 10 s to import (python -X importtime), which `import lens_focus` and `lens-focus --help` should not pay.

TOY_TASKS = ("toy_needle", "toy_qa")
NATURAL_TASKS = ("mk_needle", "mk_uuid", "mv", "json_kv", "rerank", "icl", "long_qa", "long_qa_mc", "nq")


@dataclass(frozen=True)
class Profile:
    toy_vocabulary: bool
    """The tokenizer's vocabulary is exactly the toy task's words: only toy-vocabulary prompts apply."""
    n_ctx: int
    """Longest sequence the model accepts, in tokens."""
    chat: bool = False
    """Whether prompts are rendered through a chat template."""

    @property
    def data(self) -> str:
        """The built-in data it is scored and steered on: ``toy`` or ``facts``."""
        return "toy" if self.toy_vocabulary else "facts"

    @property
    def task_lengths(self) -> tuple[int, ...]:
        """Default context lengths of the task suite, in tokens."""
        return (80, 160) if self.toy_vocabulary else (1000, 2000)

    @property
    def needle_lengths(self) -> tuple[int, ...]:
        """Default context lengths of the retrieval test, in tokens (within the context)."""
        lengths = (80, 160, 300) if self.toy_vocabulary else (1000, 2000, 4000)
        return tuple(n for n in lengths if n < self.n_ctx) or (self.n_ctx // 2,)

    def tasks(self, *, nq: str | Path | None = None) -> list[str]:
        """The tasks it can do: the toy's, or the natural-language recall tasks and ``nq`` when its file is given."""
        if self.toy_vocabulary:
            return list(TOY_TASKS)
        return [t for t in NATURAL_TASKS if t != "nq" or nq is not None]

    def needles(self, tokenizer, *, lengths: Sequence[int], depths: Sequence[float], filler: str | Path | None = None) -> list[Example]:
        """Needle-in-a-haystack prompts (docs/method.md §6): toy facts in toy filler, or English
        needles in the built-in filler or the text file ``filler``."""
        if self.toy_vocabulary:
            if filler is not None:
                raise InputError("a filler file does not apply to a toy-vocabulary model: its haystack is made of toy facts")
        name = "toy_haystack" if self.toy_vocabulary else "haystack"
        return build(name, Request(path=filler, tokenizer=tokenizer, lengths=lengths, depths=depths))


def has_toy_vocabulary(tokenizer) -> bool:
    """Whether ``tokenizer``'s vocabulary is exactly the toy task's words (:func:`lens_focus.toy.task.vocabulary`)."""
    return set(tokenizer.get_vocab()) == set(vocabulary())


def profile_of(model) -> Profile:
    """The profile of a loaded model (a bridge, or anything with ``tokenizer`` and ``cfg.n_ctx``)."""
    tokenizer = model.tokenizer
    return Profile(has_toy_vocabulary(tokenizer), int(model.cfg.n_ctx), getattr(tokenizer, "chat_template", None) is not None)


def profile_of_checkpoint(name_or_path: str) -> Profile:
    """The profile of a model before it is loaded, from its tokenizer and config only (an alias,
    a local directory, a ``.gguf`` file or a hub name, as :func:`lens_focus.model.load_model` takes)."""
    from transformers import AutoConfig, AutoTokenizer

    path = locate_model(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    config = AutoConfig.from_pretrained(path)
    n_ctx = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 2048
    return Profile(has_toy_vocabulary(tokenizer), int(n_ctx), getattr(tokenizer, "chat_template", None) is not None)
