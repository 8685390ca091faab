"""Tiny random-weight models for tests, demos and offline smoke runs.

``tiny_model("llama", "/tmp/m")`` trains a small byte-level BPE tokenizer, builds a two-layer
model of the named architecture from a config, and saves both with ``save_pretrained`` so that
:func:`lens_focus.load_model` boots it by path, with no network. The Qwen2 model has a ChatML chat
template (a chat model); the others render prompts as plain text.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal

import torch

from .data import read_jsonl

# transformers, transformer_lens and gguf are imported inside the functions that use them: together they take
# over 10 s to import (python -X importtime), which `import lens_focus` and `lens-focus --help` should not pay.

@dataclass(frozen=True)
class Family:
    """One decoder family of the conformance matrix (tests/test_families.py; README "Supported
    models" is written from these records): the ``transformers`` configuration of its tiny model."""

    name: str
    """What ``lens-focus tiny NAME`` builds."""
    model_type: str
    """The ``transformers`` config's ``model_type``."""
    label: str
    """The family as people name it."""
    switched_on: str
    """What sets the family apart, switched on in its tiny model (the README says it)."""
    config: dict = field(default_factory=dict)
    """Config fields beyond the common ones (hidden size 64, 4 heads of 16 dimensions, 2 key-value heads, 2 layers)."""
    sites: tuple[str, ...] = ("post_rotary", "pre_rotary")
    """The direction sites the family takes (docs/method.md §4); the others are refused before any work."""
    fast_sites: tuple[str, ...] | None = None
    """The direction sites on the fast path, where they differ (None: as on the bridge's own attention)."""
    delegates: bool = False
    """Its bridge hands attention to the ``transformers`` module and fires ``hook_pattern`` on a copy
    afterwards: compensation on that path would change nothing and is refused (the fast path, where
    the family has one, runs it)."""
    chunked_atol: float = 1e-5
    """How close scores of a prompt read in chunks come to one plain forward: 1e-5, except where a
    state-space layer's chunked scan rounds otherwise than its scan of the whole prompt."""
    matrix: dict = field(default_factory=dict)
    """Further fields the conformance matrix switches on (sliding windows shorter than its prompts)."""


def _hybrid(kinds: str, **fields) -> dict:
    """Four layers of the kinds spelled by ``kinds`` (``"LALA"``: L the family's other layer, A attention)."""
    return {"num_hidden_layers": len(kinds), **fields}


_SLIDE = ["sliding_attention", "full_attention"]
_MOE = {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32}
_LATENT = {"num_key_value_heads": 4, "kv_lora_rank": 16, "qk_rope_head_dim": 8, "qk_nope_head_dim": 8, "v_head_dim": 16,
           "n_routed_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32, "first_k_dense_replace": 1}  # fmt: skip
_QK = ("post_rotary",)  # query/key norms between hook_q and the rotation, a rotation of its own, latent attention
_PRE = ("pre_rotary",)  # bridges that rotate inside their own attention

FAMILY_LIST: tuple[Family, ...] = (
    Family("llama", "llama", "Llama", "grouped-query attention"),
    Family("mistral", "mistral", "Mistral", "sliding window (16) shorter than the prompt", matrix={"sliding_window": 16}),
    Family("qwen2", "qwen2", "Qwen2", "chat template, biases on q/k/v"),
    Family("qwen3", "qwen3", "Qwen3", "query/key norms", {"head_dim": 16}, _QK),
    Family("gemma2", "gemma2", "Gemma 2", "attention logit soft-capping, sliding window on every other layer",
           {"head_dim": 16, "query_pre_attn_scalar": 16, "layer_types": _SLIDE, "attn_logit_softcapping": 50.0,
            "final_logit_softcapping": 30.0}, matrix={"sliding_window": 16}),
    # head_dim defaults to 256; a query scaling of its own (not d_head), one sliding layer then one full one
    Family("gemma3", "gemma3_text", "Gemma 3", "query/key norms, its own query scaling, sliding window on every other layer",
           {"head_dim": 16, "query_pre_attn_scalar": 32, "layer_types": _SLIDE}, _QK, matrix={"sliding_window": 16}),
    Family("phi3", "phi3", "Phi-3", "fused query-key-value projection", sites=_PRE),
    Family("olmo2", "olmo2", "OLMo 2", "query/key norms over the whole projection", sites=_QK),
    # no grouped-query attention: the bridge would read the field all the same
    Family("gpt_neox", "gpt_neox", "GPT-NeoX / Pythia", "parallel attention, partial rotary (a quarter of each head)",
           {"rotary_pct": 0.25, "use_parallel_residual": True}, _PRE),
    Family("gpt2", "gpt2", "GPT-2", "no rotation, fused projection", sites=("post_rotary", "pre_rotary")),
    Family("mixtral", "mixtral", "Mixtral", "mixture of experts (4 experts, 2 per token)", {"num_local_experts": 4, "num_experts_per_tok": 2}),
    Family("gpt_oss", "gpt_oss", "gpt-oss", "learned attention sinks, sliding window on every other layer, experts",
           {"head_dim": 16, "num_local_experts": 4, "num_experts_per_tok": 2, "layer_types": _SLIDE}, _QK, matrix={"sliding_window": 16}),
    Family("gemma4", "gemma4_text", "Gemma 4", "sliding window on every other layer, query/key norms",
           {"head_dim": 16, "global_head_dim": 16, "layer_types": _SLIDE}, (), fast_sites=_QK, delegates=True, matrix={"sliding_window": 16}),
    Family("smollm3", "smollm3", "SmolLM3", "a layer without rotary embeddings (NoPE)", {"no_rope_layers": [1, 0]}),
    Family("llama4", "llama4_text", "Llama 4", "chunked attention (16) on its rotary layer, a NoPE layer, experts",
           {"head_dim": 16, "attention_chunk_size": 16, "num_local_experts": 2, "intermediate_size_mlp": 128, "no_rope_layers": [1, 0]},
           (), delegates=True),
    Family("olmo3", "olmo3", "OLMo 3", "query/key norms, sliding window on every other layer",
           {"layer_types": _SLIDE}, _QK, matrix={"sliding_window": 16}),
    Family("deepseek_v2", "deepseek_v2", "DeepSeek V2", "multi-head latent attention (keys and values from a compressed latent), experts",
           _LATENT | {"q_lora_rank": None}, _QK),
    Family("deepseek_v3", "deepseek_v3", "DeepSeek V3", "multi-head latent attention with a compressed query too, experts",
           _LATENT | {"q_lora_rank": 32, "n_group": 1, "topk_group": 1}, _QK),
    Family("glm4_moe", "glm4_moe", "GLM-4 MoE", "partial rotary, experts",
           {"head_dim": 16, "n_routed_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32, "first_k_dense_replace": 1,
            "n_group": 1, "topk_group": 1}),
    Family("qwen3_moe", "qwen3_moe", "Qwen3 MoE", "query/key norms, experts", {"head_dim": 16} | _MOE, _QK),
    Family("cohere2", "cohere2", "Command R7B (Cohere 2)", "sliding window on every other layer, parallel attention, interleaved rotary pairs",
           {"layer_types": _SLIDE}, _QK, matrix={"sliding_window": 16}),
    Family("granite", "granite", "Granite 3", "scaled residuals, attention and logits"),
    Family("starcoder2", "starcoder2", "StarCoder2", "layer norm with biases, sliding window", matrix={"sliding_window": 16}),
    Family("qwen3_5", "qwen3_5_text", "Qwen3.5", "hybrid: linear attention (Gated DeltaNet) on layers 0 and 2, gated attention",
           _hybrid("LALA", layer_types=["linear_attention", "full_attention"] * 2, head_dim=16), _QK),
    Family("qwen3_5_moe", "qwen3_5_moe_text", "Qwen3.5 MoE", "hybrid: linear attention on layers 0 and 2, experts",
           _hybrid("LALA", layer_types=["linear_attention", "full_attention"] * 2, head_dim=16, shared_expert_intermediate_size=32, **_MOE), _QK),
    Family("qwen3_next", "qwen3_next", "Qwen3-Next", "hybrid: linear attention on layers 0 and 2, experts",
           _hybrid("LALA", layer_types=["linear_attention", "full_attention"] * 2, head_dim=16, shared_expert_intermediate_size=32, **_MOE), _QK),
    Family("granite4", "granitemoehybrid", "Granite 4", "hybrid: Mamba-2 on layers 0 and 2, no rotary embeddings",
           _hybrid("MAMA", layer_types=["mamba", "attention"] * 2, mamba_d_head=16, mamba_n_heads=8, mamba_d_state=16)),
    Family("jamba", "jamba", "Jamba", "hybrid: Mamba on layers 0 and 2, no rotary embeddings, experts",
           _hybrid("MAMA", attn_layer_period=2, attn_layer_offset=1, expert_layer_period=2, expert_layer_offset=1, num_experts=2, mamba_d_state=8),
           delegates=True),
    Family("bamba", "bamba", "Bamba", "hybrid: Mamba-2 on layers 0 and 2",
           _hybrid("MAMA", attn_layer_indices=[1, 3], mamba_d_head=16, mamba_n_heads=8, mamba_d_state=16), chunked_atol=2e-3),
    Family("lfm2", "lfm2", "LFM2", "hybrid: short convolutions on layers 0 and 2",
           _hybrid("CACA", layer_types=["conv", "full_attention"] * 2), _QK),
    Family("falcon_h1", "falcon_h1", "Falcon-H1", "attention and Mamba-2 side by side in every layer",
           {"head_dim": 16, "mamba_d_head": 16, "mamba_n_heads": 8, "mamba_d_state": 16, "mamba_d_ssm": 128}),
    Family("olmo_hybrid", "olmo_hybrid", "OLMo Hybrid", "hybrid: linear attention on layers 0 to 2", _hybrid("LLLA"), (), delegates=True),
)  # fmt: skip
FAMILIES: dict[str, Family] = {f.name: f for f in FAMILY_LIST}
"""Every family of the conformance matrix, by name."""
Arch = Literal[tuple(FAMILIES)]  # type: ignore[valid-type]
ARCHS: tuple[str, ...] = ("llama", "qwen2", "mistral", "gpt2")
"""The configurations most tests build."""

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
    arch: str,
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

    if arch not in FAMILIES:
        raise ValueError(f"unknown architecture {arch!r}: one of {', '.join(FAMILIES)}")
    family = FAMILIES[arch]
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
    else:
        if arch == "gpt_neox":  # no grouped-query attention: the bridge would read the field all the same
            n_kv_heads = n_heads
        shape = dict(hidden_size=d_model, intermediate_size=2 * d_model, num_hidden_layers=n_layers, num_attention_heads=n_heads,
                     num_key_value_heads=n_kv_heads, max_position_embeddings=n_ctx, tie_word_embeddings=False)  # fmt: skip
        cfg = tf.AutoConfig.for_model(family.model_type, **(shape | common | family.config | (config or {})))
    torch.manual_seed(seed)
    model = tf.AutoModelForCausalLM.from_config(cfg)
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
