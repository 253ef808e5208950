"""Release / CI gate: conformance suite + benchmark results compared with a stored baseline.

    python -m softq_ref.benchmarks.gate --baseline reports/baselines/smoke            # run everything
    python -m softq_ref.benchmarks.gate --baseline reports/baselines/smoke --results runs/x --skip-conformance
    python -m softq_ref.benchmarks.gate --write-baseline reports/baselines/smoke --results runs/smoke-5
    nox -s gate [-- ARGS]

Steps:
1. Conformance: `python -m softq_conformance` (the reference unless `--impl MOD:FACTORY`), or a given
   `--conformance-report`. Any fail or error fails the gate.
2. Results: `--results DIR`, or else the baseline's benchmark (same tier, tasks and seeds) run now
   into `--out` (default: a temporary folder). Result files are validated (`validate.py`); rejected files
   are printed. A baseline group without valid current results fails the gate (the run broke).
3. Comparison, per (task, variant) group present in the baseline, with one-sided tests of H1 "the current
   runs are worse than the baseline's":
   * the protocol's per-run statistic (`validate.PRIMARY_METRIC`: goals reached, max forward x, min
     distance to the target (lower is better), max travel, mean discounted return over fine-tuning):
     one-sided Mann-Whitney U (`stats.mw_less`; exact, or the exact permutation distribution with ties);
   * success fractions (multi-goal, swimmer, maze) are printed when lower; with `--test-success` they are
     tested too (one-sided Fisher exact, only where the baseline has successes, since otherwise no drop is
     possible). They are off by default because each test enlarges the Bonferroni family, and a success is a
     threshold on the statistic that is already tested.
   Family-wise error alpha (default 0.05) with Bonferroni over all m tests: a test is a **regression** when
   p < alpha / m. A drop that is not significant is printed as such but does not fail the gate. Tests that
   cannot reach alpha / m even at complete separation (too few runs) are flagged `underpowered`: at 5 vs 5
   runs the smallest Mann-Whitney p is 1/252 = 0.00397, so at most 12 tests can be decided at alpha 0.05
   (the stored smoke baseline has 11 groups).

Exit code: 0 pass; 1 conformance failure / error, a regression, a missing group or a benchmark run that
failed; 2 usage error or unreadable baseline.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import stats as st
from .tiers import TASKS
from .validate import PRIMARY_METRIC, load_conformance, load_json_file, load_results

__all__ = ["BASELINE_SCHEMA_VERSION", "baseline_from_results", "load_baseline", "compare", "main"]

BASELINE_SCHEMA_VERSION = 1
DEFAULT_ALPHA = 0.05
_FRACTION_PROTOCOLS = ("multigoal", "swimmer", "maze")


def baseline_from_results(results_dir: str, tier: str | None = None) -> tuple[dict, list]:
    loaded = load_results(results_dir, tier)
    groups: dict[str, dict] = {}
    for r in loaded.results:
        g = groups.setdefault(f"{r['task']}/{r['variant']}", {"task": r["task"], "variant": r["variant"],
                                                             "protocol": r["protocol"], "seeds": [], "metrics": {}})
        g["seeds"].append(r["seed"])
        metric, _ = PRIMARY_METRIC[r["protocol"]]
        g["metrics"].setdefault(metric, []).append(_num(r["metrics"].get(metric)))
        if r["protocol"] in _FRACTION_PROTOCOLS:
            g["metrics"].setdefault("success", []).append(bool(r["metrics"].get("success")))
    m = loaded.matrix or {}
    base = {"schema_version": BASELINE_SCHEMA_VERSION, "kind": "softq-gate-baseline", "tier": loaded.tier,
            "tasks": sorted({g["task"] for g in groups.values()}, key=list(TASKS).index),
            "seeds": sorted({s for g in groups.values() for s in g["seeds"]}),
            "source": {"results_dir": str(results_dir), "command": m.get("command"), "time_utc": m.get("time"),
                       "wall_time_s": m.get("wall_time_s"),
                       "git_commits": sorted({r["git_commit"] for r in loaded.results}),
                       "versions": loaded.results[0]["versions"] if loaded.results else {}},
            "groups": dict(sorted(groups.items()))}
    return base, loaded.rejected


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def load_baseline(path: str | os.PathLike) -> tuple[dict | None, str | None]:
    """A baseline.json (or a folder holding one); a results folder is turned into a baseline on the fly."""
    p = Path(path)
    f = p / "baseline.json" if p.is_dir() else p
    if p.is_dir() and not f.exists():
        base, _ = baseline_from_results(str(p))
        if not base["groups"]:
            return None, f"{p}: no baseline.json and no valid result files"
        return base, None
    obj, err = load_json_file(f)
    if err is not None:
        return None, f"{f}: {err}"
    if not isinstance(obj, dict) or obj.get("kind") != "softq-gate-baseline":
        return None, f"{f}: not a gate baseline (kind {obj.get('kind') if isinstance(obj, dict) else None!r})"
    if obj.get("schema_version") != BASELINE_SCHEMA_VERSION:
        return None, f"{f}: schema_version {obj.get('schema_version')!r}; this gate reads {BASELINE_SCHEMA_VERSION}"
    for k in ("tier", "tasks", "seeds", "groups"):
        if k not in obj:
            return None, f"{f}: missing field {k!r}"
    return obj, None


def compare(baseline: dict, current: dict, alpha: float = DEFAULT_ALPHA, test_success: bool = False) -> dict:
    """Tests of every baseline group against the current results (both in baseline format).

    One test per group (its continuous statistic) unless `test_success` adds the Fisher tests of the
    success fractions to the family; success fractions are always reported."""
    tests, missing, info = [], [], []
    for key, bg in baseline["groups"].items():
        cg = current["groups"].get(key)
        if cg is None:
            missing.append(key)
            continue
        proto = bg["protocol"]
        metric, higher = PRIMARY_METRIC[proto]
        b = [x for x in bg["metrics"].get(metric, []) if x is not None]
        c = [x for x in cg["metrics"].get(metric, []) if x is not None]
        if b and not c:  # every current run of the group is NaN/inf/absent: broken, never silently dropped
            missing.append(key)
            continue
        if b and c:
            bb, cc = (b, c) if higher else ([-x for x in b], [-x for x in c])
            tests.append({"group": key, "metric": metric, "direction": "higher is better" if higher else "lower is better",
                          "test": "Mann-Whitney U one-sided (current worse)", "n_baseline": len(b), "n_current": len(c),
                          "baseline_median": _median(b), "current_median": _median(c),
                          "p": st.mw_less(cc, bb), "min_attainable_p": st.min_mw_p(len(c), len(b)),
                          "dropped": _median(cc) < _median(bb)})
        if proto in _FRACTION_PROTOCOLS:
            bs, cs = bg["metrics"].get("success", []), cg["metrics"].get("success", [])
            if cs and bs:
                info.append({"group": key, "metric": "success fraction", "baseline": sum(map(bool, bs)) / len(bs),
                             "current": sum(map(bool, cs)) / len(cs)})
            if test_success and sum(bs) > 0 and cs:
                s_c, s_b = sum(bool(x) for x in cs), sum(bool(x) for x in bs)
                tests.append({"group": key, "metric": "success fraction", "direction": "higher is better",
                              "test": "Fisher exact one-sided (current lower)", "n_baseline": len(bs), "n_current": len(cs),
                              "baseline_median": s_b / len(bs), "current_median": s_c / len(cs),
                              "p": st.fisher_less(s_c, len(cs), s_b, len(bs)),
                              "min_attainable_p": st.fisher_less(0, len(cs), s_b, len(bs)),
                              "dropped": s_c / len(cs) < s_b / len(bs)})
    m = max(1, len(tests))
    level = alpha / m
    for t in tests:
        t["level"] = level
        t["regression"] = bool(t["p"] < level)
        t["underpowered"] = bool(t["min_attainable_p"] >= level)
    return {"alpha": alpha, "m": len(tests), "level": level, "tests": tests, "missing": missing, "success_fractions": info,
            "regressions": [t for t in tests if t["regression"]]}


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return math.nan if not n else (s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2]))


def print_comparison(cmp: dict, file=None) -> None:
    file = file or sys.stdout
    print(f"\nbenchmark comparison: {cmp['m']} one-sided tests, family alpha {cmp['alpha']}, Bonferroni level "
          f"{cmp['level']:.3g} per test", file=file)
    w = max([len(t["group"]) for t in cmp["tests"]] + [5])
    print(f"{'group':<{w}}  {'metric':<24} {'baseline':>9} {'current':>9} {'p':>8}  result", file=file)
    for t in cmp["tests"]:
        res = ("REGRESSION" if t["regression"] else "drop, not significant" if t["dropped"] else "ok")
        if t["underpowered"]:
            res += " (underpowered: min p %.3g)" % t["min_attainable_p"]
        print(f"{t['group']:<{w}}  {t['metric']:<24} {t['baseline_median']:>9.4g} {t['current_median']:>9.4g} "
              f"{t['p']:>8.3g}  {res}", file=file)
    for x in cmp.get("success_fractions", []):
        if x["current"] < x["baseline"]:
            print(f"{x['group']:<{w}}  {'success fraction':<24} {x['baseline']:>9.4g} {x['current']:>9.4g} {'-':>8}  "
                  "lower (not tested; --test-success adds Fisher tests)", file=file)
    for k in cmp["missing"]:
        print(f"{k:<{w}}  MISSING: no valid current results for this baseline group (absent, or every run "
              "rejected or non-finite: see 'left out' above)", file=file)
    if cmp["regressions"]:
        print("\nregressed:", file=file)
        for t in cmp["regressions"]:
            print(f"  {t['group']} {t['metric']}: median {t['baseline_median']:.4g} -> {t['current_median']:.4g} "
                  f"({t['direction']}), {t['test']} p = {t['p']:.3g} < {t['level']:.3g}", file=file)


def _run_conformance(impl: str | None, out: Path, extra: list[str]) -> tuple[int, dict | None, str | None]:
    cmd = [sys.executable, "-m", "softq_conformance", "--out", str(out), "-q", *extra]
    if impl:
        cmd += ["--impl", impl]
    print("$ " + " ".join(cmd), flush=True)
    rc = subprocess.run(cmd).returncode
    reports = sorted(out.glob("*/report.json")) or sorted(out.glob("*/partial/report.json"))  # partial: --only
    if not reports:
        return rc, None, "the conformance run wrote no report.json"
    rep, err = load_conformance(reports[0])
    return rc, rep, err


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m softq_ref.benchmarks.gate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default="reports/baselines/smoke", help="baseline.json or its folder (default %(default)s)")
    ap.add_argument("--results", default=None, help="results to judge (default: run the baseline's benchmark now)")
    ap.add_argument("--out", default=None, help="where to run the benchmark (default: a temporary folder)")
    ap.add_argument("--workers", type=int, default=None, help="parallel benchmark runs (default: CPU cores)")
    ap.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="family-wise alpha (Bonferroni over tests)")
    ap.add_argument("--test-success", action="store_true",
                    help="also test success fractions (Fisher exact, one-sided); adds tests to the Bonferroni family")
    ap.add_argument("--impl", default=None, help="conformance: package.module:factory (default: the reference)")
    ap.add_argument("--conformance-report", default=None, help="use this conformance report.json instead of running the suite")
    ap.add_argument("--conformance-out", default=None, help="where the conformance suite writes its report (default: a temporary folder)")
    ap.add_argument("--conformance-args", default="", help="extra arguments for softq_conformance (quoted)")
    ap.add_argument("--skip-conformance", action="store_true", help="compare benchmarks only")
    ap.add_argument("--write-baseline", default=None, metavar="DIR",
                    help="write DIR/baseline.json from --results (or from a fresh run) and exit")
    ap.add_argument("--json", default=None, help="also write the gate's findings to this JSON file")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    findings: dict[str, Any] = {"conformance": None, "benchmark": None}
    failed: list[str] = []

    if args.write_baseline:
        if not args.results:
            print("error: --write-baseline needs --results DIR (a benchmark run to record)", file=sys.stderr)
            return 2
        base, rejected = baseline_from_results(args.results)
        for x in rejected:
            print(f"left out: {x.path}: {x.reason}", file=sys.stderr)
        if not base["groups"]:
            print(f"error: no valid results under {args.results}", file=sys.stderr)
            return 2
        d = Path(args.write_baseline)
        d.mkdir(parents=True, exist_ok=True)
        (d / "baseline.json").write_text(json.dumps(base, indent=2) + "\n")
        print(f"wrote {d / 'baseline.json'}: tier {base['tier']}, {len(base['groups'])} groups, seeds {base['seeds']}")
        return 0

    baseline, err = load_baseline(args.baseline)
    if err is not None:
        print(f"error: baseline: {err}", file=sys.stderr)
        return 2
    if args.results is not None and not Path(args.results).is_dir():
        print(f"error: --results {args.results} does not exist (or is not a folder)", file=sys.stderr)
        return 2
    if args.conformance_report is not None and not Path(args.conformance_report).is_file():
        print(f"error: --conformance-report {args.conformance_report} does not exist", file=sys.stderr)
        return 2
    temporary: list[Path] = []  # removed at the end when the gate passes; kept (and named) when it fails

    # 1. conformance
    if args.conformance_report:
        rep, cerr = load_conformance(args.conformance_report)
        crc = None
    elif args.skip_conformance:
        rep, cerr, crc = None, None, None
    else:
        tmp = Path(args.conformance_out or tempfile.mkdtemp(prefix="softq-gate-conf-"))
        if not args.conformance_out:
            temporary.append(tmp)
        crc, rep, cerr = _run_conformance(args.impl, tmp, args.conformance_args.split())
    if cerr is not None:
        failed.append(f"conformance report unusable: {cerr}")
    elif rep is not None:
        s = rep["summary"]
        bad = [x for x in rep["specs"] if x["status"] in ("fail", "error")]
        findings["conformance"] = {"implementation": rep["implementation"], "summary": s, "exit_code": crc,
                                   "failing": [x["id"] for x in bad]}
        print(f"\nconformance {rep['implementation']} {rep['version']}: " + ", ".join(f"{k} {v}" for k, v in s.items()))
        for x in bad:
            print(f"  {x['status'].upper()} {x['id']}: {str(x.get('message', ''))[:150]}")
        if bad or (crc not in (None, 0)):
            failed.append(f"conformance: {len(bad)} spec(s) failed or errored" + (f" (exit {crc})" if crc else ""))

    # 2. results
    results = args.results
    if results is None:
        results = args.out or tempfile.mkdtemp(prefix="softq-gate-bench-")
        if not args.out:
            temporary.append(Path(results))
        cmd = [sys.executable, "-m", "softq_ref.benchmarks", "--tier", baseline["tier"], "--tasks", ",".join(baseline["tasks"]),
               "--seeds", ",".join(map(str, baseline["seeds"])) + ("," if len(baseline["seeds"]) == 1 else ""),
               "--out", str(results), "--no-progress"]
        if args.workers:
            cmd += ["--workers", str(args.workers)]
        print("$ " + " ".join(cmd), flush=True)
        n_runs = sum(len(g["seeds"]) for g in baseline["groups"].values())
        brc = _run_with_progress(cmd, Path(results), n_runs)
        if brc != 0:
            failed.append(f"benchmark run exited {brc} (failed or blocked runs)")
    current, rejected = baseline_from_results(results, baseline["tier"])
    for x in rejected:
        print(f"left out: {x.path}: {x.reason}")

    # 3. comparison
    cmp = compare(baseline, current, args.alpha, args.test_success)
    print_comparison(cmp)
    findings["benchmark"] = {**cmp, "results": str(results), "baseline": str(args.baseline),
                             "rejected": [x.to_dict() for x in rejected]}
    if cmp["regressions"]:
        failed.append(f"{len(cmp['regressions'])} significant regression(s)")
    if cmp["missing"]:
        failed.append(f"{len(cmp['missing'])} baseline group(s) without current results")
    wall = time.perf_counter() - t0
    findings.update(failed=failed, wall_time_s=wall, exit_code=1 if failed else 0)
    if args.json:
        Path(args.json).write_text(json.dumps(findings, indent=2, default=str) + "\n")
    print(f"\ngate: {'FAIL' if failed else 'PASS'} in {wall:.1f} s" + ("".join(f"\n  - {f}" for f in failed)))
    for d in temporary:
        if failed:
            print(f"kept for inspection: {d}")
        else:
            shutil.rmtree(d, ignore_errors=True)
    return 1 if failed else 0


def _run_with_progress(cmd: list[str], results: Path, n_runs: int, every_s: float = 30.0) -> int:
    """Run the benchmark, printing one line every `every_s` seconds: finished runs (result.json files), elapsed, ETA."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    try:
        while True:
            try:
                return proc.wait(timeout=every_s)
            except subprocess.TimeoutExpired:
                done = sum(1 for _ in results.rglob("result.json"))
                el = time.monotonic() - t0
                eta = f", ETA ~{el / done * (n_runs - done):.0f} s" if 0 < done < n_runs else ""
                print(f"  smoke runs: {done}/{n_runs} finished, {el:.0f} s elapsed{eta}", flush=True)
    except BaseException:
        proc.kill()
        raise


if __name__ == "__main__":
    raise SystemExit(main())
