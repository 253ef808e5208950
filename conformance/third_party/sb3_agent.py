"""Stable-Baselines3 SAC and DDPG as agents of the repo's own training loop (`softq_ref.training.train`).

    make_agent("sb3_sac", obs_dim, act_dim, config, seed)      # SB3 SAC in the max-ent role of SQL
    make_agent("sb3_ddpg", obs_dim, act_dim, config, seed)     # SB3 DDPG in the role of our DDPG
    python -m softq_ref.benchmarks --tier ci --tasks swimmer --algos sb3_sac,sb3_ddpg

Why a shim instead of `model.learn()`: the benchmark claims compare algorithms, so everything that
is not the algorithm must be the same as for the reference runs: the environment steps, episode
seeds, the replay memory and its minibatch sampling, the update schedule (D.1: one update per env
step after `min_replay_size` samples), the metrics and the checkpoints. `train()` owns all of that;
this class owns only what SB3 implements: acting, and one gradient step of SB3's own `train()` on a
minibatch handed to it.

How one update runs SB3's code on OUR batch
-------------------------------------------
SB3's `SAC.train` / `TD3.train` (DDPG is TD3 with one critic, policy delay 1 and target noise clipped to 0)
read their minibatch from `self.replay_buffer.sample(batch_size, env=...)`. `update(batch)` puts a
`_OneBatch` in place of the model's replay buffer, which returns exactly our batch as SB3's
`ReplayBufferSamples` (rewards and dones of shape (B, 1); dones = `terminated`, so time-limit
truncation is not terminal, as in the reference), then calls `model.train(gradient_steps=1,
batch_size=B)`. The critic step, actor step and SB3's Polyak target update are SB3's code unchanged.

Mapping of the config (an `SQLConfig`, as for every agent of `train`)
---------------------------------------------------------------------
* temperature: SAC `ent_coef = config.alpha`, fixed (never "auto"); the same mapping and reasoning
  as the conformance adapter `softq_conformance.third_party.sb3` (SB3's SAC maximises
  E[sum r + ent_coef H], so ent_coef is alpha of the paper's objective). `temperature_mode
  "reward_scale"` is mapped to the same objective (rewards are not rescaled: only the policy matters
  for the claims, and the policy of both conventions is identical). DDPG has no temperature.
* learning rate: SB3 has ONE `learning_rate`, which `train()` re-applies to the actor and critic
  optimizers at every call (`_update_learning_rate`), so two rates cannot be kept without patching
  SB3. We use `config.q_lr` for both: the critic's rate sets the stability of the TD regression the
  actor depends on, and in the ci tier `q_lr == policy_lr` (1e-3), so nothing is lost there. In the
  paper tier (policy lr 1e-4) SB3's actor therefore learns with 1e-3: a documented departure.
* targets: SB3's own Polyak averaging with its default `tau` = 0.005 after every gradient step
  (SAC: critic only; DDPG: critic and actor). `config.target_update_interval` (D.1's hard copy
  every 1000 steps) is NOT applied: the target update is part of SB3's implementation.
* networks: `net_arch = config.hidden_sizes` for actor and critics (SAC: two critics, clipped
  double Q, SB3's default; DDPG: one critic). gamma, batch size (that of the batch given), device
  from the config.
* exploration: SAC samples from its tanh-Gaussian policy; if `config.exploration_noise == "ou"`
  OU noise is added on top, exactly as the reference SQL agent does (so the max-ent role gets the
  same exploration config as SQL; the ci and paper tiers have "ou", as D.1). DDPG adds OU noise
  (`ou_theta`, `ou_sigma`, `softq_ref.noise.OUNoise`, numpy Generator seeded with `seed`), always,
  like the reference DDPG. `deterministic=True` drops the added OU noise, as for the reference agents:
  DDPG then acts with mu(s), SAC still samples its tanh-Gaussian policy (its policy *is* the
  distribution, as SQL's is the sampler's; the multi-goal protocol evaluates that distribution).
* losses reported: `q_loss` / `policy_loss` are SB3's own `train/critic_loss` / `train/actor_loss`
  logger values of that step. Conventions differ from the reference (0.5 MSE of one critic): SB3
  SAC logs 0.5 * (MSE_1 + MSE_2) over its two critics, SB3 DDPG logs MSE (no 0.5). SAC's actor loss
  is E[alpha log pi - min Q]; DDPG's is -E[Q(s, mu(s))].

Randomness and exact resume
---------------------------
SB3 draws from torch's global generator (SAC's policy samples; TD3's target-noise `normal_`, which
DDPG draws and clips to 0). The agent keeps its own torch generator state and swaps it in around every SB3
call (`_own_torch_rng`), so its random stream depends only on `seed` and on its own calls, never on
what else the process draws, like the reference agents' private generators. Network initialisation
is seeded by `torch.manual_seed(seed)` inside that stream. `state_dict()` holds the SB3 policy
(actor, critics and targets), both optimizers, the torch and numpy generator states, the OU state
and SB3's `_n_updates`: loading it into a fresh agent continues bit-identically (tested with the
loop's early-stop resume). CUDA generator states are not saved (device "cpu" is the supported case).
"""
from __future__ import annotations

import contextlib
import copy
import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from softq_ref.config import SQLConfig
from softq_ref.noise import OUNoise

__all__ = ["SB3Agent", "make_sac", "make_ddpg", "SB3_TAU", "KINDS"]

SB3_TAU = 0.005  # SB3's default Polyak coefficient for SAC and DDPG
KINDS = ("sac", "ddpg")


class _SpacesOnlyEnv(gym.Env):
    """An env that only carries the Box spaces SB3 needs to build its networks; it is never stepped."""

    def __init__(self, obs_dim: int, act_dim: int):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32)

    def reset(self, *, seed=None, options=None):  # pragma: no cover - SB3 never resets it (no learn())
        return np.zeros(self.observation_space.shape, np.float32), {}

    def step(self, action):  # pragma: no cover
        raise RuntimeError("the SB3Agent's spaces-only env is never stepped; softq_ref.training.train steps the task")


class _OneBatch:
    """Stands in for SB3's replay buffer: `sample()` returns the one batch the training loop drew."""

    def __init__(self, samples: Any):
        self.samples = samples
        self.calls = 0

    def sample(self, batch_size: int, env: Any = None) -> Any:
        if batch_size != self.samples.observations.shape[0]:
            raise RuntimeError(f"SB3 asked for a batch of {batch_size}, the training loop gave "
                               f"{self.samples.observations.shape[0]}: SB3Agent.update passes the batch size itself")
        self.calls += 1
        return self.samples


def _import_sb3():
    try:
        import stable_baselines3
    except ImportError as e:
        raise ImportError("softq_conformance.third_party.sb3_agent needs stable-baselines3, an optional extra: "
                          f'pip install -e ".[sb3]" (import failed: {e})') from e
    return stable_baselines3


class SB3Agent:
    """An SB3 SAC (`kind="sac"`) or DDPG (`kind="ddpg"`) model behind the interface `train()` uses."""

    def __init__(self, kind: str, obs_dim: int, act_dim: int, config: SQLConfig, seed: int = 0):
        if kind not in KINDS:
            raise ValueError(f"SB3Agent kind {kind!r} is unknown: expected one of {KINDS}")
        sb3 = _import_sb3()
        self.kind, self.algo = kind, f"sb3_{kind}"
        self.config = config.validate()
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.sb3_version = sb3.__version__
        self.np_rng = np.random.default_rng(seed)  # OU noise
        use_ou = kind == "ddpg" or config.exploration_noise == "ou"
        self.ou = OUNoise(self.act_dim, config.ou_theta, config.ou_sigma) if use_ou else None
        self._torch_rng = torch.Generator().manual_seed(int(seed)).get_state()
        with self._own_torch_rng():
            torch.manual_seed(int(seed))  # network initialisation, inside the agent's own stream
            self.model = self._build_model()

    # -- construction ---------------------------------------------------------------------------------
    def _build_model(self):
        from stable_baselines3 import DDPG, SAC
        from stable_baselines3.common.logger import Logger

        c = self.config
        common = dict(learning_rate=c.q_lr, buffer_size=1, learning_starts=0, batch_size=c.batch_size,
                      tau=SB3_TAU, gamma=c.gamma, train_freq=1, gradient_steps=1,
                      policy_kwargs={"net_arch": [int(h) for h in c.hidden_sizes]}, device=c.device, verbose=0)
        env = _SpacesOnlyEnv(self.obs_dim, self.act_dim)
        if self.kind == "sac":
            model = SAC("MlpPolicy", env, ent_coef=float(c.alpha), target_update_interval=1, **common)
        else:
            model = DDPG("MlpPolicy", env, action_noise=None, **common)  # noise: ours, in act()
        model.set_logger(Logger(folder=None, output_formats=[]))  # values only, nothing written anywhere
        model.replay_buffer = None  # never SB3's buffer: every update gets the training loop's batch
        return model

    @contextlib.contextmanager
    def _own_torch_rng(self):
        """Run SB3 code on the agent's private torch stream, leaving the process's global stream as it was."""
        outer = torch.get_rng_state()
        torch.set_rng_state(self._torch_rng)
        try:
            yield
        finally:
            self._torch_rng = torch.get_rng_state()
            torch.set_rng_state(outer)

    # -- acting -----------------------------------------------------------------------------------------
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """One action in [-1, 1]^d: SAC samples its policy, DDPG mu(s); + OU noise unless `deterministic`.

        As in SoftQLearning.act, `deterministic` removes only the exploration noise added on top of the
        policy, never the policy's own randomness (SAC's Gaussian, like SQL's sampler noise).
        """
        s = torch.as_tensor(np.asarray(obs, np.float32), device=self.model.device).reshape(1, -1)
        with torch.no_grad(), self._own_torch_rng():
            if self.kind == "sac":
                a = self.model.actor(s, deterministic=False)
            else:
                a = self.model.actor(s)
        a = a[0].cpu().numpy().astype(np.float64)
        if self.ou is not None and not deterministic:
            a = np.clip(a + self.ou.sample(self.np_rng), -1.0, 1.0)
        return a.astype(np.float32)

    def reset_episode(self) -> None:
        if self.ou is not None:
            self.ou.reset()

    # -- one SB3 gradient step on our batch ------------------------------------------------------------
    def _samples(self, batch: dict[str, torch.Tensor]):
        from stable_baselines3.common.type_aliases import ReplayBufferSamples

        dev = self.model.device
        B = batch["obs"].shape[0]
        return ReplayBufferSamples(
            observations=batch["obs"].to(dev, torch.float32),
            actions=batch["action"].to(dev, torch.float32),
            next_observations=batch["next_obs"].to(dev, torch.float32),
            dones=batch["terminated"].to(dev, torch.float32).reshape(B, 1),
            rewards=batch["reward"].to(dev, torch.float32).reshape(B, 1),
        )

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Exactly one `model.train(gradient_steps=1)` on `batch`; returns SB3's logged losses."""
        samples = self._samples(batch)
        buffer = _OneBatch(samples)
        model = self.model
        model.replay_buffer = buffer
        model.logger.name_to_value.clear()
        try:
            with self._own_torch_rng():
                model.train(gradient_steps=1, batch_size=samples.observations.shape[0])
        finally:
            model.replay_buffer = None
        if buffer.calls != 1:
            raise RuntimeError(f"SB3 {self.kind} sampled {buffer.calls} batches in one train() call, expected 1")
        logged = model.logger.name_to_value
        return {"q_loss": float(logged.get("train/critic_loss", math.nan)),
                "policy_loss": float(logged.get("train/actor_loss", math.nan))}

    # -- schedule hooks called by the training loop ----------------------------------------------------
    def on_env_step(self, total_steps: int) -> None:
        """No hard target copy: SB3 updates its targets by Polyak averaging inside `train()`."""

    def on_epoch_start(self, epoch: int) -> None:
        """No per-epoch schedule (fine-tuning's alpha annealing is not supported for SB3 agents)."""

    # -- checkpointing ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        m = self.model
        return {
            "sb3_kind": self.kind, "sb3_version": self.sb3_version,
            "policy": m.policy.state_dict(),
            "actor_optimizer": m.actor.optimizer.state_dict(), "critic_optimizer": m.critic.optimizer.state_dict(),
            "n_updates": int(m._n_updates), "torch_rng": self._torch_rng.clone(),
            "np_rng": self.np_rng.bit_generator.state, "ou": None if self.ou is None else self.ou.state.copy(),
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("sb3_kind") != self.kind:
            raise ValueError(f"state dict of an SB3 {state.get('sb3_kind')!r} agent cannot be loaded into SB3 {self.kind!r}")
        # Optimizer.load_state_dict keeps tensors by reference: copy, so two agents never share Adam's state.
        state = copy.deepcopy(state)
        m = self.model
        m.policy.load_state_dict(state["policy"])
        m.actor.optimizer.load_state_dict(state["actor_optimizer"])
        m.critic.optimizer.load_state_dict(state["critic_optimizer"])
        m._n_updates = int(state["n_updates"])
        self._torch_rng = state["torch_rng"]
        self.np_rng.bit_generator.state = state["np_rng"]
        if self.ou is not None:
            self.ou.state[:] = state["ou"]


def make_sac(obs_dim: int, act_dim: int, config: SQLConfig, seed: int = 0) -> SB3Agent:
    """Agent factory (`softq_ref.training.make_agent` signature) for algo "sb3_sac"."""
    return SB3Agent("sac", obs_dim, act_dim, config, seed)


def make_ddpg(obs_dim: int, act_dim: int, config: SQLConfig, seed: int = 0) -> SB3Agent:
    """Agent factory (`softq_ref.training.make_agent` signature) for algo "sb3_ddpg"."""
    return SB3Agent("ddpg", obs_dim, act_dim, config, seed)
