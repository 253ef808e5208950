"""Power of the claims' decision rules: runs needed per algorithm for the paper's effect, versus runs planned.

Success-fraction claims (multi-goal, swimmer, maze). The rule of `claims.success_fraction_verdict` is, per
outcome (s_sql of n_sql SQL runs succeed, s_ddpg of n_ddpg DDPG runs):

    not_reproduced  if Fisher(DDPG > SQL) p < alpha  or  binomial(SQL rate < p0) p < alpha
    reproduced      elif Fisher(SQL > DDPG) p < alpha
    inconclusive    otherwise

Its exact power is computed by enumerating every outcome (s_sql, s_ddpg) with its binomial probability at
assumed true rates: P(reproduced) = sum of P(s_sql) P(s_ddpg) over the outcomes the rule calls reproduced.
No simulation, no normal approximation. The one-sided Fisher p-values are hypergeometric tails
(`scipy.stats.hypergeom`, the same numbers as `scipy.stats.fisher_exact`, tested), so every outcome of a
matrix is decided in one vectorised call.

The paper's rates (Section 5, specs/claims.toml): multi-goal SQL 1.0 vs DDPG 0.0, maze 1.0 vs 0.6, swimmer
1.0 vs 0.8. A true SQL rate of exactly 1.0 makes every SQL run succeed, so the power is a function of
DDPG's binomial alone and the binomial check against p0 can never fire: an idealisation. The analysis
therefore also reports the power at an assumed SQL rate of `SQL_RATE_ALT` = 0.95 (the paper's 5/5 is
equally consistent with it; one failure in 20 runs), and "runs needed" under both.

Fine-tuning claim (`curve_verdict`: reproduced iff every Bonferroni-level percentile bootstrap CI of
mean(SQL pretrained) - mean(DDPG variant) lies above 0). Power by simulation from a normal model: per task,
n runs of each variant ~ Normal(mean, sd) with the per-variant means and SDs of an *effect model*; each
simulated matrix is decided by the same rule, with the percentile bootstrap interval replaced by its
large-sample equivalent d +- z_{1 - alpha / 2m} sqrt(var0(a) / n_a + var0(b) / n_b) (var0: the plug-in
variance the bootstrap resamples; tested to agree with `bootstrap_diff_ci`'s decisions on simulated data).
Comparisons of one task share their SQL-pretrained sample, as in the rule. Effect models:

* `ci-2026-11-21b` (`FINETUNE_CI_EFFECTS`): our ci matrix's per-task means and SDs (5 runs each). On the
  U-maze SQL pretrained is *below* DDPG from scratch there, so at these effects more runs make the claim
  `not_reproduced`, not `reproduced`; the analysis reports both probabilities.
* `paper` (default for "runs needed"): the paper's Figure 5 shows SQL pretrained above both DDPG variants on
  every task but gives no numbers. Assumed: every comparison has the standardized effect
  (mean difference / pooled SD) `FINETUNE_PAPER_D` = the median of the five positive standardized effects
  of the ci matrix (1.35; they range 0.69-1.85), with the ci matrix's SDs per task and variant.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["SQL_RATE_ALT", "TARGET_POWER", "fisher_greater", "fisher_less", "fraction_decisions",
           "fraction_power", "runs_needed_for_power", "fraction_power_analysis", "FINETUNE_CI_EFFECTS",
           "FINETUNE_PAPER_D", "finetune_effects", "finetune_power", "finetune_runs_needed",
           "finetune_power_analysis", "PowerAnalysis", "claim_power_analysis", "render_power"]

SQL_RATE_ALT = 0.95
TARGET_POWER = 0.8
N_MAX = 200


# -- success fractions: exact ------------------------------------------------------------------------------
def fisher_greater(s1, n1, s2, n2):
    """One-sided Fisher exact p for H1: rate 1 > rate 2 (table [[s1, n1 - s1], [s2, n2 - s2]]); vectorised."""
    s1, s2 = np.asarray(s1), np.asarray(s2)
    return stats.hypergeom.sf(s1 - 1, n1 + n2, s1 + s2, n1)


def fisher_less(s1, n1, s2, n2):
    """One-sided Fisher exact p for H1: rate 1 < rate 2; vectorised."""
    s1, s2 = np.asarray(s1), np.asarray(s2)
    return stats.hypergeom.cdf(s1, n1 + n2, s1 + s2, n1)


def fraction_decisions(n_sql: int, n_ddpg: int, alpha: float, p0: float) -> np.ndarray:
    """Verdict codes (0 inconclusive, 1 reproduced, -1 not_reproduced) of every outcome, shape (n_sql+1, n_ddpg+1),
    by the rule of claims.success_fraction_verdict."""
    s1 = np.arange(n_sql + 1)[:, None]
    s2 = np.arange(n_ddpg + 1)[None, :]
    p_claim = fisher_greater(s1, n_sql, s2, n_ddpg)
    p_rev = fisher_less(s1, n_sql, s2, n_ddpg)
    p_binom = stats.binom.cdf(s1, n_sql, p0) if p0 > 0 else np.ones_like(s1, dtype=float)
    p_binom = np.broadcast_to(p_binom, p_claim.shape)
    refuted = (p_rev < alpha) | (p_binom < alpha)
    return np.where(refuted, -1, np.where(p_claim < alpha, 1, 0))


def fraction_power(p_sql: float, p_ddpg: float, n_sql: int, n_ddpg: int, alpha: float, p0: float) -> dict[str, float]:
    """Exact probabilities of each verdict when SQL succeeds at rate p_sql and DDPG at p_ddpg."""
    for name, v in (("p_sql", p_sql), ("p_ddpg", p_ddpg), ("alpha", alpha), ("p0", p0)):
        if not (0.0 <= float(v) <= 1.0):
            raise ValueError(f"{name} = {v!r}: expected a probability in [0, 1]")
    for name, v in (("n_sql", n_sql), ("n_ddpg", n_ddpg)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name} = {v!r}: expected an integer number of runs >= 1")
    dec = fraction_decisions(int(n_sql), int(n_ddpg), alpha, p0)
    w = np.outer(stats.binom.pmf(np.arange(n_sql + 1), n_sql, p_sql), stats.binom.pmf(np.arange(n_ddpg + 1), n_ddpg, p_ddpg))
    return {"reproduced": float(w[dec == 1].sum()), "not_reproduced": float(w[dec == -1].sum()),
            "inconclusive": float(w[dec == 0].sum())}


@functools.lru_cache(maxsize=256)
def runs_needed_for_power(p_sql: float, p_ddpg: float, alpha: float, p0: float, power: float = TARGET_POWER,
                          n_max: int = N_MAX) -> int | None:
    """Smallest n (= runs per algorithm) at which P(reproduced) >= power; None if none up to n_max.

    Discrete tests have a saw-tooth power curve; the returned n is the first that reaches the target (a
    slightly larger n can dip below it again by a few points)."""
    for n in range(2, n_max + 1):
        if fraction_power(p_sql, p_ddpg, n, n, alpha, p0)["reproduced"] >= power:
            return n
    return None


# -- fine-tuning: simulation from a normal model -----------------------------------------------------------
# reports/ci-2026-11-21b (ci tier, 5 runs per variant): per task and variant (mean, sd) of the per-run mean
# discounted evaluation return over epochs (the claim's statistic). SD with ddof = 1.
FINETUNE_CI_EFFECTS: dict[str, dict[str, tuple[float, float]]] = {}  # filled below from _CI_RUNS
_CI_RUNS: dict[str, dict[str, list[float]]] = {}  # set by _load_ci_runs() at import (values in the module below)
FINETUNE_PAPER_D = 0.0  # set by _load_ci_runs(): median of the ci matrix's positive standardized effects


def _z(alpha: float, m: int) -> float:
    return float(stats.norm.ppf(1 - alpha / (2 * m)))


def finetune_effects(model: str = "paper") -> dict[str, dict[str, tuple[float, float]]]:
    """task -> variant -> (mean, sd) of the effect model `paper` or `ci-2026-11-21b`."""
    if model == "ci-2026-11-21b":
        return {t: dict(g) for t, g in FINETUNE_CI_EFFECTS.items()}
    if model == "paper":
        out = {}
        for t, g in FINETUNE_CI_EFFECTS.items():
            sd = {v: s for v, (_, s) in g.items()}
            base = 0.0
            out[t] = {"sql_pretrained": (base, sd["sql_pretrained"])}
            for v in ("ddpg_scratch", "ddpg_pretrained"):
                pooled = math.sqrt((sd["sql_pretrained"] ** 2 + sd[v] ** 2) / 2)
                out[t][v] = (base - FINETUNE_PAPER_D * pooled, sd[v])
        return out
    raise ValueError(f"effect model {model!r}: expected 'paper' or 'ci-2026-11-21b'")


def finetune_power(effects: dict[str, dict[str, tuple[float, float]]], n: int, alpha: float,
                   comparisons: tuple[str, ...] = ("ddpg_scratch", "ddpg_pretrained"), sims: int = 20_000,
                   seed: int = 0) -> dict[str, float]:
    """P(reproduced), P(not_reproduced) of curve_verdict's rule with n runs per variant (normal model)."""
    if int(n) != n or n < 2:
        raise ValueError(f"n = {n!r}: expected an integer number of runs per variant >= 2")
    rng = np.random.default_rng(seed)
    tasks = sorted(effects)
    m = len(tasks) * len(comparisons)
    z = _z(alpha, m)
    above = np.ones(sims, bool)
    below = np.zeros(sims, bool)
    for t in tasks:
        mu, sd = effects[t]["sql_pretrained"]
        a = rng.normal(mu, sd, size=(sims, n))
        ma, va = a.mean(1), a.var(1)
        for c in comparisons:
            mu_c, sd_c = effects[t][c]
            b = rng.normal(mu_c, sd_c, size=(sims, n))
            d = ma - b.mean(1)
            se = np.sqrt(va / n + b.var(1) / n)
            above &= d - z * se > 0
            below |= d + z * se < 0
    return {"reproduced": float(np.mean(above & ~below)), "not_reproduced": float(np.mean(below)),
            "inconclusive": float(np.mean(~above & ~below))}


def finetune_runs_needed(effects, alpha: float, power: float = TARGET_POWER, n_max: int = N_MAX,
                         sims: int = 4000) -> int | None:
    """Smallest n per variant with P(reproduced) >= power (bisection-free scan; sims per n)."""
    lo = 2
    # coarse doubling, then a linear scan: the power is monotone in n up to simulation noise
    hi = lo
    while hi <= n_max and finetune_power(effects, hi, alpha, sims=sims)["reproduced"] < power:
        lo, hi = hi, hi * 2
    if hi > n_max:
        if finetune_power(effects, n_max, alpha, sims=sims)["reproduced"] < power:
            return None
        hi = n_max
    for n in range(lo, hi + 1):
        if finetune_power(effects, n, alpha, sims=sims)["reproduced"] >= power:
            return n
    return hi


# -- per-claim analysis -------------------------------------------------------------------------------------
@dataclass
class PowerAnalysis:
    claim: str
    method: str
    assumption: str
    planned: dict[str, int]
    power_planned: dict[str, dict[str, float]]  # assumption -> verdict -> probability
    runs_needed: dict[str, int | None]  # assumption -> runs per algorithm / variant for TARGET_POWER
    target_power: float = TARGET_POWER
    alpha: float = 0.05
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"claim": self.claim, "method": self.method, "assumption": self.assumption, "planned": self.planned,
                "power_planned": self.power_planned, "runs_needed": self.runs_needed,
                "target_power": self.target_power, "alpha": self.alpha, "notes": self.notes}

    def decisive_runs(self) -> int | None:
        """Runs per algorithm that decide the claim under the headline assumption (the first key)."""
        return next(iter(self.runs_needed.values()), None)


def fraction_power_analysis(claim: str, paper_sql: float, paper_ddpg: float, paper_runs: int, alpha: float,
                            n_sql: int, n_ddpg: int) -> PowerAnalysis:
    from .claims import paper_rate_floor

    p0 = paper_rate_floor(paper_sql, paper_runs, alpha)
    rates = {f"SQL {paper_sql:g} vs DDPG {paper_ddpg:g} (paper)": (paper_sql, paper_ddpg)}
    if paper_sql > SQL_RATE_ALT:
        rates[f"SQL {SQL_RATE_ALT:g} vs DDPG {paper_ddpg:g}"] = (SQL_RATE_ALT, paper_ddpg)
    power = {k: (fraction_power(ps, pd, n_sql, n_ddpg, alpha, p0) if n_sql and n_ddpg else
                 {"reproduced": 0.0, "not_reproduced": 0.0, "inconclusive": 1.0}) for k, (ps, pd) in rates.items()}
    needed = {k: runs_needed_for_power(ps, pd, alpha, p0) for k, (ps, pd) in rates.items()}
    return PowerAnalysis(claim, "exact: every binomial outcome enumerated and decided by the claim's rule "
                                "(Fisher one-sided both ways + binomial vs p0)",
                         f"true success rates as the paper reports (SQL {paper_sql:g}, DDPG {paper_ddpg:g}); "
                         f"also SQL {SQL_RATE_ALT:g} (a rate of exactly 1 cannot fail the binomial check); "
                         f"p0 = {p0:.3f}", {"sql": int(n_sql), "ddpg": int(n_ddpg)}, power, needed, alpha=alpha)


def finetune_power_analysis(claim: str, alpha: float, n_per_variant: int) -> PowerAnalysis:
    power, needed = {}, {}
    for model in ("paper", "ci-2026-11-21b"):
        key = (f"paper: every comparison at d = {FINETUNE_PAPER_D:g} SD" if model == "paper"
               else "our ci matrix's means and SDs (2026-11-21b)")
        power[key] = dict(_ft_power(model, int(n_per_variant), alpha)) if n_per_variant >= 2 else \
            {"reproduced": 0.0, "not_reproduced": 0.0, "inconclusive": 1.0}
        needed[key] = _ft_needed(model, alpha)
    notes = []
    if needed.get("our ci matrix's means and SDs (2026-11-21b)") is None:
        notes.append("at the ci matrix's effects (SQL pretrained below DDPG from scratch on the U-maze) no number "
                     f"of runs up to {N_MAX} reproduces the claim; more runs make `not_reproduced` likelier")
    return PowerAnalysis(claim, "simulation (normal model, 20,000 matrices at the planned n, 4,000 per n for "
                                "runs needed, seed 0); percentile bootstrap CI approximated by d +- z sqrt(var0/n)",
                         "3 point-mass tasks x 2 comparisons, equal runs per variant; effect models in power.py",
                         {"per_variant": int(n_per_variant)}, power, needed, alpha=alpha, notes=notes)


@functools.lru_cache(maxsize=64)
def _ft_power(model: str, n: int, alpha: float) -> tuple:
    return tuple(finetune_power(finetune_effects(model), n, alpha).items())


@functools.lru_cache(maxsize=8)
def _ft_needed(model: str, alpha: float) -> int | None:
    return finetune_runs_needed(finetune_effects(model), alpha)


def claim_power_analysis(claim: str, params: dict, planned: dict[str, int]) -> PowerAnalysis:
    """The analysis of one CLAIM.* spec (its params from specs/claims.toml) at `planned` runs
    ({'sql': n, 'ddpg': n} for fractions, {'per_variant': n} for fine-tuning)."""
    alpha = float(params["alpha"])
    if "paper_sql" in params:
        return fraction_power_analysis(claim, float(params["paper_sql"]), float(params["paper_ddpg"]),
                                       int(params["paper_runs"]), alpha, int(planned.get("sql", 0)),
                                       int(planned.get("ddpg", 0)))
    return finetune_power_analysis(claim, alpha, int(planned.get("per_variant", 0)))


def render_power(pa: PowerAnalysis) -> str:
    """Lines for the console and claims.md."""
    plan = ", ".join(f"{k} {v}" for k, v in pa.planned.items())
    unit = "variant" if "per_variant" in pa.planned else "algorithm"
    lines = [f"power {pa.claim} (alpha {pa.alpha:g}, target {pa.target_power:g}): runs planned {plan}"]
    for k, p in pa.power_planned.items():
        need = pa.runs_needed.get(k)
        lines.append(f"  {k}: P(reproduced) = {p['reproduced']:.3f}, P(not_reproduced) = {p['not_reproduced']:.3f} "
                     f"at the planned runs; runs needed per {unit} for power {pa.target_power:g}: "
                     f"{need if need is not None else f'> {N_MAX}'}")
    lines += [f"  note: {n}" for n in pa.notes]
    return "\n".join(lines)


def _load_ci_runs() -> None:
    # per-run values of the ci matrix (reports/ci-2026-11-21b/results/ci/claims.json, CLAIM.5_3 measured)
    _CI_RUNS.update(_CI_FINETUNE_RUNS)
    for t, g in _CI_RUNS.items():
        FINETUNE_CI_EFFECTS[t] = {v: (float(np.mean(x)), float(np.std(x, ddof=1))) for v, x in g.items()}
    d = []
    for g in FINETUNE_CI_EFFECTS.values():
        for c in ("ddpg_scratch", "ddpg_pretrained"):
            diff = g["sql_pretrained"][0] - g[c][0]
            if diff > 0:
                d.append(diff / math.sqrt((g["sql_pretrained"][1] ** 2 + g[c][1] ** 2) / 2))
    global FINETUNE_PAPER_D
    FINETUNE_PAPER_D = round(float(np.median(d)), 2)


_CI_FINETUNE_RUNS: dict[str, dict[str, list[float]]] = {
    "point_hallway_wide": {"ddpg_pretrained": [23.9435, 23.962, 4.6079, 29.3778, 4.5978],
                           "ddpg_scratch": [21.8517, 21.8704, 23.4396, 28.5007, 21.7102],
                           "sql_pretrained": [29.2296, 30.5318, 23.6881, 31.2685, 30.0292]},
    "point_hallway_narrow": {"ddpg_pretrained": [23.0043, 29.7704, 2.5775, 30.6807, 2.5749],
                             "ddpg_scratch": [20.8901, 21.1394, 4.0559, 21.733, 20.8372],
                             "sql_pretrained": [29.2229, 29.9832, 22.7132, 31.4465, 21.2915]},
    "point_umaze": {"ddpg_pretrained": [16.9922, 3.0157, 16.2921, 14.8907, 2.6454],
                    "ddpg_scratch": [18.8702, 18.6203, 17.9895, 18.6519, 19.4327],
                    "sql_pretrained": [19.4886, 17.8934, 17.3725, 5.1357, 16.6772]},
}
_load_ci_runs()
