"""The shared training loop: output files, exact resume, determinism (SQL and DDPG)."""
import json

import numpy as np
import pytest
import torch

from softq_ref.config import ConfigError, SQLConfig
from softq_ref.envs.multigoal import goals_reached
from softq_ref.training import METRIC_COLUMNS, make_agent, read_metrics, train


ENV = "SoftQ/MultiGoal-v0"  # horizon 20, so epoch ends (every 50 steps) fall mid-episode
CFG = SQLConfig(hidden_sizes=(16, 16), min_replay_size=32, batch_size=16, replay_size=1000, epoch_length=50,
                target_update_interval=25, svgd_particles=8, value_samples=8, exploration_noise="ou")
STEPS = 300


def evaluate(agent):  # draws from the agent's random streams: the loop must shield training from it
    n, counts = goals_reached(lambda o: agent.act(o), n_episodes=2, seed=0)
    return {"goals_reached": n, "goal_0_count": counts[0]}


def run(algo, out, steps=STEPS, seed=0, resume=False, agent=None):
    agent = agent or make_agent(algo, 2, 2, CFG, seed)
    return agent, train(agent, ENV, steps, seed, out, resume=resume, progress=False, evaluate=evaluate)


def assert_equal_state(a, b, path="state"):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_equal_state(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_equal_state(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), path
    else:
        assert a == b or (a != a and b != b), path  # nan == nan for unfinished epochs


def metrics_without_time(out):
    return [{k: v for k, v in row.items() if k != "wall_time"} for row in read_metrics(out / "metrics.csv")]


def checkpoint(out):
    return torch.load(out / "checkpoint.pt", weights_only=False)


def assert_same_run(out_a, out_b):
    assert metrics_without_time(out_a) == metrics_without_time(out_b)
    a, b = checkpoint(out_a), checkpoint(out_b)
    for key in ("agent", "replay", "rng", "obs", "torch_rng"):
        assert_equal_state(a[key], b[key], key)
    assert_equal_state({k: v for k, v in a["state"].items() if k != "wall_time"},
                       {k: v for k, v in b["state"].items() if k != "wall_time"})


def test_tiny_run_writes_all_files(tmp_path):
    _, summary = run("sql", tmp_path)
    assert summary["total_steps"] == STEPS and summary["updates"] == STEPS - CFG.min_replay_size + 1
    assert {p.name for p in tmp_path.iterdir()} == {"config.json", "metadata.json", "metrics.csv", "checkpoint.pt"}
    assert SQLConfig.from_dict(json.loads((tmp_path / "config.json").read_text())) == CFG
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert {"python", "torch", "numpy", "gymnasium", "mujoco", "softq_ref"} <= set(meta["versions"])
    assert meta["seed"] == 0 and meta["env_id"] == ENV and meta["algo"] == "sql" and meta["status"] == "completed"
    assert isinstance(meta["command"], list) and meta["git_commit"] and meta["start_time"] and meta["end_time"]
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [int(r["step"]) for r in rows] == list(range(50, STEPS + 1, 50))
    assert list(rows[0])[: len(METRIC_COLUMNS)] == METRIC_COLUMNS and "goals_reached" in rows[0]
    assert rows[0]["q_loss"] != "nan" and int(rows[-1]["episodes"]) >= STEPS // 20
    assert checkpoint(tmp_path)["state"]["total_steps"] == STEPS
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temporaries behind


@pytest.mark.parametrize("algo", ["sql", "ddpg"])
def test_resume_after_early_stop_is_bit_identical(tmp_path, algo):
    run(algo, tmp_path / "full")
    run(algo, tmp_path / "split", steps=170)  # stops mid-epoch and mid-episode (170 = 8.5 episodes of 20)
    assert read_metrics(tmp_path / "split" / "metrics.csv")[-1]["step"] == "170"  # the final partial-epoch row
    run(algo, tmp_path / "split", resume=True, agent=make_agent(algo, 2, 2, CFG, seed=123))
    assert_same_run(tmp_path / "full", tmp_path / "split")


class Crash(Exception):
    pass


@pytest.mark.parametrize("algo", ["sql", "ddpg"])
def test_resume_after_crash_is_bit_identical(tmp_path, algo):
    run(algo, tmp_path / "full")
    agent = make_agent(algo, 2, 2, CFG, 0)
    update, calls = agent.update, []

    def crashing_update(batch):
        calls.append(1)
        if len(calls) == 140:  # env step 171: the last checkpoint is the epoch end at step 150
            raise Crash
        return update(batch)
    agent.update = crashing_update
    with pytest.raises(Crash):
        run(algo, tmp_path / "crashed", agent=agent)
    assert json.loads((tmp_path / "crashed" / "metadata.json").read_text())["status"] == "interrupted"
    ckpt = checkpoint(tmp_path / "crashed")
    assert ckpt["state"]["total_steps"] == 150
    assert len(ckpt["state"]["episode_actions"]) > 0  # the resume really replays a partial episode
    run(algo, tmp_path / "crashed", resume=True)
    assert_same_run(tmp_path / "full", tmp_path / "crashed")
    meta = json.loads((tmp_path / "crashed" / "metadata.json").read_text())
    assert meta["status"] == "completed" and meta["resumed"][0]["from_step"] == 150


def test_resume_drops_rows_past_the_checkpoint(tmp_path):
    run("ddpg", tmp_path, steps=100)
    path = tmp_path / "metrics.csv"
    # a crash between writing a metrics row and writing the checkpoint leaves an extra row behind
    path.write_text(path.read_text() + "150,3,7,0.0,0.0,0.0,1,0.0,0,0\n")
    run("ddpg", tmp_path, steps=150, resume=True)
    assert [r["step"] for r in read_metrics(path)] == ["50", "100", "150"]
    assert read_metrics(path)[-1]["mean_return"] != "0.0"


def test_same_seed_same_run_different_seed_different_run(tmp_path):
    run("sql", tmp_path / "a", steps=100, seed=3)
    run("sql", tmp_path / "b", steps=100, seed=3)
    assert_same_run(tmp_path / "a", tmp_path / "b")
    run("sql", tmp_path / "c", steps=100, seed=4)
    assert metrics_without_time(tmp_path / "a") != metrics_without_time(tmp_path / "c")
    # evaluating (which samples actions) leaves training untouched
    train(make_agent("sql", 2, 2, CFG, 3), ENV, 100, 3, tmp_path / "d", progress=False, evaluate=None)
    assert_equal_state(checkpoint(tmp_path / "a")["agent"], checkpoint(tmp_path / "d")["agent"])


def test_guards(tmp_path):
    with pytest.raises(FileNotFoundError, match="resume"):
        run("sql", tmp_path / "none", resume=True)
    run("sql", tmp_path / "r", steps=60)
    with pytest.raises(FileExistsError, match="resume=True"):
        run("sql", tmp_path / "r", steps=60)
    with pytest.raises(ConfigError, match="seed"):
        run("sql", tmp_path / "r", steps=100, seed=1, resume=True)
    with pytest.raises(ConfigError, match="below the checkpoint"):
        run("sql", tmp_path / "r", steps=10, resume=True)
    with pytest.raises(ConfigError, match="total_steps"):
        run("sql", tmp_path / "s", steps=0)
    with pytest.raises(ValueError, match="obs_dim"):
        train(make_agent("ddpg", 3, 2, CFG, 0), ENV, 10, 0, tmp_path / "t", progress=False)
    with pytest.raises(ConfigError, match="'sql', 'ddpg'"):
        make_agent("ppo", 2, 2, CFG, 0)
