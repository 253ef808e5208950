"""Family E: composing two soft-optimal Q-functions, against exact soft Q-iteration."""
import numpy as np
import torch
from hypothesis import given

from softq_ref import tabular as T
from softq_ref.composition import SummedEnergy, composition_bound, composition_correction

from mdp_strategies import finite_mdps, tolerance


@given(finite_mdps(max_gamma=0.9))
def test_composed_q_is_within_the_bound_and_exactly_corrected(mdp):
    R1, P, gamma, alpha = mdp
    R2 = np.random.default_rng(9).uniform(-10, 10, R1.shape)
    s1, s2 = (T.soft_q_iteration(R, P, gamma, alpha, tol=1e-12) for R in (R1, R2))
    Q_c = T.soft_q_iteration((R1 + R2) / 2, P, gamma, alpha, tol=1e-12).Q
    Q_sum = (s1.Q + s2.Q) / 2
    atol = 100 * tolerance(R1, gamma, alpha)
    C = composition_bound(s1.policy, s2.policy, P, gamma, alpha)
    assert np.all(Q_sum >= Q_c - atol)
    assert np.all(Q_c >= Q_sum - C - atol)
    np.testing.assert_allclose(Q_c, Q_sum - composition_correction(s1.policy, s2.policy, P, gamma, alpha), atol=atol)


def test_summed_energy_averages():
    e = SummedEnergy([lambda s, a: a.sum(-1), lambda s, a: 3 * a.sum(-1)])
    a = torch.ones(2, 4, 3)
    torch.testing.assert_close(e(None, a), torch.full((2, 4), 6.0))
