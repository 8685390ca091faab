"""How sure a result is: 95% intervals for exact-match rates and for paired differences, and the
chance level of an overlap between two top-k head sets.

- :func:`wilson`: the Wilson interval of a proportion (EM over ``n`` prompts), from
  ``scipy.stats.binomtest``.
- :func:`mean_interval`: the interval of a mean score over prompts (Wilson for a proportion, the
  bootstrap below for graded scores).
- :func:`paired_difference`: the mean change of a per-prompt score between two settings run on the
  same prompts, with a percentile bootstrap interval (``scipy.stats.bootstrap``) that resamples
  *questions* (prompts of one question at several gold positions are not independent).
- :func:`overlap_chance`: how many heads two random top-k sets share, and the probability of an
  overlap at least as large (the hypergeometric tail, ``scipy.stats.hypergeom``: the exact
  permutation p-value).

Everything is deterministic: the bootstrap draws from a seeded generator.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

Z95 = 1.959963984540054
"""The two-sided 95% quantile of the standard normal."""


def wilson(k: float | int, n: int, z: float = Z95) -> tuple[float, float]:
    """The 95% Wilson interval of the proportion ``k / n`` (NaN, NaN when ``n`` is 0): scipy's
    ``binomtest(k, n).proportion_ci(method="wilson")``. ``z`` is the normal quantile of the level
    (the default, 95%)."""
    if n == 0:
        return (math.nan, math.nan)
    level = 2 * stats.norm.cdf(z) - 1
    ci = stats.binomtest(int(round(k)), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return (float(ci.low), float(ci.high))


def em_interval(em: float | int, n: int) -> tuple[float, float]:
    """:func:`wilson` of an exact-match rate ``em`` over ``n`` prompts (EM is 0 or 1 per prompt)."""
    return wilson(round(em * n), n)


def em_text(em: float | int, n: int) -> str:
    """``0.236 [0.153, 0.345] (n 72)``: an EM with its 95% interval and count."""
    lo, hi = em_interval(em, n)
    return f"{em:.3f} [{lo:.3f}, {hi:.3f}] (n {n})"


@dataclass(frozen=True)
class Difference:
    """A paired difference ``after - before`` over the same prompts."""

    mean: float
    low: float
    high: float
    """95% bootstrap interval (percentile, resampling clusters)."""
    n: int
    """Prompts paired."""
    clusters: int
    """Independent units resampled (questions)."""
    before: float
    after: float

    @property
    def measurable(self) -> bool:
        """Whether the interval excludes zero."""
        return self.low > 0 or self.high < 0

    def text(self, digits: int = 3) -> str:
        return difference_text(self.mean, self.low, self.high, n=self.n, clusters=self.clusters, digits=digits)

    def to_dict(self) -> dict:
        return asdict(self)


def verdict(low: float, high: float) -> str:
    """The one rule for a stated effect: ``a rise`` or ``a fall`` only when the paired 95% interval
    ``[low, high]`` excludes 0, else ``no measurable effect``."""
    return "a rise" if low > 0 else "a fall" if high < 0 else "no measurable effect"


def difference_text(mean: float, low: float, high: float, *, n: int | None = None, clusters: int | None = None, digits: int = 3) -> str:
    """``+0.144 [+0.104, +0.187] (n 450, 150 questions; a rise)``: a difference with its interval
    (and, given ``n``, its prompts and questions) and its :func:`verdict`."""
    f = f"{{:+.{digits}f}}"
    body = f"{f.format(mean)} [{f.format(low)}, {f.format(high)}]"
    return body + (f" (n {n}, {clusters} questions; {verdict(low, high)})" if n is not None else f"; {verdict(low, high)}")


def paired_difference(
    before: ArrayLike, after: ArrayLike, clusters: ArrayLike | None = None, *, resamples: int = 10_000, seed: int = 0
) -> Difference:
    """The mean of ``after - before`` (one value per prompt, same prompts in the same order) with a
    95% percentile-bootstrap interval. ``clusters`` names each prompt's independent unit (its
    question id); whole clusters are resampled, so prompts of one question move together. Without
    ``clusters`` every prompt is its own."""
    b, a = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if b.shape != a.shape or b.ndim != 1:
        raise ValueError(f"before and after must be paired 1-d sequences, got shapes {b.shape} and {a.shape}")
    low, high, n_c = _cluster_bootstrap(a - b, clusters, resamples=resamples, seed=seed)
    return Difference(float((a - b).mean()), low, high, len(b), n_c, float(b.mean()), float(a.mean()))


def _cluster_bootstrap(values: np.ndarray, clusters: ArrayLike | None, *, resamples: int, seed: int) -> tuple[float, float, int]:
    """``(low, high, clusters)``: the 95% percentile-bootstrap interval of the mean of ``values``
    (1-d), resampling whole clusters (every value its own without ``clusters``)."""
    if len(values) == 0:
        raise ValueError("no prompts to compare")
    keys = np.arange(len(values)) if clusters is None else np.asarray(clusters)
    if len(keys) != len(values):
        raise ValueError(f"{len(keys)} cluster labels for {len(values)} prompts")
    _, index = np.unique(keys, return_inverse=True)
    n_c = int(index.max()) + 1
    sums, counts = np.bincount(index, values, minlength=n_c), np.bincount(index, minlength=n_c).astype(float)
    if n_c == 1 or np.ptp(sums / counts) == 0:  # one cluster, or every cluster the same: nothing to resample
        return float(sums.sum() / counts.sum()), float(sums.sum() / counts.sum()), n_c
    boot = stats.bootstrap((sums, counts), lambda s, c, axis=-1: s.sum(axis) / c.sum(axis), paired=True, vectorized=True,
                           n_resamples=resamples, method="percentile", rng=np.random.default_rng(seed))  # fmt: skip
    low, high = boot.confidence_interval
    return float(low), float(high), n_c


def mean_interval(scores: ArrayLike, clusters: ArrayLike | None = None, *, proportion: bool = False, resamples: int = 10_000,
                  seed: int = 0) -> tuple[float, float]:
    """The 95% interval of the mean of per-prompt ``scores`` (a task cell's score). A
    ``proportion`` (every score 0 or 1: exact match, accuracy) has :func:`wilson`'s interval, which
    stays informative at 0 of n and n of n; graded scores (recall, NDCG, ROUGE) the percentile
    bootstrap of :func:`paired_difference`, resampling ``clusters``."""
    x = np.asarray(scores, dtype=float)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"scores must be a non-empty 1-d sequence, got shape {x.shape}")
    if proportion:
        if not np.isin(x, (0.0, 1.0)).all():
            raise ValueError("a proportion's scores must each be 0 or 1")
        return wilson(int(x.sum()), len(x))
    low, high, _ = _cluster_bootstrap(x, clusters, resamples=resamples, seed=seed)
    return low, high


@dataclass(frozen=True)
class Overlap:
    """How many heads two top-``k`` sets of ``n`` heads share, against chance."""

    shared: int
    k: int
    n: int
    chance: float
    """Expected overlap of two independent random top-k sets: ``k² / n``."""
    p_value: float
    """Probability that two random sets share at least ``shared`` heads (hypergeometric tail:
    the exact permutation test)."""


def overlap_chance(shared: int, k: int, n: int) -> Overlap:
    """The overlap of two top-``k`` head sets of ``n`` heads set beside chance."""
    if not 0 <= shared <= k <= n:
        raise ValueError(f"need 0 <= shared <= k <= n, got shared={shared}, k={k}, n={n}")
    return Overlap(shared, k, n, k * k / n, float(stats.hypergeom.sf(shared - 1, n, k, k)))
