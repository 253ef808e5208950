"""The multi-seed trainer: the reference's equations, per-seed random streams, results independent of S."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from softq_baselines.ddpg import DDPG
from softq_ref.config import SQLConfig
from softq_ref.replay import ReplayBuffer
from softq_ref.sql import SoftQLearning
from softq_ref.training import read_metrics, train
from softq_ref.vectorized import StackedLinear, make_stacked_agent
from softq_ref.vectorized_training import train_many

SMALL = dict(hidden_sizes=(16, 16), batch_size=8, svgd_particles=6, value_samples=5)
CONFIGS = {
    "sql": SQLConfig(**SMALL, exploration_noise="ou"),
    "sql_conventions": SQLConfig(**SMALL, squash_correction="tanh_log_det", value_proposal="uniform_shared",
                                 bandwidth_rule="paper_d1"),
    "sql_finetune": SQLConfig(**SMALL, finetune_epochs=3, finetune_noise_set_size=4, epoch_length=5),
    "ddpg": SQLConfig(**SMALL),
}
SINGLE = {"sql": SoftQLearning, "ddpg": DDPG}


def _batches(seed: int, n: int, obs_dim: int = 3, act_dim: int = 2) -> list[dict]:
    rb, r = ReplayBuffer(obs_dim, act_dim, 64), np.random.default_rng(seed)
    for i in range(40):
        rb.add(r.normal(size=obs_dim), r.uniform(-1, 1, act_dim), r.normal(), r.normal(size=obs_dim), i % 9 == 0)
    return [rb.sample(8, r) for _ in range(n)]


def _stack(batches: list[dict]) -> dict:
    return {k: torch.stack([b[k] for b in batches]) for k in batches[0]}


def _drive(agent, batches_per_seed: list[list[dict]], obs: np.ndarray, epochs: int = 2) -> np.ndarray:
    """Act, update and sync the stacked agent as the training loop does; returns the actions taken."""
    actions = []
    for e in range(epochs):
        agent.on_epoch_start(e)
        for t in range(len(batches_per_seed[0])):
            actions.append(agent.act(obs))
            agent.update(_stack([b[t] for b in batches_per_seed]))
            if t % 4 == 3:
                agent.sync_target()
    return np.stack(actions)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_stacked_update_is_the_single_seed_agents_update(name):
    """Same equations and random draws: each seed ends within float rounding of its single-seed agent."""
    algo, cfg, seeds = name.split("_")[0], CONFIGS[name], [3, 4, 5]
    batches = [_batches(s, 8) for s in seeds]
    obs = np.random.default_rng(0).normal(size=(3, 3)).astype(np.float32)
    stacked = make_stacked_agent(algo, 3, 2, cfg, seeds)
    acts = _drive(stacked, batches, obs)
    for i, s in enumerate(seeds):
        single = SINGLE[algo](3, 2, cfg, seed=s)
        single_acts = []
        for e in range(2):
            single.on_epoch_start(e)
            for t in range(8):
                single_acts.append(single.act(obs[i]))
                single.update(batches[i][t])
                if t % 4 == 3:
                    single.sync_target()
        np.testing.assert_allclose(acts[:, i], np.stack(single_acts), atol=1e-5)
        mine, ref = stacked.seed_state_dict(i), single.state_dict()
        for net in stacked.networks:
            for k in ref[net]:
                torch.testing.assert_close(mine[net][k], ref[net][k], atol=1e-5, rtol=1e-5)
        assert mine["np_rng"] == ref["np_rng"]  # the same OU draws were consumed
        if algo == "sql":
            assert torch.equal(mine["generator"], ref["generator"])  # the same proposal and sampler draws
            assert mine["alpha"] == ref["alpha"]


@pytest.mark.parametrize("name", ["sql", "sql_finetune", "ddpg"])
def test_a_seed_alone_and_in_a_batch_of_eight_are_bit_identical(name):
    algo, cfg = name.split("_")[0], CONFIGS[name]
    seeds = [11, 12, 13, 14, 15, 16, 17, 18]
    batches = [_batches(s, 6) for s in seeds]
    obs = np.random.default_rng(1).normal(size=(8, 3)).astype(np.float32)
    eight = make_stacked_agent(algo, 3, 2, cfg, seeds)
    alone = make_stacked_agent(algo, 3, 2, cfg, [seeds[5]])
    a8 = _drive(eight, batches, obs)
    a1 = _drive(alone, [batches[5]], obs[5:6])
    assert np.array_equal(a8[:, 5], a1[:, 0])
    s8, s1 = eight.seed_state_dict(5), alone.seed_state_dict(0)
    for net in eight.networks:
        for k in s1[net]:
            assert torch.equal(s8[net][k], s1[net][k]), (net, k)
    for opt, _ in eight.optimizers:
        for k in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(s8[opt]["state"][0][k], s1[opt]["state"][0][k]), (opt, k)


def test_seed_states_round_trip_through_single_seed_agents():
    cfg = CONFIGS["sql_finetune"]
    stacked = make_stacked_agent("sql", 3, 2, cfg, [1, 2])
    _drive(stacked, [_batches(1, 3), _batches(2, 3)], np.zeros((2, 3), np.float32))
    singles = [SoftQLearning(3, 2, cfg, seed=0) for _ in range(2)]
    for i, ag in enumerate(singles):
        ag.load_state_dict(stacked.seed_state_dict(i))  # a seed's state is the single agent's format
    again = make_stacked_agent("sql", 3, 2, cfg, [1, 2])
    again.load_seed_state_dicts([ag.state_dict() for ag in singles])
    for i in range(2):
        a, b = again.seed_state_dict(i), stacked.seed_state_dict(i)
        for net in again.networks:
            assert all(torch.equal(a[net][k], b[net][k]) for k in a[net])
        assert torch.equal(a["policy_optimizer"]["state"][0]["exp_avg"], b["policy_optimizer"]["state"][0]["exp_avg"])
        assert torch.equal(a["noise_set"], b["noise_set"]) and torch.equal(a["generator"], b["generator"])


def test_stacked_linear_one_output_column_does_not_depend_on_the_seed_count():
    """S = 1 takes a GEMV path in baddbmm; the one-column layer avoids it (bits independent of S)."""
    g = torch.Generator().manual_seed(0)
    layers = [torch.nn.Linear(32, 1) for _ in range(3)]
    x = torch.randn(3, 50, 32, generator=g)
    y3 = StackedLinear(layers)(x)
    y1 = StackedLinear(layers[1:2])(x[1:2])
    assert torch.equal(y3[1], y1[0])
    torch.testing.assert_close(y1[0], layers[1](x[1]), atol=1e-5, rtol=1e-5)


def test_errors_name_what_is_wrong():
    with pytest.raises(ValueError, match="no stacked multi-seed version"):
        make_stacked_agent("sb3_sac", 3, 2, CONFIGS["sql"], [0, 1])
    stacked = make_stacked_agent("sql", 3, 2, CONFIGS["sql"], [0, 1])
    with pytest.raises(ValueError, match="expected 2 seed states"):
        stacked.load_seed_state_dicts([stacked.seed_state_dict(0)])
    with pytest.raises(ValueError, match="leading axis"):
        stacked.q(torch.zeros(3, 4, 3), torch.zeros(3, 4, 2))
    fresh = make_stacked_agent("sql", 3, 2, CONFIGS["sql"], [0, 1])
    _drive(stacked, [_batches(0, 2), _batches(1, 2)], np.zeros((2, 3), np.float32), epochs=1)
    with pytest.raises(ValueError, match="different steps"):
        fresh.load_seed_state_dicts([stacked.seed_state_dict(0), make_stacked_agent(
            "sql", 3, 2, CONFIGS["sql"], [1]).seed_state_dict(0)])


# -- the training loop ---------------------------------------------------------------------------------
LOOP = SQLConfig(hidden_sizes=(16, 16), batch_size=16, svgd_particles=6, value_samples=5, min_replay_size=40,
                 epoch_length=60, target_update_interval=50, max_episode_steps=25, exploration_noise="ou",
                 replay_size=1000)
ENV = "SoftQ/MultiGoal-v0"


def _files(d) -> tuple[list[dict], dict]:
    ckpt = torch.load(d / "checkpoint.pt", weights_only=False)
    return read_metrics(d / "metrics.csv"), ckpt


def _same_run(a, b) -> None:
    rows_a, ck_a = _files(a)
    rows_b, ck_b = _files(b)
    drop = ("wall_time",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows_a] == \
           [{k: v for k, v in r.items() if k not in drop} for r in rows_b]
    for net in [n for n in ("q", "q_target", "sampler", "actor", "actor_target") if n in ck_a["agent"]]:
        for k, v in ck_a["agent"][net].items():
            assert torch.equal(v, ck_b["agent"][net][k]), (net, k)
    assert np.array_equal(ck_a["replay"]["obs"], ck_b["replay"]["obs"])


@pytest.mark.parametrize("algo", ["sql", "ddpg"])
def test_train_many_seed_alone_equals_seed_in_a_batch(tmp_path, algo):
    seeds = [7, 8, 9]
    batch = make_stacked_agent(algo, 2, 2, LOOP, seeds)
    train_many(batch, ENV, 150, [tmp_path / "b" / str(s) for s in seeds], progress=False)
    alone = make_stacked_agent(algo, 2, 2, LOOP, [8])
    train_many(alone, ENV, 150, [tmp_path / "a"], progress=False)
    _same_run(tmp_path / "b" / "8", tmp_path / "a")
    assert len(read_metrics(tmp_path / "a" / "metrics.csv")) == 3
    meta = json.loads((tmp_path / "b" / "8" / "metadata.json").read_text())
    assert meta["group"] == {"seeds": seeds, "seeds_per_process": 3} and meta["status"] == "completed"


def test_train_many_resumes_exactly_and_regroups(tmp_path):
    """Interrupted at an epoch end and resumed in other groups, each seed equals its uninterrupted run."""
    seeds = [1, 2, 3]
    train_many(make_stacked_agent("sql", 2, 2, LOOP, seeds), ENV, 150, [tmp_path / "full" / str(s) for s in seeds],
               progress=False)
    part = [tmp_path / "part" / str(s) for s in seeds]
    train_many(make_stacked_agent("sql", 2, 2, LOOP, seeds), ENV, 60, part, progress=False)
    train_many(make_stacked_agent("sql", 2, 2, LOOP, [1, 3]), ENV, 150, [part[0], part[2]], resume=True, progress=False)
    train_many(make_stacked_agent("sql", 2, 2, LOOP, [2]), ENV, 150, [part[1]], resume=True, progress=False)
    for s in seeds:
        _same_run(tmp_path / "full" / str(s), tmp_path / "part" / str(s))


def test_a_train_many_checkpoint_resumes_under_the_single_seed_loop(tmp_path):
    d = tmp_path / "s5"
    train_many(make_stacked_agent("sql", 2, 2, LOOP, [5]), ENV, 60, [d], progress=False)
    summary = train(SoftQLearning(2, 2, LOOP, seed=5), ENV, 120, 5, d, resume=True, progress=False)
    assert summary["total_steps"] == 120 and len(read_metrics(d / "metrics.csv")) == 2


def test_train_many_refuses_seeds_at_different_steps(tmp_path):
    from softq_ref.config import ConfigError

    train_many(make_stacked_agent("sql", 2, 2, LOOP, [1]), ENV, 60, [tmp_path / "1"], progress=False)
    train_many(make_stacked_agent("sql", 2, 2, LOOP, [2]), ENV, 120, [tmp_path / "2"], progress=False)
    with pytest.raises(ConfigError, match="at steps"):
        train_many(make_stacked_agent("sql", 2, 2, LOOP, [1, 2]), ENV, 180, [tmp_path / "1", tmp_path / "2"],
                   resume=True, progress=False)
