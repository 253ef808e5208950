"""The one training loop of Algorithm 1, shared by soft Q-learning and the DDPG baseline.

    for t in 1..N:   a = agent.act(s); s', r, terminated, truncated = env.step(a)
                     D <- D + (s, a, r, s', terminated)        truncation is not terminal
                     if |D| >= min_replay_size: updates_per_step x agent.update(batch ~ D)   (D.1)
                     agent.on_env_step(t)                      hard target copy schedule
                     every epoch_length steps: metrics row + checkpoint (+ evaluate callback)

Exact resume: the checkpoint holds the agent, replay, sampling rng, counters and the current
episode as (reset seed, actions so far); on resume the episode is reset with that seed and the
actions replayed, so an interrupted run continued to N steps is bit-identical to an uninterrupted one.
"""
from __future__ import annotations

import contextlib
import copy
import csv
import datetime
import importlib
import io
import json
import math
import os
import subprocess
import sys
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from . import envs as _envs  # noqa: F401  (registers the SoftQ/ tasks)
from .config import ConfigError, SQLConfig
from .replay import ReplayBuffer

__all__ = ["train", "make_agent", "make_env", "ALGOS", "AGENT_FACTORIES", "resolve_agent_factory", "METRIC_COLUMNS",
           "episode_seed", "read_metrics"]

METRIC_COLUMNS = ["step", "epoch", "episodes", "mean_return", "q_loss", "policy_loss", "updates", "wall_time"]

# Agent factories by algo name, as "module:attribute" strings: picklable, resolved lazily in the process
# that builds the agent (a spawned benchmark worker imports only what its run needs). A factory has the
# signature (obs_dim, act_dim, config: SQLConfig, seed) -> agent, where the agent provides what `train`
# uses: algo, config, obs_dim, act_dim, act(obs, deterministic=False), update(batch) -> {"q_loss",
# "policy_loss"}, on_env_step(t), on_epoch_start(epoch), reset_episode(), state_dict(), load_state_dict().
AGENT_FACTORIES: dict[str, str] = {
    "sql": "softq_ref.sql:SoftQLearning",
    "ddpg": "softq_baselines.ddpg:DDPG",  # the baseline lives outside the reference package
    "sb3_sac": "softq_conformance.third_party.sb3_agent:make_sac",
    "sb3_ddpg": "softq_conformance.third_party.sb3_agent:make_ddpg",
}
# algo -> (optional extra, the module it provides): checked first, so a missing extra is named as such
_EXTRAS = {"sb3_sac": ("sb3", "stable_baselines3"), "sb3_ddpg": ("sb3", "stable_baselines3")}
ALGOS = tuple(AGENT_FACTORIES)
AGENT_INTERFACE = ("algo", "config", "obs_dim", "act_dim", "act", "update", "on_env_step", "on_epoch_start",
                   "reset_episode", "state_dict", "load_state_dict")


def is_factory_path(algo: str) -> bool:
    """True for a "package.module:attribute" string naming a user's agent factory."""
    module, sep, attr = algo.partition(":")
    return bool(sep) and bool(module) and attr.isidentifier() and all(p.isidentifier() for p in module.split("."))


def resolve_agent_factory(algo: str) -> Callable[..., Any]:
    """The factory for a registered algo name or a "package.module:Factory" path; ConfigError says why not."""
    path = AGENT_FACTORIES.get(algo, algo)
    if algo not in AGENT_FACTORIES and not is_factory_path(algo):
        raise ConfigError(f"unknown algo {algo!r}; accepted: {list(ALGOS)}, or your own agent factory as "
                          "'package.module:Factory' with signature (obs_dim, act_dim, config, seed) -> agent")
    module, _, attr = path.partition(":")
    if algo in _EXTRAS:
        extra, needed = _EXTRAS[algo]
        try:
            importlib.import_module(needed)
        except ImportError as e:
            raise ConfigError(f"algo {algo!r} needs the optional extra '{extra}': "
                              f'pip install -e ".[{extra}]" (import failed: {e})') from e
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise ConfigError(f"algo {algo!r}: cannot import module {module!r} ({type(e).__name__}: {e}); "
                          "is the package installed and on sys.path?") from e
    factory = getattr(mod, attr, None)
    if not callable(factory):
        raise ConfigError(f"algo {algo!r}: module {module!r} has no callable {attr!r}; expected a factory "
                          "(obs_dim, act_dim, config, seed) -> agent")
    return factory


def make_agent(algo: str, obs_dim: int, act_dim: int, config: SQLConfig, seed: int = 0):
    """Build the agent of `algo`: a name of AGENT_FACTORIES or a "package.module:Factory" path."""
    agent = resolve_agent_factory(algo)(obs_dim, act_dim, config, seed)
    missing = [name for name in AGENT_INTERFACE if not hasattr(agent, name)]
    if missing:
        raise ConfigError(f"algo {algo!r}: the factory returned a {type(agent).__name__} lacking {missing}; "
                          f"an agent for softq_ref.training.train needs all of {list(AGENT_INTERFACE)}")
    return agent


def make_env(env_id: str, config: SQLConfig) -> gym.Env:
    """gym.make with the config's horizon override; non-[-1, 1] action boxes are rescaled (tanh policies)."""
    kwargs = {} if config.max_episode_steps is None else {"max_episode_steps": config.max_episode_steps}
    env = gym.make(env_id, **kwargs)
    space = env.action_space
    if not isinstance(space, gym.spaces.Box):
        raise ValueError(f"{env_id} has action space {space}; SQL and DDPG need a continuous Box action space")
    if not (np.all(space.low == -1.0) and np.all(space.high == 1.0)):
        env = gym.wrappers.RescaleAction(env, -1.0, 1.0)  # the authors' rllab `normalize` does the same
    return env


def episode_seed(seed: int, episode: int) -> int:
    """Every episode is reset with its own seed, derived from (run seed, episode index)."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


# -- atomic file output ------------------------------------------------------------------------------
def _atomic_write(path: Path, write: Callable[[Any], None], binary: bool = False) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")  # same dir, so os.replace is atomic
    with open(tmp, "wb" if binary else "w", newline=None if binary else "") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_json(path: Path, obj: dict) -> None:
    _atomic_write(path, lambda f: json.dump(obj, f, indent=2, default=str))


def _write_metrics(path: Path, rows: list[dict]) -> None:
    columns = list(METRIC_COLUMNS)
    for row in rows:
        columns += [k for k in row if k not in columns]

    def write(f):
        w = csv.DictWriter(f, fieldnames=columns, restval="")
        w.writeheader()
        w.writerows({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()} for row in rows)
    _atomic_write(path, write)


def read_metrics(path: str | os.PathLike) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _resume_rows(path: Path) -> list[dict[str, str]]:
    rows = read_metrics(path)
    for i, r in enumerate(rows, start=2):
        try:
            int(r["step"])
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"{path} is corrupt at line {i} (step {r.get('step')!r}); restore it or delete the run "
                              "folder to start again") from None
    return rows


def _versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for pkg, dist in [("torch", "torch"), ("numpy", "numpy"), ("gymnasium", "gymnasium"),
                      ("mujoco", "mujoco"), ("softq_ref", "softq-conformance")]:
        try:
            out[pkg] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _git_commit() -> str:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@contextlib.contextmanager
def _agent_state_preserved(agent):
    """Evaluation must not move the agent's random streams, or evaluating would change training."""
    saved, torch_rng = copy.deepcopy(agent.state_dict()), torch.get_rng_state()
    try:
        yield
    finally:
        agent.load_state_dict(saved)
        torch.set_rng_state(torch_rng)


def _mean(xs: list[float]) -> float:
    return float(np.mean(xs)) if xs else math.nan


def load_checkpoint(path: Path) -> dict:
    """A run's checkpoint.pt; a truncated or corrupt file is a ConfigError naming it (not a pickle traceback)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)  # our own file, holds numpy state
    except Exception as e:  # noqa: BLE001 - EOFError, RuntimeError (zip), UnpicklingError...: all mean unreadable
        raise ConfigError(f"{path} is unreadable ({type(e).__name__}: {e}); it is truncated or corrupt. Delete the "
                          "run folder to start again (atomic writes mean an interrupted save leaves the previous "
                          "checkpoint, so this file was damaged after it was written)") from None
    if not isinstance(ckpt, dict) or not {"config", "state", "agent"} <= set(ckpt):
        raise ConfigError(f"{path} is not a checkpoint of softq_ref.training (missing config/state/agent)")
    return ckpt


def remove_orphaned_tmp(folder: Path) -> list[Path]:
    """Delete `.NAME.tmpPID` files that an interrupted `_atomic_write` left behind (never the real files)."""
    removed = []
    for p in Path(folder).glob(".*.tmp*"):
        if p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


class _LineProgress:
    """When stderr is not a terminal (CI logs): one line every `every_s` seconds with step, rate and ETA."""

    def __init__(self, label: str, start: int, total: int, enabled: bool, every_s: float = 30.0):
        self.label, self.start, self.total, self.enabled, self.every_s = label, start, total, enabled, every_s
        self.t0 = self.last = time.monotonic()

    def update(self, step: int) -> None:
        if not self.enabled or step % 100:  # time is read every 100 steps only
            return
        now = time.monotonic()
        if now - self.last < self.every_s:
            return
        self.last = now
        rate = (step - self.start) / max(now - self.t0, 1e-9)
        eta = (self.total - step) / rate if rate > 0 else math.inf
        print(f"{self.label}: step {step}/{self.total} ({100 * step / self.total:.0f}%), {rate:.0f} steps/s, "
              f"ETA {eta:.0f} s", file=sys.stderr, flush=True)


# -- the loop ----------------------------------------------------------------------------------------
def train(agent, env_id: str, total_steps: int, seed: int, out_dir: str | os.PathLike, resume: bool = False,
          progress: bool = True, evaluate: Callable[[Any], dict] | None = None) -> dict:
    """Train `agent` (SoftQLearning or DDPG) on `env_id` until `total_steps` env steps; returns a summary.

    `evaluate(agent) -> dict` runs at each epoch end; its values become extra metrics.csv columns.
    """
    config: SQLConfig = agent.config
    if not isinstance(total_steps, int) or total_steps < 1:
        raise ConfigError(f"total_steps = {total_steps!r} is invalid: expected an integer >= 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path, metrics_path, meta_path = out / "checkpoint.pt", out / "metrics.csv", out / "metadata.json"
    env = make_env(env_id, config)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    if (obs_dim, act_dim) != (agent.obs_dim, agent.act_dim):
        raise ValueError(f"agent was built for obs_dim={agent.obs_dim}, act_dim={agent.act_dim} but {env_id} "
                         f"has obs_dim={obs_dim}, act_dim={act_dim}; build it with make_agent(..., {obs_dim}, {act_dim}, ...)")
    replay = ReplayBuffer(obs_dim, act_dim, config.replay_size)
    rng = np.random.default_rng(seed)  # minibatch sampling
    rows: list[dict] = []
    s = {"total_steps": 0, "episodes": 0, "episode_step": 0, "episode_return": 0.0, "episode_actions": [],
         "epoch_returns": [], "epoch_q_losses": [], "epoch_policy_losses": [], "updates": 0, "wall_time": 0.0}

    if resume:
        if not ckpt_path.exists():
            raise FileNotFoundError(f"resume=True but {ckpt_path} does not exist; start the run without resume")
        removed = remove_orphaned_tmp(out)
        if removed:
            print(f"note: removed {len(removed)} leftover temporary file(s) of an interrupted write in {out}: "
                  f"{', '.join(p.name for p in removed)}", file=sys.stderr)
        ckpt = load_checkpoint(ckpt_path)
        mismatch = {k: (ckpt[k], v) for k, v in [("algo", agent.algo), ("env_id", env_id), ("seed", seed)] if ckpt[k] != v}
        diff = {k: (v, config.to_dict()[k]) for k, v in ckpt["config"].items() if config.to_dict().get(k) != v}
        if mismatch or diff:
            what = "; ".join(f"{k}: checkpoint {a!r}, requested {b!r}" for k, (a, b) in {**mismatch, **diff}.items())
            raise ConfigError(f"cannot resume {out}, the requested run differs from its checkpoint in {what}; "
                              "resume with the original algo, env, seed and config")
        if total_steps < ckpt["state"]["total_steps"]:
            raise ConfigError(f"total_steps = {total_steps} is below the checkpoint's {ckpt['state']['total_steps']} steps")
        agent.load_state_dict(ckpt["agent"])
        replay.load_state_dict(ckpt["replay"])
        rng.bit_generator.state = ckpt["rng"]
        torch.set_rng_state(ckpt["torch_rng"])
        s = ckpt["state"]
        # Rows past the checkpoint (written before a crash) and the partial-epoch row of an early stop
        # are recomputed, so the file matches an uninterrupted run.
        rows = [r for r in _resume_rows(metrics_path) if int(r["step"]) <= s["total_steps"]
                and int(r["step"]) % config.epoch_length == 0] if metrics_path.exists() else []
        obs, _ = env.reset(seed=episode_seed(seed, s["episodes"]))
        for a in s["episode_actions"]:  # replay the current episode: the env is deterministic given seed + actions
            obs = env.step(a)[0]
        if not np.array_equal(obs, ckpt["obs"]):
            raise RuntimeError(f"replaying the current episode of {env_id} did not reproduce the checkpointed "
                               "observation: the environment is not deterministic given its reset seed and actions")
        try:
            meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        except ValueError:  # corrupt metadata: the checkpoint is what resumes the run; start a fresh record
            print(f"note: {meta_path} is corrupt; it is rewritten (the run resumes from checkpoint.pt)", file=sys.stderr)
            meta = {"algo": agent.algo, "env_id": env_id, "seed": seed, "versions": _versions()}
        meta.setdefault("resumed", []).append({"time": _now(), "command": sys.argv, "git_commit": _git_commit(),
                                               "from_step": s["total_steps"]})
    else:
        if ckpt_path.exists():
            raise FileExistsError(f"{ckpt_path} exists; pass resume=True to continue that run, or use a new out_dir")
        obs, _ = env.reset(seed=episode_seed(seed, 0))
        agent.reset_episode()
        meta = {"algo": agent.algo, "env_id": env_id, "seed": seed, "total_steps": total_steps,
                "command": sys.argv, "git_commit": _git_commit(), "versions": _versions(), "start_time": _now()}
    meta.update(total_steps=total_steps, end_time=None, status="running")
    _write_json(out / "config.json", config.to_dict())
    _write_json(meta_path, meta)

    def save_checkpoint() -> None:
        ckpt = {"algo": agent.algo, "env_id": env_id, "seed": seed, "config": config.to_dict(),
                "agent": agent.state_dict(), "replay": replay.state_dict(), "rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(), "obs": obs,
                "state": {**s, "wall_time": s["wall_time"] + time.perf_counter() - t0}}
        buf = io.BytesIO()
        torch.save(ckpt, buf)
        _atomic_write(ckpt_path, lambda f: f.write(buf.getvalue()), binary=True)

    def end_epoch() -> None:
        row = {"step": s["total_steps"], "epoch": math.ceil(s["total_steps"] / config.epoch_length),
               "episodes": s["episodes"], "mean_return": _mean(s["epoch_returns"]),
               "q_loss": _mean(s["epoch_q_losses"]), "policy_loss": _mean(s["epoch_policy_losses"]),
               "updates": s["updates"], "wall_time": s["wall_time"] + time.perf_counter() - t0}
        if evaluate is not None:
            with _agent_state_preserved(agent):
                row.update(evaluate(agent))
        rows.append(row)
        if s["total_steps"] % config.epoch_length == 0:  # a partial final epoch keeps accumulating on resume
            s["epoch_returns"], s["epoch_q_losses"], s["epoch_policy_losses"] = [], [], []
        _write_metrics(metrics_path, rows)  # rows first: a crash before the checkpoint drops them on resume
        save_checkpoint()

    t0 = time.perf_counter()
    bar = tqdm(total=total_steps, initial=s["total_steps"], disable=not progress or not sys.stderr.isatty(),
               desc=f"{agent.algo} {env_id}", unit="step")
    lines = _LineProgress(f"{agent.algo} {env_id}", s["total_steps"], total_steps,
                          progress and not sys.stderr.isatty())
    try:
        while s["total_steps"] < total_steps:
            if s["total_steps"] % config.epoch_length == 0:
                agent.on_epoch_start(s["total_steps"] // config.epoch_length)
            action = agent.act(obs)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            replay.add(obs, action, reward, next_obs, terminated)  # time-limit truncation is not terminal
            s["episode_actions"].append(np.asarray(action).copy())
            s["episode_return"] += float(reward)
            s["episode_step"] += 1
            if len(replay) >= config.min_replay_size:  # D.1: no training before the pool holds enough samples
                for _ in range(config.updates_per_step):
                    stats = agent.update(replay.sample(config.batch_size, rng))
                    s["epoch_q_losses"].append(stats["q_loss"])
                    s["epoch_policy_losses"].append(stats.get("policy_loss", stats.get("policy_surrogate", math.nan)))
                    s["updates"] += 1
            s["total_steps"] += 1
            agent.on_env_step(s["total_steps"])
            obs = next_obs
            if terminated or truncated:
                s["epoch_returns"].append(s["episode_return"])
                s["episodes"] += 1
                s.update(episode_step=0, episode_return=0.0, episode_actions=[])
                obs, _ = env.reset(seed=episode_seed(seed, s["episodes"]))
                agent.reset_episode()
            bar.update(1)
            lines.update(s["total_steps"])
            if s["total_steps"] % config.epoch_length == 0 or s["total_steps"] == total_steps:
                end_epoch()
    except BaseException:
        meta.update(status="interrupted", end_time=_now())
        _write_json(meta_path, meta)
        raise
    finally:
        bar.close()
        env.close()
    s["wall_time"] += time.perf_counter() - t0
    meta.update(status="completed", end_time=_now())
    _write_json(meta_path, meta)
    last = rows[-1] if rows else {}
    return {"algo": agent.algo, "env_id": env_id, "seed": seed, "total_steps": s["total_steps"],
            "episodes": s["episodes"], "updates": s["updates"], "wall_time": s["wall_time"],
            "last_metrics": last, "out_dir": str(out)}
