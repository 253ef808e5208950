"""Amortized SVGD (paper eq. 13-14, Appendix C.1): fit a sampling network to exp(E(s, a) / alpha).

`svgd_surrogate_loss` is the policy update of Algorithm 1 and is used unchanged by the agent;
`train_sampler` fits a sampler to any given energy, so a sampler can be checked on its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .networks import SamplingNetwork
from .svgd import (BandwidthRule, median_bandwidth, pairwise_differences, rbf_kernel_from_differences,
                   squared_norms, svgd_direction)

__all__ = ["EnergyFn", "squash_log_det", "svgd_surrogate_loss", "SVGDStats", "train_sampler"]

# energy(obs (B, o), actions (B, n, d)) -> (B, n); the target density is exp(energy / alpha).
EnergyFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def squash_log_det(actions: torch.Tensor) -> torch.Tensor:
    """sum_i log(1 - a_i^2 + 1e-6): the tanh correction the authors' code adds to log p."""
    return torch.log1p(-actions.pow(2) + 1e-6).sum(-1)


@dataclass
class SVGDStats:
    bandwidth: float
    direction_norm: float


def svgd_surrogate_loss(
    obs: torch.Tensor,
    actions: torch.Tensor,
    energy: EnergyFn,
    alpha: float,
    n_fixed: int,
    bandwidth_rule: BandwidthRule | str = BandwidthRule.SQL_CODE,
    squash_correction: str = "none",
) -> tuple[torch.Tensor, SVGDStats]:
    """Surrogate whose gradient in phi is minus eq. 14 with the empirical direction of eq. 13.

    actions (B, K, d) come from the sampler with gradient; the first n_fixed are the kernel
    sources x_j (stop-gradient), the rest are the particles y_i moved along Delta f. Leading axes
    before B (the seeds of softq_ref.vectorized) are kept: the loss is then one value per seed.
    """
    fixed = actions[..., :n_fixed, :].detach().requires_grad_(True)
    updated = actions[..., n_fixed:, :]
    # alpha * log p(x_j), whose gradient is grad Q (+ alpha * grad of the squash term)
    scaled_log_p = energy(obs, fixed)
    if squash_correction == "tanh_log_det":
        scaled_log_p = scaled_log_p + alpha * squash_log_det(fixed)
    elif squash_correction != "none":
        raise ValueError(f"squash_correction must be 'none' or 'tanh_log_det', got {squash_correction!r}")
    grad_q = torch.autograd.grad(scaled_log_p.sum(), fixed)[0]  # (B, n_fixed, d), no grad into Q params
    fixed, targets = fixed.detach(), updated.detach()
    diff = pairwise_differences(fixed, targets)
    sq_dists = squared_norms(diff)  # computed once for the bandwidth and the kernel
    h = median_bandwidth(sq_dists, bandwidth_rule, n_fixed)  # per state, D.1
    k, grad_k = rbf_kernel_from_differences(diff, h, sq_dists)
    direction = svgd_direction(k, grad_k, grad_q, alpha)  # eq. 13, (B, n_updated, d)
    # eq. 14: backpropagate Delta f through the updated actions; mean over states and particles (C.1)
    loss = -(direction.detach() * updated).sum(-1).mean((-2, -1))
    return loss, SVGDStats(float(h.mean()), float(direction.norm(dim=-1).mean()))


def train_sampler(
    sampler: SamplingNetwork,
    energy: EnergyFn,
    obs: torch.Tensor,
    alpha: float,
    steps: int,
    lr: float = 1e-3,
    n_particles: int = 32,
    fixed_fraction: float = 0.5,
    batch_size: int | None = None,
    bandwidth_rule: BandwidthRule | str = BandwidthRule.SQL_CODE,
    squash_correction: str = "none",
    generator: torch.Generator | None = None,
) -> list[float]:
    """Fit `sampler` to exp(energy(s, .) / alpha) on the states `obs` (N, o) by amortized SVGD.

    Returns the mean direction norm per step (it shrinks as the sampler approaches the target).
    """
    if n_particles < 2:
        raise ValueError(f"n_particles must be >= 2 (fixed and updated sets), got {n_particles}")
    n_fixed = max(1, int(round(n_particles * fixed_fraction)))
    if not 1 <= n_fixed < n_particles:
        raise ValueError(f"fixed_fraction={fixed_fraction} leaves no updated particles out of {n_particles}")
    opt = torch.optim.Adam(sampler.parameters(), lr=lr)
    norms = []
    for _ in range(steps):
        batch = obs
        if batch_size is not None and batch_size < len(obs):
            batch = obs[torch.randint(len(obs), (batch_size,), generator=generator)]
        actions = sampler(batch, n_particles, generator=generator)
        loss, stats = svgd_surrogate_loss(batch, actions, energy, alpha, n_fixed, bandwidth_rule, squash_correction)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        norms.append(stats.direction_norm)
    return norms
