"""The experiments of the paper, one module each, every one a single declaration
(:class:`~lens_focus.commands.declare.Experiment`) from which its command, its reproduce steps,
its parts and its index section follow. Importing this package registers them, in the order
``lens-focus reproduce`` runs their steps: every module of the package, in the order of
:data:`ORDER` (a module not listed there comes after, in name order).
"""
from __future__ import annotations

import importlib
import pkgutil

ORDER = ("score", "compensation", "directions", "sweep", "retrieval", "evaluation", "seeds", "window", "lengths", "distractors", "task_directions", "explore")
"""Modules whose steps come first, in this order: a step runs after the steps whose files it reads."""

_found = sorted((m.name for m in pkgutil.iter_modules(__path__)), key=lambda name: (ORDER.index(name) if name in ORDER else len(ORDER), name))
for _name in _found:
    importlib.import_module(f"{__name__}.{_name}")
