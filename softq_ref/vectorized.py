"""S seeds of one agent in one process: the reference's networks stacked along a leading seed axis.

Small networks waste most of an update on per-operation overhead (dispatch, allocation), not on
arithmetic. Stacking S seeds makes every layer one batched product (`baddbmm`) over the seeds and
every other operation one call for all seeds, so that overhead is paid once instead of S times.

The equations are not re-implemented: `StackedSQL` and `StackedDDPG` *are* `SoftQLearning` and
`DDPG` (subclasses) whose networks carry a leading seed axis. Their `q_update`, `policy_update`,
`td_target`, eq. 10 value and eq. 13-14 SVGD code are the reference's own, which reduce over the
batch axis only (one loss per seed, summed for one backward pass: the seeds' gradients stay
separate, and Adam is elementwise, so one `FlatAdam` over the stacked buffer is per-seed Adam).
Only what draws random numbers or touches a single seed is overridden here: each seed keeps its
own `torch.Generator`, numpy generator and OU process, seeded and consumed exactly as the
single-seed agent's, so a seed's random draws do not depend on which seeds share its batch.

A seed's numbers differ from the single-seed agent's only in the last bits of the matrix products
(batched vs plain GEMM kernels); they do not depend on S (tests/test_vectorized.py). Per-seed
state dicts have the single-seed agent's format, so a checkpoint moves freely between the two.
"""
from __future__ import annotations

import copy
import functools
from typing import Sequence

import numpy as np
import torch
from torch import nn

from softq_ref.config import SQLConfig
from softq_ref.flat_adam import FlatAdam
from softq_ref.networks import SamplingNetwork
from softq_ref.soft_value import sample_uniform_box
from softq_ref.sql import SoftQLearning

__all__ = ["StackedLinear", "stack_mlp", "StackedSQL", "stacked_ddpg_class", "make_stacked_agent", "STACKABLE_ALGOS"]


class StackedLinear(nn.Module):
    """S `nn.Linear` layers of one shape: x (S, ..., in) -> (S, ..., out), one baddbmm.

    weight (S, out, in) and bias (S, out) are nn.Linear's layouts with a seed axis in front, so
    seed i's slice is that seed's `nn.Linear` state, unchanged.
    """

    def __init__(self, layers: Sequence[nn.Linear]):
        super().__init__()
        self.weight = nn.Parameter(torch.stack([l.weight.detach() for l in layers]).contiguous())
        self.bias = nn.Parameter(torch.stack([l.bias.detach() for l in layers]).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        S, out = self.weight.shape[0], self.weight.shape[1]
        if x.shape[0] != S:
            raise ValueError(f"StackedLinear holds {S} seeds; got input with leading axis {x.shape[0]}")
        x2 = x.reshape(S, -1, x.shape[-1])
        if out == 1:  # a one-column product takes a GEMV path for S = 1 only: other last bits than S > 1
            y = (x2 * self.weight).sum(-1, keepdim=True) + self.bias.unsqueeze(1)
        elif S == 1:  # batched products of one matrix take other kernels (last bits) than of several: pad to two
            w, b = self.weight, self.bias
            y = torch.baddbmm(torch.cat([b, b.detach()]).unsqueeze(1), torch.cat([x2, x2.detach()]),
                              torch.cat([w, w.detach()]).transpose(1, 2))[:1]
        else:
            y = torch.baddbmm(self.bias.unsqueeze(1), x2, self.weight.transpose(1, 2))
        return y.reshape(*x.shape[:-1], out)


def stack_mlp(mlps: Sequence[nn.Sequential]) -> nn.Sequential:
    """The MLPs of `softq_ref.networks.mlp` (one per seed) as one Sequential over a seed axis."""
    return nn.Sequential(*[StackedLinear([m[i] for m in mlps]) if isinstance(layer, nn.Linear) else copy.deepcopy(layer)
                           for i, layer in enumerate(mlps[0])])


class StackedSamplingNetwork(SamplingNetwork):
    """f^phi for S seeds: obs (S, B, o) -> (S, B, n, d); `generator` is the list of the seeds' generators."""

    def __init__(self, samplers: Sequence[SamplingNetwork]):
        nn.Module.__init__(self)
        self.obs_dim, self.act_dim = samplers[0].obs_dim, samplers[0].act_dim
        self.net = stack_mlp([s.net for s in samplers])
        self.noise_set: list[torch.Tensor] | None = None  # one fixed noise set per seed (fine-tuning)

    def sample_noise(self, batch: int, n: int, generator: Sequence[torch.Generator]) -> torch.Tensor:
        p = self.net[0].weight
        if self.noise_set is None:
            xi = [torch.randn(batch, n, self.act_dim, generator=g, dtype=p.dtype) for g in generator]
        else:
            xi = [ns[torch.randint(len(ns), (batch, n), generator=g)].to(p.dtype) for ns, g in zip(self.noise_set, generator)]
        return torch.stack(xi).to(p.device)

    def forward(self, obs: torch.Tensor, n: int = 1, generator: Sequence[torch.Generator] | None = None) -> torch.Tensor:
        if generator is None or isinstance(generator, torch.Generator):
            raise TypeError("a stacked sampler draws each seed's noise from that seed's generator: pass the list")
        return self.actions_from_noise(obs, self.sample_noise(obs.shape[-2], n, generator))


def _seed_module_state(module: nn.Module, i: int) -> dict:
    return {k: v[i].clone() for k, v in module.state_dict().items()}


def _load_seed_module_states(module: nn.Module, states: Sequence[dict]) -> None:
    module.load_state_dict({k: torch.stack([s[k] for s in states]) for k in module.state_dict()})


def _seed_adam_state(opt: FlatAdam, i: int) -> dict:
    """Seed i's part of a FlatAdam over stacked parameters, as the state of the single-seed agent's FlatAdam."""
    group = {k: v for k, v in opt.state_dict()["param_groups"][0].items()}
    state = opt.state.get(opt.flat, {})
    if not state:
        return {"state": {}, "param_groups": [group]}

    def part(buf: torch.Tensor) -> torch.Tensor:
        return torch.cat([buf[a:b].view_as(p)[i].reshape(-1) for p, (a, b) in zip(opt.module_params, opt._slices)])
    return {"state": {0: {"step": state["step"].clone(), "exp_avg": part(state["exp_avg"]),
                          "exp_avg_sq": part(state["exp_avg_sq"])}}, "param_groups": [group]}


def _load_seed_adam_states(opt: FlatAdam, states: Sequence[dict]) -> None:
    inner = [s["state"].get(0) or s["state"].get("0") for s in states]
    if all(not x for x in inner):
        opt.load_state_dict({"state": {}, "param_groups": states[0]["param_groups"]})
        return
    steps = {float(x["step"]) if x else None for x in inner}
    if len(steps) != 1 or None in steps:
        raise ValueError(f"the seeds' optimizer states are at different steps {sorted(map(str, steps))}; "
                         "only seeds at the same step can train in one stacked agent")

    def whole(key: str) -> torch.Tensor:
        parts, offset = [], 0
        sizes = [p[0].numel() for p in opt.module_params]
        for size in sizes:  # per parameter: its slice of every seed, stacked
            parts.append(torch.stack([x[key][offset:offset + size] for x in inner]).reshape(-1))
            offset += size
        return torch.cat(parts)
    opt.load_state_dict({"state": {0: {"step": inner[0]["step"].clone(), "exp_avg": whole("exp_avg"),
                                       "exp_avg_sq": whole("exp_avg_sq")}},
                         "param_groups": states[0]["param_groups"]})


class _Stacked:
    """What both stacked agents share: seeds, per-seed generators and OU processes, per-seed states."""

    networks: tuple[str, ...] = ()
    optimizers: tuple[tuple[str, str], ...] = ()  # (optimizer attribute, the module it steps)

    def _stack_from(self, agents: list, seeds: Sequence[int]) -> None:
        """Take the Q-networks, random streams and OU processes of the single-seed `agents`; rebuild the optimizers."""
        self.q.net = stack_mlp([a.q.net for a in agents])
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.seeds, self.S = [int(s) for s in seeds], len(agents)
        self.np_rngs = [a.np_rng for a in agents]
        self.ous = [a.ou for a in agents]
        self.ou = None  # per seed in self.ous
        for name, module_name in self.optimizers:
            setattr(self, name, FlatAdam(getattr(self, module_name), lr=getattr(self, name).param_groups[0]["lr"]))

    def reset_episode(self, i: int | None = None) -> None:
        """Reset the OU process of seed i (of every seed when i is None)."""
        for j, ou in enumerate(self.ous):
            if ou is not None and (i is None or i == j):
                ou.reset()

    def _explore(self, a: np.ndarray, deterministic: bool) -> np.ndarray:
        for i, ou in enumerate(self.ous):
            if ou is not None and not deterministic:
                a[i] = np.clip(a[i] + ou.sample(self.np_rngs[i]), -1.0, 1.0)
        return a.astype(np.float32)

    def seed_state_dict(self, i: int) -> dict:
        """Seed i's state in the single-seed agent's state_dict format."""
        state = {name: _seed_module_state(getattr(self, name), i) for name in self.networks}
        state.update({name: _seed_adam_state(getattr(self, name), i) for name, _ in self.optimizers})
        state.update(np_rng=copy.deepcopy(self.np_rngs[i].bit_generator.state),
                     ou=None if self.ous[i] is None else self.ous[i].state.copy())
        return state

    def load_seed_state_dicts(self, states: Sequence[dict]) -> None:
        """Load one single-seed-format state per seed (e.g. from the seeds' checkpoints)."""
        if len(states) != self.S:
            raise ValueError(f"expected {self.S} seed states, got {len(states)}")
        states = copy.deepcopy(list(states))
        for name in self.networks:
            _load_seed_module_states(getattr(self, name), [s[name] for s in states])
        for name, _ in self.optimizers:
            _load_seed_adam_states(getattr(self, name), [s[name] for s in states])
        for i, s in enumerate(states):
            self.np_rngs[i].bit_generator.state = s["np_rng"]
            if self.ous[i] is not None:
                self.ous[i].state[:] = s["ou"]

    def state_dict(self) -> dict:
        return {"seeds": list(self.seeds), "per_seed": [self.seed_state_dict(i) for i in range(self.S)]}

    def load_state_dict(self, state: dict) -> None:
        self.load_seed_state_dicts(state["per_seed"])


class StackedSQL(_Stacked, SoftQLearning):
    """`SoftQLearning` for the seeds `seeds`: batch tensors carry a leading seed axis, (S, B, ...)."""

    networks = ("q", "q_target", "sampler")
    optimizers = (("q_optimizer", "q"), ("policy_optimizer", "sampler"))

    def __init__(self, obs_dim: int, act_dim: int, config: SQLConfig, seeds: Sequence[int]):
        agents = [SoftQLearning(obs_dim, act_dim, config, seed=s) for s in seeds]
        SoftQLearning.__init__(self, obs_dim, act_dim, config, seed=seeds[0])
        self.sampler = StackedSamplingNetwork([a.sampler for a in agents]).to(self.device)
        self.generator = [a.generator for a in agents]  # the reference's policy_update passes it to the sampler
        self._stack_from(agents, seeds)

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """One action per seed: obs (S, o) -> (S, d), as SoftQLearning.act for each seed."""
        with torch.no_grad():
            s = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device).reshape(self.S, 1, -1)
            a = self.sampler(s, 1, generator=self.generator)[:, 0, 0].cpu().numpy().astype(np.float64)
        return self._explore(a, deterministic)

    def sample_actions(self, obs: torch.Tensor, n: int) -> torch.Tensor:
        with torch.no_grad():
            return self.sampler(obs.to(self.device), n, generator=self.generator)

    def proposal_actions(self, batch: int) -> torch.Tensor:
        """Each seed's eq. 10 proposal draws from its own generator: (S, batch, M, d)."""
        M, d = self.config.value_samples, self.act_dim
        if self.config.value_proposal == "uniform_shared":
            return torch.stack([sample_uniform_box((1, M), d, g).expand(batch, M, d) for g in self.generator])
        return torch.stack([sample_uniform_box((batch, M), d, g) for g in self.generator])

    def draw_noise_set(self, size: int) -> list[torch.Tensor]:
        """One fine-tuning noise set per seed, from that seed's generator."""
        return [torch.randn(size, self.act_dim, generator=g) for g in self.generator]

    def noise_subset(self, k: int) -> list[torch.Tensor]:
        return [ns[:k] for ns in self.full_noise_set]

    def seed_state_dict(self, i: int) -> dict:
        state = super().seed_state_dict(i)
        full = getattr(self, "full_noise_set", None)
        state.update(generator=self.generator[i].get_state(), alpha=self.alpha,
                     noise_set=None if self.sampler.noise_set is None else self.sampler.noise_set[i],
                     full_noise_set=None if full is None else full[i])
        return state

    def load_seed_state_dicts(self, states: Sequence[dict]) -> None:
        super().load_seed_state_dicts(states)
        if len({s["alpha"] for s in states}) != 1:
            raise ValueError("the seeds' temperatures differ; only seeds at the same point of the schedule can be stacked")
        self.alpha = states[0]["alpha"]
        for g, s in zip(self.generator, states):
            g.set_state(s["generator"])
        self.sampler.noise_set = None if states[0]["noise_set"] is None else [s["noise_set"] for s in states]
        if states[0].get("full_noise_set") is not None:
            self.full_noise_set = [s["full_noise_set"] for s in states]


@functools.cache
def stacked_ddpg_class() -> type:
    """`baselines.ddpg.DDPG` stacked over seeds; built on first use, since the baseline lives outside softq_ref."""
    from softq_baselines.ddpg import DDPG, DeterministicActor

    class StackedDDPG(_Stacked, DDPG):
        networks = ("q", "q_target", "actor", "actor_target")
        optimizers = (("q_optimizer", "q"), ("policy_optimizer", "actor"))

        def __init__(self, obs_dim: int, act_dim: int, config: SQLConfig, seeds: Sequence[int]):
            agents = [DDPG(obs_dim, act_dim, config, seed=s) for s in seeds]
            DDPG.__init__(self, obs_dim, act_dim, config, seed=seeds[0])
            self.actor = DeterministicActor(obs_dim, act_dim, config.hidden_sizes).to(self.device)
            self.actor.net = stack_mlp([a.actor.net for a in agents])
            self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
            self._stack_from(agents, seeds)

        def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
            with torch.no_grad():
                s = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device).reshape(self.S, 1, -1)
                a = self.actor(s)[:, 0].cpu().numpy().astype(np.float64)
            return self._explore(a, deterministic)

    return StackedDDPG


STACKABLE_ALGOS = ("sql", "ddpg")


def make_stacked_agent(algo: str, obs_dim: int, act_dim: int, config: SQLConfig, seeds: Sequence[int]):
    """The stacked version of a registered algo ("sql" or "ddpg") for `seeds`."""
    if algo == "sql":
        return StackedSQL(obs_dim, act_dim, config, seeds)
    if algo == "ddpg":
        return stacked_ddpg_class()(obs_dim, act_dim, config, seeds)
    raise ValueError(f"algo {algo!r} has no stacked multi-seed version; stackable: {list(STACKABLE_ALGOS)} "
                     "(run other algorithms one seed per process)")

