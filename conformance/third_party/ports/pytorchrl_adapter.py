"""nosyndicate/pytorchrl `SoftQ` (pytorchrl/algos/softq.py), unedited; PYTORCHRL_ROOT = a checkout.

eq. 10 is inline in `train_qf`, eq. 13 in `train_policy` (kernel with its own bandwidth), both fused in
`do_training` with a target copy every `soft_target_tau` steps. Conventions: eq. 10 has no alpha and
`train` scales rewards by `scale_reward` (reward_scale); target actions shared over the batch;
h = max(median / log K_fixed, float32 1e-3); float32 constants (log K, log 2) in float64 paths.
"""
import os

import numpy as np
import torch

from softq_conformance import NotSupported
from softq_conformance.kit import (EnergyQ, GivenQ, LinearQ, ParticleSets, flatten_sets, frozen, given_noise,
                                   import_port, regression_target, swapped)

ENV_VAR = "PYTORCHRL_ROOT"
MODULES = ("algos.softq", "policies.svgd_policy", "q_functions.svgd_mlp_q_function")
SHIMS = dict(stubs=["rllab", "pyprind"], provide={"rllab.misc.ext": {"extract": lambda d, *k: tuple(d[x] for x in k)}})
KEYS = {"obs": "observations", "action": "actions", "reward": "rewards", "next_obs": "next_observations",
        "terminated": "terminals"}  # the suite's batch keys -> rllab pool keys


def load(root: str | None = None):
    root = root or os.environ.get(ENV_VAR)
    if not root:
        raise RuntimeError(f"set {ENV_VAR} to a checkout of github.com/nosyndicate/pytorchrl")
    return [import_port(f"pytorchrl.{m}", root, **SHIMS) for m in MODULES]


def _env(obs_dim, act_dim):  # what SoftQ.__init__ reads from an rllab env
    box = lambda n: type("Box", (), {"shape": (n,)})()  # noqa: E731
    return type("Env", (), {"observation_space": box(obs_dim), "action_space": box(act_dim)})()


class PytorchrlAdapter:
    name, version = "pytorchrl-softq", "nosyndicate/pytorchrl HEAD"
    capabilities = {"soft_value_estimator", "svgd", "sampler", "agent"}
    TARGET_EVERY = 5  # soft_target_tau (a hard-copy interval despite its name); the port's default is 1000
    conventions = {"value_proposal": "uniform_shared", "squash_correction": "none",
                   "bandwidth_rule": "sql_code; floor=float32(1e-3)", "temperature_mode": "reward_scale",
                   "target_update": f"hard({TARGET_EVERY})", "precision": "float32_constants",
                   "out_of_box_gradient": "constant(10)"}  # train_policy's invert_grad hook

    def __init__(self, modules=None, root: str | None = None):
        self.softq, self.policies, self.qfs = modules or load(root)

    def _agent(self, obs_dim, act_dim, alpha=1.0, gamma=1.0, scale=1.0, **kw):
        return self.softq.SoftQ(_env(obs_dim, act_dim), self.policies.SVGDPolicy(obs_dim, act_dim, (64, 64)),
                                self.qfs.SVGDMLPQFunction(obs_dim, act_dim, (64, 64)), alpha=alpha, discount=gamma,
                                scale_reward=scale, soft_target_tau=self.TARGET_EVERY, **kw)

    # -- eq. 10: the value inside train_qf, read off the TD target it regresses onto -----------------------
    def soft_value_uniform_box(self, q_values, alpha, action_dim):
        if alpha != 1.0:
            raise NotSupported("eq. 10 in train_qf has no temperature (alpha = 1 inside; reward_scale)")
        lead, M, z = q_values.shape[:-1], q_values.shape[-1], np.zeros
        q = q_values.reshape(-1, M)
        N, agent = q.shape[0], self._agent(1, action_dim)
        critic = GivenQ(torch.zeros(N, 1, dtype=q.dtype, requires_grad=True))
        with swapped(agent, qf=critic, target_qf=GivenQ(q[:, :, None]), qf_target_K=M), frozen(agent.qf_optimizer):
            y = regression_target(critic, lambda: agent.train_qf(z((N, 1)), z((N, action_dim)), z(N), z((N, 1)), z(N)))
        return y.reshape(lead)

    def soft_value_estimate(self, q_values, log_proposal, alpha):
        raise NotSupported("train_qf only has the uniform-box proposal (eq. 10 with q = U[-1, 1]^d)")
    # -- eq. 13: the direction train_policy leaves on the updated particles --------------------------------
    def svgd_direction_auto(self, fixed, updated, grad_q, alpha):
        lead, (x, y, g) = flatten_sets(fixed, updated, grad_q)
        agent = self._agent(1, x.shape[-1])
        sets = ParticleSets(x, y)
        with swapped(agent, policy=sets, qf=LinearQ(g), alpha=alpha, kernel_K_fixed=x.shape[1],
                     kernel_K_updated=y.shape[1]), frozen(agent.policy_optimizer):
            agent.train_policy(np.zeros((x.shape[0], 1), np.float32))
        return -sets.grad(1).reshape(updated.shape)  # train_policy back-propagates -a_updated with grad phi

    # -- amortized SVGD against a given energy: train_policy with the energy as its critic --------------------
    def fit_sampler(self, energy, action_dim, alpha, steps, seed):
        torch.manual_seed(seed)
        agent = self._agent(1, action_dim, alpha=alpha, kernel_n_particles=32)
        agent.qf = EnergyQ(energy)
        for _ in range(steps):
            agent.train_policy(np.zeros((1, 1), np.float32))
        return agent.policy

    def sample(self, policy, n):  # unbounded outputs; the port relies on the env clipping actions to the box
        with torch.no_grad():
            return policy(torch.zeros(1, 1), n)[0].clamp(-1, 1)

    # -- the agent: do_training is the port's fused step (train_qf, train_policy, target copy) ------------------
    def make_agent(self, obs_dim, act_dim, alpha, gamma, seed):
        torch.manual_seed(seed)
        agent = self._agent(obs_dim, act_dim, gamma=gamma, scale=1.0 / alpha)
        agent.itr = 0  # do_training's step counter (the port's train() loop keeps it)
        return agent

    def _batch(self, agent, batch):  # train() stores reward * scale_reward in the pool; do the same
        return {KEYS[k]: v.numpy() * (agent.scale_reward if k == "reward" else 1) for k, v in batch.items()}

    def q_values(self, agent, obs, act, target):
        with torch.no_grad():
            return (agent.target_qf if target else agent.qf)(obs, act).squeeze(-1)
    def td_target(self, agent, batch):
        b = self._batch(agent, batch)
        with frozen(agent.qf_optimizer):
            return regression_target(agent.qf, lambda: agent.train_qf(*(b[k] for k in KEYS.values())))

    def update(self, agent, batch):
        agent.do_training(agent.itr, self._batch(agent, batch))
        agent.itr += 1

    def actions_from_noise(self, agent, obs, xi):  # the policy draws xi (1, K, d) itself, shared over its batch
        with torch.no_grad(), given_noise(*(xi[b:b + 1] for b in range(len(obs)))):
            return torch.cat([agent.policy(obs[b:b + 1], xi.shape[1]) for b in range(len(obs))])

    def parameters(self, agent, target):
        return (agent.target_qf if target else agent.qf).get_param_values()


make_adapter = PytorchrlAdapter  # --impl softq_conformance.third_party.ports.pytorchrl_adapter:make_adapter
