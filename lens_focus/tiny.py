"""Tiny random-weight models for tests, demos and offline smoke runs.

``tiny_model("llama", "/tmp/m")`` trains a small byte-level BPE tokenizer, builds a two-layer
model of the named architecture from a config, and saves both with ``save_pretrained`` so that
:func:`lens_focus.load_model` boots it by path, with no network. The Qwen2 model has a ChatML chat
template (a chat model); the others render prompts as plain text.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Literal

import torch

from .data import read_jsonl

# transformers, transformer_lens and gguf are imported inside the functions that use them: together they take
# over 10 s to import (python -X importtime), which `import lens_focus` and `lens-focus --help` should not pay.

Arch = Literal["llama", "qwen2", "mistral", "gpt2", "gemma3", "qwen3", "gemma2", "phi3", "olmo2", "gpt_neox", "mixtral"]
ARCHS: tuple[Arch, ...] = ("llama", "qwen2", "mistral", "gpt2")
"""The configurations most tests build."""
FAMILIES: tuple[Arch, ...] = ("llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3", "olmo2", "gpt_neox", "gpt2", "mixtral")
"""Every family of the conformance matrix (tests/test_families.py, README "Supported models"): Qwen3
and OLMo 2 with query/key norms, Gemma 2 with attention logit soft-capping and sliding-window layers,
Gemma 3 with query/key norms, its own query scaling and sliding-window layers, Phi-3 with a fused
query-key-value projection, GPT-NeoX with parallel attention and partial rotary, Mixtral a mixture
of experts."""

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = (
    "Write a high-quality answer for the given question using only the provided search results "
    "(some of which might be irrelevant). Document [1](Title: The first Nobel Prize) Question: who "
    "got the first nobel prize in physics Answer: Wilhelm Conrad Röntgen was awarded in 1901. "
    "Extract the value corresponding to the specified key in the JSON object below. JSON data: "
    '{"a54e2eed-e625": "d1ff29be-4e2a"} Key: Corresponding value: the of and in to was is for on '
    "as by with he she it his her that which from at were an are also has had this their been "
    "United States World War season series film album song team river city country century"
)


def train_tokenizer(corpus: Iterable[str] | None = None, *, vocab_size: int = 512, specials: list[str]):
    """A byte-level BPE tokenizer (every string encodes; offsets are exact)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(list(corpus) if corpus is not None else [_CORPUS] * 20, trainer)
    return tok


def tiny_model(
    arch: Arch,
    out_dir: str | Path,
    *,
    seed: int = 0,
    n_layers: int = 2,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    d_model: int = 64,
    n_ctx: int = 8192,
    corpus: Iterable[str] | None = None,
    vocab_size: int = 512,
    config: dict | None = None,
) -> Path:
    """Build, save and return the directory of a tiny random-weight ``arch`` model; ``config``
    sets further fields of its ``transformers`` config (e.g. ``{"sliding_window": 16}``)."""
    import transformers as tf

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chat = arch == "qwen2"
    if arch == "gpt2":
        specials, bos, eos, pad = ["<|endoftext|>"], "<|endoftext|>", "<|endoftext|>", "<|endoftext|>"
    elif chat:
        specials, bos, eos, pad = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], None, "<|im_end|>", "<|endoftext|>"
    else:
        specials, bos, eos, pad = ["<s>", "</s>", "<pad>"], "<s>", "</s>", "<pad>"
    tokenizer = tf.PreTrainedTokenizerFast(
        tokenizer_object=train_tokenizer(corpus, vocab_size=vocab_size, specials=specials),
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        chat_template=CHATML if chat else None,
    )
    tokenizer.save_pretrained(out)
    ids = {k: tokenizer.convert_tokens_to_ids(v) if v else None for k, v in (("bos", bos), ("eos", eos), ("pad", pad))}
    common = dict(vocab_size=len(tokenizer), bos_token_id=ids["bos"], eos_token_id=ids["eos"], pad_token_id=ids["pad"])
    if arch == "gpt2":
        cfg = tf.GPT2Config(n_embd=d_model, n_layer=n_layers, n_head=n_heads, n_positions=n_ctx, **common, **(config or {}))
        cls = tf.GPT2LMHeadModel
    else:
        config_cls, cls = {
            "llama": (tf.LlamaConfig, tf.LlamaForCausalLM),
            "qwen2": (tf.Qwen2Config, tf.Qwen2ForCausalLM),
            "mistral": (tf.MistralConfig, tf.MistralForCausalLM),
            "gemma3": (tf.Gemma3TextConfig, tf.Gemma3ForCausalLM),
            "qwen3": (tf.Qwen3Config, tf.Qwen3ForCausalLM),
            "gemma2": (tf.Gemma2Config, tf.Gemma2ForCausalLM),
            "phi3": (tf.Phi3Config, tf.Phi3ForCausalLM),
            "olmo2": (tf.Olmo2Config, tf.Olmo2ForCausalLM),
            "gpt_neox": (tf.GPTNeoXConfig, tf.GPTNeoXForCausalLM),
            "mixtral": (tf.MixtralConfig, tf.MixtralForCausalLM),
        }[arch]
        d_head = d_model // n_heads
        if arch == "gpt_neox":  # no grouped-query attention: the bridge would read the field all the same
            n_kv_heads = n_heads
        alternating = ["sliding_attention", "full_attention"] * (n_layers // 2) + ["sliding_attention"] * (n_layers % 2)
        config = {
            "qwen3": {"head_dim": d_head},
            "gemma2": {"head_dim": d_head, "query_pre_attn_scalar": d_head, "layer_types": alternating,
                       "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0},
            # head_dim defaults to 256; a query scaling of its own (not d_head), one sliding layer then one full one
            "gemma3": {"head_dim": d_head, "query_pre_attn_scalar": 2 * d_head, "layer_types": alternating},
            "gpt_neox": {"rotary_pct": 0.25, "use_parallel_residual": True},
            "mixtral": {"num_local_experts": 4, "num_experts_per_tok": 2},
        }.get(arch, {}) | (config or {})  # fmt: skip
        cfg = config_cls(
            hidden_size=d_model,
            intermediate_size=2 * d_model,
            num_hidden_layers=n_layers,
            num_attention_heads=n_heads,
            num_key_value_heads=n_kv_heads,
            max_position_embeddings=n_ctx,
            tie_word_embeddings=False,
            **common,
            **(config or {}),
        )
    torch.manual_seed(seed)
    model = cls(cfg)
    model.save_pretrained(out)
    return out


def corpus_from_jsonl(path: str | Path, *, max_lines: int = 2000) -> list[str]:
    """Every string in the first ``max_lines`` objects of a jsonl(.gz) file: tokenizer training text."""
    def strings(obj):
        if isinstance(obj, str):
            yield obj
        elif isinstance(obj, dict):
            for v in obj.values():
                yield from strings(v)
        elif isinstance(obj, list):
            for v in obj:
                yield from strings(v)

    texts = [_CORPUS]
    for lineno, obj in read_jsonl(path):
        if lineno > max_lines:
            break
        texts.extend(strings(obj))
    return texts
