"""The paper's grids and lens_focus' defaults, in one place.

The command line (its defaults and ``--help``), the Python API and ``lens-focus reproduce``'s plans
read these; change a default here and every one of them follows. docs/method.md says where each
comes from.
"""
from __future__ import annotations

N_DOCS = 20
"""Documents per long prompt (the paper: 20 NQ documents)."""
GOLD_POSITIONS: tuple[int, ...] = (1, 5, 10, 15, 20)
"""1-based positions of the relevant document (the lost-in-the-middle positions)."""

TAUS: tuple[float, ...] = (0.1, 0.3, 0.6, 1.5, 1000.0)
"""Split-softmax exponents τ of the paper's Figure 3 (docs/method.md §3)."""
RANDOM_TAU = 0.3
"""τ of the random-heads control."""
COMPENSATION_KS: tuple[int | str, ...] = (1, 5, 10, 20, 30, 50, 100, 150, 200, 300, 400, 500, 600)
"""Head counts of Figure 3."""

ALPHAS: tuple[float, ...] = (-1.0, -0.5, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0)
"""Focus strengths α of Figure 4 (docs/method.md §4)."""
SWEEP_KS: tuple[int | str, ...] = (1, 5, 10, 20, 30, 50, "all")
"""Head counts of Figure 4."""
TABLE3_ALPHAS: tuple[float, ...] = (-0.2, 0.2, 0.4, 0.5, 1.0)
"""Strengths of Table 3."""
TABLE3_K = 5
"""Heads Table 3 reports."""
TABLE3_INTERVENE_K = 20
"""Heads Table 3's right half intervenes on (its left half: the reported heads)."""

SETTINGS: tuple[str, ...] = ("baseline", "10_0.2", "20_0.2", "10_-0.2", "20_-0.2")
"""The task tables' settings (paper Tables 2, 5-13): ``<k>_<α>`` is α·d on the top-k heads."""
SINK_K = 5
"""Top heads whose sink score the task tables average (Tables 12-13)."""

NEEDLE_DEPTHS: tuple[int, ...] = tuple(round(i * 100 / 9) for i in range(10))
"""Needle depths in percent, 0, 11, ..., 100 (docs/method.md §6)."""


def csv(values) -> str:
    """``(0.1, 0.3)`` as ``"0.1,0.3"``: how a default is written on the command line."""
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)
