"""Family B: the eq. 10 estimator against closed-form integrals (float64)."""
import math

import numpy as np
import pytest
import torch
from scipy.special import log_ndtr

from softq_ref.soft_value import (sample_uniform_box, soft_value_importance_sampling, soft_value_uniform_box,
                                  uniform_box_log_density)

# Monte Carlo assertions: z = 5 per assertion (two-sided false-alarm ~5.7e-7), fixed seeds.
Z = 5.0


def test_constant_q_is_exact_for_every_sample_count():
    for M in (1, 2, 7, 50):
        q = torch.full((3, M), 1.7, dtype=torch.float64)
        v = soft_value_uniform_box(q, alpha=0.3, action_dim=2)
        # integral of exp(c/alpha) over [-1,1]^2 is 4 exp(c/alpha)
        np.testing.assert_allclose(v.numpy(), 1.7 + 0.3 * math.log(4.0), rtol=0, atol=1e-14)


def test_proposal_equal_to_target_is_exact():
    """q = pi_Q makes every importance weight Z: V_hat = V for any draws."""
    alpha, mu, var = 0.5, 0.3, 0.2
    a = torch.randn(4, 9, dtype=torch.float64) * math.sqrt(var) + mu
    log_q = -0.5 * (a - mu) ** 2 / var - 0.5 * math.log(2 * math.pi * var)
    Q = alpha * log_q + 2.0  # pi_Q = q, V = 2
    np.testing.assert_allclose(soft_value_importance_sampling(Q, log_q, alpha).numpy(), 2.0, atol=1e-12)


def _box_linear_truth(b: np.ndarray, alpha: float) -> float:
    return float(sum(alpha * math.log(2 * alpha * math.sinh(bi / alpha) / bi) for bi in b))


def _mc_check(v_hat_weights: torch.Tensor, truth: float, alpha: float) -> None:
    """Delta method on log of a mean of weights: SE(V_hat) ~ alpha * sd(W) / (sqrt(M) mean(W))."""
    w = v_hat_weights
    se = alpha * w.std().item() / (math.sqrt(len(w)) * w.mean().item())
    est = alpha * math.log(w.mean().item())
    assert abs(est - truth) <= Z * se + 1e-12, (est, truth, se)


def test_uniform_box_linear_q_matches_sinh_closed_form():
    alpha, b = 0.7, np.array([1.3, -0.4])
    gen = torch.Generator().manual_seed(11)
    M = 200_000
    a = sample_uniform_box((M,), 2, gen, dtype=torch.float64)
    q = a @ torch.as_tensor(b)
    v = soft_value_uniform_box(q, alpha, 2).item()
    weights = torch.exp(q / alpha - uniform_box_log_density(2))
    assert v == pytest.approx(alpha * math.log(weights.mean().item()), abs=1e-10)
    _mc_check(weights, _box_linear_truth(b, alpha), alpha)


def test_uniform_box_quadratic_q_matches_truncated_gaussian_closed_form():
    """B2: separable quadratic Q on [-1,1]^d, log Phi differences via log_ndtr."""
    alpha, k, m, c = 0.4, np.array([2.0, 5.0]), np.array([0.3, -0.8]), np.array([0.1, -0.2])
    s = np.sqrt(k / alpha)
    log_mass = np.log(np.exp(log_ndtr((1 - m) * s)) - np.exp(log_ndtr((-1 - m) * s)))
    truth = float(np.sum(c + alpha * (0.5 * np.log(2 * np.pi * alpha / k) + log_mass)))
    gen = torch.Generator().manual_seed(12)
    a = sample_uniform_box((400_000,), 2, gen, dtype=torch.float64)
    q = (torch.as_tensor(c) - 0.5 * torch.as_tensor(k) * (a - torch.as_tensor(m)) ** 2).sum(-1)
    _mc_check(torch.exp(q / alpha - uniform_box_log_density(2)), truth, alpha)
    assert soft_value_uniform_box(q, alpha, 2).item() == pytest.approx(truth, abs=5e-3)


def test_gaussian_closed_form_with_gaussian_proposal():
    """B1: Q = -1/2 (a-mu)^T K (a-mu) + c on R^d: V = c + alpha d/2 log(2 pi alpha) - alpha/2 log det K."""
    alpha, c = 0.8, 0.5
    mu = torch.tensor([0.2, -0.1], dtype=torch.float64)
    K = torch.tensor([[2.0, 0.3], [0.3, 1.0]], dtype=torch.float64)
    truth = c + alpha * math.log(2 * math.pi * alpha) - 0.5 * alpha * math.log(torch.det(K).item())
    gen = torch.Generator().manual_seed(13)
    a = torch.randn(300_000, 2, generator=gen, dtype=torch.float64) * 1.5  # proposal N(0, 1.5^2 I)
    log_q = (-0.5 * (a / 1.5) ** 2 - math.log(1.5 * math.sqrt(2 * math.pi))).sum(-1)
    d = a - mu
    Q = c - 0.5 * ((d @ K) * d).sum(-1)
    _mc_check(torch.exp(Q / alpha - log_q), truth, alpha)
    v = soft_value_importance_sampling(Q, log_q, alpha).item()
    assert v == pytest.approx(truth, abs=1e-2)


def test_rejects_bad_alpha_and_mismatched_shapes():
    with pytest.raises(ValueError, match="alpha"):
        soft_value_uniform_box(torch.zeros(2, 3), 0.0, 1)
    with pytest.raises(ValueError, match="log_proposal"):
        soft_value_importance_sampling(torch.zeros(2, 3), torch.zeros(2, 4), 1.0)
