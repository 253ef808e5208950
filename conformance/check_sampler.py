"""Family D: a sampler fitted by amortized SVGD to a known energy (no RL)."""
from __future__ import annotations

import math

import numpy as np
import torch

from .adapter import Arr
from .registry import Ctx, check
from .trained import first_passing_run

CENTERS = np.array([[0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]])
WEIGHTS = np.array([0.4, 0.3, 0.2, 0.1])
SIGMA = 0.3
_FITS: dict[tuple, object] = {}  # fitted handles of the current (adapter, master seed): D.* share their fits


def energy_fn(alpha: float):
    """Q(a) = alpha log m(a), m the four-bump mixture; torch, differentiable, any batch shape (..., 2)."""
    c = torch.as_tensor(CENTERS)
    logw = torch.log(torch.as_tensor(WEIGHTS))

    def energy(a: torch.Tensor) -> torch.Tensor:
        cc, lw = c.to(a.dtype), logw.to(a.dtype)
        sq = ((a.unsqueeze(-2) - cc) ** 2).sum(-1)
        return alpha * torch.logsumexp(lw - sq / (2 * SIGMA**2), dim=-1)

    return energy


def grid_target(squash: str, n: int = 401):
    """Cell-centre grid on [-1, 1]^2 and the normalised target weights W[i, j] at (g_i, g_j)."""
    g = (np.arange(n) + 0.5) / n * 2 - 1
    X, Y = np.meshgrid(g, g, indexing="ij")
    pts = np.stack([X, Y], -1)
    m = (WEIGHTS * np.exp(-((pts[..., None, :] - CENTERS) ** 2).sum(-1) / (2 * SIGMA**2))).sum(-1)
    if squash == "tanh_log_det":
        m = m * (1 - X**2 + 1e-6) * (1 - Y**2 + 1e-6)
    return g, m / m.sum()


def fitted_samples(ctx: Ctx, n: int, run: int = 0, tag: str = "D") -> np.ndarray:
    """Fit once per (implementation, master seed, alpha, steps, tag, run); each call draws n fresh iid samples.

    Run k > 0 is an independent fit (its own seed), used only when the earlier runs failed. `tag` names the
    seed stream: the D.* specs at alpha 0.5 share tag "D" (one fit), D.small_alpha has its own."""
    alpha, steps = float(ctx.params["alpha"]), int(ctx.params["fit_steps"])
    owner = (id(ctx.impl.adapter), ctx.master_seed)
    if any(k[:2] != owner for k in _FITS):
        _FITS.clear()
    key = (*owner, alpha, steps, tag, run)
    if key not in _FITS:
        from .runner import spec_seed

        seed = spec_seed(ctx.master_seed, tag if run == 0 else f"{tag}#run{run}") % (2**31)
        units = ctx.units(alpha)
        _FITS[key] = ctx.impl.raw("fit_sampler", units.energy(energy_fn(alpha)), 2, units.alpha, steps, seed)
    x = ctx.impl.call("sample", _FITS[key], n, returns=Arr((n, 2), "n iid actions in [-1, 1]^2", dtype="float"))
    if np.any(np.abs(x) > 1 + 1e-6):
        ctx.fail(f"sampler returned actions outside [-1, 1]^2 (max |a| = {np.abs(x).max():.4g})", float(np.abs(x).max()), 1.0)
    return x


@check("D.cell_masses")
def d_cells(ctx: Ctx) -> None:
    first_passing_run(ctx, lambda run: _d_cells_run(ctx, run), "sampler fit")


def _d_cells_run(ctx: Ctx, run: int) -> None:
    p = ctx.params
    N = p["samples"]
    x = fitted_samples(ctx, N, run)
    g, W = grid_target(ctx.conventions["squash_correction"])
    X, Y = np.meshgrid(g, g, indexing="ij")
    z = ctx.z(4 + 2)
    quads = [(X > 0) & (Y > 0), (X < 0) & (Y > 0), (X < 0) & (Y < 0), (X > 0) & (Y < 0)]
    sq = [(x[:, 0] > 0) & (x[:, 1] > 0), (x[:, 0] < 0) & (x[:, 1] > 0), (x[:, 0] < 0) & (x[:, 1] < 0), (x[:, 0] > 0) & (x[:, 1] < 0)]
    pc = np.array([W[q].sum() for q in quads])
    ph = np.array([s.mean() for s in sq])
    ctx.measure("target quadrant masses", np.round(pc, 4))
    ctx.measure("sampled quadrant masses", np.round(ph, 4))
    for i in range(4):
        band = p["eps"] + z * math.sqrt(pc[i] * (1 - pc[i]) / N)
        ctx.le(f"|p_hat - p| in quadrant {i}", abs(ph[i] - pc[i]), band, f"target {pc[i]:.4f}, sampled {ph[i]:.4f}")
    mean_t = np.array([(W * X).sum(), (W * Y).sum()])
    sd_t = np.sqrt(np.array([(W * X**2).sum(), (W * Y**2).sum()]) - mean_t**2)
    for k in range(2):
        ctx.le(f"|sample mean - target mean| on axis {k}", abs(x[:, k].mean() - mean_t[k]),
               p["eps_mean"] + z * sd_t[k] / math.sqrt(N))


def _k(a, b, bw):
    return np.exp(-((a[:, None] - b[None, :]) ** 2) / (2 * bw**2))


@check("D.mmd")
def d_mmd(ctx: Ctx) -> None:
    first_passing_run(ctx, lambda run: _d_mmd_run(ctx, run), "sampler fit")


def _d_mmd_run(ctx: Ctx, run: int) -> None:
    p = ctx.params
    N = p["samples"]
    x = fitted_samples(ctx, N, run)
    g, W = grid_target(ctx.conventions["squash_correction"], n=201)
    bw = 0.3
    Kg = _k(g, g, bw)
    tt = float((W * (Kg @ W @ Kg)).sum())
    A, B = _k(x[:, 0], g, bw), _k(x[:, 1], g, bw)
    st = float(((A @ W) * B).sum(1).mean())
    kxx = _k(x[:, 0], x[:, 0], bw) * _k(x[:, 1], x[:, 1], bw)
    ss = float((kxx.sum() - N) / (N * (N - 1)))
    mmd = ss - 2 * st + tt
    ctx.measure("MMD^2", mmd)
    ctx.le("MMD^2(samples, target)", mmd, p["mmd_max"])
    Xg, Yg = np.meshgrid(g, g, indexing="ij")
    lo, hi = p["ratio_band"]
    for k, G in enumerate((Xg, Yg)):
        mt = (W * G).sum()
        sd_t = math.sqrt((W * G**2).sum() - mt**2)
        r = float(x[:, k].std() / sd_t)
        ctx.measure(f"std ratio axis {k}", r)
        if not lo <= r <= hi:
            ctx.fail(f"sample std / target std on axis {k} = {r:.3g} outside [{lo}, {hi}] (collapse or wrong temperature)", r, [lo, hi])


@check("D.support_tails")
def d_support_tails(ctx: Ctx) -> None:
    first_passing_run(ctx, lambda run: _d_tails_run(ctx, run), "sampler fit")


def _d_tails_run(ctx: Ctx, run: int) -> None:
    p = ctx.params
    N, t = p["samples"], p["threshold"]
    x = fitted_samples(ctx, N, run)
    g, W = grid_target(ctx.conventions["squash_correction"])
    X, Y = np.meshgrid(g, g, indexing="ij")
    z = ctx.z(8)
    lo, hi = p["ratio_band"]
    for k, G in enumerate((X, Y)):
        for side, sign in (("below", -1), ("above", 1)):
            m = float(W[sign * G > t].sum())
            m_hat = float((sign * x[:, k] > t).mean())
            se = math.sqrt(m * (1 - m) / N)
            ctx.measure(f"axis {k} mass {side} {sign * t:+g} (sampled, target)", [round(m_hat, 4), round(m, 4)])
            ctx.le(f"target - sampled tail mass, axis {k} {side} {sign * t:+g}, over the allowed shortfall",
                   lo * m - m_hat, z * se, f"sampled {m_hat:.4f} vs target {m:.4f}: the sampler cannot reach this "
                   "part of [-1, 1] (a doubled or scaled squashing, a clipped range)")
            ctx.le(f"sampled - target tail mass, axis {k} {side} {sign * t:+g}, over the allowed excess",
                   m_hat - hi * m, z * se, f"sampled {m_hat:.4f} vs target {m:.4f}: mass piles up near the bound "
                   "(a missing or doubled squash correction)")


@check("D.small_alpha")
def d_small_alpha(ctx: Ctx) -> None:
    first_passing_run(ctx, lambda run: _d_small_alpha_run(ctx, run), "sampler fit")


def _d_small_alpha_run(ctx: Ctx, run: int) -> None:
    """The D target at a small temperature: Q = alpha log m, so exp(Q/alpha) = m whatever alpha is, while a
    temperature applied to the wrong power scales Q's weight against the repulsive term by alpha^(k-1):
    at alpha = 0.1 the sampler then targets m^10 (alpha^2 on the kernel term) or m^0.1 (no alpha on it)."""
    p = ctx.params
    N, alpha = int(p["samples"]), float(p["alpha"])
    x = fitted_samples(ctx, N, run, tag="D.small_alpha")
    g, W = grid_target(ctx.conventions["squash_correction"])
    X, Y = np.meshgrid(g, g, indexing="ij")
    z = ctx.z(4 + 2)  # four quadrant masses, two axis means (two-sided); the spread band is a margin, not a z-test
    quads = [(X > 0) & (Y > 0), (X < 0) & (Y > 0), (X < 0) & (Y < 0), (X > 0) & (Y < 0)]
    sq = [(x[:, 0] > 0) & (x[:, 1] > 0), (x[:, 0] < 0) & (x[:, 1] > 0), (x[:, 0] < 0) & (x[:, 1] < 0),
          (x[:, 0] > 0) & (x[:, 1] < 0)]
    pc = np.array([W[q].sum() for q in quads])
    ph = np.array([s.mean() for s in sq])
    ctx.measure("alpha", alpha)
    ctx.measure("target quadrant masses", np.round(pc, 4))
    ctx.measure("sampled quadrant masses", np.round(ph, 4))
    mean_t = np.array([(W * X).sum(), (W * Y).sum()])
    sd_t = np.sqrt(np.array([(W * X**2).sum(), (W * Y**2).sum()]) - mean_t**2)
    ratio = x.std(0) / sd_t
    ctx.measure("std ratio (sampled / target) per axis", np.round(ratio, 4))
    hint = (f"at alpha = {alpha:g} the target exp(Q/alpha) is still the four-bump mixture m (Q = alpha log m); a "
            "sampler whose eq. 13 repulsive term carries the wrong power of alpha fits m^(1/alpha) (alpha^2 grad k: "
            "mass piles on the heaviest bump, spread too small) or m^alpha (grad k without alpha: nearly uniform, "
            "spread too large)")
    for i in range(4):
        ctx.le(f"|p_hat - p| in quadrant {i} (alpha={alpha:g})", abs(ph[i] - pc[i]),
               p["eps"] + z * math.sqrt(pc[i] * (1 - pc[i]) / N), f"target {pc[i]:.4f}, sampled {ph[i]:.4f}; {hint}")
    for k in range(2):
        ctx.le(f"|sample mean - target mean| on axis {k} (alpha={alpha:g})", abs(x[:, k].mean() - mean_t[k]),
               p["eps_mean"] + z * sd_t[k] / math.sqrt(N), hint)
    lo, hi = p["ratio_band"]
    for k in range(2):
        if not lo <= ratio[k] <= hi:
            ctx.fail(f"sample std / target std on axis {k} = {ratio[k]:.3g} outside [{lo}, {hi}] at alpha = {alpha:g}: "
                     f"{'too narrow (collapse onto the heaviest mode)' if ratio[k] < lo else 'too wide (flattened target)'}; "
                     f"{hint}", float(ratio[k]), [lo, hi])
