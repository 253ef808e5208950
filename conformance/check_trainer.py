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
from .tasks import Task

# Action regions of the one-state task, each of width 2/3. The terminating region sits in the middle so
# that the truncating and the continuing region are mirror images (a -> -a): a network's smoothing of
# the Q step at the region borders then costs both the same mass.
TRUNCATE, TERMINATE, CONTINUE = (-1.0, -1 / 3), (-1 / 3, 1 / 3), (1 / 3, 1.0)


class TerminateTruncateContinue(gym.Env):
    """One state s0 (obs [0]); a in [-1, 1]:

    a < -1/3:         reward 0, back to s0, truncated (a time limit cut the episode: bootstrap)
    -1/3 <= a < 1/3:  reward `terminal_reward`, terminated (the MDP ends: no bootstrap)
    a >= 1/3:         reward 0, back to s0, the episode goes on
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
        if TERMINATE[0] <= a < TERMINATE[1]:
            return obs, self.terminal_reward, True, False, {}
        return obs, 0.0, False, a < TRUNCATE[1], {}


def truncation_optimum(alpha: float, gamma: float, terminal_reward: float) -> dict[str, float]:
    """Region masses of the max-ent optimum (Q: terminal_reward, gamma V, gamma V), by fixed-point iteration."""
    width = 2 / 3
    v = 0.0
    for _ in range(10_000):  # V = alpha log(width (exp(r_T / alpha) + 2 exp(gamma V / alpha))), a gamma-contraction
        v_new = alpha * math.log(width * (math.exp(terminal_reward / alpha) + 2 * math.exp(gamma * v / alpha)))
        if abs(v_new - v) < 1e-13:
            break
        v = v_new
    e_t, e_b = math.exp(terminal_reward / alpha), math.exp(gamma * v / alpha)
    return {"terminate": e_t / (e_t + 2 * e_b), "truncate": e_b / (e_t + 2 * e_b), "continue": e_b / (e_t + 2 * e_b),
            "V": v}


def truncation_task(terminal_reward: float, gamma: float) -> Task:
    return Task("terminate_truncate_continue", lambda: TerminateTruncateContinue(terminal_reward), 1, 1, gamma=gamma,
                horizon=20, notes={"regions": "truncate a < -1/3, terminate -1/3 <= a < 1/3, continue a >= 1/3"})


@check("ALG1.truncation_bootstrap")
def alg1_truncation_bootstrap(ctx: Ctx) -> None:
    p = ctx.params
    alpha, gamma, r_t = float(p["alpha"]), float(p["gamma"]), float(p["terminal_reward"])
    task = truncation_task(r_t, gamma)
    policy = ctx.impl.raw("train", task, int(p["train_steps"]), alpha, ctx.sub_seed())
    N = int(p["samples"])
    a = ctx.impl.call("sample_policy", policy, np.zeros((1, 1), np.float32), N,
                      returns=Arr((1, N, 1), "N actions for the one state", dtype="float"))[0, :, 0]
    a = np.clip(a, -1.0, 1.0)
    share = {"terminate": float(((a >= TERMINATE[0]) & (a < TERMINATE[1])).mean()),
             "truncate": float((a < TRUNCATE[1]).mean()), "continue": float((a >= CONTINUE[0]).mean())}
    opt = truncation_optimum(alpha, gamma, r_t)
    ctx.measure("sampled region masses (terminate, truncate, continue)", [round(share[k], 4) for k in share])
    ctx.measure("optimum region masses", [round(opt[k], 4) for k in share])
    z = ctx.z(2, two_sided=False)
    eps = float(p["eps"])
    # Truncated and continuing steps have the same soft Q: equal mass, up to eps (approximation) and noise.
    pu, pc = share["truncate"], share["continue"]
    se = math.sqrt(max(pu + pc - (pu - pc) ** 2, 1e-12) / N)  # SE of a difference of two multinomial cells
    ctx.le("mass(continue) - mass(truncate)", pc - pu, eps + z * se,
           f"a truncated step (time limit) must be bootstrapped like a continuing one: optimum masses "
           f"{opt['truncate']:.3f} / {opt['continue']:.3f}; storing truncation as terminal drops gamma V(s') from "
           "its target and starves the truncating actions")
    pt = share["terminate"]
    ctx.le("mass(terminate) - optimum", pt - opt["terminate"], eps + z * math.sqrt(opt["terminate"] * (1 - opt["terminate"]) / N),
           f"a terminal step has no next-state value: optimum mass {opt['terminate']:.3f}; bootstrapping through "
           f"termination gives it ~{math.exp(r_t / alpha) / (math.exp(r_t / alpha) + 2):.3f}")
