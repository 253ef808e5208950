"""Tabular maximum-entropy RL in float64 numpy: the exact objects the paper's theorems talk about.

Shapes: rewards R[s, a], transitions P[s, a, s'] (rows sum to 1), Q[s, a], V[s], policy pi[s, a].
Conventions (paper eq. 15-16, Appendix A): Q^pi excludes the entropy of the current step,
V^pi includes it, and future entropies are discounted with the rewards.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

__all__ = [
    "soft_value",
    "boltzmann_policy",
    "policy_entropy",
    "soft_bellman_operator",
    "soft_q_iteration",
    "SoftQIterationResult",
    "soft_policy_evaluation",
    "soft_policy_improvement",
    "soft_policy_iteration",
    "sampled_soft_bellman_operator",
]


def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not np.isfinite(alpha) or alpha <= 0.0:
        raise ValueError(f"alpha must be a finite positive temperature, got {alpha!r}")
    return alpha


def _check_mdp(R: np.ndarray, P: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray, float]:
    R = np.asarray(R, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)
    if R.ndim != 2:
        raise ValueError(f"R must have shape (S, A), got {R.shape}")
    S, A = R.shape
    if P.shape != (S, A, S):
        raise ValueError(f"P must have shape (S, A, S) = {(S, A, S)}, got {P.shape}")
    if np.any(P < 0) or not np.allclose(P.sum(-1), 1.0, atol=1e-10):
        raise ValueError("P must be non-negative with rows P[s, a, :] summing to 1")
    gamma = float(gamma)
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma must lie in [0, 1) for a discounted MDP, got {gamma}")
    return R, P, gamma


def soft_value(Q: np.ndarray, alpha: float) -> np.ndarray:
    """V(s) = alpha * log sum_a exp(Q(s, a) / alpha)   (paper eq. 9, discrete actions)."""
    alpha = _check_alpha(alpha)
    return alpha * logsumexp(np.asarray(Q, dtype=np.float64) / alpha, axis=-1)


def boltzmann_policy(Q: np.ndarray, alpha: float) -> np.ndarray:
    """pi(a|s) = exp((Q(s, a) - V(s)) / alpha)   (Theorem 1, eq. 6)."""
    Q = np.asarray(Q, dtype=np.float64)
    return np.exp((Q - soft_value(Q, alpha)[..., None]) / alpha)


def policy_entropy(pi: np.ndarray) -> np.ndarray:
    """H(pi(.|s)) with 0 log 0 = 0."""
    pi = np.asarray(pi, dtype=np.float64)
    logs = np.log(np.where(pi > 0, pi, 1.0))
    return -(pi * logs).sum(-1)


def soft_bellman_operator(Q: np.ndarray, R: np.ndarray, P: np.ndarray, gamma: float, alpha: float) -> np.ndarray:
    """(T Q)(s, a) = r(s, a) + gamma * E_{s'}[V_Q(s')]   (Theorem 3, eq. 8-9)."""
    R, P, gamma = _check_mdp(R, P, gamma)
    return R + gamma * P @ soft_value(Q, alpha)


@dataclass(frozen=True)
class SoftQIterationResult:
    Q: np.ndarray
    V: np.ndarray
    policy: np.ndarray
    iterations: int
    last_step: float  # ||Q_k - Q_{k-1}||_inf
    error_bound: float  # a-posteriori bound on ||Q_k - Q*||_inf: gamma / (1 - gamma) * last_step


def soft_q_iteration(
    R: np.ndarray,
    P: np.ndarray,
    gamma: float,
    alpha: float,
    tol: float = 1e-10,
    max_iter: int = 100_000,
    Q0: np.ndarray | None = None,
) -> SoftQIterationResult:
    """Iterate Q <- T Q until the a-posteriori bound gamma/(1-gamma) ||Q_k - Q_{k-1}|| <= tol."""
    R, P, gamma = _check_mdp(R, P, gamma)
    alpha = _check_alpha(alpha)
    Q = np.zeros_like(R) if Q0 is None else np.array(Q0, dtype=np.float64)
    step, bound = np.inf, np.inf
    for k in range(1, max_iter + 1):
        Q_next = soft_bellman_operator(Q, R, P, gamma, alpha)
        step = float(np.max(np.abs(Q_next - Q)))
        Q = Q_next
        bound = gamma / (1.0 - gamma) * step if gamma > 0 else 0.0
        if bound <= tol:
            break
    else:
        raise RuntimeError(
            f"soft_q_iteration did not reach tol={tol} in max_iter={max_iter} iterations "
            f"(error bound {bound:.3e}); raise max_iter or loosen tol"
        )
    return SoftQIterationResult(Q, soft_value(Q, alpha), boltzmann_policy(Q, alpha), k, step, bound)


def soft_policy_evaluation(
    pi: np.ndarray, R: np.ndarray, P: np.ndarray, gamma: float, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Q^pi, V^pi) by one linear solve: V = (I - gamma P_pi)^-1 (r_pi + alpha H_pi), Q = r + gamma P V."""
    R, P, gamma = _check_mdp(R, P, gamma)
    alpha = _check_alpha(alpha)
    pi = np.asarray(pi, dtype=np.float64)
    if pi.shape != R.shape:
        raise ValueError(f"policy must have shape (S, A) = {R.shape}, got {pi.shape}")
    S = R.shape[0]
    P_pi = np.einsum("sa,sat->st", pi, P)
    r_pi = (pi * R).sum(-1) + alpha * policy_entropy(pi)
    V = np.linalg.solve(np.eye(S) - gamma * P_pi, r_pi)
    return R + gamma * P @ V, V


def soft_policy_improvement(Q_pi: np.ndarray, alpha: float) -> np.ndarray:
    """pi_new(.|s) proportional to exp(Q^pi(s, .) / alpha)   (Theorem 4, eq. 7)."""
    return boltzmann_policy(Q_pi, alpha)


def soft_policy_iteration(
    R: np.ndarray, P: np.ndarray, gamma: float, alpha: float, pi0: np.ndarray | None = None,
    tol: float = 1e-12, max_iter: int = 1000,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Alternate exact evaluation and improvement; returns (pi, Q^pi, iterations)."""
    R, P, gamma = _check_mdp(R, P, gamma)
    pi = np.full(R.shape, 1.0 / R.shape[1]) if pi0 is None else np.asarray(pi0, dtype=np.float64)
    for k in range(1, max_iter + 1):
        Q, _ = soft_policy_evaluation(pi, R, P, gamma, alpha)
        pi_new = soft_policy_improvement(Q, alpha)
        if np.max(np.abs(pi_new - pi)) <= tol:
            return pi_new, Q, k
        pi = pi_new
    return pi, soft_policy_evaluation(pi, R, P, gamma, alpha)[0], max_iter


def sampled_soft_bellman_operator(
    Q: np.ndarray, R: np.ndarray, P: np.ndarray, gamma: float, alpha: float, action_samples: np.ndarray
) -> np.ndarray:
    """Discrete analogue of eq. 10 with a uniform proposal over the A actions, for fixed draws.

    action_samples[s', j] are M action indices per next state; V_hat(s') = alpha (lse_j Q/alpha
    - log M) + alpha log A (the uniform proposal's -log q term).
    """
    R, P, gamma = _check_mdp(R, P, gamma)
    alpha = _check_alpha(alpha)
    Q = np.asarray(Q, dtype=np.float64)
    idx = np.asarray(action_samples)
    M = idx.shape[1]
    q = np.take_along_axis(Q, idx, axis=1) / alpha
    V_hat = alpha * (logsumexp(q, axis=1) - np.log(M) + np.log(Q.shape[1]))
    return R + gamma * P @ V_hat
