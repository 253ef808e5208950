"""Hypothesis profiles and strategies for the exact (tabular) checks.

Profiles (selected with --profile):
  ci        derandomized (the same examples on every run and machine), 25 examples, no database.
  thorough  randomized from the master seed, 300 examples.
Statistical checks never use Hypothesis for their randomness: they draw from fixed seeds derived
from the master seed and the spec id.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

__all__ = ["PROFILES", "profile_settings", "MDP", "make_mdp", "mdps", "q_seeds", "random_q"]

_COMMON = dict(deadline=None, database=None, print_blob=False,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
PROFILES = {"ci": "softq-conformance-ci", "thorough": "softq-conformance-thorough"}
settings.register_profile(PROFILES["ci"], max_examples=25, derandomize=True, **_COMMON)
settings.register_profile(PROFILES["thorough"], max_examples=300, derandomize=False, **_COMMON)


def profile_settings(profile: str) -> settings:
    if profile not in PROFILES:
        raise ValueError(f"unknown hypothesis profile {profile!r}; choose one of {sorted(PROFILES)}")
    return settings.get_profile(PROFILES[profile])


@dataclass(frozen=True)
class MDP:
    """A finite MDP; its repr is the call that rebuilds it (a reproduction snippet)."""

    R: np.ndarray = field(repr=False)
    P: np.ndarray = field(repr=False)
    gamma: float
    alpha: float
    recipe: str = ""

    def __repr__(self) -> str:
        return self.recipe

    @property
    def S(self) -> int:
        return self.R.shape[0]

    @property
    def A(self) -> int:
        return self.R.shape[1]

    def atol(self, scale: float) -> float:
        mag = 1.0 + float(np.max(np.abs(self.R))) + self.alpha * math.log(self.A)
        return scale * mag / (1.0 - self.gamma) ** 2


def make_mdp(S: int, A: int, gamma: float, alpha: float, kind: str = "dirichlet", seed: int = 0) -> MDP:
    """kinds: dirichlet (random rows), deterministic, absorbing (state 0 loops to itself), uniform."""
    rng = np.random.default_rng(seed)
    R = rng.uniform(-10.0, 10.0, size=(S, A))
    if kind == "deterministic":
        P = np.zeros((S, A, S))
        P[np.arange(S)[:, None], np.arange(A)[None, :], rng.integers(S, size=(S, A))] = 1.0
    elif kind == "uniform":
        P = np.full((S, A, S), 1.0 / S)
    else:
        P = rng.dirichlet(np.full(S, 0.5), size=(S, A))
        if kind == "absorbing":
            P[0] = 0.0
            P[0, :, 0] = 1.0
    P = P / P.sum(-1, keepdims=True)
    recipe = f"make_mdp(S={S}, A={A}, gamma={gamma!r}, alpha={alpha!r}, kind={kind!r}, seed={seed})"
    return MDP(R, P, float(gamma), float(alpha), recipe)


def mdps(max_S: int = 8, max_A: int = 6, max_gamma: float = 0.97, min_A: int = 1) -> st.SearchStrategy[MDP]:
    gamma = st.one_of(st.just(0.0), st.floats(0.0, max_gamma), st.just(max_gamma))
    alpha = st.floats(math.log(0.05), math.log(5.0)).map(lambda x: float(round(math.exp(x), 6)))
    return st.builds(make_mdp, S=st.integers(1, max_S), A=st.integers(min_A, max_A), gamma=gamma, alpha=alpha,
                     kind=st.sampled_from(["dirichlet", "deterministic", "absorbing", "uniform"]),
                     seed=st.integers(0, 2**32 - 1))


EDGE_MDPS = (
    make_mdp(1, 1, 0.9, 1.0, "dirichlet", 1),       # |A| = 1
    make_mdp(3, 4, 0.0, 0.3, "dirichlet", 2),       # bandit
    make_mdp(4, 3, 0.95, 2.0, "deterministic", 3),  # deterministic P
    make_mdp(5, 2, 0.9, 0.05, "absorbing", 4),      # absorbing state, low temperature
    make_mdp(2, 6, 0.97, 5.0, "dirichlet", 5),      # high temperature, long horizon
)


def q_seeds() -> st.SearchStrategy[int]:
    return st.integers(0, 2**32 - 1)


def random_q(mdp: MDP, seed: int, scale: float | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scale = scale if scale is not None else 10.0 / max(1e-3, 1.0 - mdp.gamma) ** 0.5
    return rng.uniform(-scale, scale, size=mdp.R.shape)


def random_policy(mdp: MDP, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.uniform(-5, 5, size=mdp.R.shape)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)
