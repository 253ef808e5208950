"""Family A of checkable-properties.md against softq_ref.tabular (exact, float64)."""
import numpy as np
import pytest
from hypothesis import given
from scipy.special import logsumexp

from softq_ref import tabular as T

from mdp_strategies import finite_mdps, tolerance


@given(finite_mdps())
def test_bellman_operator_is_monotone_gamma_contraction(mdp):
    R, P, gamma, alpha = mdp
    rng = np.random.default_rng(0)
    Q1, Q2 = rng.normal(0, 5, R.shape), rng.normal(0, 5, R.shape)
    atol = tolerance(R, gamma, alpha)
    TQ1, TQ2 = (T.soft_bellman_operator(Q, R, P, gamma, alpha) for Q in (Q1, Q2))
    assert np.abs(TQ1 - TQ2).max() <= gamma * np.abs(Q1 - Q2).max() + atol
    Qhi = Q1 + np.abs(rng.normal(size=R.shape))
    assert np.all(T.soft_bellman_operator(Qhi, R, P, gamma, alpha) >= TQ1 - atol)
    np.testing.assert_allclose(T.soft_bellman_operator(Q1 + 3.0, R, P, gamma, alpha), TQ1 + 3.0 * gamma, atol=atol)


@given(finite_mdps())
def test_soft_value_sandwich(mdp):
    R, _, _, alpha = mdp
    V = T.soft_value(R, alpha)
    logA = np.log(R.shape[1])
    assert np.all(R.max(1) <= V + 1e-12)
    assert np.all(V <= R.max(1) + alpha * logA + 1e-12)
    assert np.all(V >= R.mean(1) + alpha * logA - 1e-9)


@given(finite_mdps())
def test_iteration_matches_policy_evaluation_of_boltzmann_policy(mdp):
    """Theorem 1: pi* = exp((Q* - V*)/alpha) and Q^{pi*} (linear solve) = Q* (iteration)."""
    R, P, gamma, alpha = mdp
    res = T.soft_q_iteration(R, P, gamma, alpha, tol=1e-11)
    Q_pi, V_pi = T.soft_policy_evaluation(res.policy, R, P, gamma, alpha)
    atol = tolerance(R, gamma, alpha) + 1e-11
    np.testing.assert_allclose(Q_pi, res.Q, atol=atol * 10)
    np.testing.assert_allclose(V_pi, res.V, atol=atol * 10)
    # consistency V(s) = sum_a pi (Q - alpha log pi)
    pi = res.policy
    np.testing.assert_allclose(V_pi, (pi * (Q_pi - alpha * np.log(pi))).sum(1), atol=atol * 10)


@given(finite_mdps())
def test_policy_improvement_theorem_4_with_exact_gap(mdp):
    R, P, gamma, alpha = mdp
    rng = np.random.default_rng(1)
    logits = rng.uniform(-5, 5, R.shape)
    pi = np.exp(logits - logsumexp(logits, 1, keepdims=True))
    Q_pi, V_pi = T.soft_policy_evaluation(pi, R, P, gamma, alpha)
    pi_new = T.soft_policy_improvement(Q_pi, alpha)
    Q_new, V_new = T.soft_policy_evaluation(pi_new, R, P, gamma, alpha)
    atol = tolerance(R, gamma, alpha) * 10
    assert np.all(Q_new >= Q_pi - atol)
    kl = (pi * (np.log(pi) - np.log(pi_new))).sum(1)
    P_new = np.einsum("sa,sat->st", pi_new, P)
    gap = alpha * np.linalg.solve(np.eye(len(V_pi)) - gamma * P_new, kl)
    np.testing.assert_allclose(V_new - V_pi, gap, atol=atol)


def test_bandit_closed_form():
    r = np.array([[1.0, -2.0, 0.5]])
    P = np.ones((1, 3, 1))
    res = T.soft_q_iteration(r, P, 0.0, 2.0)
    assert res.V[0] == pytest.approx(2.0 * logsumexp(r / 2.0), abs=1e-12)


def test_single_self_loop_closed_form():
    r = np.array([[1.0, 0.0, -1.0, 3.0]])
    gamma, alpha = 0.9, 0.7
    res = T.soft_q_iteration(r, np.ones((1, 4, 1)), gamma, alpha, tol=1e-13)
    assert res.V[0] == pytest.approx(alpha * logsumexp(r / alpha) / (1 - gamma), abs=1e-10)


def test_a_posteriori_bound_holds():
    rng = np.random.default_rng(3)
    R, P = rng.uniform(-10, 10, (5, 3)), rng.dirichlet(np.ones(5), size=(5, 3))
    exact = T.soft_q_iteration(R, P, 0.95, 0.5, tol=1e-12).Q
    loose = T.soft_q_iteration(R, P, 0.95, 0.5, tol=1e-2)
    assert np.abs(loose.Q - exact).max() <= loose.error_bound + 1e-10


def test_finite_horizon_enumeration_matches_backup():
    """A9: deterministic dynamics, gamma = 1, horizon H: V_0 = alpha log sum_paths exp(R(path)/alpha)."""
    rng = np.random.default_rng(4)
    S, A, H, alpha = 3, 2, 3, 0.8
    R = rng.uniform(-2, 2, (S, A))
    nxt = rng.integers(0, S, (S, A))
    V = np.zeros(S)
    for _ in range(H):
        V = T.soft_value(R + V[nxt], alpha)
    import itertools
    for s0 in range(S):
        totals = []
        for path in itertools.product(range(A), repeat=H):
            s, total = s0, 0.0
            for a in path:
                total += R[s, a]
                s = nxt[s, a]
            totals.append(total)
        assert V[s0] == pytest.approx(alpha * logsumexp(np.array(totals) / alpha), abs=1e-10)


def test_invalid_inputs_name_the_argument():
    R, P = np.zeros((2, 2)), np.full((2, 2, 2), 0.5)
    with pytest.raises(ValueError, match="alpha"):
        T.soft_value(R, -1.0)
    with pytest.raises(ValueError, match="gamma"):
        T.soft_bellman_operator(R, R, P, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"P must have shape"):
        T.soft_bellman_operator(R, R, P[:, :, :1], 0.5, 1.0)
