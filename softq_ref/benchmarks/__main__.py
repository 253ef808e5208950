"""CLI: python -m softq_ref.benchmarks --tier ci --tasks multigoal,swimmer --seeds 5 --out runs/

Runs the matrix (skipping finished runs, resuming interrupted ones), then decides every claim that
has results and writes DIR/<tier>/matrix.json, claims.json and claims.md. Exit code 0 when every run
finished, 1 when some failed or were blocked, 2 on usage errors.

Other algorithms in the roles of SQL and DDPG (success-fraction tasks only):

    --algos sb3_sac,sb3_ddpg      variants sb3_sac and sb3_ddpg instead of sql and ddpg (VARIANT=ALGO
                                  names a variant, e.g. mine=mypkg.agents:make_agent); results under
                                  DIR/<tier>/<task>/<variant>/seed<k>/, summary in matrix-<variants>.json
    --roles sql=sb3_sac[,ddpg=V]  decide the claims with variant sb3_sac in the role of SQL (and V in
                                  that of DDPG; default: the variant named like the role), pooling the
                                  runs under the same DIR; written to claims-<sql variant>-vs-<ddpg variant>.{json,md}
                                  (with two --algos and no --roles: sql=first, ddpg=second)
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
from pathlib import Path

from ..cli import _unwritable
from ..config import ConfigError
from . import claims as claims_mod
from .cost import CostError, estimate, render_estimate
from .power import claim_power_analysis, render_power
from .runner import (DEFAULT_SEEDS_PER_PROCESS, EXECUTORS, RunnerError, _atomic_json, collect_results, run_matrix,
                     unfinished_runs)
from .throughput import load_table
from .tiers import DEFAULT_TASKS, GROUPS, TASKS, TIERS, default_seeds, matrix


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


_VARIANT_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _algos(text: str) -> list[tuple[str, str]]:
    """'sb3_sac,sb3_ddpg' -> [(variant, algo)]; 'mine=pkg.mod:make' names the variant of a factory path."""
    from ..training import ALGOS, is_factory_path

    out: list[tuple[str, str]] = []
    for item in (x.strip() for x in text.split(",") if x.strip()):
        variant, sep, algo = item.partition("=")
        variant, algo = (variant.strip(), algo.strip()) if sep else (item, item)
        if algo not in ALGOS and not is_factory_path(algo):
            raise argparse.ArgumentTypeError(
                f"unknown algo {algo!r}; accepted: {list(ALGOS)} or VARIANT=package.module:Factory")
        if not _VARIANT_NAME.match(variant):
            raise argparse.ArgumentTypeError(
                f"variant name {variant!r} is not a plain directory name; name it: VARIANT={algo} (letters, digits, _ . -)")
        if variant in {v for v, _ in out}:
            raise argparse.ArgumentTypeError(f"variant {variant!r} is given twice")
        out.append((variant, algo))
    if not out:
        raise argparse.ArgumentTypeError("expected at least one algo, e.g. --algos sb3_sac,sb3_ddpg")
    return out


def _roles(text: str) -> dict[str, str]:
    """'sql=sb3_sac,ddpg=sb3_ddpg' -> {role: variant}."""
    out: dict[str, str] = {}
    for item in (x.strip() for x in text.split(",") if x.strip()):
        role, sep, variant = (p.strip() for p in item.partition("="))
        if not sep or not variant:
            raise argparse.ArgumentTypeError(f"{item!r}: expected ROLE=VARIANT, e.g. sql=sb3_sac")
        out[role] = variant
    try:
        return claims_mod.check_roles(out)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _role_algos(roles: dict[str, str], algos: list[tuple[str, str]] | None) -> list[tuple[str, str]]:
    """(variant, algo) of the variants playing the roles: the algo from --algos, else the variant's own name."""
    from ..training import ALGOS

    named = dict(algos or [])
    out: list[tuple[str, str]] = []
    for variant in dict.fromkeys(roles.values()):
        algo = named.get(variant, variant)
        if algo not in ALGOS and variant not in named:
            raise ConfigError(f"--roles: variant {variant!r} is not a registered algo {list(ALGOS)}; "
                              f"name its algo with --algos {variant}=package.module:Factory")
        out.append((variant, algo))
    return out


def _roles_tag(roles: dict[str, str]) -> str:
    return f"{roles['sql']}-vs-{roles['ddpg']}"


_INVOCATION_KEYS = ("command", "time", "wall_time_s", "counts", "executor", "workers")


def _invocations(matrix_path: Path, this: dict) -> list[dict]:
    """Every invocation of this matrix, oldest first: those of the existing matrix.json, then `this`.

    A resumed matrix overwrites matrix.json; its history keeps the wall time of the earlier
    invocations, which the report adds up (the last invocation alone may have skipped most runs)."""
    try:
        old = json.loads(matrix_path.read_text())
    except (OSError, ValueError):
        old = None
    earlier: list[dict] = []
    if isinstance(old, dict):
        earlier = old.get("invocations") or [{k: old.get(k) for k in _INVOCATION_KEYS}]  # a file older than the history
    return [*earlier, this]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m softq_ref.benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tier", choices=sorted(TIERS), default="smoke")
    ap.add_argument("--tasks", default=None,
                    help=f"comma-separated tasks or groups (default: the tier's list). Tasks: {', '.join(TASKS)}; "
                         f"groups: {', '.join(GROUPS)}. Fine-tuning tasks add their pretraining task.")
    ap.add_argument("--seeds", type=_seeds, default=None,
                    help="N (seeds 0..N-1), a list 3,4,5 or a range 10-14, for every task (default: the tier's seeds "
                         "per task, tiers.DEFAULT_SEEDS: ci 5, point_maze 10, swimmer 6; smoke 1)")
    ap.add_argument("--out", default="runs", help="output root, results under OUT/<tier>/ (default runs/: git-ignored, "
                                                  "and where `nox -s report` looks for the newest results)")
    ap.add_argument("--executor", choices=EXECUTORS, default="process")
    ap.add_argument("--workers", type=int, default=None, help="parallel worker processes (default: CPU cores)")
    ap.add_argument("--seeds-per-process", type=int, default=None, metavar="S",
                    help="train up to S seeds of one task and variant stacked in one process (SQL and DDPG; "
                         f"default {DEFAULT_SEEDS_PER_PROCESS}); 1: one process per run. The cost estimate uses the "
                         "measured speed-up of each job's size (throughput.json's multiseed_speedup)")
    ap.add_argument("--ray-address", default=None, help="Ray cluster address (default: RAY_ADDRESS or a local instance)")
    ap.add_argument("--steps", type=int, default=None, help="override every run's steps (timing estimates only)")
    ap.add_argument("--algos", type=_algos, default=None, metavar="ALGO[,ALGO...]",
                    help="run these algorithms (registered names or VARIANT=package.module:Factory) instead of "
                         "sql and ddpg on the success-fraction tasks, e.g. sb3_sac,sb3_ddpg")
    ap.add_argument("--roles", type=_roles, default=None, metavar="ROLE=VARIANT[,...]",
                    help="decide the success-fraction claims with these variants in the roles sql / ddpg, "
                         "e.g. sql=sb3_sac,ddpg=sb3_ddpg; writes claims-<sql>-vs-<ddpg>.{json,md}")
    ap.add_argument("--claims-only", action="store_true", help="decide the claims from existing results; train nothing")
    ap.add_argument("--dry-run", action="store_true",
                    help="list the runs, print each claim's power analysis and the cost estimate, and exit")
    ap.add_argument("--throughput", default=None, metavar="FILE",
                    help="measured throughput table for the cost estimate (default: the committed "
                         "softq_ref/benchmarks/throughput.json)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    command = ["python", "-m", "softq_ref.benchmarks", *(sys.argv[1:] if argv is None else argv)]
    try:
        tasks = [t.strip() for t in args.tasks.split(",")] if args.tasks else None
        runs = matrix(args.tier, tasks, args.seeds, args.steps, args.algos)
        roles = args.roles
        if roles is None and args.algos is not None and len(args.algos) == 2:
            roles = {"sql": args.algos[0][0], "ddpg": args.algos[1][0]}  # positional: max-ent first
        claim_runs = runs if roles is None else matrix(args.tier, tasks, args.seeds, args.steps,
                                                       _role_algos(roles, args.algos))
        if args.algos is not None and not args.claims_only and not args.dry_run:
            from ..training import resolve_agent_factory

            for _, algo in args.algos:  # a missing extra or a bad factory path: a usage error, before any run
                resolve_agent_factory(algo)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.seeds_per_process is None:
        args.seeds_per_process = DEFAULT_SEEDS_PER_PROCESS
    if args.seeds_per_process < 1:
        print(f"error: --seeds-per-process {args.seeds_per_process}: expected an integer >= 1", file=sys.stderr)
        return 2
    workers = args.workers or os.cpu_count() or 1
    if args.dry_run:
        for r in runs:
            print(f"{r.key:<45} {r.algo:<5} {r.env_id:<32} steps={r.steps}" + (f" init_from={r.init_from}" if r.init_from else ""))
        print(f"{len(runs)} runs (tier {args.tier}; default tasks {DEFAULT_TASKS[args.tier]})")
    if args.algos is None or roles is not None:  # other algorithms without roles decide no claim
        for pa in _power_analyses(claim_runs, roles):
            print(render_power(pa))
    try:
        table = load_table(args.throughput)
        est = estimate(runs, table, args.seeds_per_process)
        if args.dry_run:
            print(render_estimate(est, workers))
        else:
            left = unfinished_runs(runs, args.out)[0]
            est_left = estimate(left, table, args.seeds_per_process) if left else None
            print(f"cost estimate: {est.core_s / 3600:.2f} core-h for {len(runs)} runs"
                  + (f"; {len(left)} not finished: {est_left.core_s / 3600:.2f} core-h, wall >= "
                     f"{est_left.wall_s(workers) / 3600:.2f} h on {workers} worker(s)" if est_left else "; all finished")
                  + " (a lower bound: the long tier took 1.2x its estimate, MEASURED.md; --dry-run for the table)")
    except (ValueError, CostError) as e:  # an unmeasured tier (smoke) or a bad table: no estimate, no failure
        if args.dry_run or args.throughput:
            print(f"no cost estimate: {e}")
    if args.dry_run:
        return 0
    out = Path(args.out) / args.tier
    reason = _unwritable(out)
    if reason:
        print(f"error: --out {args.out}: {reason}", file=sys.stderr)
        return 2
    from ..training import remove_orphaned_tmp

    for p in remove_orphaned_tmp(out):  # an interrupted matrix.json / claims.json write; run folders: on resume
        print(f"note: removed leftover temporary file {p}", file=sys.stderr)
    print(f"results: {out}/", flush=True)
    summary = None
    # the main matrix owns matrix.json / claims.json; other algorithms and role mappings get their own files
    matrix_name = "matrix.json" if args.algos is None else f"matrix-{'+'.join(v for v, _ in args.algos)}.json"
    claims_stem = "claims" if roles is None else f"claims-{_roles_tag(roles)}"
    if not args.claims_only:
        try:
            summary = run_matrix(runs, args.out, args.executor, args.workers, not args.no_progress, command,
                                 args.ray_address, seeds_per_process=args.seeds_per_process)
        except RunnerError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        counts: dict[str, int] = {}
        for o in summary["outcomes"].values():
            counts[o["status"]] = counts.get(o["status"], 0) + 1
        now = datetime.datetime.now(datetime.timezone.utc).isoformat()
        this = {"command": command, "time": now, "wall_time_s": summary["wall_time_s"], "counts": counts,
                "executor": summary["executor"], "workers": summary["workers"]}
        _atomic_json(out / matrix_name, {"command": command, "tier": args.tier,
                                           "seeds": args.seeds if args.seeds is not None else
                                           {t: len(default_seeds(args.tier, t)) for t in dict.fromkeys(r.task for r in runs)},
                                           "runs": [r.key for r in runs], "counts": counts, "time": now, **summary,
                                           "invocations": _invocations(out / matrix_name, this)})
        print(f"matrix: {len(runs)} runs, {counts}, wall {summary['wall_time_s']:.1f} s "
              f"({summary['executor']}, {summary['workers']} workers)")
    if args.algos is not None and roles is None:
        print("no claims decided: pass --roles sql=VARIANT,ddpg=VARIANT to compare these variants", file=sys.stderr)
    else:
        _decide_claims(args, claim_runs, roles, out / claims_stem)
    print(f"results in {out}/ (report: nox -s report -- --results {args.out})")
    if summary is None:
        return 0
    bad = [k for k, o in summary["outcomes"].items() if o["status"] in ("failed", "blocked")]
    return 1 if bad else 0


def _planned(runs: list, roles: dict[str, str] | None) -> dict[str, dict[str, int]]:
    """claim -> runs planned: {'sql': n, 'ddpg': n} (success fractions, by role) or {'per_variant': n}."""
    roles = claims_mod.check_roles(roles)
    out: dict[str, dict[str, int]] = {}
    by: dict[str, dict[tuple[str, str], int]] = {}
    for r in runs:
        claim = TASKS[r.task].claim
        if claim:
            d = by.setdefault(claim, {})
            d[(r.task, r.variant)] = d.get((r.task, r.variant), 0) + 1
    for claim, d in by.items():
        if claim in claims_mod.ROLE_CLAIMS:
            out[claim] = {role: sum(n for (_, v), n in d.items() if v == variant) for role, variant in roles.items()}
        else:
            out[claim] = {"per_variant": min(d.values())}
    return out


def _power_analyses(runs: list, roles: dict[str, str] | None) -> list:
    specs = claims_mod.claim_specs()
    return [claim_power_analysis(c, specs[c].params, plan) for c, plan in sorted(_planned(runs, roles).items())]


def _decide_claims(args: argparse.Namespace, runs: list, roles: dict[str, str] | None, stem: Path) -> None:
    """Verdicts from the finished results of `runs` (with `roles`), written to <stem>.json and <stem>.md."""
    results, problems = collect_results(args.out, args.tier, runs)
    for p in problems:
        print(f"  {p}", file=sys.stderr)
    claim_ids = sorted({TASKS[r.task].claim for r in runs if TASKS[r.task].claim})
    verdicts = claims_mod.evaluate_claims(results, only=claim_ids, roles=roles)
    pas = _power_analyses(runs, roles)
    head = {"tier": args.tier, "n_results": len(results), "problems": problems,
            "power_planned": [pa.to_dict() for pa in pas]}
    if roles is not None:
        head["roles"] = roles  # which variants played the roles sql and ddpg
    _atomic_json(stem.with_name(stem.name + ".json"), {**head, "verdicts": [v.to_dict() for v in verdicts]})
    md = claims_mod.render_markdown(verdicts)
    if pas:
        md += "\nPower analysis of the planned matrix (printed before running):\n\n```\n" + "\n".join(
            render_power(pa) for pa in pas) + "\n```\n"
    if roles is not None:
        md = "Roles: " + ", ".join(f"{r} <- `{v}`" for r, v in roles.items()) + "\n\n" + md
    stem.with_name(stem.name + ".md").write_text(md)
    print(md)


if __name__ == "__main__":
    raise SystemExit(main())
