"""Stein variational gradient descent (paper eq. 13, Appendix C.1, D.1) as pure torch functions.

Particles are batched: x has shape (..., n, d), one particle set per leading index (per state).
Kernels return (k, grad_k) with k[..., j, i] = k(x_j, y_i) and grad_k[..., j, i, :] = grad_{x_j} k(x_j, y_i).

Eq. 13 places alpha on the repulsive term and leaves Q unscaled:
    Delta f(y_i) = mean_j [ k(x_j, y_i) grad_a Q(x_j) + alpha grad_{x_j} k(x_j, y_i) ]
which is alpha times the standard SVGD direction for log p = Q / alpha (same fixed points).
"""
from __future__ import annotations

import math
from enum import Enum
from typing import Callable

import numpy as np
import torch

__all__ = [
    "BandwidthRule",
    "pairwise_differences",
    "squared_norms",
    "pairwise_sq_dists",
    "median_bandwidth",
    "rbf_kernel",
    "rbf_kernel_from_differences",
    "linear_kernel",
    "svgd_direction",
    "run_particle_svgd",
]


class BandwidthRule(str, Enum):
    """How the RBF bandwidth h in k(x, y) = exp(-||x - y||^2 / h) is chosen from the particles.

    SQL_CODE:   h = max(med^2 / log(n_fixed), 1e-3), med^2 the (lower) median of squared distances
                (the authors' soft Q-learning code; the reference default).
    SVGD_PAPER: h = med^2 / log(n)                  (Liu & Wang 2016, the SVGD paper).
    SVGD_CODE:  h = med^2 / log(n + 1)              (what the SVGD reference code effectively uses).
    PAPER_D1:   h = med / (2 log(M + 1)), med the median *distance* (not squared), as written in
                Appendix D.1 of the soft Q-learning paper.
    """

    SQL_CODE = "sql_code"
    SVGD_PAPER = "svgd_paper"
    SVGD_CODE = "svgd_code"
    PAPER_D1 = "paper_d1"


BANDWIDTH_FLOOR = 1e-12  # for the rules that have no floor of their own (SQL_CODE has 1e-3)


def pairwise_differences(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x_j - y_i for x (..., n, d), y (..., m, d) -> (..., n, m, d)."""
    return x.unsqueeze(-2) - y.unsqueeze(-3)


def squared_norms(v: torch.Tensor) -> torch.Tensor:
    """||v||^2 over the last axis: (..., d) -> (...)."""
    return (v * v).sum(-1)


def pairwise_sq_dists(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||x_j - y_i||^2 for x (..., n, d), y (..., m, d) -> (..., n, m); exact differences, no cancellation."""
    return squared_norms(pairwise_differences(x, y))


def lower_median(x: torch.Tensor) -> torch.Tensor:
    """x.median(dim=-1).values (the lower median: sorted index (n - 1) // 2), the same element.

    On CPU, for NaN-free float tensors without gradient, numpy's introselect (np.partition) finds
    it ~6x faster than torch.median at the SVGD shapes (64 x 256: 75 us vs 460 us on one core).
    """
    if x.device.type == "cpu" and not x.requires_grad and x.dtype in (torch.float32, torch.float64) \
            and x.numel() > 0 and x.shape[-1] > 0:
        a = x.detach().numpy()
        if not np.isnan(a).any():  # torch.median propagates NaN; np.partition would sort it last
            k = (x.shape[-1] - 1) // 2
            return torch.from_numpy(np.ascontiguousarray(np.partition(a, k, axis=-1)[..., k]))
    return x.median(dim=-1).values


def median_bandwidth(sq_dists: torch.Tensor, rule: BandwidthRule | str, n: int) -> torch.Tensor:
    """Bandwidth per particle set from its squared-distance matrix (..., n_x, n_y) -> (...).

    `n` is the particle count the rule's log term refers to (n_fixed for SQL_CODE, M for PAPER_D1).
    The median is the lower median over all entries (as torch.median), a cheap O(n) selection.
    """
    rule = BandwidthRule(rule)
    if n < 2 and rule in (BandwidthRule.SQL_CODE, BandwidthRule.SVGD_PAPER):
        raise ValueError(f"bandwidth rule {rule.value} needs n >= 2 (it divides by log n), got n={n}")
    med_sq = lower_median(sq_dists.flatten(-2))
    if rule is BandwidthRule.SQL_CODE:
        return torch.clamp(med_sq / math.log(n), min=1e-3)
    if rule is BandwidthRule.SVGD_PAPER:
        h = med_sq / math.log(n)
    elif rule is BandwidthRule.SVGD_CODE:
        h = med_sq / math.log(n + 1)
    else:  # PAPER_D1
        h = med_sq.sqrt() / (2.0 * math.log(n + 1))
    # Coinciding particles (e.g. a fine-tuning noise set smaller than K) give h = 0 and 0/0 in the
    # kernel; the floor only acts in that degenerate case, where every kernel term is 0 or 1 anyway.
    return torch.clamp(h, min=BANDWIDTH_FLOOR)


def rbf_kernel(x: torch.Tensor, y: torch.Tensor, h: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """k = exp(-||x_j - y_i||^2 / h) and grad_{x_j} k = -2 (x_j - y_i) / h * k. h: scalar or (...)."""
    return rbf_kernel_from_differences(pairwise_differences(x, y), h)


def rbf_kernel_from_differences(
    diff: torch.Tensor, h: torch.Tensor | float, sq_dists: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """rbf_kernel from diff = pairwise_differences(x, y) and, if at hand, sq_dists = pairwise_sq_dists(x, y).

    The sampler update needs the differences for both the bandwidth and the kernel. Computing them
    once is the same arithmetic without the repeat (~0.15 ms of a 15 ms update on one core).
    """
    sq_dists = squared_norms(diff) if sq_dists is None else sq_dists
    h = torch.as_tensor(h, dtype=diff.dtype, device=diff.device)
    h = h.reshape(h.shape + (1, 1))
    k = torch.exp(-sq_dists / h)
    grad_k = -2.0 * diff / h.unsqueeze(-1) * k.unsqueeze(-1)
    return k, grad_k


def linear_kernel(x: torch.Tensor, y: torch.Tensor, h: object = None) -> tuple[torch.Tensor, torch.Tensor]:
    """k = 1 + x_j . y_i, grad_{x_j} k = y_i. SVGD with it matches first and second moments exactly."""
    k = 1.0 + x @ y.transpose(-1, -2)
    grad_k = y.unsqueeze(-3).expand(*x.shape[:-1], y.shape[-2], y.shape[-1])
    return k, grad_k


def svgd_direction(
    k: torch.Tensor, grad_k: torch.Tensor, grad_q: torch.Tensor, alpha: float
) -> torch.Tensor:
    """Eq. 13: Delta(y_i) = mean_j [k(x_j, y_i) grad Q(x_j) + alpha grad_{x_j} k(x_j, y_i)].

    k: (..., n, m), grad_k: (..., n, m, d), grad_q: (..., n, d) at the n kernel-source particles x_j
    -> (..., m, d) at the m moved particles y_i.
    """
    n = k.shape[-2]
    driving = k.transpose(-1, -2) @ grad_q  # (..., m, d)
    repulsive = grad_k.sum(-3)  # (..., m, d)
    return (driving + alpha * repulsive) / n


def run_particle_svgd(
    x0: torch.Tensor,
    grad_q: Callable[[torch.Tensor], torch.Tensor],
    alpha: float,
    steps: int,
    step_size: float,
    bandwidth: BandwidthRule | str | float = BandwidthRule.SVGD_PAPER,
    kernel: str = "rbf",
    optimizer: str = "adagrad",
) -> torch.Tensor:
    """Plain (non-amortized) SVGD on particles x (..., n, d) towards p proportional to exp(Q / alpha).

    bandwidth: a rule name (re-estimated each step from the particles) or a fixed float h.
    optimizer: "sgd" (x += step_size * direction) or "adagrad" (the SVGD reference code's
    AdaGrad with momentum 0.9 and fudge 1e-6).
    """
    if optimizer not in ("sgd", "adagrad"):
        raise ValueError(f"optimizer must be 'sgd' or 'adagrad', got {optimizer!r}")
    if kernel not in ("rbf", "linear"):
        raise ValueError(f"kernel must be 'rbf' or 'linear', got {kernel!r}")
    x = x0.detach().clone()
    n = x.shape[-2]
    hist = torch.zeros_like(x)
    for it in range(steps):
        if kernel == "linear":
            k, gk = linear_kernel(x, x)
        else:
            h = bandwidth if isinstance(bandwidth, (int, float)) else median_bandwidth(pairwise_sq_dists(x, x), bandwidth, n)
            k, gk = rbf_kernel(x, x, h)
        phi = svgd_direction(k, gk, grad_q(x), alpha)
        if optimizer == "sgd":
            x = x + step_size * phi
        else:
            hist = phi * phi if it == 0 else 0.9 * hist + 0.1 * phi * phi
            x = x + step_size * phi / (1e-6 + hist.sqrt())
    return x
