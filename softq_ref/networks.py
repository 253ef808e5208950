"""The two function approximators of Algorithm 1: soft Q-network and sampling network f^phi."""
from __future__ import annotations

import contextlib
import functools
from typing import Callable, Sequence, TypeVar

import torch
from torch import nn

__all__ = ["mlp", "evaluate_mlp", "autocast_region", "in_config_precision", "QNetwork", "SamplingNetwork"]


def mlp(in_dim: int, hidden_sizes: Sequence[int], out_dim: int) -> nn.Sequential:
    """ReLU MLP (D.1: two hidden layers of 200 units).

    Out-of-place ReLU under autograd (in place measured no faster there); `evaluate_mlp` uses
    in-place ReLU where no gradient is needed.
    """
    layers: list[nn.Module] = []
    for width in hidden_sizes:
        layers += [nn.Linear(in_dim, int(width)), nn.ReLU()]
        in_dim = int(width)
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


def evaluate_mlp(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """net(x) without autograd, each ReLU applied in place on the fresh output of its Linear.

    ReLU is exact, so this is the forward pass bit for bit, with one activation-sized allocation
    and memory pass fewer per hidden layer. (Row blocks that stay in cache would be faster still,
    but MKL's products are not row-invariant: a row's bits depend on the block's row count.)
    """
    if torch.is_grad_enabled() and any(p.requires_grad for p in net.parameters()):
        raise RuntimeError("evaluate_mlp is for evaluation without autograd: call it under torch.no_grad()")
    h = x
    for layer in net:  # in place only on this function's own intermediates, never on the input
        h = torch.relu_(h) if isinstance(layer, nn.ReLU) and h is not x else layer(h)
    return h


def autocast_region(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Where an update runs: as is for "float32", under torch.autocast(bfloat16) for "bfloat16_autocast"."""
    if precision == "float32":
        return contextlib.nullcontext()
    if precision == "bfloat16_autocast":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    raise ValueError(f"precision must be 'float32' or 'bfloat16_autocast', got {precision!r}")


F = TypeVar("F", bound=Callable)


def in_config_precision(method: F) -> F:
    """Run an agent method (td_target, q_update, policy_update) in `self.config.precision`."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with autocast_region(self.config.precision, self.device):
            return method(self, *args, **kwargs)
    return wrapper  # type: ignore[return-value]


class QNetwork(nn.Module):
    """Q(s, a) -> scalar. Accepts obs (..., o) with actions (..., n, d): obs is broadcast over particles."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: Sequence[int] = (200, 200)):
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.net = mlp(obs_dim + act_dim, hidden_sizes, 1)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        if act.dim() == obs.dim() + 1:  # particles: (B, o) with (B, n, d)
            obs = obs.unsqueeze(-2).expand(*act.shape[:-1], obs.shape[-1])
        x = torch.cat([obs, act], dim=-1)
        # Under no_grad (the eq. 10 value target, evaluation) ReLU in place: same numbers.
        q = self.net(x) if torch.is_grad_enabled() else evaluate_mlp(self.net, x)
        return q.squeeze(-1).to(obs.dtype)  # float32 out of a bfloat16 autocast region (a no-op otherwise)


class SamplingNetwork(nn.Module):
    """a = tanh(f^phi(s, xi)), xi ~ N(0, I) with dim(xi) = dim(a) (the authors' code).

    `noise_set`, when set, restricts xi to a fixed finite set (the fine-tuning schedule of D.1).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: Sequence[int] = (200, 200)):
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.net = mlp(obs_dim + act_dim, hidden_sizes, act_dim)
        self.noise_set: torch.Tensor | None = None

    def actions_from_noise(self, obs: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        """obs (B, o), xi (B, n, d) -> actions (B, n, d)."""
        obs = obs.unsqueeze(-2).expand(*xi.shape[:-1], obs.shape[-1])
        return torch.tanh(self.net(torch.cat([obs, xi], dim=-1))).to(obs.dtype)  # as QNetwork.forward

    def sample_noise(self, batch: int, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        p = next(self.parameters())
        if self.noise_set is None:
            return torch.randn(batch, n, self.act_dim, generator=generator, dtype=p.dtype).to(p.device)
        idx = torch.randint(len(self.noise_set), (batch, n), generator=generator)
        return self.noise_set[idx].to(device=p.device, dtype=p.dtype)

    def forward(self, obs: torch.Tensor, n: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        """obs (B, o) -> n actions per state, (B, n, d)."""
        return self.actions_from_noise(obs, self.sample_noise(obs.shape[0], n, generator))
