"""Deliberately broken variants of the reference: the suite's self-test.

Each mutant changes one equation and names the spec(s) that must catch it (`catches`). The test
tests/test_conformance_mutants.py runs each mutant against those specs and asserts they fail,
and runs the unmodified reference against every spec.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import logsumexp

from softq_ref import tabular
from softq_ref.networks import SamplingNetwork
from softq_ref.sampler import train_sampler
from softq_ref.soft_value import soft_value_uniform_box
from softq_ref.sql import SoftQLearning
from softq_ref.svgd import pairwise_sq_dists, rbf_kernel, svgd_direction

from .reference import ReferenceAdapter

__all__ = ["MUTANTS", "Mutant"]


class Mutant(ReferenceAdapter):
    bug: str = ""
    catches: tuple[str, ...] = ()

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"mutant-{type(self).__name__}"


def _iterate(op, R, tol, gamma):
    Q = np.zeros_like(R)
    for _ in range(200_000):
        Qn = op(Q)
        step = np.max(np.abs(Qn - Q))
        Q = Qn
        if gamma == 0 or gamma / (1 - gamma) * step <= tol:
            return Q
    return Q


class HardMaxBackup(Mutant):
    bug = "hard max instead of the soft max (log-sum-exp) in eq. 9"
    catches = ("A1.sandwich",)

    def soft_value(self, Q, alpha):
        return np.asarray(Q, dtype=np.float64).max(-1)


class TabularAlphaMisplaced(Mutant):
    bug = "V = alpha lse(Q) instead of alpha lse(Q / alpha)"
    catches = ("A9.closed_forms", "A1.sandwich")

    def soft_value(self, Q, alpha):
        return alpha * logsumexp(np.asarray(Q, dtype=np.float64), axis=-1)

    def soft_q_iteration(self, R, P, gamma, alpha, tol):
        return _iterate(lambda Q: R + gamma * P @ self.soft_value(Q, alpha), R, tol, gamma)


class EntropyUndiscounted(Mutant):
    bug = "the next state's entropy bonus is not discounted: r + P (gamma max Q + (V_Q - max Q))"
    catches = ("A2.fixed_point", "A6.optimal_policy")

    def soft_bellman_operator(self, Q, R, P, gamma, alpha):
        v, mx = tabular.soft_value(Q, alpha), np.asarray(Q).max(-1)
        return R + P @ (gamma * mx + (v - mx))

    def soft_q_iteration(self, R, P, gamma, alpha, tol):
        return _iterate(lambda Q: self.soft_bellman_operator(Q, R, P, gamma, alpha), R, tol, gamma)


class CurrentEntropyInQ(Mutant):
    bug = "Q^pi includes the current step's entropy (it belongs to V^pi only)"
    catches = ("A3.policy_evaluation",)

    def soft_policy_evaluation(self, pi, R, P, gamma, alpha):
        Q, V = tabular.soft_policy_evaluation(pi, R, P, gamma, alpha)
        return Q + alpha * tabular.policy_entropy(pi)[:, None], V


class BoltzmannIgnoresAlpha(Mutant):
    bug = "policy softmax(Q) instead of softmax(Q / alpha)"
    catches = ("A4.gibbs",)

    def boltzmann_policy(self, Q, alpha):
        return tabular.boltzmann_policy(Q, 1.0)


class SampledBackupNoLogA(Mutant):
    bug = "sampled backup misses the uniform proposal's + alpha log|A| term"
    catches = ("A10.sampled_backup",)

    def sampled_soft_bellman_operator(self, Q, R, P, gamma, alpha, action_samples):
        out = tabular.sampled_soft_bellman_operator(Q, R, P, gamma, alpha, action_samples)
        return out - gamma * alpha * math.log(np.asarray(Q).shape[1])


class MissingLogM(Mutant):
    bug = "eq. 10 estimator without the -log M term (a sum instead of a mean)"
    catches = ("B4.exact_cases", "B3.soft_lqr")

    def soft_value_estimate(self, q_values, log_proposal, alpha):
        return alpha * torch.logsumexp(q_values / alpha - log_proposal, dim=-1)

    def soft_value_uniform_box(self, q_values, alpha, action_dim):
        return alpha * torch.logsumexp(q_values / alpha, dim=-1) + alpha * action_dim * math.log(2.0)


class MissingDLog2(Mutant):
    bug = "uniform-box estimator without + alpha d log 2 (the proposal density)"
    catches = ("B4.box_convention", "B2.box_value")

    def soft_value_uniform_box(self, q_values, alpha, action_dim):
        return soft_value_uniform_box(q_values, alpha, action_dim) - alpha * action_dim * math.log(2.0)


class NoRepulsiveTerm(Mutant):
    bug = "SVGD direction without the repulsive alpha grad k term"
    catches = ("C1.direction_eq13", "C5.low_dim_no_collapse")

    def svgd_direction(self, fixed, updated, grad_q, alpha, h):
        k, grad_k = rbf_kernel(fixed, updated, h)
        return svgd_direction(k, grad_k, grad_q, 0.0)


class AlphaOnDrivingTerm(Mutant):
    bug = "alpha multiplies k grad Q instead of grad k (wrong temperature in eq. 13)"
    catches = ("C1.direction_eq13", "C2.fixed_points")

    def svgd_direction(self, fixed, updated, grad_q, alpha, h):
        k, grad_k = rbf_kernel(fixed, updated, h)
        return svgd_direction(k, grad_k, alpha * grad_q, 1.0)


class KernelGradWrongSign(Mutant):
    bug = "grad_x k with the wrong sign (attractive kernel term)"
    catches = ("C1.stein_identity",)

    def rbf_kernel(self, x, y, h):
        k, g = rbf_kernel(x, y, h)
        return k, -g


class BandwidthOverWholeBatch(Mutant):
    bug = "bandwidth median taken over the whole batch instead of per state"
    catches = ("C3.bandwidth",)

    def bandwidth(self, fixed, updated):
        sq = pairwise_sq_dists(fixed, updated)
        med = sq.flatten().median()
        n = fixed.shape[-2]
        return torch.clamp(med / math.log(n), min=1e-3).expand(sq.shape[:-2]).clone()


class SamplerNoRepulsion(Mutant):
    bug = "amortized SVGD sampler trained without the repulsive term (collapses onto modes)"
    catches = ("D.mmd",)

    def fit_sampler(self, energy, action_dim, alpha, steps, seed):
        torch.manual_seed(seed)
        net = SamplingNetwork(1, action_dim, (64, 64))
        gen = torch.Generator().manual_seed(seed)
        train_sampler(net, lambda o, a: energy(a), torch.zeros(1, 1), 0.0, steps, lr=1e-3, n_particles=32,
                      generator=gen)
        return net, gen


class _DoubleSquashNetwork(SamplingNetwork):
    def actions_from_noise(self, obs, xi):
        return torch.tanh(super().actions_from_noise(obs, xi))  # tanh applied twice: |a| <= tanh(1) = 0.76


class SamplerDoubleSquash(Mutant):
    bug = "the sampler squashes twice, tanh(tanh(u)): actions cannot leave [-0.76, 0.76]"
    catches = ("D.support_tails",)
    sampler_network = _DoubleSquashNetwork  # fitted by the reference's own fit_sampler


# -- agent mutants: subclasses of the reference agent with one broken method ----------------------------
class _OnlineTD(SoftQLearning):
    def soft_value_target(self, next_obs):
        with torch.no_grad():
            q = self.q(next_obs, self.proposal_actions(next_obs.shape[0]))
            return soft_value_uniform_box(q, self.internal_alpha, self.act_dim)


class _TDNoLogM(SoftQLearning):
    def soft_value_target(self, next_obs):
        return super().soft_value_target(next_obs) + self.internal_alpha * math.log(self.config.value_samples)


class _SyncEveryUpdate(SoftQLearning):
    def q_update(self, batch):
        out = super().q_update(batch)
        self.sync_target()
        return out


class _PolicyAscent(SoftQLearning):
    def policy_update(self, batch):
        for g in self.policy_optimizer.param_groups:
            g["lr"] = -abs(g["lr"])  # ascends the surrogate: particles move against eq. 13
        return super().policy_update(batch)


class TDUsesOnlineNetwork(Mutant):
    bug = "the TD target's soft value uses the online Q instead of the frozen target"
    catches = ("ALG1.td_target_eq10",)
    agent_class = _OnlineTD


class TDMissingLogM(Mutant):
    bug = "the agent's eq. 10 value target misses -log M"
    catches = ("ALG1.td_target_eq10",)
    agent_class = _TDNoLogM


class TargetSyncedEveryUpdate(Mutant):
    bug = "target parameters copied after every Q update (never frozen)"
    catches = ("ALG1.target_frozen",)
    agent_class = _SyncEveryUpdate


class PolicyUpdateWrongSign(Mutant):
    bug = "sampler update ascends the surrogate (particles move against eq. 13)"
    catches = ("ALG1.policy_update_eq13",)
    agent_class = _PolicyAscent


from . import mutants_field  # noqa: E402,F401  (issue 14: contract and field-bug mutants, Mutant subclasses)
MUTANTS: dict[str, type[Mutant]] = {cls.__name__: cls for cls in Mutant.__subclasses__()}
