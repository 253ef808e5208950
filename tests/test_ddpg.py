"""DDPG baseline (paper D.1 settings): shapes, target schedule, targets, determinism."""
import numpy as np
import pytest
import torch

from softq_baselines import DDPG, DDPGConfig
from softq_ref.config import SQLConfig


OBS, ACT = 3, 2
CFG = SQLConfig(hidden_sizes=(16, 16), batch_size=16, min_replay_size=32, target_update_interval=5)


def _batch(seed=0, n=16):
    g = torch.Generator().manual_seed(seed)
    return {"obs": torch.randn(n, OBS, generator=g), "action": torch.rand(n, ACT, generator=g) * 2 - 1,
            "reward": torch.randn(n, generator=g), "next_obs": torch.randn(n, OBS, generator=g),
            "terminated": (torch.rand(n, generator=g) < 0.3).float()}


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_config_is_the_shared_sqlconfig():
    assert DDPGConfig is SQLConfig
    agent = DDPG(OBS, ACT, SQLConfig(), seed=0)  # D.1 defaults
    assert agent.algo == "ddpg"
    assert agent.q_optimizer.param_groups[0]["lr"] == 1e-3 and agent.policy_optimizer.param_groups[0]["lr"] == 1e-4
    assert (agent.ou.theta, agent.ou.sigma) == (0.15, 0.3) and agent.config.batch_size == 64
    assert [m.out_features for m in agent.actor.net if isinstance(m, torch.nn.Linear)] == [200, 200, ACT]


def test_act_and_update_shapes():
    agent = DDPG(OBS, ACT, CFG, seed=0)
    agent.reset_episode()
    for deterministic in (False, True):
        a = agent.act(np.zeros(OBS, np.float32), deterministic=deterministic)
        assert a.shape == (ACT,) and a.dtype == np.float32 and np.all(np.abs(a) <= 1)
    before_q, before_mu = _params(agent.q), _params(agent.actor)
    stats = agent.update(_batch())
    assert set(stats) >= {"q_loss", "policy_loss"} and all(np.isfinite(v) for v in stats.values())
    assert not _same(before_q, _params(agent.q)) and not _same(before_mu, _params(agent.actor))


def test_deterministic_action_is_tanh_actor_output():
    agent = DDPG(OBS, ACT, CFG, seed=1)
    obs = np.array([0.3, -1.0, 2.0], np.float32)
    with torch.no_grad():
        expected = torch.tanh(agent.actor.net(torch.as_tensor(obs)[None]))[0].numpy()
    np.testing.assert_allclose(agent.act(obs, deterministic=True), expected, rtol=1e-6)


def test_td_target_formula():
    agent = DDPG(OBS, ACT, CFG.replace(gamma=0.9), seed=0)
    batch = _batch(3)
    with torch.no_grad():
        q_next = agent.q_target(batch["next_obs"], torch.tanh(agent.actor_target.net(batch["next_obs"])))
    expected = batch["reward"] + 0.9 * (1 - batch["terminated"]) * q_next  # y = r + gamma (1 - d) Q'(s', mu'(s'))
    torch.testing.assert_close(agent.td_target(batch), expected)
    terminal = batch["terminated"] == 1
    torch.testing.assert_close(agent.td_target(batch)[terminal], batch["reward"][terminal])


def test_targets_frozen_until_the_copy_step():
    agent = DDPG(OBS, ACT, CFG, seed=0)  # target_update_interval = 5
    q0, mu0 = _params(agent.q_target), _params(agent.actor_target)
    for t in range(1, 5):
        agent.update(_batch(t))
        agent.on_env_step(t)
        assert _same(q0, _params(agent.q_target)) and _same(mu0, _params(agent.actor_target))
    agent.update(_batch(5))
    agent.on_env_step(5)  # hard copy, tau = 1, of both networks
    assert _same(_params(agent.q), _params(agent.q_target)) and _same(_params(agent.actor), _params(agent.actor_target))
    assert not _same(q0, _params(agent.q_target))


def test_deterministic_given_seed_and_sql_only_fields_ignored():
    def run(seed, **changes):
        agent = DDPG(OBS, ACT, CFG.replace(**changes), seed=seed)
        agent.reset_episode()
        acts = [agent.act(np.full(OBS, 0.1 * i, np.float32)) for i in range(5)]
        for t in range(3):
            agent.update(_batch(t))
        return acts, _params(agent.q) + _params(agent.actor)

    a1, p1 = run(0)
    a2, p2 = run(0, alpha=10.0, svgd_particles=7, exploration_noise="none", value_samples=3)
    assert all(np.array_equal(x, y) for x, y in zip(a1, a2)) and _same(p1, p2)
    a3, p3 = run(1)
    assert not _same(p1, p3)


def test_state_dict_round_trip():
    agent = DDPG(OBS, ACT, CFG, seed=0)
    agent.reset_episode()
    agent.act(np.zeros(OBS, np.float32))
    agent.update(_batch())
    clone = DDPG(OBS, ACT, CFG, seed=5)
    clone.load_state_dict(agent.state_dict())
    obs = np.ones(OBS, np.float32)
    assert np.array_equal(agent.act(obs), clone.act(obs))  # OU state and rng restored
    agent.update(_batch(1)), clone.update(_batch(1))
    assert _same(_params(agent.actor), _params(clone.actor))


def test_invalid_config_rejected():
    with pytest.raises(ValueError, match="batch_size|min_replay_size"):
        DDPG(OBS, ACT, SQLConfig(batch_size=100, min_replay_size=50), seed=0)


def test_actor_only_backward_is_bit_identical_to_full_backward():
    """The policy step backpropagates into the actor only (a speed-up); the numbers must not change."""
    fast, plain = DDPG(OBS, ACT, CFG, seed=0), DDPG(OBS, ACT, CFG, seed=0)

    def full_backward_policy_update(batch):
        loss = -plain.q(batch["obs"], plain.actor(batch["obs"])).mean()
        plain.policy_optimizer.zero_grad(set_to_none=True)
        loss.backward()  # also fills the critic's .grad, which q_update discards
        plain.policy_optimizer.step()
        return {"policy_loss": float(loss.detach())}

    plain.policy_update = full_backward_policy_update
    for i in range(20):
        fast.update(_batch(i))
        plain.update(_batch(i))
    assert _same(_params(fast.q), _params(plain.q)) and _same(_params(fast.actor), _params(plain.actor))
    critic_grads = [p.grad.clone() for p in fast.q.parameters()]  # left by q_update
    fast.policy_update(_batch(99))
    assert _same(critic_grads, [p.grad for p in fast.q.parameters()])  # the policy step added nothing to them
