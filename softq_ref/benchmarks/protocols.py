"""The paper's metrics, measured during training (sections 5.1-5.3).

* multigoal: distinct goals reached by the learned policy (`goals_reached`, 50-100 roll-outs), per epoch.
* swimmer:   maximum (and minimum) centre-of-mass x reached *since the beginning of training*
             (Figure 3a, 6), from the training roll-outs themselves; `crossed` = max x >= finish line.
* maze:      minimum distance to the target since the beginning of training (Figure 3b), from the
             training roll-outs; `below_threshold` = min distance < the env's `threshold_distance`.
* finetune:  average discounted return of evaluation roll-outs per epoch (Figure 5).
* pretrain:  maximum distance from the start reached in training roll-outs (spread of Figure 7).

Training-rollout statistics come from a wrapper around the task env (registered as
`SoftQBench/<task>-<hash>-v0`, built by the training loop's own `gym.make`), so the training loop is
unchanged. They are max / min over steps, hence idempotent: replaying the current episode on resume
does not change them, and their value at the checkpoint (the checkpoint's metrics row, given to
`make_evaluate`) is merged in at the first evaluation, so a resumed run's curve equals an
uninterrupted one.
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Callable

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import register, registry

from .. import envs as _envs
from ..envs.multigoal import goals_reached

__all__ = ["PROTOCOLS", "tracked_env_id", "make_evaluate", "final_metrics", "EVAL_SEED"]

EVAL_SEED = 10_000  # evaluation episode i is reset with EVAL_SEED + i, the same every epoch

# protocol -> (tracked columns with their initial values and reducers)
_TRACKED: dict[str, dict[str, tuple[float, Callable[[float, float], float]]]] = {
    "swimmer": {"max_x_so_far": (-math.inf, max), "min_x_so_far": (math.inf, min)},
    "maze": {"min_distance_so_far": (math.inf, min)},
    "pretrain": {"max_travel_so_far": (0.0, max)},
    "multigoal": {},
    "finetune": {},
}
PROTOCOLS = tuple(_TRACKED)

_ACTIVE: dict[str, Any] = {"tracker": None}


class TrackingWrapper(gym.Wrapper):
    """Keeps running max / min of the protocol's per-step quantities from `info`."""

    def __init__(self, env: gym.Env, protocol: str):
        super().__init__(env)
        self.protocol = protocol
        self.stats = {k: float(v0) for k, (v0, _) in _TRACKED[protocol].items()}
        self.threshold = getattr(env.unwrapped, "threshold_distance", None)
        self.finish_line = getattr(env.unwrapped, "finish_line", None)
        self._start = None
        _ACTIVE["tracker"] = self

    def _update(self, info: dict) -> None:
        red = _TRACKED[self.protocol]
        if self.protocol == "swimmer":
            x = float(info["x_position"])
            for k in ("max_x_so_far", "min_x_so_far"):
                self.stats[k] = red[k][1](self.stats[k], x)
        elif self.protocol == "maze":
            self.stats["min_distance_so_far"] = min(self.stats["min_distance_so_far"], float(info["distance_to_target"]))
            self.threshold = float(info.get("threshold_distance", self.threshold))
        elif self.protocol == "pretrain" and "xy_position" in info:
            xy = np.asarray(info["xy_position"], dtype=float)
            if self._start is None:
                self._start = xy
            self.stats["max_travel_so_far"] = max(self.stats["max_travel_so_far"], float(np.linalg.norm(xy - self._start)))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._start = np.asarray(info["xy_position"], dtype=float) if "xy_position" in info else None
        return obs, info

    def step(self, action):
        out = self.env.step(action)
        self._update(out[4])
        return out


def make_tracked(base_id: str, protocol: str, env_kwargs: dict | None = None) -> gym.Env:
    env = gym.make(base_id, disable_env_checker=True, **(env_kwargs or {})).unwrapped
    return TrackingWrapper(env, protocol)


def tracked_env_id(base_id: str, protocol: str, env_kwargs: dict[str, Any]) -> str:
    """Register (once per process) the tracked version of `base_id` and return its id."""
    h = hashlib.sha1(json.dumps([base_id, protocol, env_kwargs], sort_keys=True).encode()).hexdigest()[:10]
    env_id = f"SoftQBench/{base_id.split('/')[-1].rsplit('-v', 1)[0]}-{h}-v0"
    if env_id not in registry:
        horizon = _envs.TASKS[base_id][1] if base_id in _envs.TASKS else gym.spec(base_id).max_episode_steps
        register(id=env_id, entry_point="softq_ref.benchmarks.protocols:make_tracked", max_episode_steps=horizon,
                 disable_env_checker=True,  # the wrapped task passes gymnasium's check_env (tests/test_benchmark_envs.py)
                 kwargs={"base_id": base_id, "protocol": protocol, "env_kwargs": dict(env_kwargs)})
    return env_id


def _discounted_eval(agent, env_id: str, config, n: int, gamma: float) -> dict[str, float]:
    from ..training import make_env

    env = make_env(env_id, config)
    disc, und = [], []
    try:
        for i in range(n):
            obs, _ = env.reset(seed=EVAL_SEED + i)
            agent.reset_episode()
            g, r_sum, t, done = 0.0, 0.0, 0, False
            while not done:
                obs, r, term, trunc, _ = env.step(agent.act(obs, deterministic=True))
                g += gamma ** t * float(r)
                r_sum += float(r)
                t += 1
                done = term or trunc
            disc.append(g)
            und.append(r_sum)
    finally:
        env.close()
    return {"eval_discounted_return": float(np.mean(disc)), "eval_return": float(np.mean(und))}


def _tracker_of(env: gym.Env | None) -> TrackingWrapper | None:
    """The TrackingWrapper inside `env`'s wrapper chain (None: the one built last in this process)."""
    if env is None:
        return _ACTIVE["tracker"]
    while env is not None:
        if isinstance(env, TrackingWrapper):
            return env
        env = getattr(env, "env", None)
    return None


def make_evaluate(protocol: str, base_env_id: str, eval_episodes: int, config,
                  on_epoch: Callable[[dict], None] | None = None,
                  resume_row: dict[str, Any] | None = None) -> Callable[..., dict]:
    """The `evaluate(agent, env=None) -> dict` callback of the training loops for one protocol.

    `env` is the training env whose tracked statistics to report (`softq_ref.vectorized_training`,
    several envs per process); without it, the env built last (`softq_ref.training.train`).
    `resume_row` (the checkpoint's metrics row) is merged into those statistics at the first call:
    they are running max / min, so merging late gives the values of an uninterrupted run.
    """
    pending = [None if resume_row is None else
               {k: float(v) for k, v in resume_row.items() if k in _TRACKED[protocol] and v not in (None, "")}]

    def evaluate(agent, env: gym.Env | None = None) -> dict:
        row: dict[str, Any] = {}
        tr = _tracker_of(env)
        if tr is not None and pending[0] is not None:
            for k, (_, reducer) in _TRACKED[protocol].items():
                if k in pending[0]:
                    tr.stats[k] = reducer(tr.stats[k], pending[0][k])
            pending[0] = None
        if tr is not None:
            row.update(tr.stats)
            if protocol == "swimmer":
                row["crossed"] = int(tr.finish_line is not None and tr.stats["max_x_so_far"] >= tr.finish_line)
                row["finish_line"] = tr.finish_line
            if protocol == "maze":
                row["below_threshold"] = int(tr.stats["min_distance_so_far"] < tr.threshold)
                row["threshold_distance"] = tr.threshold
        if protocol == "multigoal" and eval_episodes > 0:
            n, counts = goals_reached(lambda o: agent.act(o, deterministic=True), n_episodes=eval_episodes,
                                      seed=EVAL_SEED, max_episode_steps=config.max_episode_steps or 20)
            row["goals_reached"] = n
            row["goal_counts"] = " ".join(map(str, counts))
        if protocol == "finetune" and eval_episodes > 0:
            row.update(_discounted_eval(agent, base_env_id, config, eval_episodes, config.gamma))
        if on_epoch is not None:
            on_epoch(row)
        return row

    return evaluate


# Final per-run metrics (result.json) and the curve columns, per protocol.
CURVES = {"multigoal": ["goals_reached"], "swimmer": ["max_x_so_far", "min_x_so_far"],
          "maze": ["min_distance_so_far"], "pretrain": ["max_travel_so_far", "mean_return"],
          "finetune": ["eval_discounted_return", "eval_return", "mean_return"]}


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def final_metrics(protocol: str, rows: list[dict[str, str]]) -> tuple[dict[str, Any], dict[str, list]]:
    """(final metrics, curves) from a run's metrics.csv rows."""
    if not rows:
        raise ValueError("metrics.csv has no rows")
    last = rows[-1]
    curves: dict[str, list] = {"step": [int(r["step"]) for r in rows]}
    for c in CURVES[protocol]:
        if c in last:
            curves[c] = [_num(r.get(c)) for r in rows]
    m: dict[str, Any] = {"final_step": int(last["step"]), "final_mean_return": _num(last.get("mean_return"))}
    if protocol == "multigoal":
        m["goals_reached"] = int(_num(last.get("goals_reached", 0)))
        m["goal_counts"] = [int(x) for x in str(last.get("goal_counts", "")).split()]
        m["success"] = m["goals_reached"] == 4
    elif protocol == "swimmer":
        m.update(max_x=_num(last["max_x_so_far"]), min_x=_num(last["min_x_so_far"]),
                 finish_line=_num(last["finish_line"]))
        m["success"] = bool(int(_num(last["crossed"])))
    elif protocol == "maze":
        m.update(min_distance=_num(last["min_distance_so_far"]), threshold_distance=_num(last["threshold_distance"]))
        m["success"] = bool(int(_num(last["below_threshold"])))
    elif protocol == "finetune":
        ys = curves.get("eval_discounted_return", [])
        m["final_discounted_return"] = ys[-1] if ys else math.nan
        m["mean_discounted_return"] = float(np.mean(ys)) if ys else math.nan  # area under the curve / length
    elif protocol == "pretrain":
        m["max_travel"] = _num(last.get("max_travel_so_far"))
    return m, curves
