import copy

import numpy as np
import pyprind  # noqa: F401  (progress bars in the real train loop)
import rllab.misc.logger as logger
import torch
import torch.nn as nn
from rllab.algos.base import RLAlgorithm
from rllab.misc import ext
from torch import optim

from pytorchrl.core.kernel import AdaptiveIsotropicGaussianKernel
from pytorchrl.misc.tensor_utils import log_sum_exp


class SoftQ(RLAlgorithm):
    def __init__(self, env, policy, qf, discount=0.99, alpha=1, qf_target_n_particles=16, qf_learning_rate=1e-3,
                 policy_learning_rate=1e-3, kernel_n_particles=16, kernel_update_ratio=0.5, soft_target_tau=1000,
                 scale_reward=1.0, **unused):
        self.action_dim = int(np.prod(env.action_space.shape))
        self.policy, self.qf, self.discount, self.alpha = policy, qf, discount, alpha
        self.qf_target_K, self.soft_target_tau, self.scale_reward = qf_target_n_particles, soft_target_tau, scale_reward
        self.kernel_K_updated = int(kernel_n_particles * kernel_update_ratio)
        self.kernel_K_fixed = kernel_n_particles - self.kernel_K_updated
        self.kernel_class = AdaptiveIsotropicGaussianKernel  # looked up per instance (tests replace it)
        self.target_qf = copy.deepcopy(qf)
        self.qf_optimizer = optim.Adam(qf.parameters(), lr=qf_learning_rate)
        self.policy_optimizer = optim.Adam(policy.parameters(), lr=policy_learning_rate)

    def do_training(self, itr, batch):
        obs, actions, rewards, next_obs, terminals = ext.extract(
            batch, "observations", "actions", "rewards", "next_observations", "terminals")
        out = self.train_qf(obs, actions, rewards, next_obs, terminals)
        self.train_policy(obs)
        if itr % self.soft_target_tau == 0:
            self.target_qf.set_param_values(self.qf.get_param_values())
        logger.record_tabular("QLoss", out[0])

    def train_qf(self, obs, actions, rewards, next_obs, terminals):
        f = lambda x: torch.from_numpy(np.asarray(x)).type(torch.FloatTensor)  # noqa: E731
        q_curr = self.qf(f(obs), torch.clamp(f(actions), -1, 1)).squeeze()
        target_actions = torch.FloatTensor(1, self.qf_target_K, self.action_dim).uniform_(-1, 1)
        q_next = self.target_qf(f(next_obs).unsqueeze(1), target_actions)
        v_next = log_sum_exp(q_next, 1).squeeze()
        v_next = v_next - torch.log(torch.FloatTensor([q_next.shape[1]]))
        v_next = v_next + self.action_dim * torch.log(torch.FloatTensor([2]))
        ys = (f(rewards) + (1.0 - f(terminals)) * self.discount * v_next).detach()
        loss = nn.MSELoss()(q_curr, ys)
        self.qf_optimizer.zero_grad()
        loss.backward()
        self.qf_optimizer.step()
        return loss.data.numpy(), q_curr.data.numpy(), ys.data.numpy()

    def train_policy(self, obs):
        obs_var = torch.from_numpy(np.asarray(obs)).type(torch.FloatTensor)
        fixed_from_policy = self.policy(obs_var, self.kernel_K_fixed)
        actions_updated = self.policy(obs_var, self.kernel_K_updated)
        actions_fixed = fixed_from_policy.detach().requires_grad_(True)

        def invert_grad(g):  # out-of-box coordinates are pushed back into [-1, 1]
            g = g.clone()
            g[actions_fixed > 1] = -10
            g[actions_fixed < -1] = 10
            return g

        actions_fixed.register_hook(invert_grad)
        log_p = self.qf(obs_var.unsqueeze(1), actions_fixed)
        grad_log_p = torch.autograd.grad(log_p, actions_fixed, grad_outputs=torch.ones(log_p.size()))[0]
        kernel = self.kernel_class(actions_fixed, actions_updated)
        action_grads = torch.mean(kernel.kappa.unsqueeze(3) * grad_log_p.detach().unsqueeze(2)
                                  + self.alpha * kernel.grad, dim=1)
        self.policy_optimizer.zero_grad()
        torch.autograd.backward(-actions_updated, grad_tensors=action_grads)
        self.policy_optimizer.step()
