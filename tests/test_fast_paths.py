"""The reference's speed-ups give bit-for-bit the numbers of the plain eager code they replace.

FlatAdam (softq_ref/flat_adam.py) against per-parameter torch.optim.Adam; the in-place no-grad
evaluation (softq_ref.networks.evaluate_mlp) against nn.Sequential's forward; and whole SQL and
DDPG updates with both fast paths against the same agents with both swapped for the plain code.
"""
from __future__ import annotations

import copy

import pytest
import torch

from softq_ref import networks
from softq_ref.config import SQLConfig
from softq_ref.flat_adam import FlatAdam
from softq_ref.networks import QNetwork, evaluate_mlp, mlp
from softq_ref.perf.measure import SETTINGS, _batches


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


def _steps(net, opt, batches, foreign_zero_at=None):
    for i, (obs, act) in enumerate(batches):
        opt.zero_grad()
        if i == foreign_zero_at:  # another optimizer over the same module sets the grads to None
            torch.optim.SGD(net.parameters(), lr=0.0).zero_grad(set_to_none=True)
        (net(obs, act) ** 2).mean().backward()
        opt.step()


def _qbatches(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(64, 10, generator=g), torch.rand(64, 2, generator=g) * 2 - 1) for _ in range(n)]


@pytest.mark.parametrize("foreign_zero_at", [None, 7])
def test_flat_adam_matches_per_parameter_adam(foreign_zero_at):
    torch.manual_seed(0)
    plain_net = QNetwork(10, 2)
    flat_net = copy.deepcopy(plain_net)
    plain = torch.optim.Adam(plain_net.parameters(), lr=1e-3, foreach=True)
    flat = FlatAdam(flat_net, lr=1e-3)
    _steps(plain_net, plain, _qbatches(30), foreign_zero_at)
    _steps(flat_net, flat, _qbatches(30), foreign_zero_at)
    assert _same(plain_net.parameters(), flat_net.parameters())
    # the module's parameters are still views of the flat buffer after a foreign zero_grad
    lo = flat.flat.grad.data_ptr()
    hi = lo + flat.flat.grad.numel() * flat.flat.grad.element_size()
    assert all(lo <= p.grad.data_ptr() < hi for p in flat_net.parameters())
    assert flat.flat.numel() == sum(p.numel() for p in flat_net.parameters())


def test_flat_adam_loads_a_per_parameter_adam_checkpoint():
    torch.manual_seed(1)
    plain_net = QNetwork(10, 2)
    plain = torch.optim.Adam(plain_net.parameters(), lr=1e-3, foreach=True)
    _steps(plain_net, plain, _qbatches(5))
    flat_net = copy.deepcopy(plain_net)
    flat = FlatAdam(flat_net, lr=1e-3)
    flat.load_state_dict(copy.deepcopy(plain.state_dict()))
    _steps(plain_net, plain, _qbatches(5, seed=1))
    _steps(flat_net, flat, _qbatches(5, seed=1))
    assert _same(plain_net.parameters(), flat_net.parameters())


def test_flat_adam_reports_a_module_moved_after_it_was_built():
    net = QNetwork(10, 2)
    opt = FlatAdam(net, lr=1e-3)
    net.double()  # new storage for every parameter
    opt.zero_grad()
    (net(torch.randn(4, 10, dtype=torch.float64), torch.rand(4, 2, dtype=torch.float64)) ** 2).mean().backward()
    with pytest.raises(RuntimeError, match="no longer lives in the optimizer's flat buffer.*after moving the module"):
        opt.step()


def test_flat_adam_survives_a_deep_copy_of_its_agent():
    from softq_ref.sql import SoftQLearning

    a = SoftQLearning(10, 2, SQLConfig(), seed=0)
    batches = _batches(4, 64, 10, 2)
    a.update(batches[0])
    b = copy.deepcopy(a)
    for i in range(4):
        a.update(batches[i])
        b.update(batches[i])
    assert _same(a.q.parameters(), b.q.parameters()) and _same(a.sampler.parameters(), b.sampler.parameters())
    assert list(a.q.parameters())[0].data_ptr() != list(b.q.parameters())[0].data_ptr()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", [(64, 50, 12), (1, 12), (3, 7, 12), (2048, 12)])
def test_evaluate_mlp_gives_the_forward_pass_bit_for_bit(threads, shape):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(2)
        net = mlp(12, (200, 200), 1)
        x = torch.randn(*shape)
        x0 = x.clone()
        with torch.no_grad():
            plain = net(x)
            assert torch.equal(evaluate_mlp(net, x), plain)
        assert torch.equal(x, x0)  # the input is never modified in place
    finally:
        torch.set_num_threads(before)


def test_evaluate_mlp_refuses_autograd():
    with pytest.raises(RuntimeError, match="without autograd.*torch.no_grad"):
        evaluate_mlp(mlp(3, (4,), 1), torch.randn(2, 3))


def _plain_paths(monkeypatch):
    import softq_baselines.ddpg as ddpg
    import softq_ref.sql as sql

    def per_parameter_adam(module, lr):
        return torch.optim.Adam(module.parameters(), lr=lr, foreach=True)

    monkeypatch.setattr(sql, "FlatAdam", per_parameter_adam)
    monkeypatch.setattr(ddpg, "FlatAdam", per_parameter_adam)
    monkeypatch.setattr(networks, "evaluate_mlp", lambda net, x: net(x))


def _train(make, cfg, n=12):
    agent = make(cfg)
    batches = _batches(4, cfg.batch_size, 10, 2, seed=5)
    for i in range(n):
        agent.update(batches[i % 4])
        if i == 5:
            agent.sync_target()
    return agent


@pytest.mark.parametrize("setting", ["paper", "authors_code"])
def test_sql_update_matches_the_plain_eager_code(monkeypatch, setting):
    from softq_ref.sql import SoftQLearning

    cfg = SETTINGS[setting].replace(batch_size=16)

    def make(c):
        return SoftQLearning(10, 2, c, seed=4)
    fast = _train(make, cfg)
    _plain_paths(monkeypatch)
    plain = _train(make, cfg)
    assert not isinstance(plain.q_optimizer, FlatAdam)
    assert _same(fast.q.parameters(), plain.q.parameters())
    assert _same(fast.sampler.parameters(), plain.sampler.parameters())


def test_ddpg_update_matches_the_plain_eager_code(monkeypatch):
    from softq_baselines.ddpg import DDPG

    def make(c):
        return DDPG(10, 2, c, seed=4)
    fast = _train(make, SQLConfig(batch_size=16))
    _plain_paths(monkeypatch)
    plain = _train(make, SQLConfig(batch_size=16))
    assert _same(fast.q.parameters(), plain.q.parameters()) and _same(fast.actor.parameters(), plain.actor.parameters())


def test_keep_freed_memory_applies_on_glibc_and_is_a_no_op_elsewhere(monkeypatch):
    import platform

    from softq_ref import runtime

    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert runtime.keep_freed_memory() is True
    monkeypatch.setattr(runtime.platform, "system", lambda: "Darwin")
    assert runtime.keep_freed_memory() is False


@pytest.mark.parametrize("algo", ["sql", "ddpg"])
def test_bfloat16_autocast_is_opt_in_and_keeps_float32_state(algo):
    from softq_ref.training import make_agent

    cfg = SQLConfig(batch_size=16, hidden_sizes=(32, 32), value_samples=8, svgd_particles=8)
    agents = {p: make_agent(algo, 10, 2, cfg.replace(precision=p), 0) for p in ("float32", "bfloat16_autocast")}
    batches = _batches(3, 16, 10, 2)
    stats = {p: [a.update(b) for b in batches] for p, a in agents.items()}
    f32, bf16 = agents["float32"], agents["bfloat16_autocast"]
    assert all(p.dtype == torch.float32 for p in bf16.q.parameters())
    assert all(torch.isfinite(torch.tensor(list(s.values()))).all() for s in stats["bfloat16_autocast"])
    assert not _same(f32.q.parameters(), bf16.q.parameters())  # the mode does change the numbers
    assert torch.allclose(f32.q.net[0].weight, bf16.q.net[0].weight, atol=1e-2)  # ... by bfloat16 rounding


def test_precision_is_validated():
    from softq_ref.config import ConfigError

    with pytest.raises(ConfigError, match="'precision'.*one of"):
        SQLConfig(precision="float16").validate()


@pytest.mark.parametrize("act_dim", [2, 6, 21])
def test_svgd_loss_sharing_the_pairwise_differences_matches_the_plain_composition(act_dim):
    from softq_ref.sampler import svgd_surrogate_loss
    from softq_ref.svgd import median_bandwidth, svgd_direction

    g = torch.Generator().manual_seed(act_dim)
    obs, actions = torch.randn(8, 3, generator=g), torch.rand(8, 12, act_dim, generator=g) * 2 - 1

    def energy(o, a):
        return -(a ** 2).sum(-1) * o[:, :1]
    fast_actions = actions.clone().requires_grad_(True)
    fast_loss, stats = svgd_surrogate_loss(obs, fast_actions, energy, 0.7, 5)
    fast_loss.backward()
    plain_actions = actions.clone().requires_grad_(True)  # the composition before the differences were shared
    fixed, targets = plain_actions[:, :5].detach().requires_grad_(True), plain_actions[:, 5:]
    grad_q = torch.autograd.grad(energy(obs, fixed).sum(), fixed)[0]
    diff = fixed.detach().unsqueeze(-2) - targets.detach().unsqueeze(-3)  # rbf_kernel as it was, inline
    h = median_bandwidth((diff * diff).sum(-1), "sql_code", 5).reshape(8, 1, 1)
    k = torch.exp(-(diff * diff).sum(-1) / h)
    direction = svgd_direction(k, -2.0 * diff / h.unsqueeze(-1) * k.unsqueeze(-1), grad_q, 0.7)
    plain_loss = -(direction * targets).sum(-1).mean()
    plain_loss.backward()
    assert torch.equal(fast_loss, plain_loss) and torch.equal(fast_actions.grad, plain_actions.grad)
    assert fast_actions.grad[:, 5:].abs().sum() > 0  # the moved particles do get a direction
    assert stats.bandwidth == float(h.mean()) and stats.direction_norm == float(direction.norm(dim=-1).mean())
