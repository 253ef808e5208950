"""Composing max-ent policies by adding soft Q-functions (authors' blog post; family E).

Continuous: a policy whose energy is the (weighted) sum of given soft Q-functions, with its
sampler trained by amortized SVGD on that sum. Tabular: the exact error of the composed
Q-function and its bound, for Q_sum = (Q1* + Q2*) / 2 against Q_C*, optimal for (r1 + r2) / 2.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from scipy.special import logsumexp

from .networks import SamplingNetwork
from .sampler import EnergyFn, train_sampler

__all__ = ["SummedEnergy", "composed_policy", "composition_bound", "composition_correction"]


class SummedEnergy:
    """E(s, a) = sum_i w_i Q_i(s, a); with w_i = 1/n it is the blog post's Q_sum."""

    def __init__(self, q_functions: Sequence[EnergyFn], weights: Sequence[float] | None = None):
        if not q_functions:
            raise ValueError("SummedEnergy needs at least one Q-function")
        self.q_functions = list(q_functions)
        self.weights = [1.0 / len(q_functions)] * len(q_functions) if weights is None else list(weights)
        if len(self.weights) != len(self.q_functions):
            raise ValueError(f"got {len(self.weights)} weights for {len(self.q_functions)} Q-functions")

    def __call__(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return sum(w * q(obs, actions) for w, q in zip(self.weights, self.q_functions))


def composed_policy(
    q_functions: Sequence[EnergyFn], obs_dim: int, act_dim: int, alpha: float, states: torch.Tensor,
    steps: int = 2000, weights: Sequence[float] | None = None, hidden_sizes: Sequence[int] = (200, 200),
    **svgd_kwargs,
) -> SamplingNetwork:
    """A fresh sampler trained by amortized SVGD on the summed energy over `states`."""
    sampler = SamplingNetwork(obs_dim, act_dim, hidden_sizes)
    train_sampler(sampler, SummedEnergy(q_functions, weights), states, alpha, steps, **svgd_kwargs)
    return sampler


def _renyi_half(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """D_{1/2}(p || q) = -2 log sum_a sqrt(p q), per state."""
    return -2.0 * np.log(np.sqrt(p * q).sum(-1))


def composition_bound(pi1: np.ndarray, pi2: np.ndarray, P: np.ndarray, gamma: float, alpha: float,
                      tol: float = 1e-12) -> np.ndarray:
    """C(s,a) = gamma sum_s' P [(alpha/2) D_1/2(pi1* || pi2*)(s') + max_a' C(s',a')]: Q_sum - C <= Q_C* <= Q_sum."""
    div = 0.5 * alpha * _renyi_half(pi1, pi2)
    C = np.zeros(P.shape[:2])
    while True:
        C_next = gamma * P @ (div + C.max(-1))
        if np.max(np.abs(C_next - C)) <= tol:
            return C_next
        C = C_next


def composition_correction(pi1: np.ndarray, pi2: np.ndarray, P: np.ndarray, gamma: float, alpha: float,
                           tol: float = 1e-12) -> np.ndarray:
    """Exact C_ex with Q_C* = Q_sum - C_ex: C_ex = -gamma P alpha log sum_a' sqrt(pi1 pi2) exp(-C_ex / alpha)."""
    log_geo = 0.5 * (np.log(pi1) + np.log(pi2))
    C = np.zeros(P.shape[:2])
    while True:
        C_next = -gamma * P @ (alpha * logsumexp(log_geo - C / alpha, axis=-1))
        if np.max(np.abs(C_next - C)) <= tol:
            return C_next
        C = C_next
