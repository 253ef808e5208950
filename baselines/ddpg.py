"""DDPG (Lillicrap et al., 2015), the baseline of section 5, with the hyperparameters of Appendix D.1.

    a_t = mu(s_t) + OU noise                                   theta 0.15, sigma 0.3 (D.1)
    y   = r + gamma (1 - terminated) Q'(s', mu'(s'))           critic target, stop-gradient
    theta <- Adam(grad 0.5 (y - Q_theta(s, a))^2)              Q lr 1e-3
    phi   <- Adam(grad -Q_theta(s, mu_phi(s)))                 deterministic policy gradient, lr 1e-4
    every N env steps: theta' <- theta, phi' <- phi            hard target copy (D.1, tau = 1, N = 1000)

Same networks (softq_ref.networks), replay memory and training loop (softq_ref.training) as SQL,
so the two differ only where the algorithms differ. The config is an `SQLConfig`: DDPG reads the
fields D.1 shares between both algorithms (gamma, q_lr, policy_lr, batch_size, replay_size,
min_replay_size, updates_per_step, hidden_sizes, target_update_interval, epoch_length,
max_episode_steps, ou_theta, ou_sigma, device) and ignores the SQL-only ones (alpha,
temperature_mode, value_*, svgd_*, bandwidth_rule, squash_correction, exploration_noise,
finetune_*). DDPG always explores with OU noise.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from softq_ref.config import SQLConfig
from softq_ref.flat_adam import FlatAdam
from softq_ref.networks import QNetwork, in_config_precision, mlp
from softq_ref.noise import OUNoise
from softq_ref.sql import per_seed

__all__ = ["DDPG", "DDPGConfig", "DeterministicActor"]

# DDPG takes the same typed config; the alias documents which class a DDPG run is configured with.
DDPGConfig = SQLConfig


class DeterministicActor(nn.Module):
    """mu(s) = tanh(MLP(s)), actions in [-1, 1]^d (same MLP as the SQL sampler, without the noise input)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes=(200, 200)):
        super().__init__()
        self.net = mlp(obs_dim, hidden_sizes, act_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))


class DDPG:
    """Same interface as softq_ref.sql.SoftQLearning, so `softq_ref.training.train` runs either."""

    algo = "ddpg"

    def __init__(self, obs_dim: int, act_dim: int, config: SQLConfig, seed: int = 0):
        self.config = config.validate()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        torch.manual_seed(seed)  # network initialisation (as SoftQLearning)
        self.np_rng = np.random.default_rng(seed)  # OU noise
        self.device = torch.device(config.device)
        self.q = QNetwork(obs_dim, act_dim, config.hidden_sizes).to(self.device)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.actor = DeterministicActor(obs_dim, act_dim, config.hidden_sizes).to(self.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.q_optimizer = FlatAdam(self.q, lr=config.q_lr)  # D.1: 1e-3
        self.policy_optimizer = FlatAdam(self.actor, lr=config.policy_lr)  # D.1: 1e-4
        self.ou = OUNoise(act_dim, config.ou_theta, config.ou_sigma)

    # -- acting ----------------------------------------------------------------------------------
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """a = mu(s) + OU noise, clipped to [-1, 1]; `deterministic` drops the noise (evaluation)."""
        with torch.no_grad():
            s = torch.as_tensor(obs, dtype=torch.float32, device=self.device).reshape(1, -1)
            a = self.actor(s)[0].cpu().numpy().astype(np.float64)
        if not deterministic:
            a = np.clip(a + self.ou.sample(self.np_rng), -1.0, 1.0)
        return a.astype(np.float32)

    def reset_episode(self) -> None:
        self.ou.reset()

    # -- critic and actor updates -------------------------------------------------------------------
    @in_config_precision
    def td_target(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """y = r + gamma (1 - terminated) Q'(s', mu'(s')); truncation is not terminal."""
        with torch.no_grad():
            q_next = self.q_target(batch["next_obs"], self.actor_target(batch["next_obs"]))
            return batch["reward"] + self.config.gamma * (1.0 - batch["terminated"]) * q_next

    @in_config_precision
    def q_update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        y = self.td_target(batch)
        q = self.q(batch["obs"], batch["action"])
        # 0.5 * MSE as in the SQL Q update (eq. 11), so q_loss columns are comparable across algorithms.
        loss = 0.5 * (y - q).pow(2).mean(-1)
        self.q_optimizer.zero_grad()
        loss.sum().backward()  # a no-op sum for one agent; over the seeds of a stacked agent (softq_ref.vectorized)
        self.q_optimizer.step()
        return {"q_loss": per_seed(loss), "q_mean": per_seed(q.detach().mean(-1))}

    @in_config_precision
    def policy_update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        # Deterministic policy gradient: ascend Q(s, mu(s)); only the actor's optimizer steps.
        loss = -self.q(batch["obs"], self.actor(batch["obs"])).mean(-1)
        self.policy_optimizer.zero_grad()
        # Gradients into the actor only: the critic's weight gradients would be discarded (q_update
        # zeroes them first), and skipping them is bit-identical and ~7% faster per update (perf A/B).
        loss.sum().backward(inputs=list(self.actor.parameters()))
        self.policy_optimizer.step()
        return {"policy_loss": per_seed(loss)}

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        stats = self.q_update(batch)  # critic first, then the actor against the updated critic
        return {**stats, **self.policy_update(batch)}

    # -- schedule hooks called by the training loop --------------------------------------------------
    def sync_target(self) -> None:
        self.q_target.load_state_dict(self.q.state_dict())
        self.actor_target.load_state_dict(self.actor.state_dict())

    def on_env_step(self, total_steps: int) -> None:
        if total_steps % self.config.target_update_interval == 0:  # D.1: tau = 1 every 1000 steps
            self.sync_target()

    def on_epoch_start(self, epoch: int) -> None:
        """No per-epoch schedule in DDPG; present for interface parity with SoftQLearning."""

    # -- checkpointing --------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "q": self.q.state_dict(), "q_target": self.q_target.state_dict(),
            "actor": self.actor.state_dict(), "actor_target": self.actor_target.state_dict(),
            "q_optimizer": self.q_optimizer.state_dict(), "policy_optimizer": self.policy_optimizer.state_dict(),
            "np_rng": self.np_rng.bit_generator.state, "ou": self.ou.state.copy(),
        }

    def load_state_dict(self, state: dict) -> None:
        # Optimizer.load_state_dict keeps Adam's `step` tensors by reference: copy, or two agents
        # loaded from one state dict would share (and double-count) their step counters.
        state = copy.deepcopy(state)
        self.q.load_state_dict(state["q"])
        self.q_target.load_state_dict(state["q_target"])
        self.actor.load_state_dict(state["actor"])
        self.actor_target.load_state_dict(state["actor_target"])
        self.q_optimizer.load_state_dict(state["q_optimizer"])
        self.policy_optimizer.load_state_dict(state["policy_optimizer"])
        self.np_rng.bit_generator.state = state["np_rng"]
        self.ou.state[:] = state["ou"]
