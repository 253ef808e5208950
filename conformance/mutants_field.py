"""Issue 14's mutants: one per protocol-contract sentence (the audit in README.md) and one per bug
class reported in public max-ent RL code (/work/shared/notes/field-bug-reports.md summarises the
threads). Each is a `Mutant` subclass, so it joins `mutants.MUTANTS` and the self-test.
"""
from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch

from softq_ref import tabular
from softq_ref.soft_value import soft_value_uniform_box
from softq_ref.sql import SoftQLearning
from softq_ref.svgd import median_bandwidth, pairwise_sq_dists

from .mutants import Mutant

__all__: list[str] = []


# -- contract sentences ------------------------------------------------------------------------------
class QIterationStopsOnStep(Mutant):
    bug = "soft_q_iteration stops at ||Q_k - Q_(k-1)|| <= tol, not at the a-posteriori bound gamma/(1-gamma) ||.|| <= tol"
    catches = ("A2.loose_tolerance",)

    def soft_q_iteration(self, R, P, gamma, alpha, tol):
        Q = np.zeros_like(np.asarray(R, dtype=np.float64))
        for _ in range(200_000):
            Qn = tabular.soft_bellman_operator(Q, R, P, gamma, alpha)
            step = float(np.max(np.abs(Qn - Q)))
            Q = Qn
            if step <= tol:
                break
        return Q


class SampleReseeded(Mutant):
    bug = "sample re-seeds its noise generator on every call (the same actions every call)"
    catches = ("D.sample_contract",)

    def sample(self, handle, n):
        net, _ = handle
        with torch.no_grad():
            return net(torch.zeros(1, 1), n, generator=torch.Generator().manual_seed(0))[0]


class SampleSharedNoise(Mutant):
    bug = "sample draws one noise vector per call and repeats it for all n actions"
    catches = ("D.sample_contract",)

    def sample(self, handle, n):
        net, gen = handle
        with torch.no_grad():
            xi = torch.randn(1, 1, net.act_dim, generator=gen).expand(1, n, net.act_dim)
            return net.actions_from_noise(torch.zeros(1, 1), xi)[0]


class SampleBeyondBounds(Mutant):
    bug = "sampled actions scaled by 1.25 after the tanh (leave the action box)"
    catches = ("D.sample_contract",)

    def sample(self, handle, n):
        return 1.25 * super().sample(handle, n)


class ActionsDrawOwnNoise(Mutant):
    bug = "actions_from_noise ignores the given xi and draws fresh noise"
    catches = ("ALG1.agent_contract",)

    def actions_from_noise(self, agent, obs, xi):
        return super().actions_from_noise(agent, obs, torch.randn(xi.shape, generator=agent.generator))


class _QAscent(SoftQLearning):
    def q_update(self, batch):
        for g in self.q_optimizer.param_groups:
            g["lr"] = -abs(g["lr"])  # ascends eq. 11
        return super().q_update(batch)


class QUpdateAscends(Mutant):
    bug = "q_update ascends the eq. 11 loss (sign error in the Q step)"
    catches = ("ALG1.agent_contract",)
    agent_class = _QAscent


class QValuesIgnoresTarget(Mutant):
    bug = "q_values returns the online Q when asked for the target Q"
    catches = ("ALG1.target_frozen",)

    def q_values(self, agent, obs, act, target):
        return super().q_values(agent, obs, act, False)


class SyncTargetNoop(Mutant):
    bug = "sync_target does not copy theta into theta-bar"
    catches = ("ALG1.target_frozen",)

    def sync_target(self, agent):
        pass


class AgentIgnoresGamma(Mutant):
    bug = "make_agent ignores the discount it is given (keeps a default gamma = 0.99)"
    catches = ("ALG1.td_target_eq10",)

    def make_agent(self, obs_dim, act_dim, alpha, gamma, seed):
        return super().make_agent(obs_dim, act_dim, alpha, 0.99, seed)
