"""mokeddembillel/max-entopy-rl, actor "svgd_sql" (S2AC/core.py, S2AC/actors/{actor_sql,kernels}.py), unedited.

MAXENT_RL_ROOT = a checkout. `MaxEntrRL.compute_loss_q` holds eq. 10 (twin critics, min), and
`compute_loss_pi` returns the eq. 13 direction itself ('grad_loss_pi_sql'); `update` fuses both with a
Polyak target (polyak 0.995). Conventions: alpha_c is the temperature of eq. 10 (temperature_mode
alpha); the RBF kernel's default bandwidth (adaptive_sig = 4) is mean(d^2) / (2 log(m + 1)) + 1e-8 with
m the updated particles, and it needs as many fixed as updated particles.
"""
import os

import torch
from torch import nn

from softq_conformance import NotSupported
from softq_conformance.kit import GivenQ, Inert, LinearQ, ParticleSets, flatten_sets, given_noise, import_port, \
    regression_target, swapped

ENV_VAR = "MAXENT_RL_ROOT"
STUBS = ["line_profiler", "memory_profiler", "render_browser"]  # profiling / browser rendering only


def load(root=None):
    root = root or os.environ.get(ENV_VAR)
    if not root:
        raise RuntimeError(f"set {ENV_VAR} to a checkout of github.com/mokeddembillel/max-entopy-rl")
    # core.py and actors/actor_svgd.py import names utils.py lacks at HEAD (unused by the svgd_sql paths)
    missing = {"utils": ["count_vars", "GMMDist", "trunc_normal_"]}
    core = import_port("core", os.path.join(root, "S2AC"), STUBS, missing=missing)
    return core, import_port("utils")


def _env(obs_dim, act_dim):  # what MaxEntrRL / ActorCritic read from an env
    box = lambda n: type("Box", (), {"shape": (n,), "high": [1.0]})()  # noqa: E731
    return type("Env", (), {"observation_space": box(obs_dim), "action_space": box(act_dim)})()


class MaxEntSQLAdapter:
    name, version = "max-entropy-rl-svgd_sql", "mokeddembillel/max-entopy-rl HEAD"
    capabilities = {"soft_value_estimator", "svgd", "agent"}
    conventions = {"value_proposal": "uniform_per_state", "squash_correction": "none", "temperature_mode": "alpha",
                   "bandwidth_rule": "svgd_code; median=mean; scale=0.5; n=updated; plus=1e-8",
                   "particle_counts": "tied", "target_update": "polyak(0.005)", "critic_reduction": "min"}

    def __init__(self, modules=None, root=None):
        self.core, self.utils = modules or load(root)
        self._probes = {}

    def _agent(self, obs_dim, act_dim, alpha=1.0, gamma=1.0, particles=16):
        D = self.utils.AttrDict
        rl = D(evaluation_data_path="", test_time=False, model_path="", replay_size=10, load_replay=False, replay_path="",
               update_after=0, max_steps=1, alpha_c=alpha, alpha_a=alpha, gamma=gamma)
        agent = self.core.MaxEntrRL(_env(obs_dim, act_dim), _env(obs_dim, act_dim), "conformance", "svgd_sql",
                                    D(hidden_sizes=(64, 64), activation=nn.ReLU, critic_cnn=False),
                                    D(num_svgd_particles=particles, test_action_selection="random", batch_size=64,
                                      device="cpu", hidden_sizes=(64, 64), kernel_sigma=None, adaptive_sig=4,
                                      activation=nn.ReLU), "cpu", rl, D(polyak=0.995, lr_critic=1e-3, lr_actor=1e-3,
                                                                        batch_size=64))
        agent.debugger = Inert()  # tensorboard scalars
        return agent

    # -- eq. 10: the target compute_loss_q regresses q1 onto, with given target-critic values -------------------
    def soft_value_uniform_box(self, q_values, alpha, action_dim):
        lead, M = q_values.shape[:-1], q_values.shape[-1]
        q = q_values.reshape(-1)
        N, z = q.shape[0] // M, torch.zeros
        agent = self._agent(1, action_dim, alpha=alpha, particles=M)
        critic = GivenQ(torch.zeros(N, dtype=q.dtype, requires_grad=True))
        data = {"obs": z(N, 1), "act": z(N, action_dim), "rew": z(N), "obs2": z(N, 1), "done": z(N)}
        with swapped(agent.ac, q1=critic), swapped(agent.ac_targ, q1=GivenQ(q), q2=GivenQ(q)):
            y = regression_target(critic, lambda: agent.compute_loss_q(data, 0).backward())
        return y.reshape(lead)

    def soft_value_estimate(self, q_values, log_proposal, alpha):
        raise NotSupported("compute_loss_q only has the uniform-box formula (eq. 10 with q = U[-1, 1]^d)")

    # -- eq. 13: compute_loss_pi returns the direction ('grad_loss_pi_sql') ------------------------------------
    def svgd_direction_auto(self, fixed, updated, grad_q, alpha):
        lead, (x, y, g) = flatten_sets(fixed, updated, grad_q)
        B, n, d = x.shape
        if y.shape[1] != n:
            raise NotSupported("the RBF kernel reshapes distances to (-1, m * m): fixed and updated counts are tied")
        if (d, n) not in self._probes:  # building MaxEntrRL is slow; particle loops call this thousands of times
            self._probes[(d, n)] = self._agent(1, d, particles=n)
        agent, sets = self._probes[(d, n)], ParticleSets(x.reshape(-1, d), y.reshape(-1, d), count_arg=None)
        q = LinearQ(g.reshape(-1, d), keepdim=False)
        with swapped(agent.ac, q1=q, q2=q), swapped(agent.ac.pi, act=lambda *a, **k: (sets(), None)):
            return agent.compute_loss_pi({"obs": torch.zeros(B, 1)}, 0)["grad_loss_pi_sql"].reshape(updated.shape)

    # -- the agent: update() is the port's fused step (critics, actor, Polyak targets) ---------------------------
    def make_agent(self, obs_dim, act_dim, alpha, gamma, seed):
        torch.manual_seed(seed)
        return self._agent(obs_dim, act_dim, alpha=alpha, gamma=gamma)

    def _data(self, batch):
        keys = {"obs": "obs", "action": "act", "reward": "rew", "next_obs": "obs2", "terminated": "done"}
        return {keys[k]: v for k, v in batch.items()}

    def q_values(self, agent, obs, act, target):
        ac = agent.ac_targ if target else agent.ac
        with torch.no_grad():
            return torch.stack([ac.q1(obs, act), ac.q2(obs, act)], -1)

    def td_target(self, agent, batch):
        return regression_target(agent.ac.q1, lambda: agent.compute_loss_q(self._data(batch), 0).backward())

    def update(self, agent, batch):
        agent.update(self._data(batch), 0)

    def actions_from_noise(self, agent, obs, xi):  # act() draws a_0 = torch.rand per (state, particle) row
        B, n, d = xi.shape
        with torch.no_grad(), given_noise(xi.reshape(B * n, d), fn="rand"), swapped(agent.ac.pi, num_particles=n):
            return agent.ac(obs.repeat_interleave(n, 0), action_selection=None)[0].reshape(B, n, d)

    def parameters(self, agent, target):
        return torch.cat([p.detach().reshape(-1) for p in (agent.ac_targ if target else agent.ac).parameters()])


make_adapter = MaxEntSQLAdapter  # --impl softq_conformance.third_party.ports.maxent_sql_adapter:make_adapter
