"""Jobs of a benchmark matrix: which runs share a process, and in which order they start.

A job is what an executor schedules (softq_ref.benchmarks.runner). Runs of a stackable algorithm
(softq_ref.vectorized.STACKABLE_ALGOS) that differ only in their seed, and whose checkpoints are at the
same step, train stacked in one process, up to `seeds_per_process` at a time; every other run is a job
of its own. Jobs start longest first, counting the fine-tuning runs that wait for a pretraining run.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Callable

from .tiers import RunDef

__all__ = ["run_dir", "stackable_algos", "group_key", "checkpoint_step", "plan_jobs", "block_failed"]


def run_dir(out_root: str | os.PathLike, run: RunDef) -> Path:
    return Path(out_root) / run.tier / run.key


def stackable_algos() -> tuple[str, ...]:
    from ..vectorized import STACKABLE_ALGOS  # imports torch: only when jobs are planned

    return STACKABLE_ALGOS


def group_key(run: RunDef) -> str:
    """Runs with equal keys differ only in their seed (and the seed of their pretraining run)."""
    d = run.to_dict()
    d.pop("seed")
    d["init_from"] = None if run.init_from is None else run.init_from.rsplit("/seed", 1)[0]
    return json.dumps(d, sort_keys=True, default=str)


def checkpoint_step(path: Path) -> int | None:
    """The env step a run's checkpoint is at (None: no checkpoint, or unreadable: the worker reports it)."""
    if not path.exists():
        return None
    try:
        import torch

        return int(torch.load(path, map_location="cpu", weights_only=False)["state"]["total_steps"])
    except Exception:  # noqa: BLE001 - reported by the worker that tries to resume it
        return None


def plan_jobs(runs: list[RunDef], seeds_per_process: int, out_root: str | os.PathLike) -> list[list[RunDef]]:
    """Split `runs` into jobs: groups of up to `seeds_per_process` runs that differ only in their seed
    and whose checkpoints are at the same step (stackable algos), single runs otherwise."""
    if seeds_per_process <= 1:
        return [[r] for r in runs]
    stackable = stackable_algos()
    buckets: dict[tuple, list[RunDef]] = {}
    jobs: list[list[RunDef]] = []
    for r in runs:
        if r.algo not in stackable:
            jobs.append([r])
            continue
        buckets.setdefault((group_key(r), checkpoint_step(run_dir(out_root, r) / "checkpoint.pt")), []).append(r)
    for members in buckets.values():
        members.sort(key=lambda r: r.seed)
        n = math.ceil(len(members) / seeds_per_process)  # equal-sized groups: 10 seeds at S = 8 -> 5 + 5
        size = math.ceil(len(members) / n)
        jobs += [members[i:i + size] for i in range(0, len(members), size)]
    return _longest_first(jobs)


def _longest_first(jobs: list[list[RunDef]]) -> list[list[RunDef]]:
    """Order jobs by their cost plus that of the runs waiting for them (fine-tuning on its pretraining),
    longest first: with few jobs per worker, a long job started last sets the matrix's wall time.
    Cost = env steps x (2 for SQL: its update costs ~2-5x DDPG's, perf README)."""
    def cost(r: RunDef) -> float:
        return r.steps * (2.0 if r.algo == "sql" else 1.0)
    waiting: dict[str, float] = {}
    for j in jobs:
        for r in j:
            if r.init_from:
                waiting[r.init_from] = waiting.get(r.init_from, 0.0) + cost(r)
    return sorted(jobs, key=lambda j: -sum(cost(r) + waiting.get(r.key, 0.0) for r in j))


def block_failed(pending: list[list[RunDef]], outcomes: dict, record: Callable[[str, dict], None]) -> None:
    """Runs whose pretraining failed are blocked; the rest of their job still runs."""
    for job in list(pending):
        for r in list(job):
            if r.init_from and r.init_from in outcomes and outcomes[r.init_from]["status"] in ("failed", "blocked"):
                job.remove(r)
                record(r.key, {"key": r.key, "status": "blocked", "error": f"its pretraining run {r.init_from} did not finish"})
        if not job:
            pending.remove(job)
