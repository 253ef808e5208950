"""S seeds of the SQL update in one process: parameters stacked along a leading seed axis.

Each seed's networks are initialised exactly as `SoftQLearning(..., seed=s)` initialises them, then
stacked: every layer is one batched product (baddbmm) over the seeds. The losses of the seeds are
summed, so one backward pass gives each seed its own gradient, and Adam (elementwise) on the
stacked tensors is per-seed Adam. The update is the reference's default path (uniform per-state
proposal, alpha temperature, no squash correction, the config's bandwidth rule), used here to
measure multi-seed throughput; it is not a second reference.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..config import SQLConfig
from ..soft_value import soft_value_uniform_box
from ..sql import SoftQLearning
from ..svgd import median_bandwidth, pairwise_sq_dists, rbf_kernel, svgd_direction

__all__ = ["StackedMLP", "BatchedSQL"]


class StackedMLP(nn.Module):
    """S ReLU MLPs of the same shape as one module; forward x (S, N, in) -> (S, N, out)."""

    def __init__(self, mlps: list[nn.Sequential]):
        super().__init__()
        layers = [[m for m in seq if isinstance(m, nn.Linear)] for seq in mlps]
        n = len(layers[0])
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.stack([ls[i].weight.detach().t() for ls in layers]).contiguous()) for i in range(n)])
        self.biases = nn.ParameterList(
            [nn.Parameter(torch.stack([ls[i].bias.detach() for ls in layers]).unsqueeze(1).contiguous()) for i in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = torch.relu(x)
        return x


class BatchedSQL:
    """The SQL update (eq. 10-14) for S seeds at once."""

    def __init__(self, obs_dim: int, act_dim: int, config: SQLConfig, seeds: list[int]):
        self.config = c = config.validate()
        if (c.value_proposal, c.temperature_mode, c.squash_correction) != ("uniform_per_state", "alpha", "none"):
            raise ValueError("BatchedSQL implements the default conventions only")
        agents = [SoftQLearning(obs_dim, act_dim, config, seed=s) for s in seeds]
        self.device = torch.device(c.device)
        self.obs_dim, self.act_dim, self.S = obs_dim, act_dim, len(seeds)
        self.q = StackedMLP([a.q.net for a in agents]).to(self.device)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.sampler = StackedMLP([a.sampler.net for a in agents]).to(self.device)
        self.q_opt = torch.optim.Adam(self.q.parameters(), lr=c.q_lr)
        self.p_opt = torch.optim.Adam(self.sampler.parameters(), lr=c.policy_lr)
        self.generator = torch.Generator().manual_seed(seeds[0])

    def _q(self, net: StackedMLP, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """obs (S, B, o), act (S, B, n, d) -> (S, B, n)."""
        S, B, n, d = act.shape
        x = torch.cat([obs.unsqueeze(2).expand(S, B, n, obs.shape[-1]), act], -1)
        return net(x.reshape(S, B * n, -1)).reshape(S, B, n)

    def update(self, batch: dict[str, torch.Tensor]) -> None:
        """batch tensors carry a leading seed axis: obs (S, B, o), reward (S, B), ..."""
        c, S, d = self.config, self.S, self.act_dim
        obs, act = batch["obs"].to(self.device), batch["action"].to(self.device)
        B = obs.shape[1]
        with torch.inference_mode():
            a = (2.0 * torch.rand(S, B, c.value_samples, d, generator=self.generator) - 1.0).to(self.device)
            v = soft_value_uniform_box(self._q(self.q_target, batch["next_obs"].to(self.device), a), c.alpha, d)
            y = batch["reward"].to(self.device) + c.gamma * (1.0 - batch["terminated"].to(self.device)) * v
        q = self._q(self.q, obs, act.unsqueeze(2)).squeeze(-1)
        loss = 0.5 * (y.clone() - q).pow(2).mean(-1).sum()  # sum over seeds: independent gradients
        self.q_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.q_opt.step()

        K, nf = c.svgd_particles, c.n_fixed
        xi = torch.randn(S, B, K, d, generator=self.generator).to(self.device)
        x = torch.cat([obs.unsqueeze(2).expand(S, B, K, obs.shape[-1]), xi], -1).reshape(S, B * K, -1)
        actions = torch.tanh(self.sampler(x)).reshape(S, B, K, d)
        fixed = actions[:, :, :nf].detach().requires_grad_(True)
        updated = actions[:, :, nf:]
        grad_q = torch.autograd.grad(self._q(self.q, obs, fixed).sum(), fixed)[0]
        fixed, targets = fixed.detach(), updated.detach()
        h = median_bandwidth(pairwise_sq_dists(fixed, targets), c.bandwidth_rule, nf)
        k, grad_k = rbf_kernel(fixed, targets, h)
        direction = svgd_direction(k, grad_k, grad_q, c.alpha)
        ploss = -(direction * updated).sum(-1).mean((-1, -2)).sum()
        self.p_opt.zero_grad(set_to_none=True)
        ploss.backward()
        self.p_opt.step()

    def sync_target(self) -> None:
        self.q_target.load_state_dict(self.q.state_dict())
