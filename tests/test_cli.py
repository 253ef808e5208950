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


# -- issue 15: more bad inputs, each one clear line before training --------------------------------------------
@pytest.mark.parametrize("args, named", [
    (["--set", "q_lr=nan"], ["'q_lr'", "finite"]),
    (["--set", "policy_lr=inf"], ["'policy_lr'", "finite"]),
    (["--set", "ou_sigma=-inf"], ["'ou_sigma'", "finite"]),
    (["--set", "device=cuda"], ["'device'", "CUDA is not available", "device=cpu"]),
    (["--set", "device=toaster"], ["'device'", "expected cpu or cuda"]),
    (["--threads", "-2"], ["--threads"]),
])
def test_more_invalid_input_fails_before_training(tmp_path, capsys, args, named):
    import torch

    if "device=cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    test_invalid_input_fails_before_training(tmp_path, capsys, args, named)


def test_unwritable_out_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SystemExit) as exc:
        main(base(blocker / "run", *TINY))  # a folder below a file cannot be created
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--out" in err and "cannot create or write" in err and "Traceback" not in err


def _tiny_run(out, steps="100"):
    argv = base(out, *TINY)
    argv[argv.index("--steps") + 1] = steps
    assert main(argv) == 0


def test_truncated_checkpoint_is_one_line_exit_2(tmp_path, capsys):
    out = tmp_path / "run"
    _tiny_run(out)
    ck = out / "checkpoint.pt"
    ck.write_bytes(ck.read_bytes()[:1000])
    argv = base(out, "--resume", "--no-progress", "--eval-episodes", "2")
    argv[argv.index("--steps") + 1] = "150"
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "checkpoint.pt is unreadable" in err and "truncated or corrupt" in err


def test_resume_finished_missing_config_orphaned_tmp_and_numeric_summary(tmp_path, capsys):
    out = tmp_path / "run"
    _tiny_run(out)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert isinstance(summary["wall_time"], float) and isinstance(summary["last"]["mean_return"], (float, type(None)))
    assert all(not isinstance(v, str) or k in ("algo", "env_id", "out_dir") for k, v in summary.items())
    # resuming a finished run says so and trains nothing
    mtime = (out / "checkpoint.pt").stat().st_mtime_ns
    assert main(base(out, "--resume", "--no-progress", "--eval-episodes", "2")) == 0
    assert "already finished at 100 steps" in capsys.readouterr().err
    assert (out / "checkpoint.pt").stat().st_mtime_ns == mtime
    # a missing config.json is rebuilt from the checkpoint; an orphaned temp file is removed on resume
    (out / "config.json").unlink()
    (out / ".checkpoint.pt.tmp999").write_bytes(b"partial")
    argv = base(out, "--resume", "--no-progress", "--eval-episodes", "2")
    argv[argv.index("--steps") + 1] = "150"
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "rebuilt from checkpoint.pt" in err and "removed 1 leftover temporary file" in err
    assert (out / "config.json").exists() and not (out / ".checkpoint.pt.tmp999").exists()
    assert [row["step"] for row in read_metrics(out / "metrics.csv")] == ["50", "100", "150"]


def test_steps_default_to_epochs_times_epoch_length(tmp_path, capsys):
    argv = base(tmp_path / "run", *TINY, "--set", "epochs=2")
    i = argv.index("--steps")
    del argv[i:i + 2]
    assert main(argv) == 0
    assert "2 epochs x 50 steps = 100" in capsys.readouterr().err
    assert [row["step"] for row in read_metrics(tmp_path / "run" / "metrics.csv")] == ["50", "100"]


def test_line_progress_when_not_a_terminal(capsys):
    from softq_ref.training import _LineProgress

    p = _LineProgress("sql X", 0, 1000, enabled=True, every_s=0.0)
    p.update(50)  # only every 100 steps
    p.update(500)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "step 500/1000 (50%)" in err and "steps/s" in err and "ETA" in err


def test_corrupt_config_metadata_and_metrics_on_resume(tmp_path, capsys):
    out = tmp_path / "run"
    _tiny_run(out)
    argv = base(out, "--resume", "--no-progress", "--eval-episodes", "2")
    argv[argv.index("--steps") + 1] = "150"
    good_cfg = (out / "config.json").read_text()
    (out / "config.json").write_text(good_cfg[:30])  # truncated config.json: named, exit 2
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and "config.json is unreadable" in capsys.readouterr().err
    (out / "config.json").write_text(good_cfg)
    metrics = (out / "metrics.csv").read_text()
    (out / "metrics.csv").write_text(metrics + "garbage-row\n")  # a corrupt metrics row: named, exit 2
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and "metrics.csv is corrupt at line" in capsys.readouterr().err
    (out / "metrics.csv").write_text(metrics)
    (out / "metadata.json").write_text("{")  # corrupt metadata: rewritten, the run resumes from the checkpoint
    assert main(argv) == 0
    assert "metadata.json is corrupt" in capsys.readouterr().err
    assert json.loads((out / "metadata.json").read_text())["status"] == "completed"
