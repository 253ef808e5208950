"""Cost estimate of a benchmark matrix: core-hours per run, task and claim, from the measured throughput table.

Per run (single-threaded, one process per run, as the runner executes it):

    core-s = steps x (env + act)                                    every env step
           + (steps - min_replay_size) x updates_per_step x update  learning phase (D.1: one update per step)
           + epochs x eval_episodes x horizon x (env + act)         evaluation roll-outs (multi-goal, fine-tuning)
           + PROCESS_START_S                                        interpreter + torch import + env build

with env / act / update in microseconds from `throughput.json` (`throughput.py`: measured at each measured
tier's network sizes per body and algorithm). Not modelled: replay add / sample, per-epoch checkpoints (a
paper-tier checkpoint holds a 1e6-transition replay buffer: ~1 s per 10,000-step epoch), and the slow-down of
a machine shared with other jobs (the table is the fastest of 4 repetitions; the ci matrix ran ~2x slower
than this under load 5-10).

Multi-seed trainer. The runner stacks up to S seeds of one (task, variant) in one process
(softq_ref.vectorized_training; SQL and DDPG). `estimate(..., seeds_per_process=S)` forms the runner's
jobs (`jobs.plan_jobs`) and divides each run's compute by the factor measured for its job's size n,
and the process start by n; the factors are `throughput.json`'s `multiseed_speedup` ({"n": factor} or
{"n": {"sql": f, "ddpg": f}}, from `nox -s perf`'s multi-seed section), interpolated in log n between
measured sizes. Unmeasured: factor 1.0, and the printout says so.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from .jobs import plan_jobs, stackable_algos
from .tiers import TASKS, RunDef

__all__ = ["PROCESS_START_S", "body_of", "run_core_s", "speedup_factor", "estimate", "render_estimate", "CostError"]

PROCESS_START_S = 8.0  # measured per run in the 2026-11-21 ci matrix (README.md)
_DEFAULT_HORIZON = {"multigoal": 20, "point": 100, "swimmer": 500, "ant": 500}


class CostError(ValueError):
    pass


def body_of(task: str) -> str:
    """Throughput-table body of a task: multigoal, point, swimmer or ant."""
    return "multigoal" if task == "multigoal" else TASKS[task].body


def _lookup(table: dict, field: str, tier: str, body: str, algo: str) -> float:
    try:
        return float(table[field][tier][body][algo])
    except KeyError:
        have = {t: sorted(b) for t, b in table.get(field, {}).items()}
        if tier in table.get(field, {}) and body in table[field][tier]:
            raise CostError(f"throughput table has no {field}[{tier!r}][{body!r}][{algo!r}]: it measures the "
                            f"algorithms {sorted(table[field][tier][body])} only") from None
        raise CostError(f"throughput table has no {field}[{tier!r}][{body!r}][{algo!r}]; measured: {have}. "
                        f"Measure it: python -m softq_ref.benchmarks.throughput --tiers {tier}") from None


def _factor_value(v: Any, S: Any) -> float:
    if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
        raise CostError(f"multiseed_speedup[{S}] = {v!r}: expected a positive number "
                        "(seed-steps per core-second with S seeds per process / with one process per seed)")
    return float(v)


def speedup_factor(speedup: dict | None, seeds_per_process: int, algo: str, stacked: bool = False) -> tuple[float, bool]:
    """(factor, measured?) for S seeds stacked per process.

    S = 1 is the one-process-per-run path (factor 1) unless `stacked` (a group of one seed, which the
    table may measure as "1"). Between two measured S the factor is interpolated linearly in log S;
    above the largest measured S it stays at that S's factor (the factor grows with S, so this
    underestimates); below the smallest, or with no entry: 1.0 and not measured.
    """
    if seeds_per_process < 1 or int(seeds_per_process) != seeds_per_process:
        raise CostError(f"seeds_per_process = {seeds_per_process!r}: expected an integer >= 1")
    S = int(seeds_per_process)
    if S == 1 and not stacked:
        return 1.0, True
    points = {}
    for key, v in (speedup or {}).items():
        v = v.get(algo) if isinstance(v, dict) else v
        if v is not None:
            points[int(key)] = _factor_value(v, key)
    if S in points:
        return points[S], True
    lower, upper = [k for k in points if k < S], [k for k in points if k > S]
    if not lower:
        return 1.0, False
    lo = max(lower)
    if not upper:
        return points[lo], True
    hi = min(upper)
    w = math.log(S / lo) / math.log(hi / lo)
    return points[lo] + w * (points[hi] - points[lo]), True


def run_core_s(run: RunDef, table: dict, seeds_per_process: int = 1, speedup: dict | None = None,
               stacked: bool = False) -> float:
    """Estimated core-seconds of one run trained in a process with `seeds_per_process` seeds (module docstring)."""
    body = body_of(run.task)
    cfg = run.config
    env_us = table["env_step_us"].get(run.env_id)
    if env_us is None:
        raise CostError(f"throughput table has no env_step_us[{run.env_id!r}]; measured: {sorted(table['env_step_us'])}")
    act = _lookup(table, "act_us", run.tier, body, run.algo)
    upd = _lookup(table, "update_us", run.tier, body, run.algo)
    steps = int(run.steps)
    learn = max(0, steps - int(cfg.get("min_replay_size", 0)))
    epochs = math.ceil(steps / int(cfg.get("epoch_length", steps) or steps))
    horizon = cfg.get("max_episode_steps") or _DEFAULT_HORIZON.get(body, 500)
    eval_steps = epochs * int(run.eval_episodes) * int(horizon)
    compute = (steps * (env_us + act) + learn * int(cfg.get("updates_per_step", 1)) * upd
               + eval_steps * (env_us + act)) / 1e6
    factor, _ = speedup_factor(speedup, seeds_per_process, run.algo, stacked)
    return compute / factor + PROCESS_START_S / seeds_per_process


@dataclass
class Estimate:
    runs: int
    core_s: float
    per_task: dict[str, dict[str, Any]]
    per_claim: dict[str, float]
    longest_chain_s: float
    seeds_per_process: int
    factors: dict[str, tuple[float, bool]]
    table_meta: dict[str, Any]
    group_sizes: list[int] = None  # seeds per process of the runner's jobs (plan_jobs)

    def wall_s(self, workers: int) -> float:
        """Lower bound on the wall time with `workers` cores: total / workers, or the longest pretrain ->
        fine-tune chain if longer."""
        return max(self.core_s / max(1, workers), self.longest_chain_s)


def estimate(runs: list[RunDef], table: dict, seeds_per_process: int = 1, speedup: dict | None = None) -> Estimate:
    if speedup is None:
        speedup = table.get("multiseed_speedup", {})
    group = {r.key: 1 for r in runs}  # the runner's jobs: seeds of one task and variant stacked, up to S
    job_of = {r.key: (r.key,) for r in runs}
    if seeds_per_process > 1:
        for job in plan_jobs(runs, seeds_per_process, "/nonexistent-cost-estimate"):
            for r in job:
                group[r.key] = len(job) if r.algo in stackable_algos() else 1
                job_of[r.key] = tuple(x.key for x in job)
    stacked = seeds_per_process > 1
    per_run = {r.key: run_core_s(r, table, group[r.key], speedup, stacked and r.algo in stackable_algos())
               for r in runs}
    per_task: dict[str, dict[str, Any]] = defaultdict(lambda: {"runs": 0, "core_s": 0.0, "max_run_s": 0.0})
    per_claim: dict[str, float] = defaultdict(float)
    dependents = defaultdict(set)  # pretraining task -> claims of the fine-tuning tasks it initialises
    for r in runs:
        if TASKS[r.task].pretrain_task:
            dependents[TASKS[r.task].pretrain_task].add(TASKS[r.task].claim)
    for r in runs:
        c = per_run[r.key]
        t = per_task[r.task]
        t["runs"] += 1
        t["core_s"] += c
        t["max_run_s"] = max(t["max_run_s"], c)
        for claim in ({TASKS[r.task].claim} if TASKS[r.task].claim else dependents.get(r.task, {"(no claim)"})):
            per_claim[claim] += c
    chain = 0.0  # a job's runs share one core: the longest job, after the pretraining job it waits for
    for r in runs:
        c = sum(per_run[k] for k in job_of[r.key])
        if r.init_from and r.init_from in per_run:
            c += sum(per_run[k] for k in job_of[r.init_from])
        chain = max(chain, c)
    factors = {a: speedup_factor(speedup, seeds_per_process, a, stacked and a in stackable_algos())
               for a in sorted({r.algo for r in runs})}
    sizes = sorted({group[r.key] for r in runs})
    meta = {k: table.get(k) for k in ("date", "git_commit", "machine", "load_average_before", "load_average_after")}
    return Estimate(len(runs), sum(per_run.values()), dict(per_task), dict(per_claim), chain, seeds_per_process,
                    factors, meta, sizes)


def render_estimate(est: Estimate, workers: int) -> str:
    m = est.table_meta
    cpu = (m.get("machine") or {}).get("cpu", "?")
    load = m.get("load_average_before") or []
    lines = [f"cost estimate (throughput.json measured {m.get('date')} at {str(m.get('git_commit'))[:10]} on {cpu}, "
             f"load average {round(load[0], 2) if load else '?'}; single-threaded, fastest of 4 repetitions):"]
    for algo, (f, measured) in est.factors.items():
        if est.seeds_per_process == 1:
            lines.append(f"  {algo}: one process per run (seeds per process 1)")
        elif measured:
            lines.append(f"  {algo}: up to {est.seeds_per_process} seeds per process (jobs of {est.group_sizes} seeds), "
                         f"measured speed-up factor {f:.2f} at S = {est.seeds_per_process}, each job at its own S")
        else:
            lines.append(f"  {algo}: {est.seeds_per_process} seeds per process: no speed-up measured for "
                         f"S = {est.seeds_per_process}, factor 1.0 assumed (multiseed_speedup in throughput.json)")
    lines.append(f"  {'task':<22} {'runs':>5} {'core-h':>8} {'longest run':>12}")
    for task, t in est.per_task.items():
        lines.append(f"  {task:<22} {t['runs']:>5} {t['core_s'] / 3600:>8.2f} {_dur(t['max_run_s']):>12}")
    for claim, c in sorted(est.per_claim.items()):
        lines.append(f"  claim {claim}: {c / 3600:.2f} core-h")
    lines.append(f"  total: {est.runs} runs, {est.core_s / 3600:.2f} core-h; wall >= {_dur(est.wall_s(workers))} "
                 f"on {workers} worker(s) (longest job, after the pretraining job it waits for: {_dur(est.longest_chain_s)}); "
                 "a shared machine is slower")
    return "\n".join(lines)


def _dur(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"
