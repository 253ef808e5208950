"""Stable-Baselines3 SAC and DDPG as black-box ("trainer") implementations.

    python -m softq_conformance --impl softq_conformance.third_party.sb3:sac  --out reports/third_party
    python -m softq_conformance --impl softq_conformance.third_party.sb3:ddpg --out reports/third_party

Optional extra: needs `stable-baselines3` (>= 2.0, gymnasium API). Only the black-box agent
specs apply (capability `trainer`: ALG1.bandit_optimum, ALG1.multigoal_coverage); every operator,
estimator, sampler and white-box agent spec is "not applicable" because SB3 exposes no soft value
estimator, kernel or SVGD step.

Temperature and squashing, mapped as honestly as the algorithms allow
-----------------------------------------------------------------------
SAC (SB3): the critic target is r + gamma (min Q_target(s', a') - ent_coef log pi(a'|s')) and the
actor minimises E[ent_coef log pi(a|s) - min Q(s, a)], i.e. SAC maximises E[sum r + ent_coef H]
with unscaled rewards. So ent_coef = alpha exactly (temperature_mode "alpha"), with a FIXED
ent_coef (never "auto", which would tune the temperature towards a target entropy and ignore the
spec's alpha). SB3's log pi is the density of the squashed action a = tanh(u) including the
tanh Jacobian (log N(u) - sum log(1 - tanh(u)^2 + 1e-6)), so the KL that SAC's actor minimises is
KL(pi(.|s) || exp(Q(s, .)/alpha)/Z) on the action box itself: its target is exp(Q/alpha) in the
squashed space, which is squash_correction "none" (NOT the authors' SQL-code "tanh_log_det",
which multiplies the target by prod(1 - a_i^2)). The policy family is a single tanh-Gaussian per
state, so SAC can only approximate a multimodal target in the reverse-KL sense; the specs measure
how close that comes.

DDPG (SB3): no entropy term at all. The adapter declares temperature_mode "none"; specs that
declare `requires_temperature = true` (the bandit optimum exp(r/alpha)/Z) are then "not
applicable" (conformance/runner.py). Multi-goal coverage stays applicable: the paper's own
comparison (section 5.1, Figure 1) runs DDPG there. DDPG's learned policy is the deterministic
actor mu(s); `sample_policy` returns mu(s) n times (exploration noise is a training device, not
the policy), so DDPG's coverage measures what mu(s) reaches from the randomised start states.

Hyperparameters (close to the reference adapter's small conformance config, softq_ref networks
(64, 64), batch 64, 256 warm-up samples; multi-goal 500): one Adam learning rate 1e-3 for actor
and critic (SB3 has a single `learning_rate`; the reference uses 3e-3 for Q and 1e-3 for the
sampler), one gradient step per env step, SB3's default Polyak tau = 0.005 for SAC (its usual
setting), DDPG with the paper's OU noise (theta 0.15, sigma 0.3) and tau = 0.005. gamma from the
task (0 for the one-step bandit, 0.99 for multi-goal). Everything is documented in `HYPERPARAMS`.

Sanity of the outputs
---------------------
`sample_policy` checks shape (B, n, d), finiteness and the action bounds itself and raises a
`ValueError` naming the problem; the suite's one validation path (`conformance.adapter.Checked`)
turns any exception, wrong shape or NaN into an "error" verdict, exactly as for any adapter.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

try:  # optional extra
    import stable_baselines3 as _sb3
except ImportError:  # pragma: no cover - exercised only without the extra
    _sb3 = None

__all__ = ["SB3Adapter", "SB3Policy", "sac", "ddpg", "HYPERPARAMS", "sb3_available", "check_actions"]

HYPERPARAMS: dict[str, dict[str, Any]] = {
    "common": {"net_arch": [64, 64], "learning_rate": 1e-3, "batch_size": 64, "train_freq": 1, "gradient_steps": 1,
               "learning_starts": 256, "learning_starts_multigoal": 500, "tau": 0.005, "device": "cpu"},
    "sac": {"ent_coef": "alpha (fixed, from the spec)", "target_update_interval": 1, "use_sde": False},
    "ddpg": {"action_noise": "Ornstein-Uhlenbeck theta 0.15 sigma 0.3 (paper D.1)"},
}


def sb3_available() -> bool:
    return _sb3 is not None


def check_actions(a: Any, B: int, n: int, d: int, low: np.ndarray, high: np.ndarray, who: str) -> np.ndarray:
    """check_env-style sanity on a policy's actions: shape (B, n, d), finite, inside [low, high]."""
    a = np.asarray(a)
    if a.shape != (B, n, d):
        raise ValueError(f"{who} produced actions of shape {a.shape}, expected (B, n, d) = {(B, n, d)}")
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{who} produced actions of dtype {a.dtype}, expected floating point")
    bad = ~np.isfinite(a)
    if bad.any():
        raise ValueError(f"{who} produced {int(bad.sum())} non-finite action value(s) (NaN/inf): diverged training?")
    tol = 1e-6
    out = (a < low - tol) | (a > high + tol)
    if out.any():
        raise ValueError(f"{who} produced {int(out.sum())} action value(s) outside the action space "
                         f"[{low.min():g}, {high.max():g}] (range seen [{a.min():g}, {a.max():g}])")
    return a


@dataclass
class SB3Policy:
    """What `train` returns: the SB3 model plus the action bounds of the task it was trained on."""

    model: Any
    low: np.ndarray
    high: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


class SB3Adapter:
    """Black-box adapter for SB3 SAC (`algo="sac"`) or DDPG (`algo="ddpg"`)."""

    capabilities = {"trainer"}

    def __init__(self, algo: str = "sac", net_arch: tuple[int, ...] = (64, 64), learning_rate: float = 1e-3,
                 batch_size: int = 64, learning_starts: int = 256, tau: float = 0.005):
        if _sb3 is None:
            raise ImportError("softq_conformance.third_party.sb3 needs stable-baselines3 (pip install stable-baselines3)")
        if algo not in ("sac", "ddpg"):
            raise ValueError(f"algo must be 'sac' or 'ddpg', got {algo!r}")
        self.algo = algo
        self.name = f"sb3-{algo}"
        self.version = _sb3.__version__
        self.net_arch, self.learning_rate, self.batch_size = list(net_arch), learning_rate, batch_size
        self.learning_starts, self.tau = learning_starts, tau
        if algo == "sac":
            self.conventions = {"temperature_mode": "alpha", "squash_correction": "none"}
        else:
            self.conventions = {"temperature_mode": "none", "squash_correction": "none"}

    # -- trainer ---------------------------------------------------------------------------------------
    def make_model(self, env: Any, gamma: float, alpha: float, seed: int, learning_starts: int) -> Any:
        import torch

        from stable_baselines3 import DDPG, SAC

        common = dict(learning_rate=self.learning_rate, buffer_size=1_000_000, learning_starts=learning_starts,
                      batch_size=self.batch_size, tau=self.tau, gamma=gamma, train_freq=1, gradient_steps=1,
                      policy_kwargs={"net_arch": list(self.net_arch)}, seed=int(seed) % (2**31 - 1),
                      device="cpu", verbose=0)
        torch.manual_seed(int(seed) % (2**31 - 1))
        if self.algo == "sac":
            # fixed temperature: ent_coef = alpha (a float, never "auto")
            return SAC("MlpPolicy", env, ent_coef=float(alpha), target_update_interval=1, **common)
        from stable_baselines3.common.noise import OrnsteinUhlenbeckActionNoise

        d = env.action_space.shape[0]
        noise = OrnsteinUhlenbeckActionNoise(np.zeros(d), 0.3 * np.ones(d), theta=0.15)
        return DDPG("MlpPolicy", env, action_noise=noise, **common)

    def train(self, task: Any, steps: int, alpha: float, seed: int) -> SB3Policy:
        env = task.make_env()
        # the bandit terminates every step: gamma 0 is its exact discount
        gamma = float(task.gamma)
        starts = self.learning_starts if task.name != "multigoal" else HYPERPARAMS["common"]["learning_starts_multigoal"]
        starts = min(starts, max(1, steps // 2))
        model = self.make_model(env, gamma, alpha, seed, starts)
        model.learn(total_timesteps=int(steps))
        space = env.action_space
        pol = SB3Policy(model, np.asarray(space.low, np.float64), np.asarray(space.high, np.float64),
                        {"algo": self.algo, "steps": int(steps), "alpha": alpha if self.algo == "sac" else None})
        env.close()
        return pol

    def raw_actions(self, policy: SB3Policy, obs: np.ndarray, n: int) -> np.ndarray:
        """n actions per observation from the trained policy, in the env's action units, (B*n, d)."""
        import torch

        model = policy.model
        obs = np.asarray(obs, dtype=np.float32)
        rep = np.repeat(obs, n, axis=0)
        with torch.no_grad():
            t, _ = model.policy.obs_to_tensor(rep)
            if self.algo == "sac":
                a = model.actor(t, deterministic=False)  # tanh-squashed Gaussian sample in [-1, 1]
            else:
                a = model.actor(t)  # deterministic mu(s) in [-1, 1]
        return model.policy.unscale_action(a.cpu().numpy())

    def sample_policy(self, policy: SB3Policy, obs: np.ndarray, n: int) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        if obs.ndim != 2:
            raise ValueError(f"sample_policy expects obs of shape (B, obs_dim), got {obs.shape}")
        B, d = obs.shape[0], policy.low.shape[0]
        a = self.raw_actions(policy, obs, n)
        a = np.asarray(a).reshape(B, n, -1) if np.asarray(a).size == B * n * d else np.asarray(a)
        return check_actions(a, B, n, d, policy.low, policy.high, f"{self.name} policy")


def sac() -> SB3Adapter:
    return SB3Adapter("sac")


def ddpg() -> SB3Adapter:
    return SB3Adapter("ddpg")
