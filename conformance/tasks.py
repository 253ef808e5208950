"""Small tasks with known max-ent optima for the black-box (trainer) specs."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import gymnasium as gym
import numpy as np

__all__ = ["Task", "BimodalBandit", "bandit_reward", "bandit_task", "multigoal_task"]


def bandit_reward(a: np.ndarray) -> np.ndarray:
    """Two bumps of unequal height on [-1, 1]: modes near -0.5 (height 1.0) and +0.5 (height 1.4)."""
    a = np.asarray(a, dtype=np.float64)
    return 1.0 * np.exp(-((a + 0.5) ** 2) / (2 * 0.15**2)) + 1.4 * np.exp(-((a - 0.5) ** 2) / (2 * 0.15**2))


class BimodalBandit(gym.Env):
    """One-step continuous bandit: obs = [0], action a in [-1, 1], reward bandit_reward(a), then terminated."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        a = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -1.0, 1.0))
        return np.zeros(1, np.float32), float(bandit_reward(a)), True, False, {}


@dataclass
class Task:
    """What a trainer gets: a name, an env factory, dimensions, the discount and a suggested budget."""

    name: str
    make_env: Callable[[], gym.Env]
    obs_dim: int
    act_dim: int
    gamma: float
    horizon: int
    notes: dict[str, Any] = field(default_factory=dict)


def bandit_task() -> Task:
    return Task("bimodal_bandit", BimodalBandit, 1, 1, gamma=0.0, horizon=1,
                notes={"optimum": "exp(r(a)/alpha)/Z on [-1, 1]"})


def multigoal_task() -> Task:
    import softq_ref.envs  # noqa: F401  (registers SoftQ/MultiGoal-v0)

    def make() -> gym.Env:
        return gym.make("SoftQ/MultiGoal-v0")

    env = make()
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    horizon = env.spec.max_episode_steps if env.spec is not None else 20
    env.close()
    return Task("multigoal", make, obs_dim, act_dim, gamma=0.99, horizon=int(horizon or 20),
                notes={"goals": 4})


def optimum_cell_masses(alpha: float, edges: np.ndarray, squash: str = "none", grid: int = 200_001) -> np.ndarray:
    """Masses of exp(r/alpha)/Z (x (1 - a^2) under tanh_log_det) on the cells between edges."""
    a = np.linspace(-1.0, 1.0, grid)
    logp = bandit_reward(a) / alpha
    if squash == "tanh_log_det":
        logp = logp + np.log1p(-a**2 + 1e-6)
    p = np.exp(logp - logp.max())
    cdf = np.concatenate([[0.0], np.cumsum((p[1:] + p[:-1]) / 2 * np.diff(a))])
    cdf /= cdf[-1]
    return np.diff(np.interp(edges, a, cdf))
