"""Soft Q-learning, Algorithm 1 of Haarnoja et al. (2017), read top to bottom.

    for each step:  a_t = f^phi(xi; s_t)                      collect experience (+ optional OU noise)
                    sample a minibatch from D
                    V_hat(s') from M proposal draws           eq. 10, target parameters theta-bar
                    y = r + gamma (1 - done) V_hat(s')        eq. 11 target, stop-gradient
                    theta <- Adam(grad 0.5 (y - Q_theta)^2)   eq. 11
                    Delta f from K sampler actions            eq. 13 (fixed / updated split, C.1)
                    phi <- Adam(Delta f * df/dphi)            eq. 14
                    every N steps: theta-bar <- theta         hard target copy (D.1, tau = 1)

The paper's target *sampler* parameters phi-bar are unused by its own algorithm (the authors'
code has none), so there is no target sampler here.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch

from .config import SQLConfig
from .flat_adam import FlatAdam
from .networks import QNetwork, SamplingNetwork, in_config_precision
from .noise import OUNoise
from .sampler import svgd_surrogate_loss
from .soft_value import sample_uniform_box, soft_value_uniform_box

__all__ = ["SoftQLearning", "log_linear_alpha", "noise_set_size", "sql_bfloat16_autocast", "per_seed"]


def per_seed(x: torch.Tensor) -> float | np.ndarray:
    """A loss or statistic as a float, or one float per seed for the stacked agents of softq_ref.vectorized."""
    x = x.detach()
    return float(x) if x.dim() == 0 else x.cpu().numpy().astype(np.float64)


def log_linear_alpha(epoch: int, alpha_start: float, alpha_final: float, anneal_epochs: int) -> float:
    """D.1 fine-tuning: alpha annealed log-linearly from alpha_start to alpha_final within anneal_epochs."""
    if anneal_epochs <= 0 or epoch >= anneal_epochs:
        return alpha_final if anneal_epochs > 0 else alpha_start
    frac = epoch / anneal_epochs
    return math.exp((1 - frac) * math.log(alpha_start) + frac * math.log(alpha_final))


def noise_set_size(epoch: int, initial: int, anneal_epochs: int) -> int:
    """D.1 fine-tuning: the fixed noise set {xi_i} shrinks linearly from `initial` to 1 element."""
    if anneal_epochs <= 0 or epoch >= anneal_epochs:
        return 1
    return max(1, round(initial - (initial - 1) * epoch / anneal_epochs))


class SoftQLearning:
    """The SQL agent. Small methods so that each equation can be inspected (and broken) on its own."""

    algo = "sql"

    def __init__(self, obs_dim: int, act_dim: int, config: SQLConfig, seed: int = 0):
        self.config = config.validate()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        torch.manual_seed(seed)  # network initialisation
        self.generator = torch.Generator().manual_seed(seed)  # proposal, sampler noise
        self.np_rng = np.random.default_rng(seed)  # OU noise
        self.device = torch.device(config.device)
        self.q = QNetwork(obs_dim, act_dim, config.hidden_sizes).to(self.device)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.sampler = SamplingNetwork(obs_dim, act_dim, config.hidden_sizes).to(self.device)
        self.q_optimizer = FlatAdam(self.q, lr=config.q_lr)
        self.policy_optimizer = FlatAdam(self.sampler, lr=config.policy_lr)
        self.ou = OUNoise(act_dim, config.ou_theta, config.ou_sigma) if config.exploration_noise == "ou" else None
        self.alpha = float(config.alpha)
        self.initial_alpha = self.alpha

    # -- temperature convention ----------------------------------------------------------------
    @property
    def internal_alpha(self) -> float:
        """alpha inside eq. 10 and 13: alpha itself, or 1 under the reward-scale convention."""
        return self.alpha if self.config.temperature_mode == "alpha" else 1.0

    @property
    def reward_scale(self) -> float:
        return 1.0 if self.config.temperature_mode == "alpha" else 1.0 / self.alpha

    # -- acting ----------------------------------------------------------------------------------
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """One action a = f^phi(xi; s) (+ OU noise if configured), clipped to [-1, 1]."""
        with torch.no_grad():
            s = torch.as_tensor(obs, dtype=torch.float32, device=self.device).reshape(1, -1)
            a = self.sampler(s, 1, generator=self.generator)[0, 0].cpu().numpy().astype(np.float64)
        if self.ou is not None and not deterministic:
            a = np.clip(a + self.ou.sample(self.np_rng), -1.0, 1.0)
        return a.astype(np.float32)

    def sample_actions(self, obs: torch.Tensor, n: int) -> torch.Tensor:
        """n policy samples per state: obs (B, o) -> (B, n, d)."""
        with torch.no_grad():
            return self.sampler(obs.to(self.device), n, generator=self.generator)

    def reset_episode(self) -> None:
        if self.ou is not None:
            self.ou.reset()

    # -- eq. 10-11: soft Q update ---------------------------------------------------------------------
    def proposal_actions(self, batch: int) -> torch.Tensor:
        """M draws from q_a' = Uniform([-1, 1]^d) per next state (or shared across the batch)."""
        M = self.config.value_samples
        if self.config.value_proposal == "uniform_shared":
            return sample_uniform_box((1, M), self.act_dim, self.generator).expand(batch, M, self.act_dim)
        return sample_uniform_box((batch, M), self.act_dim, self.generator)

    def soft_value_target(self, next_obs: torch.Tensor) -> torch.Tensor:
        """V_hat(s') of eq. 10 with the frozen target parameters theta-bar: (B, o) -> (B,)."""
        with torch.no_grad():
            actions = self.proposal_actions(next_obs.shape[-2]).to(self.device)  # B of (B, o) or (S, B, o)
            q = self.q_target(next_obs, actions)  # (B, M)
            return soft_value_uniform_box(q, self.internal_alpha, self.act_dim)

    @in_config_precision
    def td_target(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """y = reward_scale * r + gamma (1 - terminated) V_hat(s'), without gradient (eq. 11)."""
        v_next = self.soft_value_target(batch["next_obs"])
        return self.reward_scale * batch["reward"] + self.config.gamma * (1.0 - batch["terminated"]) * v_next

    @in_config_precision
    def q_update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        y = self.td_target(batch)
        q = self.q(batch["obs"], batch["action"])
        loss = 0.5 * (y - q).pow(2).mean(-1)  # eq. 11, mean over the batch
        self.q_optimizer.zero_grad()
        loss.sum().backward()  # a no-op sum for one agent; over the seeds of a stacked agent (vectorized.py)
        self.q_optimizer.step()
        return {"q_loss": per_seed(loss), "q_mean": per_seed(q.detach().mean(-1))}

    # -- eq. 13-14: sampler update ------------------------------------------------------------------
    @in_config_precision
    def policy_update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        obs = batch["obs"]
        actions = self.sampler(obs, self.config.svgd_particles, generator=self.generator)  # (B, K, d)
        loss, stats = svgd_surrogate_loss(
            obs, actions, self.q, self.internal_alpha, self.config.n_fixed,
            self.config.bandwidth_rule, self.config.squash_correction,
        )
        self.policy_optimizer.zero_grad()
        loss.sum().backward()
        self.policy_optimizer.step()
        return {"policy_surrogate": per_seed(loss), "bandwidth": stats.bandwidth, "svgd_norm": stats.direction_norm}

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        return {**self.q_update(batch), **self.policy_update(batch)}

    # -- schedule hooks called by the training loop --------------------------------------------------
    def sync_target(self) -> None:
        self.q_target.load_state_dict(self.q.state_dict())

    def on_env_step(self, total_steps: int) -> None:
        if total_steps % self.config.target_update_interval == 0:
            self.sync_target()

    def on_epoch_start(self, epoch: int) -> None:
        """D.1 fine-tuning schedule: anneal alpha and shrink the fixed noise set."""
        c = self.config
        if c.finetune_epochs <= 0:
            return
        self.alpha = log_linear_alpha(epoch, self.initial_alpha, c.finetune_alpha_final, c.finetune_epochs)
        if c.finetune_noise_set_size > 0:
            if self.sampler.noise_set is None or epoch == 0:
                self.full_noise_set = self.draw_noise_set(c.finetune_noise_set_size)
            self.sampler.noise_set = self.noise_subset(noise_set_size(epoch, c.finetune_noise_set_size, c.finetune_epochs))

    def draw_noise_set(self, size: int) -> torch.Tensor:
        """The fixed noise set {xi_i} of the fine-tuning schedule, drawn once."""
        return torch.randn(size, self.act_dim, generator=self.generator)

    def noise_subset(self, k: int) -> torch.Tensor:
        """Its first k elements: the set shrinks as fine-tuning proceeds."""
        return self.full_noise_set[:k]

    # -- checkpointing --------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "q": self.q.state_dict(), "q_target": self.q_target.state_dict(), "sampler": self.sampler.state_dict(),
            "q_optimizer": self.q_optimizer.state_dict(), "policy_optimizer": self.policy_optimizer.state_dict(),
            "generator": self.generator.get_state(), "np_rng": self.np_rng.bit_generator.state,
            "ou": None if self.ou is None else self.ou.state.copy(), "alpha": self.alpha,
            "noise_set": self.sampler.noise_set, "full_noise_set": getattr(self, "full_noise_set", None),
        }

    def load_state_dict(self, state: dict) -> None:
        state = copy.deepcopy(state)  # optimizers adopt tensors they are given; never share them with the caller
        self.q.load_state_dict(state["q"])
        self.q_target.load_state_dict(state["q_target"])
        self.sampler.load_state_dict(state["sampler"])
        self.q_optimizer.load_state_dict(state["q_optimizer"])
        self.policy_optimizer.load_state_dict(state["policy_optimizer"])
        self.generator.set_state(state["generator"])
        self.np_rng.bit_generator.state = state["np_rng"]
        if self.ou is not None:
            self.ou.state[:] = state["ou"]
        self.alpha = state["alpha"]
        self.sampler.noise_set = state["noise_set"]
        if state.get("full_noise_set") is not None:
            self.full_noise_set = state["full_noise_set"]


def sql_bfloat16_autocast(obs_dim: int, act_dim: int, config: SQLConfig, seed: int = 0) -> SoftQLearning:
    """Agent factory for SQL in the opt-in precision="bfloat16_autocast" mode, e.g. as a benchmark variant:
    `python -m softq_ref.benchmarks --algos sql_bf16=softq_ref.sql:sql_bfloat16_autocast,ddpg ...`."""
    return SoftQLearning(obs_dim, act_dim, config.replace(precision="bfloat16_autocast"), seed)
