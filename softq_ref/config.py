"""All hyperparameters of Appendix D.1 in one typed config, with per-task presets and validation.

Every convention the paper leaves open is a named field here; `docs` on each says which choice
is whose. `SQLConfig.validate()` runs before any training and names the offending field.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .svgd import BandwidthRule

__all__ = ["SQLConfig", "PRESETS", "preset", "ConfigError", "VALUE_PROPOSALS", "SQUASH_CORRECTIONS",
           "TEMPERATURE_MODES", "EXPLORATION_NOISES", "PRECISIONS"]

VALUE_PROPOSALS = ("uniform_per_state", "uniform_shared")
SQUASH_CORRECTIONS = ("none", "tanh_log_det")
TEMPERATURE_MODES = ("alpha", "reward_scale")
EXPLORATION_NOISES = ("none", "ou")
PRECISIONS = ("float32", "bfloat16_autocast")


class ConfigError(ValueError):
    """A config field has an invalid value; the message names the field and what is accepted."""


@dataclass
class SQLConfig:
    # -- temperature -----------------------------------------------------------------------
    alpha: float = 0.1  # entropy temperature (D.1: 10 multi-goal, 0.1 otherwise)
    # "alpha": alpha appears in eq. 10 and eq. 13 as written in the paper.
    # "reward_scale": the authors' code convention, rewards scaled by 1/alpha and alpha = 1 inside
    # (Q is then Q_paper / alpha; the policy is identical).
    temperature_mode: str = "alpha"
    gamma: float = 0.99
    # -- optimisation (D.1) ------------------------------------------------------------------
    q_lr: float = 1e-3
    policy_lr: float = 1e-4
    batch_size: int = 64
    replay_size: int = 1_000_000
    min_replay_size: int = 10_000  # no updates before the pool holds this many samples
    updates_per_step: int = 1
    hidden_sizes: tuple[int, ...] = (200, 200)
    target_update_interval: int = 1000  # hard copy (tau = 1) every this many env steps
    epoch_length: int = 10_000
    epochs: int = 500  # D.1: 500 epochs, multi-goal 100, fine-tuning 200; the CLI's run length when --steps is
    # not given is epochs * epoch_length (the benchmark tiers state their steps explicitly)
    max_episode_steps: int | None = None  # None: the environment's own time limit
    # -- soft value, eq. 10 --------------------------------------------------------------------
    value_samples: int = 50  # K_V in D.1
    # "uniform_per_state": fresh Uniform([-1,1]^d) draws per next state (softlearning);
    # "uniform_shared": one set of draws shared across the batch (the later authors' code).
    value_proposal: str = "uniform_per_state"
    # -- SVGD policy update, eq. 13-14 ---------------------------------------------------------
    svgd_particles: int = 32  # K actions drawn per state, split into fixed and updated sets
    svgd_fixed_fraction: float = 0.5  # authors' code: half the particles are fixed (stop-gradient)
    bandwidth_rule: str = BandwidthRule.SQL_CODE.value
    # "none": target exp(Q/alpha) in the squashed action space, as in the paper;
    # "tanh_log_det": the authors' code adds sum log(1 - a^2 + 1e-6) to log p.
    squash_correction: str = "none"
    # -- exploration ---------------------------------------------------------------------------
    # D.1 says both algorithms add OU noise; the authors' SQL code relies on the sampler alone.
    exploration_noise: str = "none"
    ou_theta: float = 0.15
    ou_sigma: float = 0.3
    # -- fine-tuning schedule (D.1), off unless finetune_epochs > 0 ----------------------------
    finetune_epochs: int = 0  # anneal over this many epochs (D.1: 20)
    finetune_alpha_final: float = 1e-3
    finetune_noise_set_size: int = 0  # K_xi: fixed noise set shrunk linearly to 1 (0 = fresh noise)
    # -- bookkeeping ---------------------------------------------------------------------------
    device: str = "cpu"
    # "float32": the reference's numbers. "bfloat16_autocast" (opt-in): the update's network passes
    # under torch.autocast(bfloat16), parameters, optimizer and losses in float32; faster where the
    # hardware multiplies bfloat16 natively (AMX, tensor cores), and it changes the numbers: its
    # effect on the conformance verdicts is measured in softq_ref/perf/README.md.
    precision: str = "float32"
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def n_fixed(self) -> int:
        return max(1, int(round(self.svgd_particles * self.svgd_fixed_fraction)))

    @property
    def n_updated(self) -> int:
        return self.svgd_particles - self.n_fixed

    def replace(self, **changes: Any) -> "SQLConfig":
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(
                f"unknown config field(s) {sorted(unknown)}; accepted: {sorted(f.name for f in dataclasses.fields(self))}"
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden_sizes"] = list(self.hidden_sizes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SQLConfig":
        d = dict(d)
        if "hidden_sizes" in d:
            d["hidden_sizes"] = tuple(d["hidden_sizes"])
        return cls().replace(**d)

    def validate(self) -> "SQLConfig":
        def need(cond: bool, name: str, expected: str) -> None:
            if not cond:
                raise ConfigError(f"config field '{name}' = {getattr(self, name)!r} is invalid: expected {expected}")

        for f in dataclasses.fields(self):  # NaN/inf in any number field: named here, before anything runs
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                need(False, f.name, "a finite number (not NaN or inf)")
        need(isinstance(self.alpha, (int, float)) and math.isfinite(self.alpha) and self.alpha > 0,
             "alpha", "a finite temperature > 0")
        need(self.temperature_mode in TEMPERATURE_MODES, "temperature_mode", f"one of {TEMPERATURE_MODES}")
        need(0.0 <= self.gamma < 1.0, "gamma", "a discount in [0, 1)")
        need(self.q_lr > 0, "q_lr", "a learning rate > 0")
        need(self.policy_lr > 0, "policy_lr", "a learning rate > 0")
        need(isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size", "an integer >= 1")
        need(isinstance(self.replay_size, int) and self.replay_size >= self.batch_size, "replay_size",
             f"an integer >= batch_size ({self.batch_size})")
        need(isinstance(self.min_replay_size, int) and self.batch_size <= self.min_replay_size <= self.replay_size,
             "min_replay_size",
             f"an integer between batch_size ({self.batch_size}) and replay_size ({self.replay_size}): "
             "a batch cannot be larger than the replay contents")
        need(self.updates_per_step >= 1, "updates_per_step", "an integer >= 1")
        need(len(self.hidden_sizes) >= 1 and all(int(h) >= 1 for h in self.hidden_sizes), "hidden_sizes",
             "a non-empty tuple of positive layer widths")
        need(self.target_update_interval >= 1, "target_update_interval", "an integer >= 1 (env steps)")
        need(self.epoch_length >= 1, "epoch_length", "an integer >= 1")
        need(isinstance(self.epochs, int) and self.epochs >= 1, "epochs", "an integer >= 1")
        need(self.value_samples >= 1, "value_samples", "an integer >= 1 (K_V)")
        need(self.value_proposal in VALUE_PROPOSALS, "value_proposal", f"one of {VALUE_PROPOSALS}")
        need(isinstance(self.svgd_particles, int) and self.svgd_particles >= 2, "svgd_particles",
             "an integer K >= 2 (split into fixed and updated particles)")
        need(0.0 < self.svgd_fixed_fraction < 1.0 and 1 <= self.n_fixed < self.svgd_particles,
             "svgd_fixed_fraction", "a fraction in (0, 1) leaving at least one fixed and one updated particle")
        need(self.bandwidth_rule in {r.value for r in BandwidthRule}, "bandwidth_rule",
             f"one of {[r.value for r in BandwidthRule]}")
        need(self.n_fixed >= 2 or self.bandwidth_rule in (BandwidthRule.SVGD_CODE.value, BandwidthRule.PAPER_D1.value),
             "bandwidth_rule", "svgd_code or paper_d1 when fewer than 2 fixed particles (the others divide by log n_fixed = 0)")
        need(self.squash_correction in SQUASH_CORRECTIONS, "squash_correction", f"one of {SQUASH_CORRECTIONS}")
        need(self.exploration_noise in EXPLORATION_NOISES, "exploration_noise", f"one of {EXPLORATION_NOISES}")
        need(self.precision in PRECISIONS, "precision", f"one of {PRECISIONS}")
        need(self.ou_theta >= 0, "ou_theta", "a mean-reversion rate >= 0")
        need(self.ou_sigma >= 0, "ou_sigma", "a noise scale >= 0")
        need(self.finetune_epochs >= 0, "finetune_epochs", "an integer >= 0")
        need(0 < self.finetune_alpha_final, "finetune_alpha_final", "a temperature > 0")
        need(self.finetune_noise_set_size >= 0, "finetune_noise_set_size", "an integer >= 0")
        need(self.max_episode_steps is None or self.max_episode_steps >= 1, "max_episode_steps",
             "None or an integer >= 1")
        return self


# Appendix D.1, per task. `ci` variants are documented reductions for the test suite.
PRESETS: dict[str, SQLConfig] = {
    "paper": SQLConfig(),
    "multigoal_paper": SQLConfig(alpha=10.0, svgd_particles=100, epoch_length=10_000, epochs=100,
                                 notes={"source": "D.1: alpha 10, K = M = 100, 100 epochs"}),
    "swimmer_paper": SQLConfig(alpha=0.1, target_update_interval=5000,
                               notes={"source": "D.1: alpha 0.1, target frozen 5000 steps"}),
    "maze_paper": SQLConfig(alpha=0.1),
    "pretrain_paper": SQLConfig(alpha=0.1),
    "finetune_paper": SQLConfig(alpha=0.1, epochs=200, finetune_epochs=20, finetune_alpha_final=1e-3,
                                finetune_noise_set_size=32,
                                notes={"source": "D.1: alpha annealed log-linearly to 1e-3 within 20 epochs"}),
    # CI-sized multi-goal: smaller networks and pool so that ~a minute of CPU shows the effect.
    "multigoal_ci": SQLConfig(alpha=10.0, svgd_particles=32, hidden_sizes=(64, 64), q_lr=3e-3, policy_lr=1e-3,
                              min_replay_size=500, replay_size=100_000, target_update_interval=200,
                              epoch_length=1000, epochs=6, batch_size=64,
                              notes={"source": "reduced multigoal_paper for CI"}),
}


def preset(name: str, **overrides: Any) -> SQLConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; accepted: {sorted(PRESETS)}")
    return PRESETS[name].replace(**overrides).validate()
