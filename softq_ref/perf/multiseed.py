"""Multi-seed throughput: S seeds stacked in one process against one process per seed.

* `training_throughput`: seed-steps per second *per core* of whole training runs at a benchmark
  tier's sizes: `softq_ref.vectorized_training.train_many` with S seeds in one single-thread
  process, against `softq_ref.training.train` (one seed, one single-thread process: what one
  process per seed gets from each core). Each run is a fresh spawned child, run alone, so both
  figures are per core. A run is `warmup` steps without updates (the replay filling to one batch)
  then one update per step, as in training.
* `update_flop_rate`: one stacked update's counted FLOPs over its time, against the same matrix
  products replayed alone (`flops.MatmulReplay`): the share of the update spent in the products.
"""
from __future__ import annotations

import multiprocessing as mp
import tempfile
import time
from typing import Any

import torch

from ..config import SQLConfig

__all__ = ["training_throughput", "update_flop_rate", "tier_config"]


def tier_config(tier: str, task: str, warmup: int, steps: int) -> tuple[str, SQLConfig]:
    """(env id, config) of a benchmark task at a tier's sizes, with one epoch of `steps` steps and
    updates from `warmup` samples (no evaluation, one checkpoint at the end)."""
    from ..benchmarks.tiers import TASKS, tier_task

    cfg = tier_task(tier, task).sql_config()
    return TASKS[task].env_id, cfg.replace(min_replay_size=max(warmup, cfg.batch_size), epoch_length=steps).validate()


def _child(mode: str, algo: str, env_id: str, cfg_dict: dict, seeds: list[int], steps: int, queue) -> None:
    try:
        queue.put(("ok", _timed_run(mode, algo, env_id, cfg_dict, seeds, steps)))
    except BaseException as e:  # reported by the parent, which would otherwise wait for a result forever
        import traceback

        queue.put(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=6)}"))


def _timed_run(mode: str, algo: str, env_id: str, cfg_dict: dict, seeds: list[int], steps: int) -> float:
    torch.set_num_threads(1)
    from ..runtime import keep_freed_memory

    keep_freed_memory()
    from ..training import make_agent, make_env, train
    from ..vectorized import make_stacked_agent
    from ..vectorized_training import train_many

    cfg = SQLConfig.from_dict(cfg_dict)
    probe = make_env(env_id, cfg)
    o, d = probe.observation_space.shape[0], probe.action_space.shape[0]
    probe.close()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        if mode == "process":
            train(make_agent(algo, o, d, cfg, seeds[0]), env_id, steps, seeds[0], tmp, progress=False)
        else:
            train_many(make_stacked_agent(algo, o, d, cfg, seeds), env_id, steps, [f"{tmp}/{s}" for s in seeds],
                       progress=False)
        return time.perf_counter() - t0


def _timed_child(*args) -> float:
    """Wall time of one run in a fresh spawned process; its error (or death) is raised here, never waited on."""
    import queue as queue_mod

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(*args, q))
    p.start()
    try:
        while True:
            try:
                status, value = q.get(timeout=1.0)
                break
            except queue_mod.Empty:
                if not p.is_alive():
                    raise RuntimeError(f"the multi-seed measurement child {args[:2]} died (exit code {p.exitcode}) "
                                       "without a result") from None
    finally:
        p.join(timeout=60)
    if status != "ok":
        raise RuntimeError(f"the multi-seed measurement child {args[:2]} failed: {value}")
    return value


def training_throughput(algo: str, tier: str, task: str, S_values: tuple[int, ...], steps_for, warmup: int) -> list[dict]:
    """Rows {mode, S, seed_steps_per_s_per_core, speedup} for one (algo, task): the one-process-per-seed
    figure first, then the stacked trainer at each S. `steps_for(S)` is the run length at S."""
    env_id, _ = tier_config(tier, task, warmup, 1)
    rows: list[dict[str, Any]] = []
    steps = steps_for(1)
    _, cfg = tier_config(tier, task, warmup, steps)
    wall = _timed_child("process", algo, env_id, cfg.to_dict(), [0], steps)
    base = steps / wall
    rows.append({"algo": algo, "task": task, "tier": tier, "mode": "process per seed", "S": 1, "steps": steps,
                 "warmup_steps": cfg.min_replay_size, "wall_s": wall, "seed_steps_per_s_per_core": base, "speedup": 1.0})
    for S in S_values:
        steps = steps_for(S)
        _, cfg = tier_config(tier, task, warmup, steps)
        wall = _timed_child("stacked", algo, env_id, cfg.to_dict(), list(range(S)), steps)
        rate = S * steps / wall
        rows.append({"algo": algo, "task": task, "tier": tier, "mode": "stacked", "S": S, "steps": steps,
                     "warmup_steps": cfg.min_replay_size, "wall_s": wall, "seed_steps_per_s_per_core": rate, "speedup": rate / base})
    return rows


def update_flop_rate(algo: str, cfg: SQLConfig, S: int, obs_dim: int, act_dim: int, n: int = 20) -> dict[str, Any]:
    """Counted FLOPs / time of one stacked update, and the same products replayed alone (1 thread)."""
    from ..vectorized import make_stacked_agent
    from .flops import MatmulReplay, count_flops, record_matmuls

    torch.set_num_threads(1)
    agent = make_stacked_agent(algo, obs_dim, act_dim, cfg, list(range(S)))
    g = torch.Generator().manual_seed(0)
    B = cfg.batch_size
    batch = {"obs": torch.randn(S, B, obs_dim, generator=g), "action": torch.rand(S, B, act_dim, generator=g) * 2 - 1,
             "reward": torch.randn(S, B, generator=g), "next_obs": torch.randn(S, B, obs_dim, generator=g),
             "terminated": torch.zeros(S, B)}
    agent.update(batch)
    flops = count_flops(lambda: agent.update(batch))
    replay = MatmulReplay(record_matmuls(lambda: agent.update(batch)))
    upd, rep = [], []
    for _ in range(5):  # interleaved, so both see the same machine load
        t0 = time.perf_counter()
        for _ in range(n):
            agent.update(batch)
        upd.append((time.perf_counter() - t0) / n)
        t0 = time.perf_counter()
        for _ in range(n):
            replay.run()
        rep.append((time.perf_counter() - t0) / n)
    t_upd, t_rep = sorted(upd)[2], sorted(rep)[2]
    return {"algo": algo, "S": S, "flops_per_update": flops, "update_ms": 1e3 * t_upd,
            "achieved_gflops": flops / t_upd / 1e9, "matmul_rate_gflops": flops / t_rep / 1e9,
            "ratio_to_matmul_rate": t_rep / t_upd}
