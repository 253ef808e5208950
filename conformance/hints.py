"""Failure messages that point at the right term (issue 14, section 7)."""
from __future__ import annotations

import math

__all__ = ["alignment_phrase", "ratio_candidates"]

NEAR_ZERO_COSINE = 0.05


def alignment_phrase(cosine: float) -> str:
    """Words for a mean cosine between an update and the direction it should follow."""
    if cosine <= -NEAR_ZERO_COSINE:
        return (f"cosine {cosine:.3f} is negative: wrong sign, the particles move against eq. 13 (e.g. ascent of the "
                "surrogate instead of descent)")
    if abs(cosine) < NEAR_ZERO_COSINE:
        return (f"cosine {cosine:.3f} is near zero: no alignment (orthogonal), the update does not follow eq. 13 at "
                "all (e.g. a driving term from another Q, other particles, or noise)")
    return (f"cosine {cosine:.3f} is positive but weak: part of the update follows eq. 13 and part does not (e.g. one "
            "term of eq. 13 wrong or wrongly weighted)")


def ratio_candidates(ratio: float, action_dim: int, alpha: float, alt_ratios: dict[str, float] | None = None,
                     rel_tol: float = 0.05) -> list[str]:
    """Every simple explanation of exp(V_hat/alpha)/Z = ratio: 2^(+-d), an M in 2..4096 (the check does
    not know the implementation's M), and `alt_ratios` (the same ratio recomputed under an alternative reading of alpha, e.g.
    {"eq. 10 at alpha = 1": r1}) that come out close to 1. All matches are named, not only the first."""
    out: list[str] = []
    if not (ratio > 0 and math.isfinite(ratio)):
        return out

    def near(x: float, target: float) -> bool:
        return abs(math.log(x) - math.log(target)) <= math.log1p(rel_tol)

    if near(ratio, 1.0):
        return out
    two_d = 2.0**action_dim
    for k, what in ((1, "a missing + alpha d log 2 (the uniform proposal density 2^-d)"),
                    (-1, "an extra + alpha d log 2 (the proposal density counted twice)")):
        if near(ratio, two_d**-k):
            out.append(f"ratio {ratio:.4g} = 2^{-k * action_dim}: {what}")
    m = round(ratio)
    if 2 <= m <= 4096 and near(ratio, m):
        out.append(f"ratio {ratio:.4g} = M for M = {m}: a missing -log M (a sum instead of a mean over the M "
                   "proposal draws)")
    m = round(1 / ratio)
    if 2 <= m <= 4096 and near(ratio, 1 / m):
        out.append(f"ratio {ratio:.4g} = 1/M for M = {m}: -log M applied twice")
    for what, alt in (alt_ratios or {}).items():
        if alt > 0 and near(alt, 1.0):
            out.append(f"{what} (the ratio recomputed that way is {alt:.4g}; alpha = {alpha:g})")
    return out
