"""Trainer-level specs (specs/trainer.toml): what an implementation's own training loop gets wrong.

The white-box specs hand the agent ready-made batches; here the implementation collects its own
transitions from a gymnasium env through `train`, so its replay and done handling are under test.
"""
from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from .adapter import Arr
from .registry import Ctx, check
from .trained import first_passing_run, run_stream
from .tasks import Task

# Action regions of the one-state task: terminate |a| >= 1/2, truncate [-1/2, 0), continue [0, 1/2).
# Truncating and continuing actions are adjacent mirror images (a -> -a), so the optimal policy is one
# mode centred at 0 and a network's smoothing at the borders costs both the same mass. (Two separate
# modes would not do: SVGD's mode weights scatter by +-0.2 after a short training, see C5.)
TERMINATE_ABOVE = 0.5
TRUNCATE, CONTINUE = (-0.5, 0.0), (0.0, 0.5)


class TerminateTruncateContinue(gym.Env):
    """One state s0 (obs [0]); a in [-1, 1]:

    |a| >= 1/2:       reward `terminal_reward`, terminated (the MDP ends: no bootstrap)
    -1/2 <= a < 0:    reward 0, back to s0, truncated (a time limit cut the episode: bootstrap)
    0 <= a < 1/2:     reward 0, back to s0, the episode goes on
    A truncated step and a continuing one lead to the same state with the same reward, so they have
    the same soft Q and the optimal policy puts equal mass on the two regions.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, terminal_reward: float) -> None:
        self.terminal_reward = terminal_reward
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        a = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -1.0, 1.0))
        obs = np.zeros(1, np.float32)
        if abs(a) >= TERMINATE_ABOVE:
            return obs, self.terminal_reward, True, False, {}
        return obs, 0.0, False, a < TRUNCATE[1], {}


def truncation_optimum(alpha: float, gamma: float, terminal_reward: float) -> dict[str, float]:
    """Region masses of the max-ent optimum (Q: terminal_reward on width 1, gamma V on two halves of width 1/2)."""
    v = 0.0
    for _ in range(10_000):  # V = alpha log(exp(r_T / alpha) + exp(gamma V / alpha)), a gamma-contraction
        v_new = alpha * math.log(math.exp(terminal_reward / alpha) + math.exp(gamma * v / alpha))
        if abs(v_new - v) < 1e-13:
            break
        v = v_new
    e_t, e_b = math.exp(terminal_reward / alpha), math.exp(gamma * v / alpha)
    return {"terminate": e_t / (e_t + e_b), "truncate": 0.5 * e_b / (e_t + e_b), "continue": 0.5 * e_b / (e_t + e_b),
            "V": v}


def truncation_task(terminal_reward: float, gamma: float) -> Task:
    return Task("terminate_truncate_continue", lambda: TerminateTruncateContinue(terminal_reward), 1, 1, gamma=gamma,
                horizon=20, notes={"regions": "terminate |a| >= 1/2, truncate -1/2 <= a < 0, continue 0 <= a < 1/2"})


@check("ALG1.truncation_bootstrap")
def alg1_truncation_bootstrap(ctx: Ctx) -> None:
    first_passing_run(ctx, lambda run: _truncation_run(ctx, run))


def _truncation_run(ctx: Ctx, run: int) -> None:
    p = ctx.params
    alpha, gamma, r_t = float(p["alpha"]), float(p["gamma"]), float(p["terminal_reward"])
    task = truncation_task(r_t, gamma)
    policy = ctx.impl.raw("train", task, int(p["train_steps"]), alpha, ctx.sub_seed(run_stream(run)))
    N = int(p["samples"])
    a = ctx.impl.call("sample_policy", policy, np.zeros((1, 1), np.float32), N,
                      returns=Arr((1, N, 1), "N actions for the one state", dtype="float"))[0, :, 0]
    a = np.clip(a, -1.0, 1.0)
    share = {"terminate": float((np.abs(a) >= TERMINATE_ABOVE).mean()),
             "truncate": float(((a >= TRUNCATE[0]) & (a < TRUNCATE[1])).mean()),
             "continue": float(((a >= CONTINUE[0]) & (a < CONTINUE[1])).mean())}
    opt = truncation_optimum(alpha, gamma, r_t)
    ctx.measure("sampled region masses (terminate, truncate, continue)", [round(share[k], 4) for k in share])
    ctx.measure("optimum region masses", [round(opt[k], 4) for k in share])
    z = ctx.z(3, two_sided=False)  # two one-sided bounds on the truncate/continue gap, one on the terminating mass
    eps_gap, eps_term = float(p["eps_gap"]), float(p["eps_terminate"])
    # Truncated and continuing steps have the same soft Q: equal mass, up to eps (approximation) and noise.
    pu, pc = share["truncate"], share["continue"]
    se = math.sqrt(max(pu + pc - (pu - pc) ** 2, 1e-12) / N)  # SE of a difference of two multinomial cells
    ctx.le("mass(continue) - mass(truncate)", pc - pu, eps_gap + z * se,
           f"a truncated step (time limit) must be bootstrapped like a continuing one: optimum masses "
           f"{opt['truncate']:.3f} / {opt['continue']:.3f}; storing truncation as terminal drops gamma V(s') from "
           "its target and starves the truncating actions")
    ctx.le("mass(truncate) - mass(continue)", pu - pc, eps_gap + z * se,
           "truncating and continuing actions lead to the same state with the same reward: a policy that prefers "
           "the truncating ones does not follow the soft Q")
    pt = share["terminate"]
    ctx.le("mass(terminate) - optimum", pt - opt["terminate"], eps_term + z * math.sqrt(opt["terminate"] * (1 - opt["terminate"]) / N),
           f"a terminal step has no next-state value: optimum mass {opt['terminate']:.3f}; bootstrapping through "
           f"termination gives it ~{math.exp(r_t / alpha) / (math.exp(r_t / alpha) + 1):.3f}")


@check("ALG1.trainer_contract")
def alg1_trainer_contract(ctx: Ctx) -> None:
    p = ctx.params
    task = truncation_task(0.5, 0.9)
    policy = ctx.impl.raw("train", task, int(p["train_steps"]), 0.5, ctx.sub_seed())
    B, n = int(p["states"]), int(p["samples"])
    obs = np.zeros((B, task.obs_dim), np.float32)
    draws = [ctx.impl.call("sample_policy", policy, obs, n, returns=Arr((B, n, task.act_dim), "n actions per state",
                                                                         dtype="float")) for _ in range(2)]
    worst = max(float(np.abs(x).max()) for x in draws)
    ctx.le("max |a| over two calls of sample_policy", worst, 1.0 + 1e-6, "actions must lie in [-1, 1]^d")

    def repeats(x: np.ndarray) -> int:
        x = x.reshape(-1, x.shape[-1])
        x = x[np.all(np.abs(x) < 1 - 1e-6, axis=1)]
        return int(len(x) - len(np.unique(x, axis=0)))

    within = sum(repeats(x[b]) for x in draws for b in range(B))
    across = sum(repeats(np.stack([draws[0][b], draws[1][b]])) for b in range(B)) - within
    ctx.measure("repeated actions (within a call, across calls)", [within, across])
    ctx.le("actions repeated within one call of sample_policy (per state)", within, 0,
           "each of the n actions needs its own noise draw (a stochastic policy, iid)")
    ctx.le("actions of one call of sample_policy repeated in the other", across, 0,
           "every call must draw fresh noise; repeats across calls mean the noise is re-seeded or reused")


# -- n-step returns (ALG1.nstep_discount) ---------------------------------------------------------------------
NSTEP_REWARDS = (1.0, -0.5, 2.0, 0.25, -1.0, 3.0, 0.5, 1.5, -2.0, 0.75, 1.25, -0.25)  # the chain's known rewards


def declared_n_step(ctx: Ctx) -> int:
    text = str(ctx.conventions.get("n_step", "1")).strip()
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"conventions['n_step'] = {text!r}: expected a positive integer string such as '1' or '3'")
    return int(text)


def nstep_windows(horizon: int, n: int) -> dict[str, np.ndarray]:
    """N-step windows of one episode of the chain s_0 -> s_1 -> ... -> s_T (terminated at step T = horizon).

    obs s_t = [t / T, 1 - t / T]; window t: rewards r_t..r_(t+n-1) (0 after the termination), next_obs
    s_min(t+n, T), terminated = t + n >= T."""
    r = np.array(NSTEP_REWARDS[:horizon], np.float64)
    obs = np.array([[t / horizon, 1 - t / horizon] for t in range(horizon + 1)], np.float32)
    rew = np.zeros((horizon, n))
    for t in range(horizon):
        k = min(n, horizon - t)
        rew[t, :k] = r[t:t + k]
    ends = np.minimum(np.arange(horizon) + n, horizon)
    return {"obs": obs[:horizon], "rewards": rew, "next_obs": obs[ends],
            "terminated": (np.arange(horizon) + n >= horizon).astype(np.float32)}


def _nstep_batch(w: dict[str, np.ndarray], rows: np.ndarray, reward: np.ndarray) -> dict:
    import torch

    t = lambda x: torch.as_tensor(np.asarray(x, dtype=np.float32))  # noqa: E731
    B = len(rows)
    return {"obs": t(w["obs"][rows]), "action": t(np.zeros((B, 1))), "reward": t(reward),
            "next_obs": t(w["next_obs"][rows]), "terminated": t(w["terminated"][rows])}


@check("ALG1.nstep_discount")
def alg1_nstep_discount(ctx: Ctx) -> None:
    from .registry import NotApplicable

    n = declared_n_step(ctx)
    if n < 2:
        raise NotApplicable(f"{ctx.impl.name} declares one-step TD targets (n_step = {n}; the reference has no n-step "
                            "returns): this spec checks the gamma^n discount of implementations that declare n_step = N "
                            ">= 2")
    p = ctx.params
    alpha, T = float(p["alpha"]), int(p["horizon"])
    g1, g2 = (float(g) for g in p["gammas"])
    scale = ctx.units(alpha).q_scale
    w = nstep_windows(T, n)
    ctx.measure("n_step", n)
    seed = ctx.sub_seed()
    rows = np.arange(T)
    B = len(rows)

    def y(agent, batch):
        return ctx.impl.call("td_target", agent, batch, returns=Arr((B,), "one TD target per window", dtype="float"))

    def fresh(gamma):
        return ctx.impl.raw("make_agent", 2, 1, alpha, gamma, seed)

    def discounted(gamma):
        return (w["rewards"] * gamma ** np.arange(n)).sum(1)

    batch = _nstep_batch(w, rows, w["rewards"])
    y1, y1_again, y2 = y(fresh(g1), batch), y(fresh(g1), batch), y(fresh(g2), batch)
    gap = float(np.abs(y1 - y1_again).max())
    if gap > 0:
        raise NotApplicable(f"two agents from make_agent with the same seed gave different TD targets for the same "
                            f"batch (max difference {gap:.3g}); this spec compares identically seeded agents and needs "
                            "make_agent to be deterministic given its seed")
    tol = 1e-5 * (1.0 + float(max(np.abs(y1).max(), np.abs(y2).max())))
    term = w["terminated"] > 0
    R1, R2 = discounted(g1), discounted(g2)
    ctx.measure("known discounted reward sums (gamma 0.9)", np.round(R1, 6))
    ctx.close(f"y of windows that reach the termination vs reward_scale sum_k gamma^k r_(t+k) (n = {n}, gamma {g1})",
              y1[term], scale * R1[term], tol,
              "a window ending in a termination has no bootstrap term; its rewards are discounted by gamma^k, k = 0.."
              f"{n - 1} (an undiscounted sum, or a sum over fewer / more than the window, fails)")
    live = ~term
    b1, b2 = y1[live] - scale * R1[live], y2[live] - scale * R2[live]
    v1, v2 = b1 / g1**n, b2 / g2**n
    ratio = b1 / np.where(b2 == 0, np.nan, b2)
    with np.errstate(invalid="ignore", divide="ignore"):
        k_est = np.log(ratio) / math.log(g1 / g2)
    k_med = float(np.nanmedian(k_est)) if np.any(np.isfinite(k_est)) else float("nan")
    ctx.measure("exponent k of gamma^k on the bootstrap term (estimated)", round(k_med, 4))
    ctx.close(f"V_hat = (y - scale sum_k gamma^k r) / gamma^{n} at gamma {g2} vs {g1}", v2, v1, tol / g2**n,
              f"the bootstrap term of a {n}-step target is gamma^{n} (1 - terminated) V_hat(s_(t+{n})); the targets at "
              f"gamma {g1} and {g2} imply gamma^k with k = {k_med:.3g} (k = 1: the one-step discount gamma was kept "
              f"for the n-step bootstrap; use gamma ** n)")
    one = {**_nstep_batch(w, rows, w["rewards"][:, 0]), "terminated": _nstep_batch(w, rows, w["rewards"])["terminated"] * 0}
    y_one = y(fresh(g1), one)  # same rows, same call order: the same proposal draws as y1
    v_one = ((y_one - scale * w["rewards"][:, 0]) / g1)[live]
    ctx.close(f"V_hat(s') of the {n}-step target vs of a one-step target with the same next_obs (gamma {g1})", v1, v_one,
              tol / g1**n, "both targets bootstrap from the same eq. 10 value V_hat(next_obs); only the discount "
              f"(gamma^{n} vs gamma) and the reward sum differ")
