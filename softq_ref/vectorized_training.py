"""The training loop of `softq_ref.training.train` for S seeds at once, in lockstep (softq_ref.vectorized).

    for t in 1..N:   a_i = agent.act(s)_i for every seed i (one batched forward pass)
                     every seed's env steps; each seed's transition goes to its own replay D_i
                     if |D_i| >= min_replay_size: agent.update(one minibatch per seed, stacked)
                     agent.on_env_step(t); a finished episode of seed i resets its env and OU noise
                     every epoch_length steps: per-seed metrics row + evaluation + checkpoint

Every seed keeps what `train` gives one run: its own env (reset with `episode_seed(seed, k)`),
replay memory, minibatch generator and files in its own folder (`out_dirs[i]`: config.json,
metadata.json, metrics.csv, checkpoint.pt), in the same formats. A seed's checkpoint holds the
single-seed agent's state, so `train` can resume it alone and `train_many` can resume any seeds
whose checkpoints are at the same step together: a seed's results do not depend on which seeds
share its process (tests/test_vectorized.py). Evaluation runs on a single-seed agent loaded with
the seed's state, so it never moves the training streams.
"""
from __future__ import annotations

import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import ConfigError
from .replay import ReplayBuffer
from .training import (_LineProgress, _atomic_write, _git_commit, _mean, _now, _resume_rows, _versions, _write_json,
                       _write_metrics, episode_seed, load_checkpoint, make_agent, make_env, remove_orphaned_tmp)

__all__ = ["train_many"]

# evaluate(agent, env) -> dict: `agent` a single-seed agent holding the seed's current state, `env` its training env
Evaluate = Callable[[Any, Any], dict]


def train_many(agent, env_id: str, total_steps: int, out_dirs: Sequence[str | Path], resume: bool = False,
               progress: bool = True, evaluate: Sequence[Evaluate | None] | None = None,
               on_epoch: Callable[[int], None] | None = None) -> list[dict]:
    """Train the stacked `agent` (softq_ref.vectorized) on `env_id`, seed i writing to `out_dirs[i]`.

    Returns one summary per seed, as `train` does for one run. `resume=True` continues every seed
    from its checkpoint; all of them must be at the same step.
    """
    config, seeds, S = agent.config, list(agent.seeds), agent.S
    if not isinstance(total_steps, int) or total_steps < 1:
        raise ConfigError(f"total_steps = {total_steps!r} is invalid: expected an integer >= 1")
    if len(out_dirs) != S:
        raise ValueError(f"train_many: {S} seeds but {len(out_dirs)} out_dirs")
    evaluate = list(evaluate) if evaluate is not None else [None] * S
    outs = [Path(d) for d in out_dirs]
    for d in outs:
        d.mkdir(parents=True, exist_ok=True)
    envs = [make_env(env_id, config) for _ in range(S)]
    obs_dim, act_dim = envs[0].observation_space.shape[0], envs[0].action_space.shape[0]
    if (obs_dim, act_dim) != (agent.obs_dim, agent.act_dim):
        raise ValueError(f"agent was built for obs_dim={agent.obs_dim}, act_dim={agent.act_dim} but {env_id} "
                         f"has obs_dim={obs_dim}, act_dim={act_dim}")
    replays = [ReplayBuffer(obs_dim, act_dim, config.replay_size) for _ in range(S)]
    rngs = [np.random.default_rng(s) for s in seeds]  # minibatch sampling, as in `train`
    viewers = [None] * S  # single-seed agents for evaluation, built on first use
    fresh = {"total_steps": 0, "episodes": 0, "episode_step": 0, "episode_return": 0.0, "episode_actions": [],
             "epoch_returns": [], "epoch_q_losses": [], "epoch_policy_losses": [], "updates": 0, "wall_time": 0.0}
    states = [dict(fresh, episode_actions=[], epoch_returns=[], epoch_q_losses=[], epoch_policy_losses=[])
              for _ in range(S)]
    rows: list[list[dict]] = [[] for _ in range(S)]
    metas: list[dict] = []
    obs = [None] * S
    group = {"seeds": seeds, "seeds_per_process": S}

    if resume:
        ckpts = []
        for i, d in enumerate(outs):
            path = d / "checkpoint.pt"
            if not path.exists():
                raise FileNotFoundError(f"resume=True but {path} does not exist; start that seed without resume")
            remove_orphaned_tmp(d)
            ckpt = load_checkpoint(path)
            want = {"algo": agent.algo, "env_id": env_id, "seed": seeds[i], "config": config.to_dict()}
            diff = [k for k, v in want.items() if ckpt[k] != v]
            if diff:
                raise ConfigError(f"cannot resume {d}: its checkpoint differs from the requested run in {diff}")
            ckpts.append(ckpt)
        steps = {c["state"]["total_steps"] for c in ckpts}
        if len(steps) != 1:
            raise ConfigError(f"cannot resume seeds {seeds} together: their checkpoints are at steps "
                              f"{[c['state']['total_steps'] for c in ckpts]}; resume each group of equal steps separately")
        if total_steps < steps.pop():
            raise ConfigError(f"total_steps = {total_steps} is below the checkpoints' {ckpts[0]['state']['total_steps']}")
        agent.load_seed_state_dicts([c["agent"] for c in ckpts])
        torch.set_rng_state(ckpts[0]["torch_rng"])
        for i, c in enumerate(ckpts):
            replays[i].load_state_dict(c["replay"])
            rngs[i].bit_generator.state = c["rng"]
            states[i] = c["state"]
            mp = outs[i] / "metrics.csv"
            rows[i] = [r for r in _resume_rows(mp) if int(r["step"]) <= states[i]["total_steps"]
                       and int(r["step"]) % config.epoch_length == 0] if mp.exists() else []
            o, _ = envs[i].reset(seed=episode_seed(seeds[i], states[i]["episodes"]))
            for a in states[i]["episode_actions"]:
                o = envs[i].step(a)[0]
            if not np.array_equal(o, c["obs"]):
                raise RuntimeError(f"replaying the current episode of {env_id} (seed {seeds[i]}) did not reproduce the "
                                   "checkpointed observation: the environment is not deterministic given seed + actions")
            obs[i] = o
            try:
                meta = json.loads((outs[i] / "metadata.json").read_text())
            except (OSError, ValueError):
                meta = {"algo": agent.algo, "env_id": env_id, "seed": seeds[i], "versions": _versions()}
            meta.setdefault("resumed", []).append({"time": _now(), "command": sys.argv, "git_commit": _git_commit(),
                                                   "from_step": states[i]["total_steps"], "group": group})
            metas.append(meta)
    else:
        for i, d in enumerate(outs):
            if (d / "checkpoint.pt").exists():
                raise FileExistsError(f"{d / 'checkpoint.pt'} exists; pass resume=True to continue, or use a new folder")
            obs[i], _ = envs[i].reset(seed=episode_seed(seeds[i], 0))
            metas.append({"algo": agent.algo, "env_id": env_id, "seed": seeds[i], "total_steps": total_steps,
                          "command": sys.argv, "git_commit": _git_commit(), "versions": _versions(),
                          "start_time": _now(), "group": group})
        agent.reset_episode()
    for i in range(S):
        metas[i].update(total_steps=total_steps, end_time=None, status="running")
        _write_json(outs[i] / "config.json", config.to_dict())
        _write_json(outs[i] / "metadata.json", metas[i])

    t0 = time.perf_counter()

    def save_checkpoints() -> None:
        torch_rng = torch.get_rng_state()
        for i in range(S):
            ckpt = {"algo": agent.algo, "env_id": env_id, "seed": seeds[i], "config": config.to_dict(),
                    "agent": agent.seed_state_dict(i), "replay": replays[i].state_dict(), "rng": rngs[i].bit_generator.state,
                    "torch_rng": torch_rng, "obs": obs[i],
                    "state": {**states[i], "wall_time": states[i]["wall_time"] + time.perf_counter() - t0}}
            buf = io.BytesIO()
            torch.save(ckpt, buf)
            _atomic_write(outs[i] / "checkpoint.pt", lambda f: f.write(buf.getvalue()), binary=True)

    def viewer(i: int):
        if viewers[i] is None:
            viewers[i] = make_agent(agent.algo, obs_dim, act_dim, config, seeds[i])
        viewers[i].load_state_dict(agent.seed_state_dict(i))
        return viewers[i]

    def end_epoch() -> None:
        now = time.perf_counter() - t0
        for i in range(S):
            s = states[i]
            row = {"step": s["total_steps"], "epoch": math.ceil(s["total_steps"] / config.epoch_length),
                   "episodes": s["episodes"], "mean_return": _mean(s["epoch_returns"]),
                   "q_loss": _mean(s["epoch_q_losses"]), "policy_loss": _mean(s["epoch_policy_losses"]),
                   "updates": s["updates"], "wall_time": s["wall_time"] + now}
            if evaluate[i] is not None:
                torch_rng = torch.get_rng_state()
                try:
                    row.update(evaluate[i](viewer(i), envs[i]))
                finally:
                    torch.set_rng_state(torch_rng)
            rows[i].append(row)
            if s["total_steps"] % config.epoch_length == 0:
                s["epoch_returns"], s["epoch_q_losses"], s["epoch_policy_losses"] = [], [], []
            _write_metrics(outs[i] / "metrics.csv", rows[i])
        save_checkpoints()
        if on_epoch is not None:
            on_epoch(states[0]["total_steps"])

    label = f"{agent.algo} x{S} {env_id}"
    start = states[0]["total_steps"]
    bar = tqdm(total=total_steps, initial=start, disable=not progress or not sys.stderr.isatty(), desc=label, unit="step")
    lines = _LineProgress(label, start, total_steps, progress and not sys.stderr.isatty())
    try:
        while states[0]["total_steps"] < total_steps:
            t = states[0]["total_steps"]
            if t % config.epoch_length == 0:
                agent.on_epoch_start(t // config.epoch_length)
            actions = agent.act(np.stack(obs))
            next_obs = [None] * S
            done = [False] * S
            for i in range(S):
                next_obs[i], reward, terminated, truncated, _ = envs[i].step(actions[i])
                replays[i].add(obs[i], actions[i], reward, next_obs[i], terminated)  # truncation is not terminal
                s = states[i]
                s["episode_actions"].append(np.asarray(actions[i]).copy())
                s["episode_return"] += float(reward)
                s["episode_step"] += 1
                done[i] = terminated or truncated
            if len(replays[0]) >= config.min_replay_size:  # lockstep: every replay holds t + 1 transitions
                for _ in range(config.updates_per_step):
                    batches = [replays[i].sample(config.batch_size, rngs[i]) for i in range(S)]
                    stats = agent.update({k: torch.stack([b[k] for b in batches]) for k in batches[0]})
                    q_loss = stats["q_loss"]
                    p_loss = stats.get("policy_loss", stats.get("policy_surrogate"))
                    for i in range(S):
                        states[i]["epoch_q_losses"].append(float(q_loss[i]))
                        states[i]["epoch_policy_losses"].append(math.nan if p_loss is None else float(p_loss[i]))
                        states[i]["updates"] += 1
            for i in range(S):
                states[i]["total_steps"] += 1
            agent.on_env_step(t + 1)
            for i in range(S):
                obs[i] = next_obs[i]
                if done[i]:
                    s = states[i]
                    s["epoch_returns"].append(s["episode_return"])
                    s["episodes"] += 1
                    s.update(episode_step=0, episode_return=0.0, episode_actions=[])
                    obs[i], _ = envs[i].reset(seed=episode_seed(seeds[i], s["episodes"]))
                    agent.reset_episode(i)
            bar.update(1)
            lines.update(t + 1)
            if (t + 1) % config.epoch_length == 0 or t + 1 == total_steps:
                end_epoch()
    except BaseException:
        for i in range(S):
            metas[i].update(status="interrupted", end_time=_now())
            _write_json(outs[i] / "metadata.json", metas[i])
        raise
    finally:
        bar.close()
        for env in envs:
            env.close()
    wall = time.perf_counter() - t0
    summaries = []
    for i in range(S):
        states[i]["wall_time"] += wall
        metas[i].update(status="completed", end_time=_now())
        _write_json(outs[i] / "metadata.json", metas[i])
        s = states[i]
        summaries.append({"algo": agent.algo, "env_id": env_id, "seed": seeds[i], "total_steps": s["total_steps"],
                          "episodes": s["episodes"], "updates": s["updates"], "wall_time": s["wall_time"],
                          "last_metrics": rows[i][-1] if rows[i] else {}, "out_dir": str(outs[i]),
                          "seeds_per_process": S})
    return summaries
