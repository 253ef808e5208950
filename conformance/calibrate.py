"""False-alarm harness: run specs on an implementation (default: the reference) over many master seeds.

    python -m softq_conformance.calibrate --specs trained --seeds verification --workers 2
    python -m softq_conformance.calibrate --specs all --seeds verification:20 --out reports/conformance/calibration/full
    python -m softq_conformance.calibrate --specs D,ALG1.bandit_optimum --seeds 9000-9009 --purpose exploration

A verdict on the reference that is not `pass` is a false alarm. Per spec the harness writes the number of
false alarms, the rate, its exact one-sided 95% upper bound (Clopper-Pearson) and the budget the spec
claims, plus every seed's measured statistics, so margins can be set from the measured distribution.

Seeds have a purpose (conformance/calibration_seeds.toml): specs are tuned on `calibration` seeds and
their guarantees are measured on `verification` seeds; the two sets are disjoint and the harness
refuses a run that would mix them or tune on verification seeds. Each seed's result is written
atomically to its own file, so an interrupted run resumes where it stopped (rerun the same command).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

__all__ = ["SeedPlan", "load_seed_plan", "parse_seeds", "run_calibration", "summarize", "exact_upper_bound", "main"]

_SEEDS_FILE = Path(__file__).with_name("calibration_seeds.toml")
PURPOSES = ("calibration", "verification", "exploration")


# -- seeds and their purpose ------------------------------------------------------------------------------
class SeedPlan:
    """The declared seed sets: calibration (tuning), verification (guarantees), disjoint."""

    def __init__(self, sets: dict[str, list[int]], notes: dict[str, str]):
        self.sets, self.notes = sets, notes
        cal, ver = set(sets.get("calibration", ())), set(sets.get("verification", ()))
        both = sorted(cal & ver)
        if both:
            raise ValueError(f"{_SEEDS_FILE.name}: seeds {both[:10]} are listed both for calibration and verification; "
                             "the sets must be disjoint")

    def purpose_of(self, seeds: list[int]) -> str | None:
        for purpose, members in self.sets.items():
            if set(seeds) <= set(members):
                return purpose
        return None


def _expand(ranges: list[Any]) -> list[int]:
    out: list[int] = []
    for r in ranges:
        if isinstance(r, int):
            out.append(r)
        else:
            lo, hi = r
            out.extend(range(int(lo), int(hi) + 1))
    return out


def load_seed_plan(path: Path = _SEEDS_FILE) -> SeedPlan:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return SeedPlan({k: _expand(v["seeds"]) for k, v in data.items()},
                    {k: " ".join(str(v.get("note", "")).split()) for k, v in data.items()})


def parse_seeds(text: str, plan: SeedPlan) -> list[int]:
    """`verification`, `verification:20` (the first 20), `1000-1099`, or `3,5,8`."""
    name, _, count = text.partition(":")
    if name in plan.sets:
        seeds = plan.sets[name]
        return seeds[: int(count)] if count else list(seeds)
    seeds: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"--seeds {text!r}: expected a purpose name ({', '.join(plan.sets)}[:N]), a range A-B "
                             "or a comma-separated list of non-negative integers")
        seeds.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    return seeds


def select_specs(text: str) -> list[str]:
    """`trained` (specs marked trained = true), `all`, or comma-separated ids / families."""
    from softq_specs import load_check_specs

    specs = load_check_specs()
    if text == "all":  # the default profile: what `python -m softq_conformance` runs
        return [s for s in specs if specs[s].extra.get("profile", "default") == "default"]
    if text == "trained":
        return [s for s, v in specs.items() if v.extra.get("trained")]
    out: list[str] = []
    for sel in (s.strip() for s in text.split(",")):
        hit = [k for k, v in specs.items() if sel in (k, v.family)]
        if not hit:
            raise ValueError(f"--specs: {sel!r} matches no spec id or family; known: {sorted(specs)}")
        out += [h for h in hit if h not in out]
    return out


# -- running ------------------------------------------------------------------------------------------------
def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _run_seed(impl_ref: str, spec_ids: list[str], seed: int, profile: str, first_run_only: bool = False) -> dict[str, Any]:
    """Worker: one master seed, the given specs in order (D.* share one fit within a process).

    first_run_only: trained specs run one training (max_runs = 1), to measure the per-run failure rate alone."""
    import dataclasses

    import torch

    from softq_specs import load_check_specs

    from . import runner
    from .adapter import load_adapter
    from .hyp import profile_settings

    torch.set_num_threads(1)
    runner._import_checks()
    specs = load_check_specs()
    adapter = load_adapter(impl_ref)
    hs = profile_settings(profile)
    hs._softq_profile = profile  # type: ignore[attr-defined]
    out = {}
    for sid in spec_ids:
        spec = specs[sid]
        if first_run_only and spec.extra.get("trained"):
            spec = dataclasses.replace(spec, params={**spec.params, "max_runs": 1})
        if hasattr(runner, "_run_spec"):  # the path of a user's run, isolation included
            r = runner._run_spec(spec, adapter, runner.RunOptions(master_seed=seed, impl_ref=impl_ref), hs)
        else:  # pragma: no cover - runners without per-spec isolation
            r = runner.run_one(spec, adapter, seed, hs, impl_ref)
        out[sid] = {"status": r.status, "message": r.message, "measured": r.measured,
                    "duration_s": round(r.duration_s, 3)}
    return {"seed": seed, "results": out}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def run_calibration(impl_ref: str, spec_ids: list[str], seeds: list[int], out: Path, purpose: str,
                    workers: int = 2, profile: str = "ci", progress: bool = True,
                    first_run_only: bool = False) -> dict[str, Any]:
    """Run `spec_ids` on every seed not yet done under `out`; returns the summary (also written to out)."""
    from .report import environment_metadata

    per_seed = out / "seeds"
    per_seed.mkdir(parents=True, exist_ok=True)
    for orphan in per_seed.glob(".*.tmp*"):  # an interrupted atomic write
        orphan.unlink()
    todo = []
    for s in seeds:
        f = per_seed / f"{s}.json"
        if f.exists():
            done = json.loads(f.read_text(encoding="utf-8"))["results"]
            missing = [sid for sid in spec_ids if sid not in done]
            if missing:
                todo.append((s, missing))
        else:
            todo.append((s, list(spec_ids)))
    meta = {"implementation": impl_ref, "purpose": purpose, "specs": spec_ids, "seeds": seeds, "profile": profile,
            "first_run_only": first_run_only,
            "git_commit": _git_commit(), "command": " ".join([Path(sys.executable).name, "-m",
                                                              "softq_conformance.calibrate", *sys.argv[1:]]),
            "environment": environment_metadata(-1, profile)}
    meta["environment"].pop("master_seed", None)
    _write_atomic(out / "run.json", json.dumps(meta, indent=2))
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc=f"calibrate {len(spec_ids)} spec(s)", unit="seed", mininterval=5)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        futs = {pool.submit(_run_seed, impl_ref, ids, s, profile, first_run_only): s for s, ids in todo}
        for fut in as_completed(futs):
            s = futs[fut]
            res = fut.result()
            for r in res["results"].values():  # a seed's specs may come from several invocations
                r["git_commit"] = meta["git_commit"]
            f = per_seed / f"{s}.json"
            if f.exists():  # merge with specs run earlier on this seed
                old = json.loads(f.read_text(encoding="utf-8"))
                old["results"].update(res["results"])
                res = old
            res.setdefault("git_commit", meta["git_commit"])
            res["purpose"] = purpose
            _write_atomic(f, json.dumps(res, indent=1))
            if bar is not None:
                bar.update()
                bad = [k for k, v in res["results"].items() if v["status"] != "pass"]
                if bad:
                    bar.write(f"seed {s}: not pass: {', '.join(bad)}")
    if bar is not None:
        bar.close()
    summary = summarize(out, spec_ids, seeds, purpose)
    summary["wall_time_s_this_invocation"] = round(time.perf_counter() - t0, 1)
    _write_atomic(out / "summary.json", json.dumps(summary, indent=2))
    _write_atomic(out / "summary.md", render_summary(summary, meta))
    return summary


# -- summarising --------------------------------------------------------------------------------------------
def exact_upper_bound(failures: int, n: int, confidence: float = 0.95) -> float:
    """One-sided exact (Clopper-Pearson) upper confidence bound on a binomial rate."""
    from scipy.stats import beta

    if n == 0:
        return 1.0
    return 1.0 if failures >= n else float(beta.ppf(confidence, failures + 1, n - failures))


def summarize(out: Path, spec_ids: list[str], seeds: list[int], purpose: str) -> dict[str, Any]:
    from softq_specs import load_check_specs

    specs = load_check_specs()
    rows = {}
    any_fail = {}
    for sid in spec_ids:
        n = fails = errors = runs_total = runs_failed = 0
        failing_seeds, durations = [], []
        for s in seeds:
            f = out / "seeds" / f"{s}.json"
            if not f.exists():
                continue
            r = json.loads(f.read_text(encoding="utf-8"))["results"].get(sid)
            if r is None or r["status"] == "not_applicable":
                continue
            n += 1
            durations.append(r["duration_s"])
            runs = r["measured"].get("runs") if isinstance(r.get("measured"), dict) else None
            if isinstance(runs, list) and runs:  # a trained spec (conformance/trained.py)
                # Only each seed's first run: a fixed number of iid trials (later runs happen only after a
                # failure, so pooling them would make the count depend on the stopping rule).
                runs_total += 1
                runs_failed += runs[0].get("status") != "pass"
            if r["status"] != "pass":
                fails += 1
                errors += r["status"] == "error"
                failing_seeds.append(s)
                any_fail.setdefault(s, []).append(sid)
        rows[sid] = {"seeds_run": n, "false_alarms": fails, "of_which_errors": errors,
                     "rate": fails / n if n else None, "upper_95": exact_upper_bound(fails, n),
                     "budget": specs[sid].false_alarm, "failing_seeds": failing_seeds,
                     "mean_duration_s": round(sum(durations) / len(durations), 2) if durations else None}
        if runs_total:
            k = int(specs[sid].params.get("max_runs", 1))
            ub = exact_upper_bound(runs_failed, runs_total)
            rows[sid].update(runs=runs_total, runs_failed=runs_failed, run_rate=runs_failed / runs_total,
                             run_upper_95=ub, max_runs=k, derived_bound=ub**k)
    n_all = sum((out / "seeds" / f"{s}.json").exists() for s in seeds)
    fw = len(any_fail)
    return {"purpose": purpose, "seeds": [min(seeds), max(seeds)] if seeds else [], "n_seeds": len(seeds),
            "specs": rows, "family_wise": {"seeds_run": n_all, "seeds_with_a_false_alarm": fw,
                                            "rate": fw / n_all if n_all else None,
                                            "upper_95": exact_upper_bound(fw, n_all),
                                            "budget_sum": sum(specs[s].false_alarm for s in spec_ids),
                                            "failing_seeds": {str(k): v for k, v in sorted(any_fail.items())}}}


def render_summary(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    fw = summary["family_wise"]
    lines = [f"# False-alarm calibration: {meta['implementation']}", "",
             f"Purpose of these seeds: **{summary['purpose']}**; master seeds {summary['seeds'][0]}-{summary['seeds'][1]} "
             f"({summary['n_seeds']} seeds); git {meta['git_commit'][:12]}; command `{meta['command']}`.", "",
             "A verdict other than pass on the reference is a false alarm. Upper bound: exact one-sided 95% "
             "(Clopper-Pearson).", "",
             "| spec | seeds | false alarms | rate | 95% upper bound | budget | mean time (s) | failing seeds |",
             "|---|---|---|---|---|---|---|---|"]
    for sid, r in summary["specs"].items():
        rate = "-" if r["rate"] is None else f"{r['rate']:.3f}"
        lines.append(f"| `{sid}` | {r['seeds_run']} | {r['false_alarms']} | {rate} | {r['upper_95']:.3g} | "
                     f"{r['budget']:.1e} | {r['mean_duration_s']} | {', '.join(map(str, r['failing_seeds'][:20]))} |")
    trained = {k: r for k, r in summary["specs"].items() if "runs" in r}
    if trained:
        lines += ["", "Trained specs: a verdict passes at the first of max_runs independent runs that meets the "
                  "criterion, so its false-alarm rate is at most (per-run failure rate)^max_runs. The per-run rate "
                  "counts each seed's first run (a fixed number of independent runs).", "",
                  "| spec | first runs | failed | per-run rate | 95% upper bound | max_runs | derived verdict bound | budget |",
                  "|---|---|---|---|---|---|---|---|"]
        for sid, r in trained.items():
            lines.append(f"| `{sid}` | {r['runs']} | {r['runs_failed']} | {r['run_rate']:.3f} | {r['run_upper_95']:.3g} | "
                         f"{r['max_runs']} | {r['derived_bound']:.2g} | {r['budget']:.1e} |")
    lines += ["", f"Family-wise (any of these specs fails on a seed): {fw['seeds_with_a_false_alarm']} of "
              f"{fw['seeds_run']} seeds, 95% upper bound {fw['upper_95']:.3g}; sum of the specs' budgets "
              f"{fw['budget_sum']:.2e}.", ""]
    return "\n".join(lines)


def _first_runs(folder: Path, sid: str) -> dict[int, bool]:
    """seed -> did that seed's first training run of `sid` fail, from a folder's per-seed files."""
    out: dict[int, bool] = {}
    for f in (folder / "seeds").glob("*.json"):
        r = json.loads(f.read_text(encoding="utf-8"))["results"].get(sid)
        if r is None or r["status"] == "not_applicable":
            continue
        runs = r["measured"].get("runs") if isinstance(r.get("measured"), dict) else None
        # A check from before trained.py (no run list) ran one training per verdict: the verdict is the run.
        out[int(f.stem)] = (runs[0].get("status") if isinstance(runs, list) and runs else r["status"]) != "pass"
    return out


def _collect(root: Path, specs: dict) -> tuple[dict, dict]:
    """Per spec, from the verification folders under root: the verdict row with the most seeds (folders
    that ran whole verdicts), and the per-run counts (failed, runs, folders) of trained specs, pooled over
    every verification folder by seed. Each seed's first run counts once (a seed run in two folders is the
    same first run), so no folder is chosen for its result and more fresh seeds only tighten the bound."""
    verdicts: dict[str, tuple[str, dict]] = {}
    pooled: dict[str, dict[int, bool]] = {}
    sources: dict[str, list[str]] = {}
    for f in sorted(root.glob("*/summary.json")):
        summ = json.loads(f.read_text(encoding="utf-8"))
        if summ.get("purpose") != "verification":
            continue
        run_meta = f.with_name("run.json")
        first_only = run_meta.exists() and json.loads(run_meta.read_text(encoding="utf-8")).get("first_run_only")
        for sid, row in summ["specs"].items():
            if sid not in specs or not row["seeds_run"]:
                continue
            if not first_only and (sid not in verdicts or row["seeds_run"] > verdicts[sid][1]["seeds_run"]):
                verdicts[sid] = (f.parent.name, row)
            if "runs" in row or specs[sid].extra.get("trained"):
                runs = _first_runs(f.parent, sid)
                new = {s: failed for s, failed in runs.items() if s not in pooled.get(sid, {})}
                if new:
                    pooled.setdefault(sid, {}).update(new)
                    sources.setdefault(sid, []).append(f.parent.name)
    per_run = {sid: (sum(runs.values()), len(runs), ", ".join(sources[sid])) for sid, runs in pooled.items()}
    return verdicts, per_run


def render_guarantees(root: Path) -> str:
    """The guarantees table from every verification summary under `root`.

    Per spec: its budget, the fresh-seed verdict counts and, for trained specs, the per-run failure counts
    and the derived bound (per-run upper bound)^max_runs."""
    from softq_specs import load_check_specs

    specs = load_check_specs()
    verdicts, per_run = _collect(root, specs)
    lines = ["| spec | profile | budget | verdicts on fresh seeds: false alarms / seeds (95% upper bound) | "
             "per-run failures / runs | derived bound (per-run bound ^ max_runs) | source |",
             "|---|---|---|---|---|---|---|"]
    fw_default = fw_derived = 0.0
    unmeasured: list[str] = []
    over_budget: list[str] = []
    for sid, spec in specs.items():
        if spec.kind != "statistical" and sid not in verdicts:
            continue
        prof = spec.extra.get("profile", "default")
        folder, row = verdicts.get(sid, ("-", None))
        verdict = "not measured" if row is None else f"{row['false_alarms']} / {row['seeds_run']} ({row['upper_95']:.3g})"
        bound = spec.false_alarm  # z-tests on independent draws: the budget is the bound
        runs = derived = ""
        if sid in per_run:
            failed, n, run_folder = per_run[sid]
            k = int(spec.params.get("max_runs", 1))
            ub = exact_upper_bound(failed, n)
            bound = ub**k
            runs, derived = f"{failed} / {n}", f"{ub:.3g}^{k} = {ub ** k:.2g}"
            if bound > spec.false_alarm:
                derived += " **over its budget**"
                over_budget.append(sid)
            folder = folder if run_folder == folder else f"{folder}; first runs: {run_folder}"
        elif row is None:
            unmeasured.append(sid)
        if prof == "default":
            fw_default += spec.false_alarm
            fw_derived += bound
        lines.append(f"| `{sid}` | {prof} | {spec.false_alarm:.1e} | {verdict} | {runs} | {derived} | `{folder}` |")
    lines += ["", f"Sum of the default profile's statistical budgets: {fw_default:.2e}. Family-wise bound of a default "
              f"run by measurement (union bound; trained specs at their derived bound, the other statistical specs at "
              f"their budget): {fw_derived:.2e}."]
    if over_budget:
        lines.append(f"Derived bound above the spec's own budget (raise max_runs, chosen on calibration seeds): "
                     f"{', '.join(over_budget)}.")
    if unmeasured:
        lines.append(f"Not yet measured on fresh seeds (counted at their budget): {', '.join(unmeasured)}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m softq_conformance.calibrate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--impl", default="softq_conformance.reference:reference")
    ap.add_argument("--specs", default="trained", help="'trained', 'all' (the default profile) or ids/families")
    ap.add_argument("--seeds", default="verification", help="purpose[:N] from calibration_seeds.toml, A-B or a list")
    ap.add_argument("--purpose", default=None, choices=PURPOSES,
                    help="what the seeds are used for; inferred from calibration_seeds.toml when omitted")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--profile", default="ci", choices=["ci", "thorough"])
    ap.add_argument("--out", default=None, help="default reports/conformance/calibration/<purpose>")
    ap.add_argument("--summary-only", action="store_true", help="summarize the seeds already under --out; run nothing")
    ap.add_argument("--first-run-only", action="store_true",
                    help="trained specs run one training each (max_runs = 1): measures the per-run failure rate")
    ap.add_argument("--guarantees", default=None, metavar="ROOT",
                    help="write ROOT/GUARANTEES.md from the verification summaries under ROOT; run nothing")
    args = ap.parse_args(argv)
    if args.guarantees:
        root = Path(args.guarantees)
        text = render_guarantees(root)
        _write_atomic(root / "GUARANTEES.md", "# Measured false-alarm rates (reference, fresh seeds)\n\n"
                      "Generated by `python -m softq_conformance.calibrate --guarantees "
                      f"{args.guarantees}` from the verification folders beside this file.\n\n" + text)
        print(text)
        return 0
    try:
        plan = load_seed_plan()
        seeds = parse_seeds(args.seeds, plan)
        spec_ids = select_specs(args.specs)
        declared = plan.purpose_of(seeds)
        purpose = args.purpose or declared
        if purpose is None:
            raise ValueError(f"seeds {args.seeds!r} do not lie within one declared set of {_SEEDS_FILE.name}; "
                             "pass --purpose exploration for ad-hoc runs")
        if declared is not None and purpose != declared:
            raise ValueError(f"seeds {args.seeds!r} are declared for {declared!r} in {_SEEDS_FILE.name}; "
                             f"they cannot be used for {purpose!r}")
        if purpose != "verification" and set(seeds) & set(plan.sets.get("verification", ())):
            raise ValueError("verification seeds may only be used to verify, never to calibrate or explore")
    except (ValueError, OSError) as exc:
        print(f"calibrate: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out or f"reports/conformance/calibration/{purpose}")
    if args.summary_only:
        if not (out / "run.json").exists():
            print(f"calibrate: no calibration run under {out} (run.json missing); run without --summary-only first",
                  file=sys.stderr)
            return 2
        meta = json.loads((out / "run.json").read_text(encoding="utf-8"))
        summary = summarize(out, spec_ids, seeds, purpose)
        _write_atomic(out / "summary.json", json.dumps(summary, indent=2))
        _write_atomic(out / "summary.md", render_summary(summary, meta))
        print(render_summary(summary, meta))
        return 0
    print(f"calibrate: {len(spec_ids)} spec(s) x {len(seeds)} {purpose} seed(s) -> {out}", flush=True)
    summary = run_calibration(args.impl, spec_ids, seeds, out, purpose, args.workers, args.profile,
                              first_run_only=args.first_run_only)
    print(render_summary(summary, json.loads((out / "run.json").read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
