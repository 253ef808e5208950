"""SB3 SAC / DDPG behind the repo's training loop (conformance/third_party/sb3_agent.py), the agent
factory hook of softq_ref.training.make_agent, and third-party variants in the benchmark runner."""
from __future__ import annotations

import json
import math
import sys
import types

import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3", reason="SB3 is an optional extra (pip install -e '.[sb3]')")

from softq_ref.config import ConfigError, SQLConfig  # noqa: E402
from softq_ref.training import ALGOS, make_agent, read_metrics, train  # noqa: E402
from test_training import CFG, ENV, assert_same_run, checkpoint, evaluate  # noqa: E402

SB3_ALGOS = ["sb3_sac", "sb3_ddpg"]


def batch(B=16, obs_dim=2, act_dim=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"obs": torch.randn(B, obs_dim, generator=g), "action": torch.rand(B, act_dim, generator=g) * 2 - 1,
            "reward": torch.randn(B, generator=g), "next_obs": torch.randn(B, obs_dim, generator=g),
            "terminated": (torch.rand(B, generator=g) < 0.2).float()}


def params(agent):
    return {k: v.clone() for k, v in agent.model.policy.state_dict().items()}


# -- the agent ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("algo", SB3_ALGOS)
def test_act_shapes_bounds_and_determinism(algo):
    agent = make_agent(algo, 3, 2, CFG, seed=0)
    assert (agent.algo, agent.obs_dim, agent.act_dim) == (algo, 3, 2)
    acts = np.stack([agent.act(np.ones(3)) for _ in range(50)])
    assert acts.shape == (50, 2) and acts.dtype == np.float32 and np.all(np.abs(acts) <= 1)
    assert acts.std(axis=0).min() > 0  # SAC samples its policy; DDPG adds OU noise
    det = [agent.act(np.ones(3), deterministic=True) for _ in range(3)]
    if algo == "sb3_ddpg":
        assert all(np.array_equal(det[0], d) for d in det)  # mu(s), no OU noise
    else:  # SAC's policy is a distribution: `deterministic` drops only the added OU noise, as for SQL
        with_ou = make_agent(algo, 3, 2, CFG.replace(exploration_noise="ou"), seed=3)
        without = make_agent(algo, 3, 2, CFG.replace(exploration_noise="none"), seed=3)
        pairs = [(with_ou.act(np.ones(3), deterministic=True), without.act(np.ones(3))) for _ in range(5)]
        assert all(np.array_equal(x, y) for x, y in pairs) and np.std([x for x, _ in pairs], axis=0).min() > 0
    # same seed, same actions; acting and updating do not move the process's global torch stream
    a, b = make_agent(algo, 3, 2, CFG, seed=5), make_agent(algo, 3, 2, CFG, seed=5)
    global_state = torch.get_rng_state()
    assert all(np.array_equal(a.act(np.ones(3)), b.act(np.ones(3))) for _ in range(5))
    a.update(batch(obs_dim=3))
    assert torch.equal(torch.get_rng_state(), global_state)


@pytest.mark.parametrize("algo", SB3_ALGOS)
def test_update_is_one_sb3_step_on_exactly_our_batch(algo, monkeypatch):
    from softq_conformance.third_party import sb3_agent

    agent = make_agent(algo, 2, 2, CFG, seed=0)
    seen = []
    real = sb3_agent._OneBatch.sample
    monkeypatch.setattr(sb3_agent._OneBatch, "sample", lambda self, n, env=None: seen.append(real(self, n, env)) or seen[-1])
    b = batch()
    before = params(agent)
    stats = agent.update(b)
    assert len(seen) == 1 and agent.model._n_updates == 1
    s = seen[0]
    assert torch.equal(s.observations, b["obs"]) and torch.equal(s.actions, b["action"])
    assert torch.equal(s.next_observations, b["next_obs"])
    assert torch.equal(s.rewards, b["reward"].reshape(-1, 1)) and torch.equal(s.dones, b["terminated"].reshape(-1, 1))
    assert math.isfinite(stats["q_loss"]) and math.isfinite(stats["policy_loss"])
    after = params(agent)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("actor.") for k in changed) and any(k.startswith("critic.") for k in changed)
    # a NaN reward reaches SB3's critic loss: the step really trained on our batch
    bad = {**batch(seed=1), "reward": torch.full((16,), float("nan"))}
    assert math.isnan(agent.update(bad)["q_loss"])


def test_sac_temperature_learning_rate_and_targets_follow_the_mapping():
    from softq_conformance.third_party.sb3_agent import SB3_TAU

    cfg = CFG.replace(alpha=3.0, q_lr=2e-3, gamma=0.9, hidden_sizes=(8, 12))
    sac = make_agent("sb3_sac", 2, 2, cfg, 0).model
    assert float(sac.ent_coef_tensor) == 3.0 and sac.ent_coef_optimizer is None  # fixed alpha, no auto-tuning
    assert sac.gamma == 0.9 and sac.tau == SB3_TAU and sac.lr_schedule(1.0) == 2e-3
    assert [m.out_features for m in sac.actor.latent_pi if isinstance(m, torch.nn.Linear)] == [8, 12]
    ddpg = make_agent("sb3_ddpg", 2, 2, cfg, 0).model
    assert ddpg.policy_delay == 1 and ddpg.target_noise_clip == 0 and ddpg.policy.critic.n_critics == 1


@pytest.mark.parametrize("algo", SB3_ALGOS)
def test_state_dict_round_trip_continues_identically(algo):
    a = make_agent(algo, 2, 2, CFG, seed=0)
    a.update(batch(seed=1))
    a.act(np.zeros(2))
    b = make_agent(algo, 2, 2, CFG, seed=99)
    b.load_state_dict(a.state_dict())
    for i in range(2):
        assert a.update(batch(seed=2 + i)) == b.update(batch(seed=2 + i))
        assert np.array_equal(a.act(np.zeros(2)), b.act(np.zeros(2)))
    assert all(torch.equal(x, y) for x, y in zip(params(a).values(), params(b).values()))
    with pytest.raises(ValueError, match="cannot be loaded"):
        make_agent("sb3_sac" if algo == "sb3_ddpg" else "sb3_ddpg", 2, 2, CFG, 0).load_state_dict(a.state_dict())


@pytest.mark.parametrize("algo", SB3_ALGOS)
def test_trains_through_the_loop_and_resumes_bit_identically(tmp_path, algo):
    """The repo's loop (multi-goal, 300 steps, 269 SB3 updates) and its early-stop exact resume."""
    def run(out, steps, seed_of_fresh_agent=0, resume=False):
        agent = make_agent(algo, 2, 2, CFG, seed=seed_of_fresh_agent)
        return train(agent, ENV, steps, 0, out, resume=resume, progress=False, evaluate=evaluate)
    summary = run(tmp_path / "full", 300)
    assert summary["updates"] == 300 - CFG.min_replay_size + 1 and summary["algo"] == algo
    rows = read_metrics(tmp_path / "full" / "metrics.csv")
    assert math.isfinite(float(rows[-1]["q_loss"])) and math.isfinite(float(rows[-1]["policy_loss"]))
    assert "goals_reached" in rows[-1] and checkpoint(tmp_path / "full")["agent"]["n_updates"] == summary["updates"]
    run(tmp_path / "split", 170)  # stops mid-epoch and mid-episode
    run(tmp_path / "split", 300, seed_of_fresh_agent=123, resume=True)
    assert_same_run(tmp_path / "full", tmp_path / "split")


# -- the factory hook ----------------------------------------------------------------------------------
def test_factory_hook_names_paths_and_errors(monkeypatch):
    assert {"sql", "ddpg", "sb3_sac", "sb3_ddpg"} <= set(ALGOS)
    agent = make_agent("softq_conformance.third_party.sb3_agent:make_ddpg", 2, 2, CFG, 0)
    assert agent.algo == "sb3_ddpg"
    with pytest.raises(ConfigError, match=r"unknown algo 'ppo'.*'sql', 'ddpg'.*package\.module:Factory"):
        make_agent("ppo", 2, 2, CFG, 0)
    with pytest.raises(ConfigError, match="cannot import module 'no_such_pkg.agents'"):
        make_agent("no_such_pkg.agents:make", 2, 2, CFG, 0)
    with pytest.raises(ConfigError, match="has no callable 'nope'"):
        make_agent("softq_conformance.third_party.sb3_agent:nope", 2, 2, CFG, 0)
    fake = types.ModuleType("fake_agents")
    fake.half = lambda obs_dim, act_dim, config, seed: types.SimpleNamespace(algo="half", act=None)
    monkeypatch.setitem(sys.modules, "fake_agents", fake)
    with pytest.raises(ConfigError, match=r"lacking \['config', 'obs_dim'"):
        make_agent("fake_agents:half", 2, 2, CFG, 0)
    # without SB3 installed, the error names the extra to install
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)
    with pytest.raises(ConfigError, match=r"optional extra 'sb3': pip install -e \"\.\[sb3\]\""):
        make_agent("sb3_sac", 2, 2, CFG, 0)


# -- the benchmark runner ------------------------------------------------------------------------------
def test_runner_runs_sb3_variants_and_decides_role_mapped_claims(tmp_path, capsys):
    from softq_ref.benchmarks import runner, tiers
    from softq_ref.benchmarks.__main__ import main as cli_main

    out = str(tmp_path)
    args = ["--tier", "smoke", "--tasks", "point_maze", "--seeds", "1", "--out", out, "--executor", "inline",
            "--no-progress"]
    assert cli_main([*args, "--algos", "sb3_sac,sb3_ddpg"]) == 0
    res, problems = runner.collect_results(out, "smoke")
    assert problems == [] and {r["key"]: r["algo"] for r in res} == {
        "point_maze/sb3_sac/seed0": "sb3_sac", "point_maze/sb3_ddpg/seed0": "sb3_ddpg"}
    smoke = tmp_path / "smoke"
    assert (smoke / "point_maze" / "sb3_sac" / "seed0" / "result.json").exists()
    assert (smoke / "matrix-sb3_sac+sb3_ddpg.json").exists() and not (smoke / "matrix.json").exists()
    # two --algos: sb3_sac in the role of SQL, sb3_ddpg in that of DDPG; the main claims file is untouched
    c = json.loads((smoke / "claims-sb3_sac-vs-sb3_ddpg.json").read_text())
    assert c["roles"] == {"sql": "sb3_sac", "ddpg": "sb3_ddpg"} and not (smoke / "claims.json").exists()
    (v,) = c["verdicts"]
    assert v["claim"] == "CLAIM.5_2.maze_passage" and v["measured"]["roles"] == c["roles"]
    assert v["measured"]["sql_runs"] == 1 and v["measured"]["ddpg_runs"] == 1
    # SB3 SAC against the main matrix's DDPG, pooled from the same OUT root
    ddpg_run = [r for r in tiers.matrix("smoke", ["point_maze"], [0]) if r.variant == "ddpg"]
    runner.run_matrix(ddpg_run, out, "inline", progress=False)
    capsys.readouterr()
    assert cli_main([*args, "--claims-only", "--roles", "sql=sb3_sac"]) == 0
    md = (smoke / "claims-sb3_sac-vs-ddpg.md").read_text()
    assert md.startswith("Roles: sql <- `sb3_sac`, ddpg <- `ddpg`") and "sb3_sac (as SQL) " in md
    c = json.loads((smoke / "claims-sb3_sac-vs-ddpg.json").read_text())
    assert c["verdicts"][0]["measured"]["roles"] == {"sql": "sb3_sac", "ddpg": "ddpg"}
    assert c["verdicts"][0]["measured"]["ddpg_runs"] == 1 and c["problems"] == []
    # fine-tuning tasks are not for third-party algorithms
    assert cli_main([*args[:2], "--tasks", "point_umaze", "--algos", "sb3_sac", "--dry-run"]) == 2
    assert "success-fraction tasks" in capsys.readouterr().err


def test_role_mapping_picks_the_variants_and_leaves_default_verdicts_unchanged():
    from softq_ref.benchmarks import claims

    def res(variant, success):
        return {"variant": variant, "protocol": "maze", "task": "point_maze", "tier": "ci",
                "metrics": {"success": success, "min_distance": 1.0}}
    pool = [res("sql", True)] * 2 + [res("ddpg", False)] * 3 + [res("sb3_sac", False)] * 4
    only = ["CLAIM.5_2.maze_passage"]
    (default,) = claims.evaluate_claims(pool, only=only)
    assert "roles" not in default.measured and (default.measured["sql_runs"], default.measured["ddpg_runs"]) == (2, 3)
    (mapped,) = claims.evaluate_claims(pool, only=only, roles={"sql": "sb3_sac"})
    assert mapped.measured["roles"] == {"sql": "sb3_sac", "ddpg": "ddpg"}
    assert (mapped.measured["sql_successes"], mapped.measured["sql_runs"], mapped.measured["ddpg_runs"]) == (0, 4, 3)
    # with a role mapping only the success-fraction claims are decided
    assert {v.claim for v in claims.evaluate_claims(pool, roles={"sql": "sb3_sac"})} == set(claims.ROLE_CLAIMS)
    with pytest.raises(ValueError, match="unknown role"):
        claims.evaluate_claims(pool, roles={"sac": "sb3_sac"})
