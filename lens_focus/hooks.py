"""Hook names and hook handles: the one place where lens_focus touches the bridge's hook points.

Every intervention registers through :func:`add_hooks`, which keeps its own handles and removes
exactly those, so hooks the user added stay in place (the bridge's own ``hooks()`` context
removes every hook on the points it touched). Unknown hook names raise instead of being skipped.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Literal, Sequence

AttnSite = Literal[
    "hook_q", "hook_k", "hook_v", "hook_rot_q", "hook_rot_k", "hook_cos", "hook_sin", "hook_attn_scores", "hook_pattern", "hook_z"
]
HookFn = Callable  # (tensor, *, hook) -> tensor | None


def attn_hook_name(layer: int, site: AttnSite) -> str:
    """``blocks.{layer}.attn.{site}``, the name TransformerLens gives an attention hook point."""
    return f"blocks.{layer}.attn.{site}"


def hook_point(model, name: str):
    """The model's hook point called ``name``; a clear error when the model has none."""
    point = model.hook_dict.get(name)
    if point is None:
        site = name.rsplit(".", 1)[-1]
        similar = sorted(n for n in model.hook_dict if n.endswith(site))[:3]
        hint = f" (hook points ending in {site!r}: {similar})" if similar else f" (this model has no {site!r} hook points)"
        raise KeyError(f"no hook point {name!r} in this model{hint}")
    return point


@dataclass
class HookHandle:
    """The hooks one intervention registered; ``remove()`` takes exactly these away again."""

    entries: list = field(default_factory=list)  # (hook point, LensHandle)

    def remove(self) -> None:
        while self.entries:
            point, handle = self.entries.pop()
            handle.hook.remove()
            if handle in point.fwd_hooks:
                point.fwd_hooks.remove(handle)

    def __len__(self) -> int:
        return len(self.entries)


def add_hooks(model, hooks: Sequence[tuple[str, HookFn]]) -> HookHandle:
    """Register forward hooks ``[(name, fn), ...]`` and return their handle.

    All names are resolved before anything is registered, so an unknown name leaves the model
    untouched.
    """
    points = [(hook_point(model, name), fn) for name, fn in hooks]
    handle = HookHandle()
    try:
        for point, fn in points:
            handle.entries.append((point, point.add_hook(fn, dir="fwd")))
    except BaseException:
        handle.remove()
        raise
    return handle


@contextmanager
def hooked(model, hooks: Sequence[tuple[str, HookFn]]) -> Iterator[HookHandle]:
    """Context manager around :func:`add_hooks`: the hooks are removed on exit, errors included."""
    handle = add_hooks(model, hooks)
    try:
        yield handle
    finally:
        handle.remove()
