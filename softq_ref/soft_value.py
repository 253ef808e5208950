"""The soft value estimator of paper eq. 10 (importance sampling), as pure torch functions.

    V(s) = alpha * log E_{a ~ q}[ exp(Q(s, a) / alpha) / q(a) ]                    (eq. 10)
    V_hat(s) = alpha * ( logsumexp_j [Q(s, a_j)/alpha - log q(a_j)] - log M )      (M draws)

With the uniform proposal on the box [-1, 1]^d, -log q = d log 2 is a constant, giving the
authors' code form alpha * (lse_j Q/alpha - log M) + alpha * d * log 2.
"""
from __future__ import annotations

import math

import torch

__all__ = [
    "soft_value_importance_sampling",
    "soft_value_uniform_box",
    "uniform_box_log_density",
    "sample_uniform_box",
]


def _check_alpha(alpha: float) -> None:
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a finite positive temperature, got {alpha!r}")


def soft_value_importance_sampling(
    q_values: torch.Tensor, log_proposal: torch.Tensor, alpha: float
) -> torch.Tensor:
    """Eq. 10 with an arbitrary proposal. q_values, log_proposal: (..., M) -> (...)."""
    _check_alpha(alpha)
    if q_values.shape != log_proposal.shape:
        raise ValueError(
            f"q_values {tuple(q_values.shape)} and log_proposal {tuple(log_proposal.shape)} must match"
        )
    M = q_values.shape[-1]
    return alpha * (torch.logsumexp(q_values / alpha - log_proposal, dim=-1) - math.log(M))


def uniform_box_log_density(action_dim: int) -> float:
    """log q(a) of the uniform distribution on [-1, 1]^d."""
    return -action_dim * math.log(2.0)


def soft_value_uniform_box(q_values: torch.Tensor, alpha: float, action_dim: int) -> torch.Tensor:
    """Eq. 10 with q = Uniform([-1, 1]^d): alpha (lse_j Q_j/alpha - log M) + alpha d log 2."""
    _check_alpha(alpha)
    M = q_values.shape[-1]
    return alpha * (torch.logsumexp(q_values / alpha, dim=-1) - math.log(M)) + alpha * action_dim * math.log(2.0)


def sample_uniform_box(
    shape: tuple[int, ...], action_dim: int, generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32, device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draws of shape (*shape, action_dim) from Uniform([-1, 1]^d)."""
    u = torch.rand(*shape, action_dim, generator=generator, dtype=dtype, device=device)
    return 2.0 * u - 1.0
