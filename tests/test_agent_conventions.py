"""Agent conventions of real ports: hard(N) / polyak(tau) targets, critic ensembles, a fused update."""
from __future__ import annotations

import copy

import torch

from softq_conformance.reference import ReferenceAdapter
from softq_conformance.runner import RunOptions, run_suite
from softq_ref.networks import QNetwork
from softq_ref.soft_value import soft_value_uniform_box
from softq_ref.sql import SoftQLearning

AGENT = ["ALG1.target_frozen", "ALG1.td_target_eq10", "ALG1.policy_update_eq13"]


def _statuses(adapter, only=AGENT):
    return {r.spec.id: (r.status, r.message) for r in run_suite(adapter, RunOptions(only=only)).results}


class _Polyak(SoftQLearning):
    tau = 0.1

    def q_update(self, batch):
        out = super().q_update(batch)
        with torch.no_grad():
            for pt, p in zip(self.q_target.parameters(), self.q.parameters()):
                pt.mul_(1 - self.tau).add_(self.tau * p)
        return out


class _HardEvery(SoftQLearning):
    every, steps = 3, 0

    def q_update(self, batch):
        out = super().q_update(batch)
        self.steps += 1
        if self.steps % self.every == 0:
            self.sync_target()
        return out


class _Conventions(ReferenceAdapter):
    """The reference agent under another declared convention; sync_target is the port's own business."""

    def __init__(self, agent_class, **conventions):
        super().__init__()
        self.agent_class = agent_class
        self.conventions = {**self.conventions, **conventions}

    sync_target = None

    def parameters(self, agent, target):
        net = agent.q_target if target else agent.q
        return torch.cat([p.detach().reshape(-1) for p in net.parameters()])


def test_polyak_target_schedule_checked_exactly():
    got = _statuses(_Conventions(_Polyak, target_update="polyak(0.1)"))
    assert all(s == "pass" for s, _ in got.values()), got
    wrong = _statuses(_Conventions(_Polyak, target_update="polyak(0.2)"), ["ALG1.target_frozen"])
    assert wrong["ALG1.target_frozen"][0] == "fail" and "tau=0.2" in wrong["ALG1.target_frozen"][1]


def test_polyak_without_parameters_is_not_applicable():
    adapter = _Conventions(_Polyak, target_update="polyak(0.1)")
    adapter.parameters = None
    got = _statuses(adapter, ["ALG1.target_frozen"])
    assert got["ALG1.target_frozen"][0] == "not_applicable" and "parameters" in got["ALG1.target_frozen"][1]


def test_hard_every_n_schedule():
    got = _statuses(_Conventions(_HardEvery, target_update="hard(3)"))
    assert all(s == "pass" for s, _ in got.values()), got
    wrong = _statuses(_Conventions(_HardEvery, target_update="hard(4)"), ["ALG1.target_frozen"])
    assert wrong["ALG1.target_frozen"][0] == "fail" and "[3, 6, 9" in wrong["ALG1.target_frozen"][1]


class _Twin(SoftQLearning):
    """Two critics; the eq. 10 target takes the soft value of min(Q1', Q2')."""

    def __init__(self, obs_dim, act_dim, config, seed=0):
        super().__init__(obs_dim, act_dim, config, seed)
        torch.manual_seed(seed + 1)
        self.q2 = QNetwork(obs_dim, act_dim, config.hidden_sizes)
        self.q2_target = copy.deepcopy(self.q2).requires_grad_(False)
        self.q2_opt = torch.optim.Adam(self.q2.parameters(), lr=config.q_lr)

    def soft_value_target(self, next_obs):
        with torch.no_grad():
            a = self.proposal_actions(next_obs.shape[0])
            q = torch.minimum(self.q_target(next_obs, a), self.q2_target(next_obs, a))
            return soft_value_uniform_box(q, self.internal_alpha, self.act_dim)

    def q_update(self, batch):
        y = self.td_target(batch)
        out = super().q_update(batch)
        loss = 0.5 * (y - self.q2(batch["obs"], batch["action"])).pow(2).mean()
        self.q2_opt.zero_grad()
        loss.backward()
        self.q2_opt.step()
        return out

    def sync_target(self):
        super().sync_target()
        self.q2_target.load_state_dict(self.q2.state_dict())


class _TwinAdapter(ReferenceAdapter):
    def __init__(self, reduction):
        super().__init__()
        self.agent_class = _Twin
        self.conventions = {**self.conventions, "critic_reduction": reduction}

    def q_values(self, agent, obs, act, target):
        with torch.no_grad():
            nets = (agent.q_target, agent.q2_target) if target else (agent.q, agent.q2)
            return torch.stack([n(obs, act) for n in nets], -1)


def test_twin_critics_with_min():
    got = _statuses(_TwinAdapter("min"), ["ALG1.target_frozen", "ALG1.td_target_eq10"])
    assert all(s == "pass" for s, _ in got.values()), got
    undeclared = _statuses(_TwinAdapter("single"), ["ALG1.target_frozen"])["ALG1.target_frozen"]
    assert undeclared[0] == "error" and "critic_reduction" in undeclared[1]


class _Fused(ReferenceAdapter):
    """Only update(agent, batch): eq. 11 then eq. 13-14 in one call, as in many ports' learn()."""

    q_update = None
    policy_update = None

    def update(self, agent, batch):
        agent.update(batch)


def test_fused_update_still_separates_eq11_and_eq13():
    got = _statuses(_Fused())
    assert all(s == "pass" for s, _ in got.values()), got

    class _FusedAscent(_Fused):
        def update(self, agent, batch):
            for g in agent.policy_optimizer.param_groups:
                g["lr"] = -abs(g["lr"])
            agent.update(batch)

    bad = _statuses(_FusedAscent(), ["ALG1.policy_update_eq13"])
    assert bad["ALG1.policy_update_eq13"][0] == "fail", bad
