"""Training the toy model from scratch: a small Llama (rotary, grouped-query attention, RMSNorm)
with a word-level tokenizer, first on induction drills, then on freshly drawn toy prompts (drills
mixed in), loss on the answers and end tokens plus a cost on attention off ``<bos>``.

The recipe (:class:`Recipe`) is deterministic under its seed: prompts come from a seeded stream,
weights from ``torch.manual_seed``, and the CPU runs single-process.
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from . import task
from ..errors import InputError

# transformers, transformer_lens and gguf are imported inside the functions that use them: together they take
# over 10 s to import (python -X importtime), which `import lens_focus` and `lens-focus --help` should not pay.


@dataclass
class Recipe:
    seed: int = 0
    layers: int = 8
    """Eight: the six layers after the retrieval layer have nothing to read at the answer rows and
    rest on ``<bos>`` (the sink); with four, the readers of layer 1 were 4 of only 16 heads."""
    width: int = 128
    heads: int = 4
    kv_heads: int = 2
    mlp: int = 2
    """MLP hidden size as a multiple of ``width`` (the task is solved by attention)."""
    steps: int = 1600
    batch: int = 64
    lr: float = 2e-3
    warmup: int = 200
    weight_decay: float = 0.01
    min_docs: int = 2
    max_docs: int = 7
    """Training prompts hold ``min_docs``..``k`` documents, ``k`` growing to ``max_docs``. Twenty
    documents are past what training showed (distraction); with 8 the eight-layer model answered
    them nearly as well as one, with 6 hardly at all."""
    curriculum_steps: int = 3000
    """``linear`` curriculum: steps over which ``k`` grows from ``min_docs + 1`` to ``max_docs``."""
    curriculum: str = "gated"
    """``gated``: ``k`` grows by one whenever the running answer accuracy on training prompts
    reaches ``gate`` (binding is learned at few documents first); ``linear``: by the step count."""
    gate: float = 0.9
    queries: int = 40
    """Questions (each supervised) per training prompt, at most one more than its documents; the
    first is the prompt's own. Asking about every document once would let the last answers come
    by elimination (the values not yet given), so later questions are drawn with replacement."""
    unanswerable: float = 0.2
    """Share of the later questions that ask about a pair no document states, answered ``none``
    (a retrieval head that finds no match must look somewhere harmless)."""
    shuffle_instruction: bool = True
    """Shuffle the instruction's words (its final period kept) in every training prompt."""
    drop_instruction: float = 0.5
    """Share of training prompts without the instruction. A constant instruction is, like
    ``<bos>``, in every prompt, and idle heads park attention on it; without it ``<bos>`` is the
    only constant token. (Alone, this moved the parking place to the question, not to ``<bos>``:
    a sink came only from ``rest_cost``.)"""
    same_entity: float = 1 / 3
    same_attribute: float = 1 / 3
    """Shares of training distractors with the gold entity / attribute (hard negatives)."""
    drill_steps: int = 800
    """Steps of induction drills before the task: a random sequence of task words, repeated, loss
    on the repeat. Retrieval by a matching prefix (an induction head) forms there within a few
    hundred steps; trained on the task alone, it had not formed after thousands."""
    drill_share: float = 0.1
    """Share of the later batches that are drills, so the task does not unlearn them."""
    drill_length: tuple = (4, 40)
    rest_cost: float = 1.0
    """Weight of a training term that charges every head for the attention it puts off
    ``<bos>`` on the charged rows (``rest_rows``; mean over layers, heads and rows). Reading the
    context then has a price that only a useful read pays back: heads with nothing to read rest
    on ``<bos>``, a sink. No recipe without it made one (see the model card)."""
    rest_from: int = 800
    """Step from which ``rest_cost`` applies (after the drills, the induction circuit has formed;
    charged from the start at weight 0.5, it did not form)."""
    rest_rows: str = "supervised"
    """Rows charged: ``all`` (every row after ``<bos>``) or ``supervised`` (the rows that predict a
    supervised token: answers, end tokens, drill repeats)."""
    rest_shape: str = "linear"
    """How the per-head costs add up: see :func:`rest_penalty`."""
    threads: int = 1
    """CPU threads; part of the recipe, since the order of float sums (and so the weights) depends
    on it."""
    save_every_eval: bool = False
    """Overwrite the checkpoint at every evaluation (to inspect long runs)."""
    notes: list = field(default_factory=list)

    def __post_init__(self):
        if self.rest_rows not in ("all", "supervised"):
            raise InputError(f"rest_rows must be 'all' or 'supervised', got {self.rest_rows!r}")
        if self.rest_shape not in ("linear", "sqrt"):
            raise InputError(f"rest_shape must be 'linear' or 'sqrt', got {self.rest_shape!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def make_tokenizer(out_dir: str | Path):
    """Save and return the word-level tokenizer (``tokenizer.json`` with BOS ``<bos>``)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(task.vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    fast.save_pretrained(out_dir)
    return AutoTokenizer.from_pretrained(out_dir)


def make_model(recipe: Recipe, vocab_size: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(recipe.seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=recipe.width,
        intermediate_size=recipe.mlp * recipe.width,
        num_hidden_layers=recipe.layers,
        num_attention_heads=recipe.heads,
        num_key_value_heads=recipe.kv_heads,
        max_position_embeddings=1024,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
    )
    if recipe.rest_cost:
        config._attn_implementation = "eager"  # returns the patterns the cost reads
    return LlamaForCausalLM(config)


def encode(text: str, index: dict[str, int]) -> list[int]:
    """Word-level ids of ``<bos>`` + ``text``, exactly what the saved tokenizer produces."""
    return [index["<bos>"]] + [index[w] for w in text.split()]


def training_batch(rng: random.Random, recipe: Recipe, k: int, index: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, targets)``: right-padded prompts, each followed by its answer and end token, then
    up to ``recipe.queries - 1`` (at most one per document) more questions about documents of the
    same prompt, drawn with replacement, with their answers (several supervised lookups per
    prompt); targets are -100 except the answers and end tokens."""
    rows, targets = [], []
    for _ in range(recipe.batch):
        n = rng.randint(recipe.min_docs, k)
        gold, distractors = task.draw_facts(
            rng, n, "train", same_entity=recipe.same_entity, same_attribute=recipe.same_attribute
        )
        ex = task.build(gold, distractors, rng.randint(1, n), example_id="train", variant="long", meta={})
        ids = encode(ex.text, index)
        words = task.INSTRUCTION.split()
        if rng.random() < recipe.drop_instruction:
            del ids[1 : len(words) + 1]
        elif recipe.shuffle_instruction:
            ids[1 : len(words)] = [index[w] for w in rng.sample(words[:-1], len(words) - 1)]
        tgt = [-100] * len(ids)
        facts = [gold, *distractors]
        extra = [  # drawn with replacement, so that elimination cannot answer them
            rng.choice(facts) if rng.random() >= recipe.unanswerable else (*task.absent_pair(rng, facts), task.NONE)
            for _ in range(min(n, recipe.queries - 1))
        ]
        for i, fact in enumerate([gold, *extra]):
            if i:
                q = task.question(fact).split()
                ids += [index[w] for w in q]
                tgt += [-100] * len(q)
            ids += [index[fact[2]], index["<eos>"]]
            tgt += ids[-2:]
        rows.append(ids)
        targets.append(tgt)
    width = max(map(len, rows))
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    tgt = torch.tensor([t + [-100] * (width - len(t)) for t in targets])
    return ids, tgt


def drill_batch(rng: random.Random, recipe: Recipe, index: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, targets)``: ``<bos>`` + a random sequence of task words of one random length, then the
    same sequence again; targets are the repeat's tokens from its second on (the first cannot be
    known), -100 elsewhere. The length varies between batches, so only matching content (not a
    fixed offset) predicts the repeat."""
    words = [index[w] for w in (*task.ATTRIBUTES, *task.ENTITIES, *task.VALUES)]
    length = rng.randint(*recipe.drill_length)
    seqs = [[rng.choice(words) for _ in range(length)] for _ in range(recipe.batch)]
    ids = torch.tensor([[index["<bos>"], *s, *s] for s in seqs])
    tgt = ids.clone()
    tgt[:, : length + 2] = -100
    return ids, tgt


def off_bos(attentions, rows: torch.Tensor) -> torch.Tensor:
    """Per head, the mean attention off the first token over the chosen rows after the first.

    ``attentions``: per layer (batch, heads, seq, seq); ``rows``: (batch, seq) bool.
    Returns (layers, heads)."""
    rows = rows.clone()
    rows[:, 0] = False
    off = torch.stack([1 - a[..., 0] for a in attentions], 1)  # (batch, layers, heads, seq)
    weight = rows[:, None, None, :].float()
    return (off * weight).sum((0, 3)) / weight.sum()


def rest_penalty(off: torch.Tensor, shape: str) -> torch.Tensor:
    """The rest cost of per-head off-``<bos>`` means ``off`` (layers, heads): their mean
    (``linear``), or the mean of their square roots (``sqrt``: concave, so one head doing a read
    costs less than several sharing it)."""
    if shape == "linear":
        return off.mean()
    if shape == "sqrt":
        return ((off + 1e-2).sqrt() - 1e-1).mean()  # 0 for a head that reads nothing
    raise InputError(f"rest_shape must be 'linear' or 'sqrt', got {shape!r}")


def schedule(step: int, recipe: Recipe) -> float:
    """Learning-rate factor: linear warm-up, constant, then cosine decay over the last 30% to 5%."""
    if step < recipe.warmup:
        return (step + 1) / recipe.warmup
    decay_from = int(0.7 * recipe.steps)
    if step < decay_from:
        return 1.0
    progress = (step - decay_from) / max(1, recipe.steps - decay_from)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def quick_accuracy(model, index: dict[str, int], n_docs: int, *, n: int = 200, seed: int = 1, split: str = "test") -> float:
    """Teacher-forced answer accuracy on fresh prompts with ``n_docs`` documents (held-out
    ``test`` pairs by default; ``train`` pairs tell generalization from learning)."""
    rng = random.Random(f"quick-{seed}-{n_docs}-{split}")
    hits = 0
    for start in range(0, n, 50):
        rows, answers = [], []
        for _ in range(min(50, n - start)):
            gold, distractors = task.draw_facts(rng, n_docs, split)
            ex = task.build(gold, distractors, rng.randint(1, n_docs), example_id="q", variant="long", meta={})
            rows.append(encode(ex.text, index))
            answers.append(index[gold[2]])
        width = max(map(len, rows))
        ids = torch.tensor([[0] * (width - len(r)) + r for r in rows])
        mask = (ids != 0).long()
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1]
        hits += int((logits.argmax(-1) == torch.tensor(answers)).sum())
    return hits / n


def train(recipe: Recipe, out_dir: str | Path, *, log: Callable[[str], None] = print, eval_every: int = 500) -> dict:
    """Train, save model + tokenizer into ``out_dir``, and return the training log."""
    torch.set_num_threads(recipe.threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tokenizer(out)
    index = tokenizer.get_vocab()
    model = make_model(recipe, len(index))
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: schedule(s, recipe))
    rng = random.Random(f"toy-train-{recipe.seed}")
    history, start, running, running_acc, drill_acc = [], time.time(), None, 0.0, 0.0
    k = recipe.min_docs + 1
    model.train()
    for step in range(recipe.steps):
        if recipe.curriculum == "linear":
            k = recipe.min_docs + 1 + round((recipe.max_docs - recipe.min_docs - 1) * min(1.0, step / max(1, recipe.curriculum_steps)))
        drill = step < recipe.drill_steps or rng.random() < recipe.drill_share
        ids, tgt = drill_batch(rng, recipe, index) if drill else training_batch(rng, recipe, k, index)
        fwd = model(input_ids=ids, output_attentions=bool(recipe.rest_cost))
        logits, target = fwd.logits[:, :-1], tgt[:, 1:]
        loss = ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten())
        if recipe.rest_cost and step >= recipe.rest_from:
            rows = ids != index["<pad>"]
            if recipe.rest_rows == "supervised":
                rows = torch.nn.functional.pad(target != -100, (0, 1), value=False)
            loss = ce + recipe.rest_cost * rest_penalty(off_bos(fwd.attentions, rows), recipe.rest_shape)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():  # answer accuracy on this batch (end tokens excluded)
            answers = (target != -100) & (target != index["<eos>"])
            acc = float((logits.argmax(-1)[answers] == target[answers]).float().mean())
        if drill:
            drill_acc = 0.9 * drill_acc + 0.1 * acc
        else:
            running = ce.item() if running is None else 0.98 * running + 0.02 * ce.item()  # the logged loss is the task's alone
            running_acc = 0.95 * running_acc + 0.05 * acc
        if recipe.curriculum == "gated" and running_acc >= recipe.gate and k < recipe.max_docs:
            k, running_acc = k + 1, 0.0
            log(json.dumps({"step": step + 1, "docs_up_to": k}))
        if (step + 1) % eval_every == 0 or step + 1 == recipe.steps:
            model.eval()
            quick = {str(n): quick_accuracy(model, index, n) for n in (1, 5, 10, 20)}
            quick["train_pairs_5"] = quick_accuracy(model, index, 5, split="train")
            model.train()
            entry = {"step": step + 1, "loss": None if running is None else round(running, 4), "k": k, "train_acc": round(running_acc, 3), "drill_acc": round(drill_acc, 3),
                     "minutes": round((time.time() - start) / 60, 2), "acc": quick}  # fmt: skip
            history.append(entry)
            log(json.dumps(entry))
            if recipe.save_every_eval:
                model.save_pretrained(out)
    model.eval()
    model.save_pretrained(out)
    (out / "training_log.json").write_text(json.dumps({"recipe": recipe.to_dict(), "history": history}, indent=1))
    return {"recipe": recipe.to_dict(), "history": history}
