"""The didactic multi-goal task of section 5.1 (Figure 1), as in the authors' public code.

    s_0  ~ N(0, init_sigma^2 I)                                 (later code: init_sigma = 0.1)
    s'   = clip(s + clip(a, -1, 1), -7, 7)                      point mass, no dynamics noise
    r    = -(30 ||a||^2 + 1 * min_g ||s' - g||^2)               cost on the clipped action and the next state
         + 10, and the episode terminates, if min_g ||s' - g|| < 1
    goals g in {(5, 0), (-5, 0), (0, 5), (0, -5)}; horizon T = 20 (paper D.2) via the registered TimeLimit.

The diagnostic of the paper is how many of the four goals the learned policy reaches (`goals_reached`):
a maximum-entropy policy should reach all four, DDPG commits to one.
"""
from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["MultiGoalEnv", "GOALS", "goals_reached"]

GOALS = np.array([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0], [0.0, -5.0]])
BOUND = 7.0  # state box [-7, 7]^2 (authors' xlim / ylim)


class MultiGoalEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, init_sigma: float = 0.1, action_cost_coeff: float = 30.0,
                 distance_cost_coeff: float = 1.0, goal_reward: float = 10.0, goal_threshold: float = 1.0):
        if init_sigma < 0:
            raise ValueError(f"MultiGoalEnv init_sigma must be >= 0 (std of the start state), got {init_sigma}")
        self.init_sigma = float(init_sigma)
        self.action_cost_coeff = action_cost_coeff
        self.distance_cost_coeff = distance_cost_coeff
        self.goal_reward = goal_reward
        self.goal_threshold = goal_threshold
        self.observation_space = spaces.Box(-BOUND, BOUND, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.position = np.zeros(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        start = self.init_sigma * self.np_random.standard_normal(2)  # s_0 ~ N(0, sigma^2 I)
        self.position = np.clip(start, -BOUND, BOUND)
        return self._obs(), self._info(-1)

    def step(self, action):
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        self.position = np.clip(self.position + a, -BOUND, BOUND)  # s' = clip(s + a, -7, 7)
        dists = np.linalg.norm(GOALS - self.position, axis=1)
        # Reward on the next state, with the clipped action (the authors' compute_reward).
        reward = -(self.action_cost_coeff * np.sum(a ** 2) + self.distance_cost_coeff * np.min(dists) ** 2)
        terminated = bool(np.min(dists) < self.goal_threshold)
        if terminated:
            reward += self.goal_reward
        goal = int(np.argmin(dists)) if terminated else -1
        return self._obs(), float(reward), terminated, False, self._info(goal)

    def _obs(self) -> np.ndarray:
        return self.position.astype(np.float32)

    def _info(self, goal_index: int) -> dict:
        return {"goal_index": goal_index, "position": self.position.copy()}


def goals_reached(policy_fn: Callable[[np.ndarray], np.ndarray], n_episodes: int = 20, seed: int = 0,
                  max_episode_steps: int = 20, init_sigma: float = 0.1) -> tuple[int, list[int]]:
    """Roll `policy_fn(obs) -> action` out from the start n_episodes times (horizon 20, D.2).

    Returns (number of distinct goals reached, per-goal episode counts in GOALS order).
    Episode i is reset with seed + i, so the metric is reproducible for a reproducible policy.
    """
    if n_episodes < 1:
        raise ValueError(f"goals_reached needs n_episodes >= 1, got {n_episodes}")
    env = MultiGoalEnv(init_sigma=init_sigma)
    counts = [0] * len(GOALS)
    for i in range(n_episodes):
        obs, _ = env.reset(seed=seed + i)
        for _ in range(max_episode_steps):
            obs, _, terminated, _, info = env.step(policy_fn(obs))
            if terminated:
                counts[info["goal_index"]] += 1
                break
    return sum(c > 0 for c in counts), counts
