"""GGUF files as ordinary checkpoints: dequantized once by ``transformers``, then cached.

``transformers`` reads a GGUF file (with the ``gguf`` package installed) and dequantizes every
tensor to float, which takes seconds to a minute. :func:`dequantized_dir` does that once per file
content and keeps the result as a ``save_pretrained`` directory (float weights, config, tokenizer
and chat template) under the cache folder, named after the file's SHA-256, so a changed file gets
a fresh entry instead of a stale one, and later loads are plain loads of that directory.

The cache folder is ``$LENS_FOCUS_CACHE`` or ``~/.cache/lens_focus``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from .errors import InputError

# transformers, transformer_lens and gguf are imported inside the functions that use them: together they take
# over 10 s to import (python -X importtime), which `import lens_focus` and `lens-focus --help` should not pay.

CACHE_ENV = "LENS_FOCUS_CACHE"
MARKER = "lens_focus_gguf.json"
"""Written last into a finished cache entry: what it was made from."""


def cache_root() -> Path:
    """The folder lens_focus caches models in: ``$LENS_FOCUS_CACHE`` or ``~/.cache/lens_focus``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lens_focus"


def is_gguf(name_or_path: str | os.PathLike) -> bool:
    return str(name_or_path).lower().endswith(".gguf")


def file_digest(path: str | Path, *, block: int = 1 << 23) -> str:
    """SHA-256 of a file's content (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def cache_dir_for(path: str | Path) -> Path:
    """Where the dequantized checkpoint of GGUF file ``path`` lives (whether or not it exists yet)."""
    path = Path(path)
    return cache_root() / "gguf" / f"{path.stem}-{file_digest(path)[:16]}"


def check_gguf(path: str | Path) -> None:
    """Read the header and tensor table of GGUF file ``path``; a ``ValueError`` in one line when it is
    not a GGUF file or is cut short (a tensor's data would lie past its end)."""
    try:
        from gguf import GGUFReader
    except ImportError:
        raise ImportError("reading GGUF files needs the 'gguf' package: pip install gguf") from None
    size = Path(path).stat().st_size
    try:
        reader = GGUFReader(path)
        end = max((t.data_offset + t.n_bytes for t in reader.tensors), default=0)
    except Exception as e:  # any failure of the parser means the file is not a whole GGUF file
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{path}: not a complete GGUF file ({size} bytes; the GGUF reader says: {detail})") from None
    if end > size:
        raise InputError(f"{path}: truncated GGUF file: its tensors need {end} bytes, the file has {size}")


def dequantized_dir(path: str | Path, *, progress: bool = True) -> Path:
    """The ``save_pretrained`` directory of GGUF file ``path``, dequantizing it on first use.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` when it is not a whole GGUF
    file (:func:`check_gguf`) or ``transformers`` cannot read it (an architecture or quantization it
    does not support); nothing is left in the cache then.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {path}")
    target = cache_dir_for(path)
    if (target / MARKER).exists():
        return target
    check_gguf(path)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if progress:
        print(f"dequantizing {path.name} once; caching it in {target}")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    if not progress:
        hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    except (ValueError, KeyError, RuntimeError, OSError, NotImplementedError) as e:
        raise InputError(f"{path}: transformers could not read this GGUF file ({type(e).__name__}: {e})") from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if not progress:
            hf_logging.enable_progress_bar()
    # The weights are plain floats now; the quantizer marker only stops save_pretrained.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    tmp.chmod(0o755)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / MARKER).write_text(json.dumps({"source": str(path.resolve()), "bytes": path.stat().st_size}, indent=2) + "\n")
        if target.exists() and not (target / MARKER).exists():  # left unfinished by an interrupted run
            shutil.rmtree(target)
        try:
            tmp.rename(target)
        except OSError:  # another process finished the same entry first: keep its copy
            if not (target / MARKER).exists():
                raise
            shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
