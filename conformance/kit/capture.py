"""Drive a port's inline training code without editing it (no maths here: the port computes everything).

Worked examples (pytorchrl-style `SoftQ` with `train_qf(...)` and `train_policy(obs)`; the complete
adapter is conformance/third_party/ports/pytorchrl_adapter.py):

* eq. 10 inside `train_qf`: feed Q values to the target critic, capture what the step regresses onto.

      with swapped(agent, target_qf=GivenQ(q[:, :, None]), qf_target_K=M), frozen(agent.qf_optimizer):
          y = regression_target(agent.qf, lambda: agent.train_qf(obs, act, rew, next_obs, done))

* eq. 13 inside `train_policy`: particles as parameters stand in for the sampler; the gradient the
  step leaves on the updated particles is minus the direction (the port minimises -sum(phi * a)).

      particles = ParticleSets(fixed, updated)
      with swapped(agent, policy=particles, qf=LinearQ(grad_q)), frozen(agent.policy_optimizer):
          agent.train_policy(obs)
      direction = -particles.grad(1)

* a sampler that draws its own noise: `with given_noise(xi): actions = policy(obs, n)`.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["swapped", "frozen", "regression_target", "GivenQ", "LinearQ", "EnergyQ", "ParticleSets", "given_noise",
           "FixedDraws", "same_randomness", "flatten_sets"]


@contextlib.contextmanager
def swapped(obj: Any, **attrs: Any) -> Iterator[Any]:
    """Set attributes of `obj` (a stand-in critic, a constant, ...) for the block, then restore them."""
    missing = object()
    old = {k: getattr(obj, k, missing) for k in attrs}
    for k, v in attrs.items():
        setattr(obj, k, v)
    try:
        yield obj
    finally:
        for k, v in old.items():
            if v is missing:
                delattr(obj, k)
            else:
                setattr(obj, k, v)


@contextlib.contextmanager
def frozen(*optimizers: torch.optim.Optimizer) -> Iterator[None]:
    """The optimisers' step() does nothing in the block: a training step computes but changes nothing."""
    with contextlib.ExitStack() as stack:
        for opt in optimizers:
            stack.enter_context(swapped(opt, step=lambda *a, **k: None))
        yield


@contextlib.contextmanager
def same_randomness() -> Iterator[Callable[[], None]]:
    """Yields rewind(): restores the torch and numpy global RNG states taken on entry. After the block the
    streams are where the last run left them, so repeated captures draw fresh randomness."""
    t, n = torch.get_rng_state(), np.random.get_state()

    def rewind() -> None:
        torch.set_rng_state(t)
        np.random.set_state(n)

    yield rewind


def regression_target(module: nn.Module, step: Callable[[], Any], call: int | None = None) -> torch.Tensor:
    """The target y a training step regresses `module`'s output onto, for any quadratic loss
    c * sum (q - y)^2 (mean or sum, with or without 1/2): run the step twice with the same
    randomness, the second time with `module`'s output shifted by 1; the gradients g, g' at that output
    give y = q - g / (g' - g). `call`: which call of `module` in the step (default: the one call whose
    output the loss back-propagates through). Freeze the optimisers around it."""

    def run(shift: float, at: int | None) -> tuple[int, torch.Tensor, torch.Tensor]:
        outs: list[torch.Tensor] = []
        grads: dict[int, torch.Tensor] = {}

        def hook(mod: nn.Module, inputs: Any, out: torch.Tensor) -> torch.Tensor:
            i = len(outs)
            outs.append(out.detach().clone())
            out = out + shift if i == at else out
            if out.requires_grad:
                out.register_hook(lambda g: grads.__setitem__(i, g.detach().clone()))
            return out

        handle = module.register_forward_hook(hook)
        try:
            step()
        finally:
            handle.remove()
        hits = [at] if at is not None else sorted(grads)
        if len(hits) != 1 or hits[0] not in grads:
            raise RuntimeError(f"regression_target: {len(outs)} call(s) of {type(module).__name__} in the step, "
                               f"{len(grads)} received a loss gradient ({sorted(grads)}); pass the module whose "
                               "output the loss regresses, and call=i if several calls are regressed")
        return hits[0], outs[hits[0]], grads[hits[0]]

    with same_randomness() as rewind:
        at, q, g = run(0.0, call)
        rewind()
        _, _, g1 = run(1.0, at)  # only the regressed call is shifted
    if not torch.all(g1 - g != 0):
        raise RuntimeError("regression_target: the loss is not quadratic in the module's output (g' = g)")
    return (q - g / (g1 - g)).reshape(-1)


class GivenQ(nn.Module):
    """A critic returning given values (whatever its inputs): feed Q to a port's value target."""

    def __init__(self, values: torch.Tensor):
        super().__init__()
        self.values = values

    def forward(self, *inputs: Any) -> torch.Tensor:
        return self.values


class LinearQ(nn.Module):
    """Q(s, a) = sum_k grad_k a_k (+ keepdim axis): grad_a Q at the given particles is exactly `grad`."""

    def __init__(self, grad: torch.Tensor, keepdim: bool = True):
        super().__init__()
        self.grad, self.keepdim = grad, keepdim

    def forward(self, obs: Any, actions: torch.Tensor) -> torch.Tensor:
        return (actions * self.grad).sum(-1, keepdim=self.keepdim)


class EnergyQ(nn.Module):
    """Q(s, a) = energy(a): a port's sampler update trained against a given energy."""

    def __init__(self, energy: Callable[[torch.Tensor], torch.Tensor], keepdim: bool = True):
        super().__init__()
        self.energy, self.keepdim = energy, keepdim

    def forward(self, obs: Any, actions: torch.Tensor) -> torch.Tensor:
        q = self.energy(actions)
        return q.unsqueeze(-1) if self.keepdim else q


class ParticleSets(nn.Module):
    """Stands in for a sampler: its k-th call returns the k-th given particle set as a parameter, so the
    gradient a policy step leaves on the particles can be read back (`grad(k)`). `count_arg`: the
    position of the particle-count argument in the sampler's call, checked against the set (None: no
    check). A port that draws one set and splits it gets one set: ParticleSets(torch.cat([x, y], -2))."""

    def __init__(self, *sets: torch.Tensor, count_arg: int | None = 1):
        super().__init__()
        # parameters, so that code differentiating with respect to `policy.parameters()` reaches them
        self.sets = nn.ParameterList([nn.Parameter(s.detach().clone()) for s in sets])
        self.calls, self.count_arg = 0, count_arg

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.calls >= len(self.sets):
            raise RuntimeError(f"ParticleSets: called {self.calls + 1} times; given {len(self.sets)} sets")
        out = self.sets[self.calls]
        if self.count_arg is not None and len(args) > self.count_arg and int(args[self.count_arg]) != out.shape[-2]:
            raise RuntimeError(f"ParticleSets: call {self.calls} asked for {int(args[self.count_arg])} particles; the "
                               f"given set has {out.shape[-2]}")
        self.calls += 1
        return out

    def grad(self, k: int) -> torch.Tensor:
        g = self.sets[k].grad
        return torch.zeros_like(self.sets[k]) if g is None else g


class FixedDraws:
    """Stands in for a distribution object a sampler draws its noise from (`dist.sample(shape)`):
    returns the given tensors in order, each checked against the requested shape."""

    def __init__(self, *draws: torch.Tensor):
        self.draws = list(draws)

    def sample(self, shape: Any = ()) -> torch.Tensor:
        if not self.draws:
            raise RuntimeError("FixedDraws: more draws requested than given")
        x = self.draws.pop(0)
        want = tuple(shape) + tuple(x.shape[len(tuple(shape)):])
        if tuple(x.shape) != want:
            raise RuntimeError(f"FixedDraws: the sampler asked for shape {tuple(shape)}; the given draw is {tuple(x.shape)}")
        return x.clone()


@contextlib.contextmanager
def given_noise(*noise: torch.Tensor, fn: str = "randn") -> Iterator[None]:
    """torch.randn (or `fn`) returns the given tensors, in order, for the block (a sampler's own noise)."""
    real = getattr(torch, fn)
    queue: list[torch.Tensor] = list(noise)

    def fake(*size: Any, **kw: Any) -> torch.Tensor:
        shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)) else tuple(size)
        if queue and tuple(queue[0].shape) == shape:
            return queue.pop(0).clone()
        return real(*size, **kw)

    with swapped(torch, **{fn: fake}):
        yield
    if queue:
        raise RuntimeError(f"given_noise: {len(queue)} noise tensor(s) were never drawn (shape mismatch?)")


def flatten_sets(*xs: torch.Tensor) -> tuple[Sequence[int], list[torch.Tensor]]:
    """(leading shape, tensors reshaped to (N, n, d)) for ports that take one batch axis."""
    lead = tuple(xs[0].shape[:-2])
    return lead, [x.reshape((-1,) + tuple(x.shape[-2:])) for x in xs]
