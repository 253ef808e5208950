"""The checks' own float64 ground truth (independent of any implementation under test)."""
from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

__all__ = ["logsumexp", "V", "boltzmann", "entropy", "kl", "policy_evaluation", "resolvent_apply", "value_iteration"]

from .adapter import Arr


def V(Q: np.ndarray, alpha: float) -> np.ndarray:
    return alpha * logsumexp(Q / alpha, axis=-1)


def boltzmann(Q: np.ndarray, alpha: float) -> np.ndarray:
    return np.exp((Q - V(Q, alpha)[..., None]) / alpha)


def entropy(pi: np.ndarray) -> np.ndarray:
    return -(pi * np.log(np.where(pi > 0, pi, 1.0))).sum(-1)


def kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    lp = np.log(np.where(p > 0, p, 1.0))
    lq = np.log(np.where(p > 0, q, 1.0))
    return (p * (lp - lq)).sum(-1)


def policy_evaluation(pi, R, P, gamma, alpha):
    S = R.shape[0]
    P_pi = np.einsum("sa,sat->st", pi, P)
    Vpi = np.linalg.solve(np.eye(S) - gamma * P_pi, (pi * R).sum(-1) + alpha * entropy(pi))
    return R + gamma * P @ Vpi, Vpi


def resolvent_apply(pi, P, gamma, x):
    """(I - gamma P_pi)^-1 x."""
    S = P.shape[0]
    return np.linalg.solve(np.eye(S) - gamma * np.einsum("sa,sat->st", pi, P), x)


def value_iteration(R, P, gamma, alpha=None, tol=1e-12, max_iter=200_000):
    """Soft (alpha) or hard (alpha None) optimal Q by iteration to the a-posteriori bound tol."""
    Q = np.zeros_like(R)
    for _ in range(max_iter):
        v = Q.max(-1) if alpha is None else V(Q, alpha)
        Qn = R + gamma * P @ v
        step = np.max(np.abs(Qn - Q))
        Q = Qn
        if gamma == 0 or gamma / (1 - gamma) * step <= tol:
            return Q
    raise RuntimeError("value iteration did not converge")


# Expected returns of the tabular methods.
def q_arr(mdp, what="a Q-function, one value per (state, action)"):
    return Arr((mdp.S, mdp.A), what)


def v_arr(S, what="one soft value per state"):
    return Arr((S,), what)
