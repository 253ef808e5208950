"""A small stand-in shaped like scchy/RL src/RLAlgo/SoftQNew.py (names, signatures, inline maths, conventions),
written for tests/test_ports.py; the real file is not available in CI and is never copied here."""
from copy import deepcopy

import numpy as np
import torch
from torch import nn
from torch.distributions import Normal
from torch.optim import Adam

EPS = 1e-6


class NNQFunction(nn.Module):
    def __init__(self, state_dim, action_dim, hidden_layer_sizes):
        super().__init__()
        self.state_linear = nn.Linear(state_dim, hidden_layer_sizes[0])
        self.action_linear = nn.Linear(action_dim, hidden_layer_sizes[0])
        self.body = nn.Sequential(nn.ReLU(), nn.Linear(hidden_layer_sizes[0], hidden_layer_sizes[-1]), nn.ReLU(),
                                  nn.Linear(hidden_layer_sizes[-1], 1))

    def forward(self, state, action):
        return self.body(self.state_linear(state) + self.action_linear(action))


class StochasticNNPolicy(nn.Module):
    def __init__(self, state_dim, action_dim, hidden_layer_sizes, squash=True):
        super().__init__()
        self.normal_dist = Normal(torch.zeros(action_dim), torch.ones(action_dim))
        self.state_linear = nn.Linear(state_dim, hidden_layer_sizes[0])
        self.action_linear = nn.Linear(action_dim, hidden_layer_sizes[0])
        self.body = nn.Sequential(nn.ReLU(), nn.Linear(hidden_layer_sizes[0], hidden_layer_sizes[-1]), nn.ReLU(),
                                  nn.Linear(hidden_layer_sizes[-1], action_dim))

    def forward(self, state, n_action_samples=1):
        size = (state.shape[0], n_action_samples) if n_action_samples > 1 else (state.shape[0],)
        if n_action_samples > 1:
            state = state[:, None, :]
        noise = self.normal_dist.sample(size)
        return torch.tanh(self.body(self.state_linear(state) + self.action_linear(noise)))


@torch.no_grad()
def adaptive_isotropic_gaussian_kernel(xs, ys, h_min=1e-3):
    kx, ky = xs.shape[-2], ys.shape[-2]
    diff = xs.unsqueeze(-2) - ys.unsqueeze(-3)
    sq = (diff**2).sum(-1)
    top = torch.topk(sq.reshape(xs.shape[:-2] + (kx * ky,)), k=kx * ky // 2 + 1).values
    h = torch.maximum(top[..., -1] / torch.tensor(kx).log(), torch.tensor(h_min, dtype=torch.float32))
    kappa = torch.exp(-sq / h[..., None, None])
    return {"output": kappa, "gradient": -2 * diff / h[..., None, None, None] * kappa.unsqueeze(-1)}


class SoftQ:
    def __init__(self, state_dim, action_dim, gamma=0.99, actor_hidden_layers_dim=[128, 128],
                 critic_hidden_layers_dim=[128, 128], actor_lr=1e-3, critic_lr=1e-3, device="cuda", SQL_kwargs={}):
        self.kernel_fn = adaptive_isotropic_gaussian_kernel
        self.action_dim, self.gamma, self.device = action_dim, gamma, device
        self.value_n_particles = SQL_kwargs.get("value_n_particles", 16)
        self.kernel_n_particles = SQL_kwargs.get("kernel_n_particles", 16)
        self.kernel_update_ratio = SQL_kwargs.get("kernel_update_ratio", 0.5)
        self.critcic_traget_update_freq = SQL_kwargs.get("critcic_traget_update_freq", 1000)
        self.reward_scale = SQL_kwargs.get("reward_scale", 1)
        self.actor = StochasticNNPolicy(state_dim, action_dim, actor_hidden_layers_dim)
        self.critic = NNQFunction(state_dim, action_dim, critic_hidden_layers_dim)
        self.tar_critic = deepcopy(self.critic)
        self.actor_opt = Adam(self.actor.parameters(), lr=actor_lr)
        self.critic_opt = Adam(self.critic.parameters(), lr=critic_lr)
        self.count = 0

    def update(self, samples):
        self.count += 1
        state, action, reward, next_state, done = zip(*samples)
        f = lambda x: torch.FloatTensor(np.stack(x))  # noqa: E731
        self._create_td_update(f(state), f(action), f(reward).view(-1, 1), f(next_state), f(done).view(-1, 1))
        self._svgd_update(f(state))
        if self.count % self.critcic_traget_update_freq == 0:
            self.tar_critic.load_state_dict(self.critic.state_dict())

    def _svgd_update(self, state):
        act = self.actor(state, n_action_samples=self.kernel_n_particles)
        n_updated = int(self.kernel_n_particles * self.kernel_update_ratio)
        fixed, updated = torch.split(act, [self.kernel_n_particles - n_updated, n_updated], dim=1)
        log_p = self.critic(state[:, None, :], fixed).squeeze(2) + torch.sum(torch.log(1 - fixed**2 + EPS), dim=-1)
        grad_log_p = torch.autograd.grad(log_p, fixed, grad_outputs=torch.ones_like(log_p), create_graph=True)[0]
        k = self.kernel_fn(xs=fixed, ys=updated)
        phi = torch.mean(k["output"].unsqueeze(3) * grad_log_p.unsqueeze(2).detach() + k["gradient"], dim=1)
        grads = torch.autograd.grad(updated, list(self.actor.parameters()), grad_outputs=phi)
        loss = -sum(torch.sum(w * g.detach()) for w, g in zip(self.actor.parameters(), grads))
        self.actor_opt.zero_grad()
        loss.backward()
        self.actor_opt.step()

    def _create_td_update(self, state, action, reward, next_state, done):
        tar_action = 2 * torch.rand(1, self.value_n_particles, self.action_dim) - 1
        q_next = self.tar_critic(next_state[:, None, :], tar_action)
        q_next = torch.logsumexp(q_next, dim=1) - torch.log(torch.tensor(self.value_n_particles))
        q_next += self.action_dim * np.log(2)
        q_tar = self.reward_scale * reward + self.gamma * q_next * (1 - done)
        loss = torch.mean(0.5 * (q_tar.detach() - self.critic(state, action)) ** 2)
        self.critic_opt.zero_grad()
        loss.backward()
        self.critic_opt.step()
