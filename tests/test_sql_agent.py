"""The SQL agent's update on tiny inputs: shapes, eq. 10 target, target freezing, stop-gradients, seeds."""
import copy
import math

import numpy as np
import pytest
import torch

from softq_ref.config import ConfigError, SQLConfig, preset
from softq_ref.sampler import train_sampler
from softq_ref.networks import SamplingNetwork
from softq_ref.soft_value import soft_value_uniform_box
from softq_ref.sql import SoftQLearning, log_linear_alpha, noise_set_size

TINY = SQLConfig(hidden_sizes=(16, 16), batch_size=8, min_replay_size=8, replay_size=100, svgd_particles=6,
                 value_samples=5, target_update_interval=3, alpha=0.5)


def batch(seed=0, B=8, o=3, d=2):
    g = torch.Generator().manual_seed(seed)
    return {"obs": torch.randn(B, o, generator=g), "action": torch.rand(B, d, generator=g) * 2 - 1,
            "reward": torch.randn(B, generator=g), "next_obs": torch.randn(B, o, generator=g),
            "terminated": (torch.rand(B, generator=g) < 0.3).float()}


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_shapes_and_action_bounds():
    ag = SoftQLearning(3, 2, TINY, seed=0)
    b = batch()
    assert ag.q(b["obs"], b["action"]).shape == (8,)
    acts = ag.sample_actions(b["obs"], 7)
    assert acts.shape == (8, 7, 2) and acts.abs().max() < 1
    assert ag.q(b["obs"], acts).shape == (8, 7)
    assert ag.soft_value_target(b["next_obs"]).shape == (8,)
    a = ag.act(np.zeros(3, np.float32))
    assert a.shape == (2,) and a.dtype == np.float32
    info = ag.update(b)
    assert set(info) >= {"q_loss", "policy_surrogate", "bandwidth"} and all(math.isfinite(v) for v in info.values())


def test_td_target_is_eq_10_with_target_network_and_terminal_mask():
    ag = SoftQLearning(3, 2, TINY, seed=1)
    b = batch(1)
    state = ag.generator.get_state()
    y = ag.td_target(b)
    ag.generator.set_state(state)
    draws = ag.proposal_actions(8)
    with torch.no_grad():
        v = 0.5 * (torch.logsumexp(ag.q_target(b["next_obs"], draws) / 0.5, -1) - math.log(5)) + 0.5 * 2 * math.log(2)
    torch.testing.assert_close(y, b["reward"] + 0.99 * (1 - b["terminated"]) * v)


def test_target_parameters_frozen_until_copy_interval():
    ag = SoftQLearning(3, 2, TINY, seed=2)
    frozen = params(ag.q_target)
    for step in (1, 2):
        ag.update(batch(step))
        ag.on_env_step(step)
        assert all(torch.equal(a, b) for a, b in zip(params(ag.q_target), frozen))
    assert not all(torch.equal(a, b) for a, b in zip(params(ag.q), frozen))
    ag.on_env_step(3)  # interval 3: hard copy, tau = 1
    assert all(torch.equal(a, b) for a, b in zip(params(ag.q_target), params(ag.q)))


def test_stop_gradients_between_q_and_sampler():
    ag = SoftQLearning(3, 2, TINY, seed=3)
    b = batch(3)
    sampler_before = params(ag.sampler)
    ag.q_update(b)
    assert all(torch.equal(a, b) for a, b in zip(params(ag.sampler), sampler_before))
    q_before, qt_before = params(ag.q), params(ag.q_target)
    ag.q_optimizer.zero_grad(set_to_none=True)
    ag.policy_update(b)
    assert all(torch.equal(a, b) for a, b in zip(params(ag.q), q_before))
    assert all(torch.equal(a, b) for a, b in zip(params(ag.q_target), qt_before))
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in ag.q.parameters())
    assert not all(torch.equal(a, b) for a, b in zip(params(ag.sampler), sampler_before))


def test_same_seed_identical_different_seed_differs():
    def run(seed):
        ag = SoftQLearning(3, 2, TINY, seed=seed)
        for i in range(5):
            ag.update(batch(i))
            ag.on_env_step(i + 1)
        return params(ag.q) + params(ag.sampler)
    a, b, c = run(7), run(7), run(8)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


def test_reward_scale_convention_is_alpha_convention_divided_by_alpha():
    """Q_code = Q_paper / alpha with rewards scaled by 1/alpha gives the same policy target."""
    a_mode = SoftQLearning(3, 2, TINY, seed=4)
    r_mode = SoftQLearning(3, 2, TINY.replace(temperature_mode="reward_scale"), seed=4)
    r_mode.q_target = copy.deepcopy(a_mode.q_target)
    with torch.no_grad():
        last = r_mode.q_target.net[-1]
        last.weight /= TINY.alpha
        last.bias /= TINY.alpha
    r_mode.generator.set_state(a_mode.generator.get_state())
    b = batch(4)
    torch.testing.assert_close(r_mode.td_target(b), a_mode.td_target(b) / TINY.alpha)


def test_uniform_shared_proposal_shares_draws():
    ag = SoftQLearning(3, 2, TINY.replace(value_proposal="uniform_shared"), seed=5)
    draws = ag.proposal_actions(4)
    assert torch.equal(draws[0], draws[3])


@pytest.mark.parametrize("field,value", [("alpha", -1.0), ("svgd_particles", 1), ("batch_size", 0),
                                         ("min_replay_size", 4), ("bandwidth_rule", "silverman"),
                                         ("squash_correction", "yes"), ("gamma", 1.0)])
def test_invalid_config_names_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        TINY.replace(**{field: value}).validate()


def test_presets_follow_appendix_d1():
    mg = preset("multigoal_paper")
    assert (mg.alpha, mg.svgd_particles, mg.batch_size, mg.q_lr, mg.policy_lr) == (10.0, 100, 64, 1e-3, 1e-4)
    assert preset("swimmer_paper").target_update_interval == 5000
    assert (preset("paper").epochs, mg.epochs, preset("finetune_paper").epochs) == (500, 100, 200)
    assert (preset("paper").value_samples, preset("paper").hidden_sizes) == (50, (200, 200))


def test_finetune_schedules():
    assert log_linear_alpha(0, 0.1, 1e-3, 20) == pytest.approx(0.1)
    assert log_linear_alpha(10, 0.1, 1e-3, 20) == pytest.approx(1e-2)
    assert log_linear_alpha(25, 0.1, 1e-3, 20) == pytest.approx(1e-3)
    assert [noise_set_size(e, 21, 20) for e in (0, 10, 20, 30)] == [21, 11, 1, 1]
    ag = SoftQLearning(3, 2, TINY.replace(finetune_epochs=4, finetune_noise_set_size=8), seed=0)
    ag.on_epoch_start(0)
    assert len(ag.sampler.noise_set) == 8
    ag.on_epoch_start(4)
    assert len(ag.sampler.noise_set) == 1 and ag.alpha == pytest.approx(1e-3)


def test_sampler_alone_fits_a_gaussian_energy_with_the_right_temperature():
    """exp(E/alpha) = N(0.3, 0.2^2): the amortized sampler's mean and spread (alpha in the right place)."""
    torch.manual_seed(0)
    sampler = SamplingNetwork(1, 1, (32, 32))
    alpha = 0.5

    def energy(obs, a):
        return -alpha * (a[..., 0] - 0.3) ** 2 / (2 * 0.2**2)

    train_sampler(sampler, energy, torch.zeros(16, 1), alpha, steps=300, lr=3e-3, n_particles=32,
                  generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = sampler(torch.zeros(1, 1), 4000, generator=torch.Generator().manual_seed(1))[0, :, 0]
    # seeds 0-3 measured mean 0.276-0.309, std 0.188-0.200; a misplaced alpha gives std 0.2/sqrt(2) or 0.2*sqrt(2)
    assert abs(a.mean().item() - 0.3) < 0.05
    assert 0.17 < a.std().item() < 0.23
