"""Verdicts on trained samplers and agents: independent training runs with a stated decision rule.

Training variability, not the sampling noise of the final draws, dominates a trained spec's false
alarms: the reference occasionally drops a mode or commits to one goal in a single run (measured on
calibration seeds: conformance/README.md, "Statistical guarantees"). A trained spec therefore runs up to
`max_runs` independent trainings (seeds derived from the master seed, the spec id and the run index) and
passes at the first run that meets its criterion. Runs are independent, so if one run of a correct
implementation fails with probability at most p, the verdict is a false alarm with probability at most
p ** max_runs; p is measured by `python -m softq_conformance.calibrate` (per-run counts in its summary).

The price is stated, not hidden: an implementation whose runs succeed with probability s passes with
probability 1 - (1 - s) ** max_runs, and every failed run is listed in the report with its message.
An implementation whose every run fails (the self-test mutants: a missing repulsive term, a wrong
temperature) fails the verdict after max_runs runs.
"""
from __future__ import annotations

from typing import Callable

from .registry import CheckFailure, Ctx

__all__ = ["first_passing_run", "run_stream", "RUN_STREAM_STRIDE"]

RUN_STREAM_STRIDE = 10_000  # run k draws its sub-seeds from streams k * stride + i; run 0 keeps streams i


def run_stream(run: int, stream: int = 0) -> int:
    """The sub-seed stream of `stream` within training run `run` (run 0: unchanged, so old verdicts stay)."""
    return run * RUN_STREAM_STRIDE + stream


def first_passing_run(ctx: Ctx, run: Callable[[int], None], what: str = "training run") -> int:
    """Call run(0), run(1), ... until one returns without a CheckFailure; at most params.max_runs calls.

    Returns the index of the passing run. Each run's measurements are kept under `runs` in the report,
    with its verdict, so the calibration harness can count per-run failures. Adapter errors and time-outs
    propagate at once: they are not statistical failures and are never retried.
    """
    max_runs = int(ctx.params.get("max_runs", 1))
    if max_runs < 1:
        raise ValueError(f"spec {ctx.spec.id}: params.max_runs must be >= 1, got {max_runs}")
    runs: list[dict] = []
    for k in range(max_runs):
        ctx.measured = {}
        try:
            run(k)
        except CheckFailure as exc:
            runs.append({"run": k, "status": "fail", "message": str(exc), "value": exc.measured, "bound": exc.bound,
                         **ctx.measured})
            continue
        runs.append({"run": k, "status": "pass", **ctx.measured})
        ctx.measured = {"runs used": k + 1, "max_runs": max_runs, "runs": runs}
        return k
    ctx.measured = {"runs used": max_runs, "max_runs": max_runs, "runs": runs}
    raise CheckFailure(f"{runs[0]['message']} [in all {max_runs} independent {what}s: a correct implementation "
                       f"fails one with probability <= p, measured on the reference, all {max_runs} with <= "
                       f"p^{max_runs}; each run under measured.runs]", runs[0].get("value"), runs[0].get("bound"))
