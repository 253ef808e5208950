"""The reference adapter: softq_ref exposed through the conformance protocol (all capabilities)."""
from __future__ import annotations

import numpy as np
import torch

import softq_ref
from softq_ref import tabular
from softq_ref.config import SQLConfig
from softq_ref.networks import SamplingNetwork
from softq_ref.replay import ReplayBuffer
from softq_ref.sampler import train_sampler
from softq_ref.soft_value import soft_value_importance_sampling, soft_value_uniform_box
from softq_ref.sql import SoftQLearning
from softq_ref.svgd import median_bandwidth, pairwise_sq_dists, rbf_kernel, svgd_direction

__all__ = ["ReferenceAdapter", "reference"]


class ReferenceAdapter:
    name = "softq_ref"
    version = softq_ref.__version__
    capabilities = {"tabular", "soft_value_estimator", "svgd", "sampler", "agent", "trainer"}
    agent_class = SoftQLearning
    sampler_network = SamplingNetwork  # what fit_sampler trains (a mutant swaps in a broken network)

    def __init__(self, config: SQLConfig | None = None):
        # Small networks: conformance checks equations, not benchmark returns.
        self.config = config or SQLConfig(hidden_sizes=(64, 64), value_samples=32, svgd_particles=32,
                                          batch_size=64, min_replay_size=256, q_lr=3e-3, policy_lr=1e-3,
                                          target_update_interval=100)
        c = self.config
        if c.precision != "float32":  # its own report folder: these are not the reference's numbers
            self.name = f"softq_ref-{c.precision}"
        self.conventions = {"value_proposal": c.value_proposal, "squash_correction": c.squash_correction,
                            "bandwidth_rule": c.bandwidth_rule, "temperature_mode": c.temperature_mode}

    # -- tabular --------------------------------------------------------------------------------------
    def soft_value(self, Q, alpha):
        return tabular.soft_value(Q, alpha)

    def boltzmann_policy(self, Q, alpha):
        return tabular.boltzmann_policy(Q, alpha)

    def soft_bellman_operator(self, Q, R, P, gamma, alpha):
        return tabular.soft_bellman_operator(Q, R, P, gamma, alpha)

    def soft_q_iteration(self, R, P, gamma, alpha, tol):
        return tabular.soft_q_iteration(R, P, gamma, alpha, tol=tol, max_iter=200_000).Q

    def soft_policy_evaluation(self, pi, R, P, gamma, alpha):
        return tabular.soft_policy_evaluation(pi, R, P, gamma, alpha)

    def sampled_soft_bellman_operator(self, Q, R, P, gamma, alpha, action_samples):
        return tabular.sampled_soft_bellman_operator(Q, R, P, gamma, alpha, action_samples)

    # -- soft value estimator (eq. 10) --------------------------------------------------------------------
    def soft_value_estimate(self, q_values, log_proposal, alpha):
        return soft_value_importance_sampling(q_values, log_proposal, alpha)

    def soft_value_uniform_box(self, q_values, alpha, action_dim):
        return soft_value_uniform_box(q_values, alpha, action_dim)

    # -- kernel / SVGD (eq. 13) -------------------------------------------------------------------------
    def rbf_kernel(self, x, y, h):
        return rbf_kernel(x, y, h)

    def bandwidth(self, fixed, updated):
        return median_bandwidth(pairwise_sq_dists(fixed, updated), self.config.bandwidth_rule, fixed.shape[-2])

    def svgd_direction(self, fixed, updated, grad_q, alpha, h):
        k, grad_k = self.rbf_kernel(fixed, updated, h)
        return svgd_direction(k, grad_k, grad_q, alpha)

    def svgd_direction_auto(self, fixed, updated, grad_q, alpha):
        return self.svgd_direction(fixed, updated, grad_q, alpha, self.bandwidth(fixed, updated))

    # -- sampler (amortized SVGD against a given energy) ----------------------------------------------------
    def fit_sampler(self, energy, action_dim, alpha, steps, seed):
        torch.manual_seed(seed)
        net = self.sampler_network(1, action_dim, (64, 64))
        gen = torch.Generator().manual_seed(seed)
        obs = torch.zeros(1, 1)
        train_sampler(net, lambda o, a: energy(a), obs, alpha, steps, lr=1e-3, n_particles=32,
                      bandwidth_rule=self.config.bandwidth_rule, squash_correction=self.config.squash_correction,
                      generator=gen)
        return net, gen

    def sample(self, handle, n):
        net, gen = handle
        with torch.no_grad():
            return net(torch.zeros(1, 1), n, generator=gen)[0]

    # -- agent (white box) ----------------------------------------------------------------------------
    def make_agent(self, obs_dim, act_dim, alpha, gamma, seed):
        return self.agent_class(obs_dim, act_dim, self.config.replace(alpha=alpha, gamma=gamma), seed=seed)

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
            return agent.sampler.actions_from_noise(obs, xi)

    # -- trainer (black box) --------------------------------------------------------------------------
    def train(self, task, steps, alpha, seed):
        cfg = self.config.replace(alpha=alpha, gamma=task.gamma if task.gamma > 0 else 0.99)
        if task.name == "multigoal":
            cfg = cfg.replace(svgd_particles=32, q_lr=3e-3, policy_lr=1e-3, target_update_interval=200,
                              min_replay_size=500)
        agent = self.agent_class(task.obs_dim, task.act_dim, cfg, seed=seed)
        env = task.make_env()
        buf = ReplayBuffer(task.obs_dim, task.act_dim, max(steps, cfg.batch_size))
        rng = np.random.default_rng(seed)
        obs, _ = env.reset(seed=seed)
        for t in range(1, steps + 1):
            a = agent.act(obs)
            nxt, r, term, trunc, _ = env.step(a)
            buf.add(obs, a, r, nxt, term)
            obs = nxt
            if term or trunc:
                obs, _ = env.reset()
                agent.reset_episode()
            if len(buf) >= cfg.min_replay_size:
                agent.update(buf.sample(cfg.batch_size, rng))
            agent.on_env_step(t)
        env.close()
        return agent

    def sample_policy(self, policy, obs, n):
        return policy.sample_actions(torch.as_tensor(obs, dtype=torch.float32), n)


def reference() -> ReferenceAdapter:
    return ReferenceAdapter()


def reference_bfloat16() -> ReferenceAdapter:
    """The reference in its opt-in precision="bfloat16_autocast" mode (perf README: verdicts measured)."""
    adapter = ReferenceAdapter()
    return ReferenceAdapter(adapter.config.replace(precision="bfloat16_autocast"))
