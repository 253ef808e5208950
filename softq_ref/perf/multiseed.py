"""Multi-seed throughput: S seeds stacked in one process against one process per seed.

* `training_throughput`: the *marginal* seed-steps per second per core of training at a benchmark
  tier's sizes: `softq_ref.vectorized_training.train_many` with S seeds in one single-thread
  process, against `softq_ref.training.train` (one seed, one single-thread process: what one
  process per seed gets from each core). Each run is a fresh spawned child, run alone, so both
  figures are per core. A run is `warmup` steps without updates (the replay filling to one batch)
  then one update per step, as in training.

  Why marginal: a run's wall time also covers env construction, the warm-up steps (far cheaper
  than update steps) and the final checkpoint write. A whole-run rate of a short run therefore
  mixes those in by a share that depends on its length, and the stacked runs are the short ones
  (S seeds share a step budget): rates of whole runs of different lengths are not comparable.
  So each mode and S runs twice, with the same warm-up and setup, for `warmup + n_short` and
  `warmup + n_long` steps; the fixed costs cancel in the difference and
  rate = S * (n_long - n_short) / (wall_long - wall_short) is the rate of steps past the warm-up
  (action, env step, replay sample, update), the rate of a long training run. (The checkpoint's replay grows with the run, but by ~100 bytes per
  transition: negligible.) The whole-run rate of the long run is kept beside it for comparison.
* `update_flop_rate`: one stacked update's counted FLOPs over its time, against the same matrix
  products replayed alone (`flops.MatmulReplay`) and against the plain single-seed agent's update,
  all timed interleaved: the share of the update spent in the products, the measured update
  speed-up S * single / stacked, and its ceiling at the replayed matmul rate (the speed-up if the
  stacked update spent all its time in its products at that rate, elementwise work free).
"""
from __future__ import annotations

import multiprocessing as mp
import tempfile
import time
from typing import Any

import torch

from ..config import SQLConfig

__all__ = ["training_throughput", "marginal_rate", "update_flop_rate", "tier_config"]


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


def marginal_rate(S: int, n_short: int, wall_short: float, n_long: int, wall_long: float) -> float:
    """Seed-steps per second of the steps the long run has beyond the short one:
    S * (n_long - n_short) / (wall_long - wall_short). A ValueError when that is not a positive finite rate."""
    if not (n_long > n_short >= 0 and S >= 1):
        raise ValueError(f"marginal rate: expected S >= 1 and 0 <= n_short < n_long, got S={S}, n_short={n_short}, "
                         f"n_long={n_long}")
    if not wall_long > wall_short:  # timing noise larger than the extra steps' cost: no rate to report
        raise ValueError(f"the long run ({n_long} update steps) took {wall_long:.3f} s, not longer than the short run "
                         f"({n_short} update steps, {wall_short:.3f} s): the extra steps' cost is below the timing "
                         "noise; lengthen the runs (or measure on a less loaded machine)")
    return S * (n_long - n_short) / (wall_long - wall_short)


def training_throughput(algo: str, tier: str, task: str, S_values: tuple[int, ...], lengths_for, warmup: int,
                        allow_whole_run_fallback: bool = False) -> list[dict]:
    """Rows for one (algo, task): the one-process-per-seed figure first, then the stacked trainer at each S.

    `lengths_for(S)` = (n_short, n_long), the update steps of the two runs after the warm-up.
    `seed_steps_per_s_per_core` is the marginal rate (module docstring), `speedup` its ratio to the
    one-process marginal rate. A long run no slower than its short one is a ValueError naming the
    mode and S; with `allow_whole_run_fallback` (quick mode: runs of a fraction of a second) the row
    reports the long run's whole-run rate instead, and says so in `rate_method`."""
    env_id, cfg1 = tier_config(tier, task, warmup, 1)
    w = cfg1.min_replay_size  # both runs of a pair: the same warm-up, env construction and checkpoint

    def measure(mode: str, S: int) -> dict[str, Any]:
        n_short, n_long = lengths_for(S)
        walls = []
        for n in (n_short, n_long):
            _, cfg = tier_config(tier, task, warmup, w + n)
            walls.append(_timed_child(mode, algo, env_id, cfg.to_dict(), list(range(S)), cfg.epoch_length))
        wall_short, wall_long = walls
        whole = S * (w + n_long) / wall_long
        try:
            rate, method = marginal_rate(S, n_short, wall_short, n_long, wall_long), "marginal"
        except ValueError as e:
            if not allow_whole_run_fallback:
                raise ValueError(f"multi-seed throughput of {algo} {task} ({tier}), {mode} S={S}: {e}") from None
            rate, method = whole, f"whole run (marginal not measurable: {e})"
        return {"algo": algo, "task": task, "tier": tier, "mode": mode, "S": S, "warmup_steps": w,
                "update_steps_short": n_short, "update_steps_long": n_long,
                "wall_s_short": wall_short, "wall_s_long": wall_long, "steps": w + n_long, "wall_s": wall_long,
                "rate_method": method,
                "seed_steps_per_s_per_core": rate, "whole_run_seed_steps_per_s_per_core": whole}

    rows = [measure("process", 1)]
    rows[0]["mode"] = "process per seed"
    rows += [measure("stacked", S) for S in S_values]
    base = rows[0]["seed_steps_per_s_per_core"]
    for r in rows:
        r["speedup"] = r["seed_steps_per_s_per_core"] / base
    return rows


def update_flop_rate(algo: str, cfg: SQLConfig, S: int, obs_dim: int, act_dim: int, n: int = 20) -> dict[str, Any]:
    """Counted FLOPs / time of one stacked update, the same products replayed alone, and the plain
    single-seed agent's update (1 thread, the three interleaved)."""
    from ..training import make_agent
    from ..vectorized import make_stacked_agent
    from .flops import MatmulReplay, count_flops, record_matmuls

    if S < 2:  # StackedLinear pads S = 1 to two seeds: its FLOPs and time are not one seed's
        raise ValueError(f"update_flop_rate needs S >= 2 (a stacked S = 1 update is padded to two seeds), got S={S}")
    torch.set_num_threads(1)
    agent = make_stacked_agent(algo, obs_dim, act_dim, cfg, list(range(S)))
    single = make_agent(algo, obs_dim, act_dim, cfg, 0)
    g = torch.Generator().manual_seed(0)
    B = cfg.batch_size
    batch = {"obs": torch.randn(S, B, obs_dim, generator=g), "action": torch.rand(S, B, act_dim, generator=g) * 2 - 1,
             "reward": torch.randn(S, B, generator=g), "next_obs": torch.randn(S, B, obs_dim, generator=g),
             "terminated": torch.zeros(S, B)}
    batch1 = {k: v[0].clone() for k, v in batch.items()}  # seed 0's minibatch, without the seed axis
    agent.update(batch)
    single.update(batch1)
    flops = count_flops(lambda: agent.update(batch))
    replay = MatmulReplay(record_matmuls(lambda: agent.update(batch)))
    times: dict[str, list[float]] = {"stacked": [], "replay": [], "single": []}
    fns = {"stacked": lambda: agent.update(batch), "replay": replay.run, "single": lambda: single.update(batch1)}
    for _ in range(5):  # interleaved, so all three see the same machine load
        for name, fn in fns.items():
            reps = n * S if name == "single" else n  # about as long as the stacked block
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            times[name].append((time.perf_counter() - t0) / reps)
    t_upd, t_rep, t_one = (sorted(times[k])[2] for k in ("stacked", "replay", "single"))
    rate = flops / t_rep  # FLOP/s of the update's own products replayed alone
    return {"algo": algo, "S": S, "flops_per_update": flops, "update_ms": 1e3 * t_upd,
            "achieved_gflops": flops / t_upd / 1e9, "matmul_rate_gflops": rate / 1e9,
            "ratio_to_matmul_rate": t_rep / t_upd, "single_update_ms": 1e3 * t_one,
            "update_speedup": S * t_one / t_upd,
            # the stacked update at one seed's share of its FLOPs, all at the replayed matmul rate
            "speedup_ceiling_at_matmul_rate": t_one / (flops / S / rate)}
