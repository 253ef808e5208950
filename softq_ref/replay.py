"""Replay memory D of Algorithm 1 (shared by SQL and DDPG)."""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["ReplayBuffer"]


class ReplayBuffer:
    """Fixed-size FIFO of (s, a, r, s', terminated). Truncation by a time limit is not stored as terminal."""

    def __init__(self, obs_dim: int, act_dim: int, capacity: int):
        if capacity < 1:
            raise ValueError(f"ReplayBuffer capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.action = np.zeros((capacity, act_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.terminated = np.zeros(capacity, np.float32)
        self.size = 0
        self.cursor = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs, action, reward, next_obs, terminated) -> None:
        i = self.cursor
        self.obs[i], self.action[i], self.reward[i] = obs, action, reward
        self.next_obs[i], self.terminated[i] = next_obs, float(terminated)
        self.cursor = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        if batch_size > self.size:
            raise ValueError(f"cannot sample batch_size={batch_size} from a replay buffer holding {self.size}")
        idx = rng.integers(0, self.size, size=batch_size)
        return {k: torch.from_numpy(getattr(self, k)[idx]) for k in ("obs", "action", "reward", "next_obs", "terminated")}

    def state_dict(self) -> dict:
        n = self.size
        return {"capacity": self.capacity, "size": n, "cursor": self.cursor,
                **{k: getattr(self, k)[:n].copy() for k in ("obs", "action", "reward", "next_obs", "terminated")}}

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"checkpoint replay capacity {state['capacity']} != configured {self.capacity}")
        n = self.size = state["size"]
        self.cursor = state["cursor"]
        for k in ("obs", "action", "reward", "next_obs", "terminated"):
            getattr(self, k)[:n] = state[k]
