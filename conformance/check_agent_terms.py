"""Term separation for the white-box agent (specs/agent_terms.toml): differential tests between
identically seeded agents that differ in exactly one input.

Same seed, same calls in the same order: the proposal draws of eq. 10 and the particles of eq. 13
are the same in both agents, so an input the equation says must not matter leaves the output
bit-for-bit unchanged, and one that must matter changes it.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .adapter import Arr
from .registry import Ctx, NotApplicable, check

OBS_DIM, ACT_DIM = 2, 2


def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float32))


def _scales(ctx: Ctx, alpha: float) -> tuple[float, float]:
    """(internal alpha, reward scale) under the declared temperature convention."""
    return (1.0, 1.0 / alpha) if ctx.conventions["temperature_mode"] == "reward_scale" else (alpha, 1.0)


def _batch(rng: np.random.Generator, B: int, terminated: float = 0.0) -> dict[str, torch.Tensor]:
    return {"obs": _t(rng.normal(size=(B, OBS_DIM))), "action": _t(rng.uniform(-1, 1, (B, ACT_DIM))),
            "reward": _t(rng.normal(3.0, 2.0, B)), "next_obs": _t(rng.normal(size=(B, OBS_DIM))),
            "terminated": _t(np.full(B, terminated))}


def _y(ctx: Ctx, agent, batch) -> np.ndarray:
    B = batch["reward"].shape[0]
    return ctx.impl.call("td_target", agent, batch, returns=Arr((B,), "one TD target per transition", dtype="float"))


def _twins(ctx: Ctx, alpha: float, gamma: float, seed: int):
    return tuple(ctx.impl.raw("make_agent", OBS_DIM, ACT_DIM, alpha, gamma, seed) for _ in range(2))


def _tol(*ys: np.ndarray) -> float:
    """float32 round-off of a TD target of this magnitude (the adapter may compute in float32)."""
    return 1e-5 * (1.0 + max(float(np.abs(y).max()) for y in ys))


def _require_determinism(ctx: Ctx, a: np.ndarray, b: np.ndarray, what: str) -> None:
    gap = float(np.abs(a - b).max())
    if gap > 0:
        raise NotApplicable(f"two agents from make_agent with the same seed gave different {what} for the same calls "
                            f"(max difference {gap:.3g}); the differential tests of this spec need make_agent to be "
                            "deterministic given its seed")


@check("ALG1.td_target_terms")
def alg1_td_target_terms(ctx: Ctx) -> None:
    p = ctx.params
    B, gamma, d = int(p["states"]), 0.9, ACT_DIM
    rng = ctx.rng()
    for k, alpha in enumerate(float(a) for a in p["alphas"]):
        a_int, scale = _scales(ctx, alpha)
        seed = ctx.sub_seed(k)
        A, Bt = _twins(ctx, alpha, gamma, seed)
        b = _batch(rng, B)
        y_a, y_b = _y(ctx, A, b), _y(ctx, Bt, b)
        _require_determinism(ctx, y_a, y_b, "TD targets")
        r = b["reward"].numpy().astype(np.float64)
        tag = f"alpha={alpha}"

        # the reward enters linearly with coefficient reward_scale
        dr = rng.normal(0.0, 1.0, B).astype(np.float32)
        y_a, y_b = _y(ctx, A, b), _y(ctx, Bt, {**b, "reward": b["reward"] + _t(dr)})
        ctx.close(f"y(r + Delta r) - y(r) vs reward_scale * Delta r ({tag})", y_b - y_a, scale * dr, _tol(y_a, y_b),
                  f"the reward must enter y = reward_scale * r + gamma (1 - terminated) V_hat(s') with reward_scale {scale:g}")
        # (s, a) do not enter the target
        y_a = _y(ctx, A, b)
        y_b = _y(ctx, Bt, {**b, "obs": _t(rng.normal(size=(B, OBS_DIM))), "action": _t(rng.uniform(-1, 1, (B, d)))})
        ctx.close(f"y with other (obs, action) - y ({tag})", y_b, y_a, _tol(y_a, y_b),
                  "the TD target depends on (r, s', terminated) only, not on the transition's (s, a)")
        # terminated rows: exactly reward_scale * r; other rows untouched
        term = np.zeros(B, np.float32)
        term[::2] = 1.0
        y_a, y_b = _y(ctx, A, b), _y(ctx, Bt, {**b, "terminated": _t(term)})
        ctx.close(f"y of terminated rows vs reward_scale * r ({tag})", y_b[::2], scale * r[::2], _tol(y_b),
                  "a terminal transition has no next-state term at all: the whole soft value (entropy and proposal "
                  "terms included) must sit inside the (1 - terminated) mask")
        ctx.close(f"y of non-terminated rows next to terminated ones ({tag})", y_b[1::2], y_a[1::2], _tol(y_a, y_b),
                  "one row's terminated flag must not change another row's target")

        # V_hat uses theta-bar: different online networks, same target -> same y; a sync changes y
        A, Bt = _twins(ctx, alpha, gamma, seed)
        qb = _batch(rng, 64)
        for _ in range(3):
            ctx.impl.raw("q_update", A, qb)
            ctx.impl.raw("q_update", Bt, {**qb, "reward": qb["reward"] + 5.0})
        y_a, y_b = _y(ctx, A, b), _y(ctx, Bt, b)
        ctx.close(f"y of agents whose online Q differ, same theta-bar ({tag})", y_b, y_a, _tol(y_a, y_b),
                  "eq. 10's V_hat(s') must use the frozen target parameters theta-bar, not the online theta")
        ctx.impl.raw("sync_target", Bt)
        y_a, y_b = _y(ctx, A, b), _y(ctx, Bt, b)
        moved = float(np.abs(y_b - y_a).max())
        ctx.measure(f"max |y change| from sync_target ({tag})", moved)
        if not moved > _tol(y_a, y_b):
            ctx.fail(f"sync_target did not change the TD target ({tag}; max change {moved:.3g}): V_hat(s') must be "
                     "computed with theta-bar, which sync_target sets to the online theta", moved, _tol(y_a, y_b))

        # gamma multiplies V_hat exactly once
        G1, G2 = (ctx.impl.raw("make_agent", OBS_DIM, ACT_DIM, alpha, g, seed) for g in (gamma, 0.6))
        y1, y2 = _y(ctx, G1, b), _y(ctx, G2, b)
        v1, v2 = (y1 - scale * r) / gamma, (y2 - scale * r) / 0.6
        ctx.close(f"V_hat = (y - scale r)/gamma at gamma 0.9 vs 0.6 ({tag})", v2, v1, _tol(y1, y2) / 0.6,
                  "y must be reward_scale * r + gamma V_hat(s') with the gamma given to make_agent (not gamma^2, not "
                  "a default)")

        # eq. 10 sandwich: V_hat in alpha d log 2 + [min_a Q_target, max_a Q_target]
        lo, hi, slack = _target_range(ctx, G1, b["next_obs"].numpy(), int(p["grid_points"]))
        box = a_int * d * math.log(2.0)
        ctx.measure(f"V_hat - alpha d log 2 - max_a Q_target ({tag})", float(np.max(v1 - box - hi)))
        ctx.measure(f"min_a Q_target - (V_hat - alpha d log 2) ({tag})", float(np.max(lo - (v1 - box))))
        hint = (f"eq. 10 with the uniform proposal gives V_hat = alpha (lse_j Q_j/alpha - log M) + alpha d log 2, which "
                f"lies between mean_j Q_j and max_j Q_j plus alpha d log 2 = {box:.4g} (internal alpha {a_int:g}); "
                "outside it: a missing or extra temperature, a missing -log M, log 2 not summed over the d action "
                "dimensions, or a hard max")
        ctx.le(f"max (V_hat - alpha d log 2 - max_a Q_target(s', a)) ({tag})", float(np.max(v1 - box - hi)),
               slack + _tol(y1) / gamma, hint)
        ctx.le(f"max (min_a Q_target(s', a) - (V_hat - alpha d log 2)) ({tag})", float(np.max(lo - (v1 - box))),
               slack + _tol(y1) / gamma, hint)


def _target_range(ctx: Ctx, agent, next_obs: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-state min and max of Q_target over an n x n grid of [-1, 1]^2, and a margin for the off-grid extrema."""
    g = np.linspace(-1, 1, n)
    grid = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    S = next_obs.shape[0]
    obs = _t(np.repeat(next_obs, len(grid), 0))
    q = ctx.impl.call("q_values", agent, obs, _t(np.tile(grid, (S, 1))), True,
                      returns=Arr((S * len(grid),), "Q_target on the grid", dtype="float")).reshape(S, n, n)
    # Off-grid extrema: within half a cell diagonal of a grid point, bounded by twice the largest
    # step between neighbours (a piecewise-linear network's slope is about constant across a cell).
    step = max(float(np.abs(np.diff(q, axis=1)).max()), float(np.abs(np.diff(q, axis=2)).max()))
    return q.min((1, 2)), q.max((1, 2)), 2.0 * step


def _sampler_probe(ctx: Ctx, agent, obs: np.ndarray, xi: np.ndarray) -> np.ndarray:
    B, n, d = xi.shape
    return ctx.impl.call("actions_from_noise", agent, _t(obs), _t(xi),
                         returns=Arr((B, n, d), "actions a = f(xi; s)", dtype="float"))


@check("ALG1.policy_update_terms")
def alg1_policy_update_terms(ctx: Ctx) -> None:
    p = ctx.params
    B, n, K = int(p["states"]), int(p["particles"]), int(p["q_updates"])
    rng = ctx.rng()
    probe_obs = rng.normal(size=(B, OBS_DIM)).astype(np.float32)
    probe_xi = rng.normal(size=(B, n, ACT_DIM)).astype(np.float32)
    for k, alpha in enumerate(float(a) for a in p["alphas"]):
        seed, tag = ctx.sub_seed(k), f"alpha={alpha}"
        q_batches = [_batch(rng, 64) for _ in range(K)]
        pb = _batch(rng, B)
        pb["obs"] = _t(probe_obs)

        def run(last_q_reward_shift: float = 0.0, sync: bool = False, policy_batch=pb):
            agent = ctx.impl.raw("make_agent", OBS_DIM, ACT_DIM, alpha, 0.9, seed)
            for i, qb in enumerate(q_batches):
                shift = last_q_reward_shift if i == K - 1 else 0.0
                ctx.impl.raw("q_update", agent, {**qb, "reward": qb["reward"] + shift})
            if sync:
                ctx.impl.raw("sync_target", agent)
            ctx.impl.raw("policy_update", agent, policy_batch)
            return _sampler_probe(ctx, agent, probe_obs, probe_xi)

        base = run()
        _require_determinism(ctx, base, run(), "sampler actions after the same updates")
        other_q = run(last_q_reward_shift=5.0)
        moved = float(np.abs(other_q - base).max())
        ctx.measure(f"max |Delta a| from a different last q_update ({tag})", moved)
        if not moved > 0:
            ctx.fail(f"changing only the rewards of the last q_update before policy_update left the sampler unchanged "
                     f"({tag}): eq. 13's driving term k grad Q must use the online Q at its current parameters (not "
                     "theta-bar, not a copy from before the last Q step)", moved, "> 0")
        synced = run(sync=True)
        ctx.close(f"sampler after policy_update with vs without a prior sync_target ({tag})", synced, base, 0.0,
                  "the target parameters theta-bar have no place in eq. 13: the policy update must use the online Q")
        other_fields = {**_batch(rng, B), "obs": pb["obs"]}
        replay = run(policy_batch=other_fields)
        ctx.close(f"sampler after policy_update on batches differing outside obs ({tag})", replay, base, 0.0,
                  "eq. 13-14 use only the states of the batch; the particles are the sampler's own actions f(xi; s), "
                  "not the replayed actions (and rewards, next states, terminal flags do not enter)")


@check("ALG1.policy_update_alphas")
def alg1_policy_update_alphas(ctx: Ctx) -> None:
    """eq. 13 alignment at both ends of the temperature range: the driving term k grad Q dominates the
    direction at small alpha, the repulsive term alpha grad k at large alpha, so each is tested alone."""
    from .check_svgd import own_bandwidth, own_direction

    p = ctx.params
    B, n, d = int(p["states"]), int(p["particles"]), ACT_DIM
    rng = ctx.rng()
    worst = math.inf
    for k, alpha in enumerate(float(a) for a in p["alphas"]):
        a_int, _ = _scales(ctx, alpha)
        agent = ctx.impl.raw("make_agent", OBS_DIM, d, alpha, 0.9, ctx.sub_seed(k))
        for _ in range(int(p["q_updates"])):
            ctx.impl.raw("q_update", agent, _batch(rng, 64))
        cos = []
        for _ in range(int(p["repetitions"])):
            obs = rng.normal(size=(B, OBS_DIM)).astype(np.float32)
            xi = rng.normal(size=(B, n, d)).astype(np.float32)
            a0 = _sampler_probe(ctx, agent, obs, xi)
            g = _fd_grad_q(ctx, agent, obs, a0.astype(np.float32))
            if ctx.conventions["squash_correction"] == "tanh_log_det":
                g = g + a_int * (-2 * a0 / (1 - a0**2 + 1e-6))
            want = own_direction(a0, a0, g, a_int, own_bandwidth(a0, a0, ctx.conventions["bandwidth_rule"]))
            pb = _batch(rng, B)
            pb["obs"] = _t(obs)
            ctx.impl.raw("policy_update", agent, pb)
            da = (_sampler_probe(ctx, agent, obs, xi) - a0).ravel()
            cos.append(float(da @ want.ravel() / (np.linalg.norm(da) * np.linalg.norm(want) + 1e-30)))
        c = float(np.mean(cos))
        ctx.measure(f"mean cosine(Delta a, eq. 13) at alpha={alpha}", round(c, 4))
        worst = min(worst, c)
        if not c >= p["min_alignment"]:
            from .hints import alignment_phrase

            dominant = "the driving term k grad Q" if alpha < 0.3 else "the repulsive term alpha grad k"
            ctx.fail(f"mean cosine between the particle change and the eq. 13 direction at alpha = {alpha} is {c:.3f} < "
                     f"{p['min_alignment']}: {alignment_phrase(c)}; at this temperature {dominant} dominates eq. 13, "
                     "so that term is the suspect", c, p["min_alignment"])
    ctx.measure("worst mean cosine", round(worst, 4))


def _fd_grad_q(ctx: Ctx, agent, obs: np.ndarray, a: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    """Central finite differences of the online Q at actions a (B, n, d)."""
    B, n, d = a.shape
    g = np.zeros_like(a)
    ob = _t(np.repeat(obs, n, 0))
    for k in range(d):
        e = np.zeros(d, np.float32)
        e[k] = eps
        q = [ctx.impl.call("q_values", agent, ob, _t((a + s * e).reshape(-1, d)), False,
                           returns=Arr((B * n,), "Q at the particles", dtype="float")) for s in (1, -1)]
        g[..., k] = ((q[0] - q[1]) / (2 * eps)).reshape(B, n)
    return g
