"""CLI: python -m softq_ref.benchmarks --tier ci --tasks multigoal,swimmer --seeds 5 --out runs/

Runs the matrix (skipping finished runs, resuming interrupted ones), then decides every claim that
has results and writes DIR/<tier>/matrix.json, claims.json and claims.md. Exit code 0 when every run
finished, 1 when some failed or were blocked, 2 on usage errors.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

from ..config import ConfigError
from . import claims as claims_mod
from .runner import EXECUTORS, RunnerError, _atomic_json, collect_results, run_matrix
from .tiers import DEFAULT_TASKS, GROUPS, TASKS, TIERS, matrix


def _seeds(text: str) -> list[int]:
    """'5' -> 0..4; '3,7,9' -> those; '10-14' -> 10..14."""
    if "," in text:
        return [int(x) for x in text.split(",") if x.strip()]
    if "-" in text:
        a, b = text.split("-", 1)
        return list(range(int(a), int(b) + 1))
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("--seeds must be >= 1")
    return list(range(n))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m softq_ref.benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tier", choices=sorted(TIERS), default="smoke")
    ap.add_argument("--tasks", default=None,
                    help=f"comma-separated tasks or groups (default: the tier's list). Tasks: {', '.join(TASKS)}; "
                         f"groups: {', '.join(GROUPS)}. Fine-tuning tasks add their pretraining task.")
    ap.add_argument("--seeds", type=_seeds, default=[0], help="N (seeds 0..N-1), a list 3,4,5 or a range 10-14")
    ap.add_argument("--out", default="benchmark-runs", help="output root (results under OUT/<tier>/)")
    ap.add_argument("--executor", choices=EXECUTORS, default="process")
    ap.add_argument("--workers", type=int, default=None, help="parallel runs (default: CPU cores)")
    ap.add_argument("--ray-address", default=None, help="Ray cluster address (default: RAY_ADDRESS or a local instance)")
    ap.add_argument("--steps", type=int, default=None, help="override every run's steps (timing estimates only)")
    ap.add_argument("--claims-only", action="store_true", help="decide the claims from existing results; train nothing")
    ap.add_argument("--dry-run", action="store_true", help="list the runs and exit")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    command = ["python", "-m", "softq_ref.benchmarks", *(sys.argv[1:] if argv is None else argv)]
    try:
        tasks = [t.strip() for t in args.tasks.split(",")] if args.tasks else None
        runs = matrix(args.tier, tasks, args.seeds, args.steps)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        for r in runs:
            print(f"{r.key:<45} {r.algo:<5} {r.env_id:<32} steps={r.steps}" + (f" init_from={r.init_from}" if r.init_from else ""))
        print(f"{len(runs)} runs (tier {args.tier}; default tasks {DEFAULT_TASKS[args.tier]})")
        return 0
    out = Path(args.out) / args.tier
    out.mkdir(parents=True, exist_ok=True)
    summary = None
    if not args.claims_only:
        try:
            summary = run_matrix(runs, args.out, args.executor, args.workers, not args.no_progress, command,
                                 args.ray_address)
        except RunnerError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        counts: dict[str, int] = {}
        for o in summary["outcomes"].values():
            counts[o["status"]] = counts.get(o["status"], 0) + 1
        _atomic_json(out / "matrix.json", {"command": command, "tier": args.tier, "seeds": args.seeds,
                                           "runs": [r.key for r in runs], "counts": counts,
                                           "time": datetime.datetime.now(datetime.timezone.utc).isoformat(), **summary})
        print(f"matrix: {len(runs)} runs, {counts}, wall {summary['wall_time_s']:.1f} s "
              f"({summary['executor']}, {summary['workers']} workers)")
    results, problems = collect_results(args.out, args.tier, runs)
    for p in problems:
        print(f"  {p}", file=sys.stderr)
    claim_ids = sorted({TASKS[r.task].claim for r in runs if TASKS[r.task].claim})
    verdicts = claims_mod.evaluate_claims(results, only=claim_ids)
    _atomic_json(out / "claims.json", {"tier": args.tier, "n_results": len(results), "problems": problems,
                                       "verdicts": [v.to_dict() for v in verdicts]})
    md = claims_mod.render_markdown(verdicts)
    (out / "claims.md").write_text(md)
    print(md)
    if summary is None:
        return 0
    bad = [k for k, o in summary["outcomes"].items() if o["status"] in ("failed", "blocked")]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
