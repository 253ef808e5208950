"""Protocol contracts no equation spec tests on its own (specs/contracts.toml; the audit table in README.md)."""
from __future__ import annotations

import numpy as np
import torch

from . import truth as T
from .adapter import Arr
from .check_sampler import energy_fn
from .hyp import EDGE_MDPS, mdps
from .registry import Ctx, check


def _fixed_point(R, P, gamma, alpha, tol=1e-13):
    """Q* by iteration to the a-posteriori bound tol (numpy log-sum-exp: scipy's is ~10x slower here).

    Capped: near gamma = 1 a float64 iteration can cycle within an ulp above tol; Q is then exact to round-off."""
    Q = np.zeros_like(R)
    for _ in range(200_000):
        m = Q.max(-1)
        Qn = R + gamma * P @ (m + alpha * np.log(np.exp((Q - m[:, None]) / alpha).sum(-1)))
        step = float(np.max(np.abs(Qn - Q)))
        Q = Qn
        if gamma == 0 or gamma / (1 - gamma) * step <= tol:
            break
    return Q


def _qstar_at(ctx: Ctx, R, P, gamma, alpha, tol):
    return ctx.impl.call("soft_q_iteration", R, P, gamma, alpha, tol, returns=Arr(R.shape, "Q* within tol (S, A)"))


@check("A2.loose_tolerance")
def a2_loose_tolerance(ctx: Ctx) -> None:
    tols = [float(t) for t in ctx.params["tolerances"]]
    rng = ctx.rng()
    # Self-looping single state: Q_k - Q* = gamma^k (Q_0 - Q*) is constant over actions, so the
    # a-posteriori bound gamma/(1-gamma) ||Q_k - Q_{k-1}|| is exactly the error.
    for gamma in (0.5, 0.9, 0.97):
        for tol in tols:
            A = int(rng.integers(2, 6))
            alpha = float(rng.choice([0.1, 1.0, 3.0]))
            r = rng.uniform(-10, 10, (1, A))
            Qs = r + gamma * T.V(r, alpha)[0] / (1 - gamma)
            Q = _qstar_at(ctx, r, np.ones((1, A, 1)), gamma, alpha, tol)
            err = float(np.max(np.abs(Q - Qs)))
            atol = ctx.params["atol_scale"] * (1 + np.abs(Qs).max())
            ctx.worst("max ||Q - Q*|| / tol", err / tol)
            ctx.le(f"||Q - Q*||_inf on a self-looping state (gamma={gamma}, tol={tol:g})", err, tol + atol,
                   f"soft_q_iteration must stop when gamma/(1-gamma) ||Q_k - Q_(k-1)|| <= tol; a stop at "
                   f"||Q_k - Q_(k-1)|| <= tol leaves an error up to gamma/(1-gamma) = {gamma / (1 - gamma):.3g} times tol")

    @ctx.given(mdps(), examples=tuple((m,) for m in EDGE_MDPS))
    def prop(m):
        Qs = _fixed_point(m.R, m.P, m.gamma, m.alpha)
        atol = m.atol(ctx.params["atol_scale"])
        for tol in tols[:2]:  # 1e-6 and below: the self-looping states above, where the bound is tight
            Q = _qstar_at(ctx, m.R, m.P, m.gamma, m.alpha, tol)
            err = float(np.max(np.abs(Q - Qs)))
            ctx.worst("max ||Q - Q*|| / tol", err / tol)
            ctx.le(f"||Q - Q*||_inf (tol={tol:g}, {m!r})", err, tol + atol, "the returned Q must be within tol of Q*")

    prop()


@check("D.sample_contract")
def d_sample_contract(ctx: Ctx) -> None:
    p = ctx.params
    d, n, alpha = 2, int(p["samples"]), 0.5
    handle = ctx.impl.raw("fit_sampler", energy_fn(alpha), d, alpha, int(p["fit_steps"]), ctx.sub_seed())
    draws = [ctx.impl.call("sample", handle, k, returns=Arr((k, d), f"{k} iid actions in [-1, 1]^{d}", dtype="float"))
             for k in (n, n, 2 * n)]
    worst = max(float(np.abs(x).max()) for x in draws)
    ctx.measure("max |a|", worst)
    ctx.le("max |a| over three calls of sample", worst, 1.0 + 1e-6, "actions must lie in [-1, 1]^d")
    # Exact repeats among actions strictly inside the box (saturated actions at a bound may tie).
    def repeats(x: np.ndarray) -> int:
        x = x[np.all(np.abs(x) < 1 - 1e-6, axis=1)]
        return int(len(x) - len(np.unique(x, axis=0)))

    within = [repeats(x) for x in draws]
    across = repeats(np.concatenate(draws)) - sum(within)
    ctx.measure("repeated actions within each call", within)
    ctx.measure("repeated actions across calls", across)
    ctx.le("actions repeated within one call of sample", sum(within), 0,
           "each of the n actions needs its own noise draw xi (iid); identical actions mean shared noise")
    ctx.le("actions of one call of sample repeated in another call", across, 0,
           "every call must draw fresh noise; repeats across calls mean the noise is re-seeded or reused")


@check("ALG1.agent_contract")
def alg1_agent_contract(ctx: Ctx) -> None:
    p = ctx.params
    B, n, o, d = int(p["states"]), int(p["particles"]), 2, 2
    rng = ctx.rng()
    agent = ctx.impl.raw("make_agent", o, d, 0.5, 0.9, ctx.sub_seed())
    scale = 2.0 if ctx.conventions["temperature_mode"] == "reward_scale" else 1.0

    def actions(obs, xi):
        return ctx.impl.call("actions_from_noise", agent, torch.as_tensor(obs), torch.as_tensor(xi),
                             returns=Arr((B, n, d), "actions a = f(xi; s)", dtype="float"))

    obs = rng.normal(size=(B, o)).astype(np.float32)
    xi = rng.normal(size=(B, n, d)).astype(np.float32)
    a1, a2 = actions(obs, xi), actions(obs, xi)
    ctx.le("max |a| of actions_from_noise", float(np.abs(a1).max()), 1.0 + 1e-6, "actions must lie in [-1, 1]^d")
    ctx.le("max |f(xi; s) - f(xi; s)| over two calls with the same (s, xi)", float(np.abs(a1 - a2).max()), 0.0,
           "actions_from_noise must be a deterministic function of (obs, xi); it must not draw its own noise")
    a_xi = actions(obs, rng.normal(size=(B, n, d)).astype(np.float32))
    a_s = actions(rng.normal(size=(B, o)).astype(np.float32), xi)
    for what, other in (("xi", a_xi), ("obs", a_s)):
        changed = float(np.abs(other - a1).max())
        ctx.measure(f"max action change for a new {what}", changed)
        if not changed > 0:
            ctx.fail(f"actions_from_noise returned the same actions for a different {what}; a = f(xi; s) must depend "
                     f"on both the noise and the state", changed, "> 0")
    # eq. 11 on terminal transitions: y = reward_scale * r exactly, so the loss is deterministic.
    f = lambda x: torch.as_tensor(np.asarray(x, dtype=np.float32))  # noqa: E731
    batch = {"obs": f(rng.normal(size=(64, o))), "action": f(rng.uniform(-1, 1, (64, d))),
             "reward": f(rng.normal(3.0, 2.0, 64)), "next_obs": f(rng.normal(size=(64, o))), "terminated": f(np.ones(64))}
    y = scale * batch["reward"].numpy().astype(np.float64)

    def loss() -> float:
        q = ctx.impl.call("q_values", agent, batch["obs"], batch["action"], False,
                          returns=Arr((64,), "one Q value per (s, a) row", dtype="float"))
        return float(0.5 * np.mean((y - q) ** 2))

    before = loss()
    ctx.impl.raw("q_update", agent, batch)
    after = loss()
    ctx.measure("eq. 11 loss before / after one q_update", [before, after])
    ctx.le("eq. 11 loss after one q_update - before", after - before, 0.0,
           "q_update must take a descent step on 0.5 (y - Q(s, a))^2 with y = reward_scale * r on terminal transitions "
           "(an ascent step, a wrong target or a step on another network raises or keeps it)")
