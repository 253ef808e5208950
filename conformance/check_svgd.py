"""Family C: kernel, bandwidth and the eq. 13 direction; particle loops are driven by the checks.

An implementation exposes either an external-bandwidth path (`bandwidth` + `svgd_direction(..., h)`)
or `svgd_direction_auto(fixed, updated, grad_q, alpha)`, which chooses h itself as most ports do;
the checks use whichever exists (the fixed-h specs C1.direction_eq13 and C2 need the first). Grad Q
and alpha reach the implementation through `ctx.units` (declared temperature_mode). Under
`particle_counts = "tied"` every two-set case runs with m = n.
"""
from __future__ import annotations

import math
import re

import numpy as np
import torch
from scipy.integrate import simpson
from scipy.stats import norm

from .adapter import Arr, NotApplicable
from .bandwidth_rules import parse_bandwidth_rule, rule_bandwidth
from .registry import Ctx, check
from .trained import first_passing_run, run_stream


def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def kernel(ctx: Ctx, x, y, h):
    n, m, d = x.shape[-2], y.shape[-2], x.shape[-1]
    lead = x.shape[:-2]
    return ctx.impl.call("rbf_kernel", _t(x), _t(y), h if np.isscalar(h) else _t(h),
                         returns=(Arr(lead + (n, m), "k[..., j, i] = k(x_j, y_i)"),
                                  Arr(lead + (n, m, d), "grad_k[..., j, i, :] = grad_{x_j} k(x_j, y_i)")))


def bandwidth(ctx: Ctx, fixed, updated):
    return ctx.impl.call("bandwidth", _t(fixed), _t(updated),
                         returns=Arr(fixed.shape[:-2], "one bandwidth h per particle set (per state)"))


def direction(ctx: Ctx, fixed, updated, grad_q, alpha, h):
    u = ctx.units(alpha)
    return u.back(ctx.impl.call("svgd_direction", _t(fixed), _t(updated), _t(u.q(np.asarray(grad_q))), u.alpha,
                                h if np.isscalar(h) else _t(h),
                                returns=Arr(updated.shape, "the eq. 13 direction at each updated particle")))


def direction_auto(ctx: Ctx, fixed, updated, grad_q, alpha):
    """The implementation's eq. 13 direction with the bandwidth it chooses itself."""
    u = ctx.units(alpha)
    return u.back(ctx.impl.call("svgd_direction_auto", _t(fixed), _t(updated), _t(u.q(np.asarray(grad_q))), u.alpha,
                                returns=Arr(updated.shape, "the eq. 13 direction at each updated particle")))


def uses_own_bandwidth(ctx: Ctx) -> bool:
    """External-h path when the adapter has it; else svgd_direction_auto; else not applicable."""
    if ctx.impl.has("svgd_direction") and ctx.impl.has("bandwidth"):
        return False
    if ctx.impl.has("svgd_direction_auto"):
        return True
    raise NotApplicable(f"{ctx.impl.name} implements neither bandwidth + svgd_direction nor svgd_direction_auto")


def rule_direction(ctx: Ctx, fixed, updated, grad_q, alpha):
    """eq. 13 with the implementation's own bandwidth choice (declared rule), by whichever path it exposes."""
    if uses_own_bandwidth(ctx):
        return direction_auto(ctx, fixed, updated, grad_q, alpha)
    return direction(ctx, fixed, updated, grad_q, alpha, bandwidth(ctx, fixed, updated))


def box_adjusted_grad(ctx: Ctx, x, grad_q):
    """grad Q as the implementation uses it under its declared out_of_box_gradient convention:
    "none" (eq. 13 as written) or "constant(c)": each coordinate of a fixed particle outside [-1, 1] gets
    gradient -c sign(x_k) instead (the authors' input-bounds trick), pushing it back into the box."""
    conv = str(ctx.conventions.get("out_of_box_gradient", "none")).replace(" ", "")
    if conv == "none":
        return grad_q
    m = re.fullmatch(r"constant\(([0-9.eE+]+)\)", conv)
    if not m:
        raise ValueError(f"conventions['out_of_box_gradient'] = {conv!r}: expected 'none' or 'constant(c)'")
    c = float(m.group(1))
    return np.where(x > 1, -c, np.where(x < -1, c, grad_q))


def direction_target_grad(ctx: Ctx, x, grad_q, alpha):
    """grad of the log-target the implementation's own-bandwidth direction uses: grad Q, plus
    alpha grad sum_k log(1 - x_k^2 + eps) under direction_log_det = "tanh(eps)" (ports whose inline eq. 13
    adds the tanh squash correction to log p itself), then the out_of_box_gradient convention."""
    conv = str(ctx.conventions.get("direction_log_det", "none")).replace(" ", "")
    if conv != "none":
        m = re.fullmatch(r"tanh\(([0-9.eE+-]+)\)", conv)
        if not m:
            raise ValueError(f"conventions['direction_log_det'] = {conv!r}: expected 'none' or 'tanh(eps)'")
        grad_q = grad_q + alpha * (-2 * x / (1 - x**2 + float(m.group(1))))
    return box_adjusted_grad(ctx, x, grad_q)


def counts(ctx: Ctx, n: int, m: int) -> tuple[int, int]:
    """(n fixed, m updated) particles; m = n under the declared particle_counts = "tied"."""
    return (n, n) if ctx.conventions.get("particle_counts") == "tied" else (n, m)


def derived_bandwidth(ctx: Ctx, fixed, updated):
    """h per set, read off svgd_direction_auto: the direction is linear in grad Q, so the difference of
    two calls whose grad Q differ only at fixed particle 0 is k(x_0, y_i) e / n, and
    h = -||x_0 - y_i||^2 / log k(x_0, y_i) (taking the i where log k is closest to -1)."""
    n = fixed.shape[-2]
    g0 = np.zeros_like(fixed)
    g1 = g0.copy()
    g1[..., 0, 0] = 1.0
    k0 = (direction_auto(ctx, fixed, updated, g1, 1.0) - direction_auto(ctx, fixed, updated, g0, 1.0))[..., 0] * n
    d2 = ((fixed[..., :1, :] - updated) ** 2).sum(-1)  # (..., m)
    with np.errstate(divide="ignore", invalid="ignore"):
        logk = np.log(k0)
        best = np.argmin(np.abs(np.where(np.isfinite(logk) & (logk < 0), logk, np.inf) + 1.0), axis=-1)
        pick = lambda a: np.take_along_axis(a, best[..., None], -1)[..., 0]  # noqa: E731
        return -pick(d2) / pick(logk)


def own_direction(fixed, updated, grad_q, alpha, h):
    h = np.asarray(h, dtype=np.float64)[..., None, None]
    diff = fixed[..., :, None, :] - updated[..., None, :, :]  # (..., n, m, d)
    k = np.exp(-(diff**2).sum(-1) / h)
    gk = -2 * diff / h[..., None] * k[..., None]
    return (np.einsum("...ji,...jd->...id", k, grad_q) + alpha * gk.sum(-3)) / fixed.shape[-2]


def own_bandwidth(fixed, updated, rule):
    """The declared rule per particle set (see conformance/bandwidth_rules.py for its parameters)."""
    return rule_bandwidth(fixed, updated, rule)


@check("C1.stein_identity")
def c1_stein(ctx: Ctx) -> None:
    w, mu, sd = np.array([0.3, 0.7]), np.array([-1.0, 1.5]), np.array([0.5, 0.8])
    x = np.linspace(-10, 10, ctx.params["grid_points"])
    comp = w * norm.pdf(x[:, None], mu, sd)
    p = comp.sum(-1)
    score = (comp * (-(x[:, None] - mu) / sd**2)).sum(-1) / p
    y = np.array([-1.0, 0.0, 0.7, 2.0])
    for h in (0.3, 1.0, 3.0):
        k, gk = kernel(ctx, x[None, :, None], y[None, :, None], float(h))
        integrand = p[:, None] * (score[:, None] * k[0] + gk[0, :, :, 0])
        val = simpson(integrand, x=x, axis=0)
        ctx.close(f"Stein identity E_p[score k + grad_x k](y) (h={h})", val, np.zeros_like(y), ctx.params["atol"])
        ctx.close(f"k(x, y) vs exp(-(x - y)^2 / h) (h={h})", k[0], np.exp(-((x[:, None] - y) ** 2) / h), 1e-12)


@check("C1.direction_eq13")
def c1_direction(ctx: Ctx) -> None:
    rng = ctx.rng()
    for alpha in (0.1, 1.0, 4.0):
        for (B, n, m, d) in ((3, 5, 4, 2), (2, 1, 3, 1), (1, 8, 8, 3)):
            n, m = counts(ctx, n, m)
            fixed, upd = rng.normal(size=(B, n, d)), rng.normal(size=(B, m, d))
            g = rng.normal(size=(B, n, d)) * 3
            h = rng.uniform(0.2, 3.0, size=B)
            got = direction(ctx, fixed, upd, g, alpha, h)
            want = own_direction(fixed, upd, g, alpha, h)
            ctx.close(f"eq. 13 direction (alpha={alpha}, B={B}, n={n}, m={m}, d={d})", got, want,
                      ctx.params["atol"] + ctx.params["rtol"] * np.abs(want).max(),
                      "expected mean_j [k(x_j, y_i) grad Q(x_j) + alpha grad_{x_j} k(x_j, y_i)]")


def _iterate(ctx: Ctx, x, grad_q, alpha, h, steps, lr):
    for _ in range(steps):
        x = x + lr * direction(ctx, x, x, grad_q(x), alpha, h)
    return x


@check("C2.fixed_points")
def c2_fixed_points(ctx: Ctx) -> None:
    p = ctx.params
    rng = ctx.rng()
    # one particle: the direction is grad Q exactly, and iterating climbs to the mode
    mu = np.array([0.4, -0.3])
    Kq = np.array([[2.0, 0.3], [0.3, 1.0]])
    gq = lambda x: -(x - mu) @ Kq  # noqa: E731
    x = rng.normal(size=(1, 1, 2))
    ctx.close("one-particle direction vs grad Q", direction(ctx, x, x, gq(x), 0.7, 1.0), gq(x), 1e-12 * (1 + np.abs(gq(x)).max()))
    x = _iterate(ctx, x, gq, 0.7, 1.0, 600, 0.1)
    ctx.close("one particle after gradient ascent vs the mode", x[0, 0], mu, p["atol"])
    # two particles on a 1-D Gaussian, fixed h
    for alpha, kappa, h in ((0.5, 2.0, 1.0), (2.0, 1.0, 0.5), (0.2, 0.5, 2.0)):
        s2 = alpha / kappa
        m0 = 0.3
        gq1 = lambda x, m0=m0, kappa=kappa: -kappa * (x - m0)  # noqa: E731
        x = np.array([[[m0 - 0.3], [m0 + 0.5]]])
        lr = p["step_size"] / max(kappa, alpha / h)
        x = _iterate(ctx, x, gq1, alpha, h, p["steps"], lr)
        delta = math.sqrt(h / 4 * math.log(1 + 4 * s2 / h))
        got = np.sort(x[0, :, 0])
        ctx.close(f"two-particle fixed point vs mu -/+ delta (alpha={alpha}, kappa={kappa}, h={h})", got,
                  [m0 - delta, m0 + delta], p["atol"], f"delta^2 = (h/4) log(1 + 4 s^2/h), s^2 = alpha/kappa = {s2}")


@check("C3.bandwidth")
def c3_bandwidth(ctx: Ctx) -> None:
    declared = ctx.conventions["bandwidth_rule"]
    rule = parse_bandwidth_rule(declared)
    rng = ctx.rng()
    derived = uses_own_bandwidth(ctx)
    ctx.measure("rule", rule.describe())
    ctx.measure("source", "derived from svgd_direction_auto" if derived else "bandwidth()")
    cases = ((15, 15, 2), (9, 7, 1), (5, 5, 3)) if not derived else ((15, 15, 2), (9, 7, 1), (5, 5, 3), (16, 8, 2))
    for n, m, d in cases:
        n, m = counts(ctx, n, m)
        if not derived:
            scales = np.array([1e-3, 0.05, 1.0, 7.0])[:, None, None]
            fixed = rng.normal(size=(4, n, d)) * scales
            upd = rng.normal(size=(4, m, d)) * scales
            got = bandwidth(ctx, fixed, upd)
        else:  # many per-state sets inside the action box (bound conventions of ports act outside it)
            scales = np.array([1e-3, 0.01, 0.05, 0.1, 0.3, 0.6, 0.99, 0.2])[:, None, None]
            fixed, upd = _box_sets(rng, scales, n, m, d)
            got = derived_bandwidth(ctx, fixed, upd)
        want = own_bandwidth(fixed, upd, rule)
        if not derived:
            ctx.close(f"bandwidth per state, rule {declared} (n={n}, m={m}, d={d})", got, want,
                      ctx.params["rtol"] * np.abs(want).max(), f"expected {rule.describe()}, computed per particle set")
        else:  # relative: the sets' h span three orders of magnitude
            ctx.close(f"derived h / rule h per state, rule {declared} (n={n}, m={m}, d={d})", got / want,
                      np.ones_like(want), ctx.params["rtol_derived"],
                      f"expected {rule.describe()}, computed per particle set; derived h = {np.array2string(got, precision=6)}")


def _box_sets(rng, scales, n, m, d):
    """Per-state particle sets of very different spreads around different centres, all inside (-1, 1)^d."""
    B = scales.shape[0]
    centre = rng.uniform(-0.5, 0.5, size=(B, 1, d)) * (1 - scales)
    fixed = centre + rng.uniform(-0.49, 0.49, size=(B, n, d)) * scales
    upd = centre + rng.uniform(-0.49, 0.49, size=(B, m, d)) * scales
    return fixed, upd


@check("C1.direction_auto")
def c1_direction_auto(ctx: Ctx) -> None:
    if not ctx.impl.has("svgd_direction_auto"):
        raise NotApplicable(f"{ctx.impl.name} does not implement svgd_direction_auto (its bandwidth is external: "
                            "C1.direction_eq13 and C3.bandwidth check it)")
    rule = parse_bandwidth_rule(ctx.conventions["bandwidth_rule"])
    rng = ctx.rng()
    scales = np.array([1e-3, 0.02, 0.1, 0.3, 0.6, 0.99])[:, None, None]
    for alpha in (0.1, 1.0, 4.0):
        for (n, m, d) in ((5, 4, 2), (8, 8, 3), (16, 8, 1), (3, 6, 2)):
            n, m = counts(ctx, n, m)
            fixed, upd = _box_sets(rng, scales, n, m, d)
            g = rng.normal(size=fixed.shape) * 3
            got = direction_auto(ctx, fixed, upd, g, alpha)
            want = own_direction(fixed, upd, direction_target_grad(ctx, fixed, g, alpha), alpha,
                                 own_bandwidth(fixed, upd, rule))
            ctx.close(f"eq. 13 direction with the implementation's own bandwidth (alpha={alpha}, B={len(scales)}, "
                      f"n={n}, m={m}, d={d})", got, want, ctx.params["atol"] + ctx.params["rtol"] * np.abs(want).max(),
                      f"expected mean_j [k(x_j, y_i) grad Q(x_j) + alpha grad_x_j k(x_j, y_i)], h = {rule.describe()} "
                      "per state (a bandwidth pooled over the batch, per column or from the batch size fails)")


def _run(ctx: Ctx, x, grad_logq, alpha, steps, lr):
    for conv in ("out_of_box_gradient", "direction_log_det"):
        if str(ctx.conventions.get(conv, "none")) != "none":
            raise NotApplicable(f"the implementation declares {conv} = {ctx.conventions[conv]}: its particles "
                                "target a density on the action box, and this spec's target has support outside it")
    hist = np.zeros_like(x)
    for it in range(steps):
        phi = rule_direction(ctx, x, x, grad_logq(x), alpha)
        hist = phi**2 if it == 0 else 0.9 * hist + 0.1 * phi**2
        x = x + lr * phi / (1e-6 + np.sqrt(hist))
    return x


@check("C4.goodness_of_fit")
def c4_gof(ctx: Ctx) -> None:
    first_passing_run(ctx, lambda run: _c4_run(ctx, run), "particle run")


def _c4_run(ctx: Ctx, run: int) -> None:
    p = ctx.params
    w, mu = np.array([1 / 3, 2 / 3]), np.array([-2.0, 2.0])

    def grad_q(x):  # alpha = 1, Q = log p
        comp = w * np.exp(-0.5 * (x - mu) ** 2)
        return (comp * (mu - x)).sum(-1, keepdims=True) / comp.sum(-1, keepdims=True)

    x0 = ctx.rng(run_stream(run)).normal(-10, 1, size=(1, p["particles"], 1))
    x = _run(ctx, x0, grad_q, 1.0, p["steps"], p["step_size"])[0, :, 0]
    mass, mean, var = float((x < 0).mean()), float(x.mean()), float(x.var())
    xs = np.sort(x)
    cdf = (w * norm.cdf(xs[:, None], mu, 1)).sum(-1)
    n = len(xs)
    ks = float(max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n)))
    for name, val in (("mass(x < 0)", mass), ("mean", mean), ("variance", var), ("KS", ks)):
        ctx.measure(name, round(val, 5))
    for name, val, band in (("mass(x < 0)", mass, p["mass_band"]), ("mean", mean, p["mean_band"]),
                            ("variance", var, p["var_band"])):
        if not band[0] <= val <= band[1]:
            ctx.fail(f"{name} = {val:.4g} outside {band} (target 1/3 N(-2,1) + 2/3 N(2,1))", val, band)
    ctx.le("KS distance to the target", ks, p["ks_max"], "99th percentile of iid draws of the same size")


@check("C5.low_dim_no_collapse")
def c5_no_collapse(ctx: Ctx) -> None:
    p = ctx.params
    alpha = 0.5
    K = np.array([[2.0, 0.6], [0.6, 1.0]])
    cov = alpha * np.linalg.inv(K)
    x0 = ctx.rng().normal(size=(1, p["particles"], 2)) * 0.3 + 1.0
    x = _run(ctx, x0, lambda x: -x @ K, alpha, p["steps"], p["step_size"])[0]
    evals, evecs = np.linalg.eigh(cov)
    proj = (x - x.mean(0)) @ evecs
    ratios = proj.var(0) / evals
    ctx.measure("variance ratios along principal axes", ratios)
    lo, hi = p["ratio_band"]
    for i, r in enumerate(ratios):
        if not lo <= r <= hi:
            ctx.fail(f"particle variance / target variance along axis {i} = {r:.3g} outside [{lo}, {hi}] "
                     f"(target N(0, alpha K^-1), alpha = {alpha}); ~0 means collapse (no repulsive term)", r, [lo, hi])
