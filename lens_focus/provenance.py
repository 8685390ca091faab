"""What a run ran under: the versions every ``summary.json`` and ``index.md`` record.

>>> versions()["transformers"]
'5.24.0'
"""
from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "transformers", "transformer_lens", "lens_focus")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


CODE = ("lens_focus", "analyses", "pyproject.toml")
"""The paths of a checkout whose changes make a run's code differ from its commit."""


def git_commit(path: str | Path = Path(__file__).parent) -> str | None:
    """The commit of the git checkout holding ``path`` (lens_focus' own by default), with
    ``+dirty`` when the code (:data:`CODE`) differs from it; None outside a checkout or without
    git. Output folders such as ``figures/`` may change without making a run dirty."""
    try:
        run = functools.partial(subprocess.run, capture_output=True, text=True, timeout=10)
        top = run(["git", "rev-parse", "--show-toplevel"], cwd=path)
        if top.returncode != 0:
            return None
        root = top.stdout.strip()
        head = run(["git", "rev-parse", "HEAD"], cwd=root)
        if head.returncode != 0:
            return None
        dirty = run(["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE], cwd=root).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str | None]:
    """``python, torch, transformers, transformer_lens, lens_focus, commit``: the running versions
    (``commit``: lens_focus' git commit when it runs from a checkout, else None)."""
    return {"python": platform.python_version(), **{p: _version(p) for p in PACKAGES}, "commit": git_commit()}
