"""White-box adapter for the minimal stand-alone SQL port (conformance/third_party/minimal_sql.py).

    python -m softq_conformance --impl softq_conformance.third_party.minimal_sql_adapter:make_adapter \\
        --out reports/third_party

Every method is a thin call into the port's own code: the adapter converts nothing except
shapes and float64 where the exact specs need it, and never re-implements an equation (if it did,
the specs would check the adapter, not the port). See conformance/third_party/README.md.
"""
from __future__ import annotations

import numpy as np
import torch

from . import minimal_sql as msql

__all__ = ["MinimalSQLAdapter", "make_adapter"]


class MinimalSQLAdapter:
    name = "minimal-sql-port"
    version = "0.1"
    capabilities = {"soft_value_estimator", "svgd", "sampler", "agent", "trainer"}
    conventions = {"value_proposal": "uniform_per_state", "squash_correction": "none",
                   "bandwidth_rule": "sql_code", "temperature_mode": "alpha"}

    def __init__(self, module=msql, **agent_kwargs):
        self.m = module  # the port's module: looked up at call time, so a patched port is what gets checked
        self.agent_kwargs = dict(hidden=(64, 64), q_lr=3e-3, policy_lr=1e-3, value_particles=32, svgd_particles=32,
                                 target_update_interval=100) | agent_kwargs

    # -- soft value estimator (eq. 10): the port's functions, float64 in -> float64 out ------------------
    def soft_value_estimate(self, q_values, log_proposal, alpha):
        return self.m.soft_value(q_values, log_proposal, alpha)

    def soft_value_uniform_box(self, q_values, alpha, action_dim):
        return self.m.soft_value_uniform(q_values, alpha, action_dim)

    # -- kernel / bandwidth / eq. 13 ----------------------------------------------------------------------
    def rbf_kernel(self, x, y, h):
        return self.m.rbf_kernel(x, y, h)

    def bandwidth(self, fixed, updated):
        return self.m.adaptive_bandwidth(fixed, updated)

    def svgd_direction(self, fixed, updated, grad_q, alpha, h):
        kappa, kappa_grad = self.m.rbf_kernel(fixed, updated, h)
        return self.m.svgd_direction(kappa, kappa_grad, grad_q, alpha)

    def svgd_direction_auto(self, fixed, updated, grad_q, alpha):  # the port's own step: its bandwidth, then eq. 13
        return self.svgd_direction(fixed, updated, grad_q, alpha, self.m.adaptive_bandwidth(fixed, updated))

    # -- sampler: the port's amortized SVGD step against a given energy ------------------------------------
    def fit_sampler(self, energy, action_dim, alpha, steps, seed):
        torch.manual_seed(seed)
        net = self.m.SamplingNetwork(1, action_dim, self.agent_kwargs["hidden"])
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        gen = torch.Generator().manual_seed(seed)
        obs = torch.zeros(1, 1)
        for _ in range(steps):
            loss = self.m.svgd_policy_loss(net, lambda o, a: energy(a), obs, alpha,
                                           self.agent_kwargs["svgd_particles"], gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return net, gen

    def sample(self, handle, n):
        net, gen = handle
        with torch.no_grad():
            return net.sample(torch.zeros(1, 1), n, gen)[0]

    # -- agent (white box) --------------------------------------------------------------------------------
    def make_agent(self, obs_dim, act_dim, alpha, gamma, seed, **kw):
        return self.m.SQL(obs_dim, act_dim, alpha=alpha, gamma=gamma, seed=seed, **(self.agent_kwargs | kw))

    def q_values(self, agent, obs, act, target):
        with torch.no_grad():
            return (agent.q_target if target else agent.q)(obs, act)

    def td_target(self, agent, batch):
        return agent.td_target(batch)

    def q_update(self, agent, batch):
        agent.q_update(batch)

    def policy_update(self, agent, batch):
        agent.policy_update(batch)

    def sync_target(self, agent):
        agent.sync_target()

    def actions_from_noise(self, agent, obs, xi):
        with torch.no_grad():
            return agent.policy(obs, xi)

    # -- trainer (black box): a plain replay loop around SQL.update ---------------------------------------
    def train(self, task, steps, alpha, seed, batch_size=64):
        kw = {}
        min_replay = 256
        if task.name == "multigoal":
            kw, min_replay = {"target_update_interval": 200}, 500
        agent = self.make_agent(task.obs_dim, task.act_dim, alpha, task.gamma, seed, **kw)
        env = task.make_env()
        o_dim, a_dim = task.obs_dim, task.act_dim
        buf = {"obs": np.zeros((steps, o_dim), np.float32), "action": np.zeros((steps, a_dim), np.float32),
               "reward": np.zeros(steps, np.float32), "next_obs": np.zeros((steps, o_dim), np.float32),
               "terminated": np.zeros(steps, np.float32)}
        rng = np.random.default_rng(seed)
        obs, _ = env.reset(seed=seed)
        for t in range(steps):
            a = agent.act(obs)
            nxt, r, term, trunc, _ = env.step(a)
            for k, v in (("obs", obs), ("action", a), ("reward", r), ("next_obs", nxt), ("terminated", float(term))):
                buf[k][t] = v
            obs = nxt
            if term or trunc:
                obs, _ = env.reset()
            if t + 1 >= min(min_replay, steps):
                idx = rng.integers(0, t + 1, batch_size)
                agent.update({k: torch.as_tensor(v[idx]) for k, v in buf.items()})
        env.close()
        return agent

    def sample_policy(self, policy, obs, n):
        return policy.sample_actions(torch.as_tensor(np.asarray(obs, dtype=np.float32)), n)


def make_adapter() -> MinimalSQLAdapter:
    return MinimalSQLAdapter()
