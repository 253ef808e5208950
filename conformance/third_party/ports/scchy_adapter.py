"""scchy/RL `SoftQ` (src/RLAlgo/SoftQNew.py), unedited; SCCHY_RL_ROOT = a checkout of the repository.

eq. 10 is inline in `_create_td_update`, eq. 13 in `_svgd_update` (a kernel function with its own
bandwidth; one sampled set split into fixed and updated particles; log p adds the tanh correction),
`update` fuses both and copies the target every `critcic_traget_update_freq` calls. Conventions: no
alpha anywhere, SQL_kwargs['reward_scale'] scales rewards (reward_scale); target actions shared over
the batch; h = max(median / log K_fixed, float32 1e-3); log M is a float32 constant.
"""
import os

import numpy as np
import torch

from softq_conformance import NotSupported
from softq_conformance.kit import (EnergyQ, FixedDraws, GivenQ, LinearQ, ParticleSets, flatten_sets, frozen,
                                   import_port, regression_target, swapped)

ENV_VAR = "SCCHY_RL_ROOT"


def load(root=None):
    root = root or os.environ.get(ENV_VAR)
    if not root:
        raise RuntimeError(f"set {ENV_VAR} to a checkout of github.com/scchy/RL")
    return import_port("SoftQNew", os.path.join(root, "src", "RLAlgo"))


class ScchyAdapter:
    name, version = "scchy-rl-softq", "scchy/RL HEAD"
    capabilities = {"soft_value_estimator", "svgd", "sampler", "agent"}
    TARGET_EVERY = 5  # critcic_traget_update_freq (the port's default is 1000)
    conventions = {"value_proposal": "uniform_shared", "squash_correction": "tanh_log_det",
                   "direction_log_det": "tanh(1e-6)", "bandwidth_rule": "sql_code; floor=float32(1e-3)",
                   "temperature_mode": "reward_scale", "target_update": f"hard({TARGET_EVERY})",
                   "precision": "float32_constants"}

    def __init__(self, module=None, root=None):
        self.m = module or load(root)

    def _agent(self, obs_dim, act_dim, gamma=1.0, scale=1.0, n_fixed=8, n_updated=8):
        K = n_fixed + n_updated  # the port splits one set of K at int(K * ratio) updated particles
        kw = dict(value_n_particles=16, kernel_n_particles=K, kernel_update_ratio=(n_updated + 0.5) / K,
                  critcic_traget_update_freq=self.TARGET_EVERY, reward_scale=scale)
        return self.m.SoftQ(obs_dim, act_dim, gamma, [64, 64], [64, 64], device="cpu", SQL_kwargs=kw)

    # -- eq. 10: the value inside _create_td_update, read off the target the critic regresses onto -----------
    def soft_value_uniform_box(self, q_values, alpha, action_dim):
        if alpha != 1.0:
            raise NotSupported("eq. 10 in _create_td_update has no temperature (alpha = 1 inside; reward_scale)")
        lead, M = q_values.shape[:-1], q_values.shape[-1]
        q = q_values.reshape(-1, M)
        N, z = q.shape[0], torch.zeros
        agent = self._agent(1, action_dim)
        critic = GivenQ(torch.zeros(N, 1, dtype=q.dtype, requires_grad=True))
        with swapped(agent, critic=critic, tar_critic=GivenQ(q[:, :, None]), value_n_particles=M), \
                frozen(agent.critic_opt):
            y = regression_target(critic, lambda: agent._create_td_update(z(N, 1), z(N, action_dim), z(N, 1),
                                                                          z(N, 1), z(N, 1)))
        return y.reshape(lead)

    def soft_value_estimate(self, q_values, log_proposal, alpha):
        raise NotSupported("_create_td_update only has the uniform-box proposal (eq. 10 with q = U[-1, 1]^d)")

    # -- eq. 13: minus the gradient _svgd_update's surrogate leaves on the updated particles -------------------
    def svgd_direction_auto(self, fixed, updated, grad_q, alpha):
        lead, (x, y, g) = flatten_sets(fixed, updated, grad_q)
        n, m = x.shape[1], y.shape[1]
        agent = self._agent(1, x.shape[-1], n_fixed=n, n_updated=m)
        sets = ParticleSets(torch.cat([x, y], 1), count_arg=None)
        with swapped(agent, actor=sets, critic=LinearQ(g)), frozen(agent.actor_opt):
            agent._svgd_update(torch.zeros(x.shape[0], 1))
        return -sets.grad(0)[:, n:].reshape(updated.shape)

    # -- amortized SVGD against a given energy: _svgd_update with the energy as its critic ----------------------
    def fit_sampler(self, energy, action_dim, alpha, steps, seed):
        torch.manual_seed(seed)
        agent = self._agent(1, action_dim, n_fixed=16, n_updated=16)
        agent.critic = EnergyQ(energy)
        for _ in range(steps):
            agent._svgd_update(torch.zeros(1, 1))
        return agent.actor

    def sample(self, actor, n):
        with torch.no_grad():
            return actor(torch.zeros(1, 1), n_action_samples=n)[0]

    # -- the agent: update() is the port's fused step (TD update, SVGD update, target copy) ----------------------
    def make_agent(self, obs_dim, act_dim, alpha, gamma, seed):
        torch.manual_seed(seed)
        return self._agent(obs_dim, act_dim, gamma=gamma, scale=1.0 / alpha)

    def q_values(self, agent, obs, act, target):
        with torch.no_grad():
            return (agent.tar_critic if target else agent.critic)(obs, act).squeeze(-1)

    def td_target(self, agent, batch):  # the tensors update() builds from its samples
        b = [batch[k] for k in ("obs", "action", "reward", "next_obs", "terminated")]
        b[2], b[4] = b[2].view(-1, 1), b[4].view(-1, 1)
        with frozen(agent.critic_opt):
            return regression_target(agent.critic, lambda: agent._create_td_update(*b))

    def update(self, agent, batch):
        cols = [batch[k].numpy() for k in ("obs", "action", "reward", "next_obs", "terminated")]
        agent.update(list(zip(*cols)))

    def actions_from_noise(self, agent, obs, xi):
        with torch.no_grad(), swapped(agent.actor, normal_dist=FixedDraws(xi)):
            return agent.actor(obs, n_action_samples=xi.shape[1])

    def parameters(self, agent, target):
        net = agent.tar_critic if target else agent.critic
        return torch.cat([p.detach().reshape(-1) for p in net.parameters()])


make_adapter = ScchyAdapter  # --impl softq_conformance.third_party.ports.scchy_adapter:make_adapter
