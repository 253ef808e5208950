"""Ornstein-Uhlenbeck exploration noise (D.1: theta 0.15, sigma 0.3), as in rllab/DDPG."""
from __future__ import annotations

import numpy as np

__all__ = ["OUNoise"]


class OUNoise:
    """x <- x + theta (mu - x) + sigma N(0, I), reset to mu at each episode start."""

    def __init__(self, dim: int, theta: float = 0.15, sigma: float = 0.3, mu: float = 0.0):
        self.dim, self.theta, self.sigma, self.mu = dim, theta, sigma, mu
        self.state = np.full(dim, mu, dtype=np.float64)

    def reset(self) -> None:
        self.state[:] = self.mu

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        self.state += self.theta * (self.mu - self.state) + self.sigma * rng.standard_normal(self.dim)
        return self.state.copy()
