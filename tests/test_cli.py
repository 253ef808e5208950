"""`python -m softq_ref train`: bad input fails before training (exit 2, field named); a tiny run works."""
import json
import subprocess
import sys

import pytest

from softq_ref.cli import main, parse_set
from softq_ref.config import ConfigError
from softq_ref.training import read_metrics


TINY = ["--set", "hidden_sizes=16,16", "--set", "min_replay_size=32", "--set", "batch_size=16",
        "--set", "epoch_length=50", "--set", "svgd_particles=8", "--set", "value_samples=8",
        "--set", "replay_size=1000", "--no-progress", "--eval-episodes", "2"]


def base(out, *extra):
    return ["train", "--algo", "sql", "--env", "SoftQ/MultiGoal-v0", "--steps", "100", "--seed", "0",
            "--out", str(out), *extra]


@pytest.mark.parametrize("args, named", [
    (["--env", "NoSuchEnv-v0"], ["--env", "NoSuchEnv-v0", "SoftQ/MultiGoal-v0"]),
    (["--algo", "ppo"], ["--algo", "'sql'", "'ddpg'"]),
    (["--steps", "0"], ["--steps", ">= 1"]),
    (["--steps", "-5"], ["--steps"]),
    (["--set", "alpha=-1"], ["'alpha'", "> 0"]),
    (["--set", "svgd_particles=1"], ["'svgd_particles'", "K >= 2"]),
    (["--set", "batch_size=64", "--set", "min_replay_size=32"], ["'min_replay_size'", "batch_size (64)"]),
    (["--set", "no_such_field=3"], ["'no_such_field'", "accepted fields", "alpha"]),
    (["--set", "alpha=hot"], ["'alpha'", "a number"]),
    (["--set", "batch_size=1.5"], ["'batch_size'", "an integer"]),
    (["--set", "hidden_sizes=a,b"], ["'hidden_sizes'", "comma-separated integers"]),
    (["--set", "alpha"], ["FIELD=VALUE"]),
    (["--set", "bandwidth_rule=magic"], ["'bandwidth_rule'", "one of"]),
    (["--preset", "nope"], ["--preset", "multigoal_paper"]),
    (["--resume"], ["--resume", "no checkpoint"]),
])
def test_invalid_input_fails_before_training(tmp_path, capsys, args, named):
    argv = base(tmp_path / "run", *args)  # argparse: a repeated option overrides the default given earlier
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and "error:" in err
    for text in named:
        assert text in err, (text, err)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()  # nothing was trained


def test_parse_set_types():
    assert parse_set(["alpha=10", "hidden_sizes=(64, 64)", "max_episode_steps=none", "batch_size=8",
                      "bandwidth_rule=paper_d1", 'notes={"a": 1}']) == {
        "alpha": 10.0, "hidden_sizes": (64, 64), "max_episode_steps": None, "batch_size": 8,
        "bandwidth_rule": "paper_d1", "notes": {"a": 1}}
    with pytest.raises(ConfigError, match="max_episode_steps"):
        parse_set(["max_episode_steps=x"])


def test_tiny_run_via_subprocess_then_resume(tmp_path, capsys):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "softq_ref", *base(out, *TINY)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["total_steps"] == 100
    rows = read_metrics(out / "metrics.csv")
    assert [row["step"] for row in rows] == ["50", "100"]
    assert {"goals_reached", "goal_0_count", "goal_3_count"} <= set(rows[0])  # multi-goal metric per epoch
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["algo"] == "sql" and "--steps" in meta["command"]
    # a second run into the same directory must ask for --resume
    with pytest.raises(SystemExit) as exc:
        main(base(out, *TINY))
    assert exc.value.code == 2
    # --resume without --set reuses the run's config.json; continue to 150 steps
    argv = base(out, "--resume", "--no-progress", "--eval-episodes", "2")
    argv[argv.index("--steps") + 1] = "150"
    assert main(argv) == 0
    assert [row["step"] for row in read_metrics(out / "metrics.csv")] == ["50", "100", "150"]
    # resuming with a different config names the differing field
    argv += ["--set", "alpha=3"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and "alpha: checkpoint 0.1, requested 3.0" in capsys.readouterr().err


def test_ddpg_run_in_process(tmp_path, capsys):
    argv = base(tmp_path / "d", *TINY)
    argv[argv.index("--algo") + 1] = "ddpg"
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["algo"] == "ddpg"
