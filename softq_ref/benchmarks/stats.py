"""Statistics of the reports and the gate, all from scipy.stats with a fixed random state.

* Confidence intervals of a success fraction: exact Clopper-Pearson (`scipy.stats.binomtest(...).proportion_ci`).
* Confidence intervals of a mean, an IQM, a difference of means or a probability of improvement:
  percentile bootstrap (`scipy.stats.bootstrap`, 10,000 resamples, `np.random.default_rng(SEED)` made afresh
  for every interval, so an interval depends only on its data, not on the order of computation). Percentile,
  not BCa: BCa is undefined for the constant samples that success flags and saturated metrics produce, and
  it is unstable at 5 runs. With 5 runs per group every bootstrap interval under-covers somewhat.
* Aggregates across seeds beyond the mean, as rliable (Agarwal et al., 2021) recommends: the interquartile
  mean (IQM, `scipy.stats.trim_mean(x, 0.25)`) and the probability of improvement
  P(X > Y) + 0.5 P(X = Y), which is the Mann-Whitney U statistic of X over Y divided by n_X n_Y.
* Regression tests of the gate: one-sided Mann-Whitney U tests (`scipy.stats.mannwhitneyu`, exact null
  distribution; with ties, the exact permutation distribution of U via `scipy.stats.permutation_test`,
  see `mw_less`) and one-sided Fisher exact tests (`scipy.stats.fisher_exact`).
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, Sequence

import numpy as np
from scipy import stats

__all__ = ["SEED", "N_RESAMPLES", "clopper_pearson", "bootstrap_ci", "mean_ci", "iqm", "iqm_ci", "diff_mean_ci",
           "prob_improvement", "prob_improvement_ci", "mw_less", "fisher_less", "min_mw_p"]

SEED = 0
N_RESAMPLES = 10_000


def _arr(x: Sequence[float]) -> np.ndarray:
    a = np.asarray([float(v) for v in x], dtype=float)
    return a[np.isfinite(a)]


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    if n <= 0:
        return (math.nan, math.nan)
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)


def bootstrap_ci(samples: tuple[np.ndarray, ...], statistic: Callable, level: float = 0.95,
                 n_resamples: int = N_RESAMPLES) -> tuple[float, float]:
    """Percentile bootstrap CI (independent samples); (nan, nan) when a sample has fewer than 2 values."""
    if any(len(s) < 2 for s in samples):
        return (math.nan, math.nan)
    if all(np.all(s == s[0]) for s in samples):  # constant data: every resample gives the same value
        v = float(statistic(*[s[None, :] for s in samples], axis=-1)[0])
        return (v, v)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap(samples, statistic, confidence_level=level, n_resamples=n_resamples,
                              method="percentile", vectorized=True, paired=False,
                              random_state=np.random.default_rng(SEED))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _mean(x, axis=-1):
    return np.mean(x, axis=axis)


def _iqm(x, axis=-1):
    return stats.trim_mean(x, 0.25, axis=axis)


def mean_ci(x: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    return bootstrap_ci((_arr(x),), _mean, level)


def iqm(x: Sequence[float]) -> float:
    a = _arr(x)
    return float(stats.trim_mean(a, 0.25)) if len(a) else math.nan


def iqm_ci(x: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    return bootstrap_ci((_arr(x),), _iqm, level)


def diff_mean_ci(x: Sequence[float], y: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    return bootstrap_ci((_arr(x), _arr(y)), lambda a, b, axis=-1: np.mean(a, axis=axis) - np.mean(b, axis=axis), level)


def _poi(x, y, axis=-1):
    """P(X > Y) + 0.5 P(X = Y) over all pairs; vectorized over leading axes."""
    xa, ya = np.moveaxis(x, axis, -1)[..., :, None], np.moveaxis(y, axis, -1)[..., None, :]
    return np.mean((xa > ya) + 0.5 * (xa == ya), axis=(-2, -1))


def prob_improvement(x: Sequence[float], y: Sequence[float]) -> float:
    """P(X > Y) + 0.5 P(X = Y) = U_X / (n_X n_Y) (scipy's Mann-Whitney U of x over y)."""
    a, b = _arr(x), _arr(y)
    if not len(a) or not len(b):
        return math.nan
    return float(stats.mannwhitneyu(a, b, alternative="two-sided").statistic) / (len(a) * len(b))


def prob_improvement_ci(x: Sequence[float], y: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    return bootstrap_ci((_arr(x), _arr(y)), _poi, level)


def mw_less(current: Sequence[float], baseline: Sequence[float]) -> float:
    """One-sided Mann-Whitney U p-value for H1: current is stochastically smaller than baseline.

    Exact null distribution when there are no ties (scipy's method "exact"); with ties scipy's exact
    distribution is not valid, so the permutation version (`scipy.stats.permutation_test` over all
    relabellings when feasible, fixed random state otherwise) is used on the U statistic."""
    a, b = _arr(current), _arr(baseline)
    if len(a) == 0 or len(b) == 0:
        return math.nan
    pooled = np.concatenate([a, b])
    if len(np.unique(pooled)) == len(pooled):
        return float(stats.mannwhitneyu(a, b, alternative="less", method="exact").pvalue)
    if np.all(pooled == pooled[0]):
        return 1.0
    res = stats.permutation_test((a, b), lambda x, y, axis=-1: _poi(x, y, axis), permutation_type="independent",
                                 alternative="less", n_resamples=20_000, vectorized=True,
                                 random_state=np.random.default_rng(SEED))
    return float(res.pvalue)


def min_mw_p(n: int, m: int) -> float:
    """The smallest one-sided Mann-Whitney p-value attainable with n and m runs (complete separation)."""
    return 1.0 / math.comb(n + m, n) if n and m else 1.0


def fisher_less(s_cur: int, n_cur: int, s_base: int, n_base: int) -> float:
    """One-sided Fisher exact p-value for H1: the current success rate is below the baseline's."""
    return float(stats.fisher_exact([[s_cur, n_cur - s_cur], [s_base, n_base - s_base]], alternative="less").pvalue)
