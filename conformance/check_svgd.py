"""Family C: kernel, bandwidth and the eq. 13 direction; particle loops are driven by the checks."""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.integrate import simpson
from scipy.stats import norm

from .adapter import Arr
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
    return ctx.impl.call("svgd_direction", _t(fixed), _t(updated), _t(grad_q), float(alpha),
                         h if np.isscalar(h) else _t(h),
                         returns=Arr(updated.shape, "the eq. 13 direction at each updated particle"))


def own_direction(fixed, updated, grad_q, alpha, h):
    h = np.asarray(h, dtype=np.float64)[..., None, None]
    diff = fixed[..., :, None, :] - updated[..., None, :, :]  # (..., n, m, d)
    k = np.exp(-(diff**2).sum(-1) / h)
    gk = -2 * diff / h[..., None] * k[..., None]
    return (np.einsum("...ji,...jd->...id", k, grad_q) + alpha * gk.sum(-3)) / fixed.shape[-2]


def own_bandwidth(fixed, updated, rule):
    sq = ((fixed[..., :, None, :] - updated[..., None, :, :]) ** 2).sum(-1)
    flat = np.sort(sq.reshape(sq.shape[:-2] + (-1,)), axis=-1)
    med = flat[..., (flat.shape[-1] - 1) // 2]  # lower median
    n = fixed.shape[-2]
    if rule == "sql_code":
        return np.maximum(med / math.log(n), 1e-3)
    if rule == "svgd_paper":
        return med / math.log(n)
    if rule == "svgd_code":
        return med / math.log(n + 1)
    if rule == "paper_d1":
        return np.sqrt(med) / (2 * math.log(n + 1))
    raise ValueError(f"unknown bandwidth_rule convention {rule!r}")


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
    rule = ctx.conventions["bandwidth_rule"]
    rng = ctx.rng()
    for n, m, d in ((15, 15, 2), (9, 7, 1), (5, 5, 3)):
        scales = np.array([1e-3, 0.05, 1.0, 7.0])[:, None, None]
        fixed = rng.normal(size=(4, n, d)) * scales
        upd = rng.normal(size=(4, m, d)) * scales
        want = own_bandwidth(fixed, upd, rule)
        got = bandwidth(ctx, fixed, upd)
        ctx.close(f"bandwidth per state, rule {rule} (n={n}, m={m}, d={d})", got, want,
                  ctx.params["rtol"] * np.abs(want).max(), "computed per particle set, lower median of ||x_j - y_i||^2")
    ctx.measure("rule", rule)


def _run(ctx: Ctx, x, grad_logq, alpha, steps, lr):
    hist = np.zeros_like(x)
    for it in range(steps):
        h = bandwidth(ctx, x, x)
        phi = direction(ctx, x, x, grad_logq(x), alpha, h)
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
