"""Reproducibility report: REPORT.md + report.json + PNG figures from benchmark and conformance results.

    python -m softq_ref.benchmarks.report --results runs/ci-matrix \\
        --conformance reports/conformance/softq_ref/report.json --out reports/ci-2026-11-21
    nox -s report -- --results runs/ci-matrix          # default --out reports/<tier>-<date of the matrix>

Contents: the claims table (each paper claim with its source and the paper's number, our statistic with
a 95% CI, the test and the verdict, decided by `claims.py`, never re-decided here), aggregates across
seeds (mean, IQM, probability of improvement, with bootstrap CIs), the paper's figures, the conformance
summary of the implementation(s) involved, environment metadata and a "Left out" list of every result
file that was rejected, with the reason (see `validate.py`).

The same results give the same bytes: no generation timestamp or output path is written, statistics use
a fixed random state (`stats.py`), figures are deterministic (`figures.py`). The report's JSON carries
`REPORT_SCHEMA_VERSION`.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import sys
from collections import Counter, defaultdict
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from . import claims as claims_mod
from . import stats as st
from ..runtime import cpu_model
from .crossing import crossing_rows
from .report_markdown import _ci, _f, render_markdown
from .tiers import TASKS
from .validate import PRIMARY_METRIC, LoadedResults, Rejected, load_conformance, load_results

__all__ = ["REPORT_SCHEMA_VERSION", "build_report", "render_markdown", "write_report", "main"]

REPORT_SCHEMA_VERSION = 1
_PCT = 0.95


def _clean(x: Any) -> Any:
    """JSON-safe: NaN / inf become None (strict JSON), tuples lists, numpy scalars floats."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, bool) or x is None or isinstance(x, (str, int)):
        return x
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    return v if math.isfinite(v) else None


# -- claims ------------------------------------------------------------------------------------------------
def _claim_rows(results: list[dict]) -> list[dict]:
    specs = claims_mod.claim_specs()
    present = {TASKS[r["task"]].claim for r in results if TASKS[r["task"]].claim}
    verdicts = claims_mod.evaluate_claims(results, only=sorted(present)) if present else []
    rows = []
    for cid in sorted(specs):
        spec = specs[cid]
        v = next((x for x in verdicts if x.claim == cid), None)
        row: dict[str, Any] = {"claim": cid, "title": spec.title, "source": spec.source, "test": spec.params.get("test", ""),
                               "statistic": spec.params.get("statistic", "")}
        if v is None:
            row.update(verdict="not_run", paper=None, ours=None, ci95=None, tests={}, notes=["no valid results for this claim"],
                       paper_text=_paper_text(spec.params), ours_text="no results", test_text="-")
            rows.append(row)
            continue
        row.update(verdict=v.verdict, rule=v.rule, paper=v.paper, measured=v.measured, tests=v.tests, notes=list(v.notes),
                   paper_text=_paper_text(spec.params))
        if "sql_successes" in v.measured:
            m = v.measured
            ci_s = st.clopper_pearson(m["sql_successes"], m["sql_runs"])
            ci_d = st.clopper_pearson(m["ddpg_successes"], m["ddpg_runs"])
            row["ours"] = {"sql_fraction": m["sql_fraction"], "ddpg_fraction": m["ddpg_fraction"]}
            row["ci95"] = {"sql_fraction": ci_s, "ddpg_fraction": ci_d, "method": "Clopper-Pearson exact, 95%"}
            row["ours_text"] = (f"SQL {m['sql_successes']}/{m['sql_runs']} = {_f(m['sql_fraction'], 2)} {_ci(ci_s, 2)}; "
                                f"DDPG {m['ddpg_successes']}/{m['ddpg_runs']} = {_f(m['ddpg_fraction'], 2)} {_ci(ci_d, 2)}")
            t = v.tests
            if "p_claim_fisher_sql_gt_ddpg" in t:
                row["test_text"] = (f"Fisher exact one-sided SQL > DDPG p = {_f(t['p_claim_fisher_sql_gt_ddpg'])}; "
                                    f"DDPG > SQL p = {_f(t['p_reverse_fisher_ddpg_gt_sql'])}; binomial SQL < "
                                    f"p0 = {_f(t['p0_lowest_sql_rate_consistent_with_paper'])}: p = "
                                    f"{_f(t['p_paper_binom_sql_below_p0'])} (alpha {_f(t['alpha'])})")
            else:
                row["test_text"] = "-"
        else:  # curve claim: per task and comparison, difference of means with a 95% and the decisive CI
            ours, ci95, parts, tparts = {}, {}, [], []
            for name, iv in v.tests.get("intervals", {}).items():
                task, comp = name.split(": ", 1)
                a = v.measured.get(task, {}).get("sql_pretrained", [])
                b = v.measured.get(task, {}).get(comp.split(" - ", 1)[1], [])
                lo_hi = claims_mod.bootstrap_diff_ci(a, b, _PCT, int(v.tests.get("n_resamples", 10_000)),
                                                     int(v.tests.get("random_state", 0)))
                ours[name] = iv.get("mean_diff")
                ci95[name] = lo_hi
                parts.append(f"{name}: {_f(iv.get('mean_diff'))} {_ci(lo_hi)}")
                tparts.append(f"{_ci((iv['low'], iv['high']))}")
            row["ours"] = ours
            row["ci95"] = {**ci95, "method": "percentile bootstrap of the difference of means, 95% (claims.py's "
                                             "bootstrap_diff_ci, same random_state)"}
            row["ours_text"] = "; ".join(parts) if parts else "no comparisons"
            row["test_text"] = (f"percentile bootstrap CI of mean(SQL pretrained) - mean(DDPG variant), Bonferroni level "
                                f"{_f(v.tests.get('ci_level'), 4)} over {v.tests.get('comparisons')} comparisons: "
                                + ", ".join(tparts)) if tparts else "-"
        rows.append(row)
    return rows


def _paper_text(p: dict) -> str:
    if "paper_sql" in p:
        return (f"SQL {float(p['paper_sql']):.0%}, DDPG {float(p['paper_ddpg']):.0%} of runs "
                f"({p['paper_runs']} runs assumed)")
    return "SQL pretrained above DDPG from scratch and DDPG pretrained (curves, no number given)"


# -- aggregates ------------------------------------------------------------------------------------------
def _aggregates(results: list[dict]) -> list[dict]:
    groups: dict[str, dict[str, list[float]]] = defaultdict(dict)
    for r in results:
        metric, _ = PRIMARY_METRIC[r["protocol"]]
        x = r["metrics"].get(metric)
        groups[r["task"]].setdefault(r["variant"], [])
        if x is not None and math.isfinite(float(x)):
            groups[r["task"]][r["variant"]].append(float(x))
    rows = []
    for task in [t for t in TASKS if t in groups]:
        proto = TASKS[task].protocol
        metric, higher = PRIMARY_METRIC[proto]
        ref = "sql_pretrained" if proto == "finetune" else "sql"
        for variant, xs in sorted(groups[task].items(), key=lambda kv: (kv[0] != ref, kv[0])):
            row = {"task": task, "variant": variant, "metric": metric, "higher_is_better": higher, "n": len(xs),
                   "values": xs, "mean": _mean(xs), "mean_ci95": st.mean_ci(xs), "median": _median(xs),
                   "iqm": st.iqm(xs), "iqm_ci95": st.iqm_ci(xs)}
            if variant != ref and groups[task].get(ref):
                a, b = groups[task][ref], xs
                if not higher:
                    a, b = [-v for v in a], [-v for v in b]
                row["p_improvement_vs"] = ref
                row["p_improvement"] = st.prob_improvement(a, b)
                row["p_improvement_ci95"] = st.prob_improvement_ci(a, b)
            rows.append(row)
    return rows


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    if not n:
        return math.nan
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


# -- environment --------------------------------------------------------------------------------------------
def _pkg(name: str) -> str:
    try:
        return importlib_metadata.version(name)
    except importlib_metadata.PackageNotFoundError:
        return "not installed"


def _process_wall_sum(results: list[dict]) -> float:
    """Core-seconds of the runs: seeds trained stacked in one process (the same `group_seeds`) count once."""
    jobs: dict[tuple, float] = {}
    for r in results:
        group = tuple(r.get("group_seeds") or [r["seed"]])
        key = (r["task"], r["variant"], group)
        jobs[key] = max(jobs.get(key, 0.0), float(r.get("wall_time_s") or 0.0))
    return sum(jobs.values())


def _environment(loaded: LoadedResults) -> dict:
    rs = loaded.results
    versions = Counter(json.dumps(r["versions"], sort_keys=True) for r in rs)
    commits = Counter(r["git_commit"] for r in rs)
    commands = Counter(" ".join(map(str, r["command"])) for r in rs)
    m = loaded.matrix or {}
    seeds = sorted({r["seed"] for r in rs})
    env = {
        "tier": loaded.tier,
        "results_dir": loaded.root,
        "n_valid_results": len(rs),
        "seeds": seeds,
        "runs_per_group": {f"{t}/{v}": n for (t, v), n in sorted(Counter((r["task"], r["variant"]) for r in rs).items())},
        "git_commits_of_results": dict(commits.most_common()),
        "package_versions_of_results": [dict(json.loads(k), runs=n) for k, n in versions.most_common()],
        "commands_of_results": dict(commands.most_common()),
        "matrix_command": " ".join(map(str, m.get("command", []))) or None,
        "matrix_time_utc": m.get("time"),
        "matrix_wall_time_s": m.get("wall_time_s"),
        "matrix_executor": m.get("executor"),
        "matrix_workers": m.get("workers"),
        "matrix_counts": m.get("counts"),
        "matrix_invocations": [{k: i.get(k) for k in ("time", "wall_time_s", "counts")}
                               for i in m.get("invocations") or [] if isinstance(i, dict)],
        "run_wall_time_s_sum": sum(float(r.get("wall_time_s") or 0.0) for r in rs),
        "process_wall_time_s_sum": _process_wall_sum(rs),
        "run_wall_time_s_max": max((float(r.get("wall_time_s") or 0.0) for r in rs), default=0.0),
        "torch_threads_per_run": 1,  # runner._run_one: torch.set_num_threads(1) in every worker
        "report_machine": {"cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                           "python": platform.python_version()},
        "report_packages": {p: _pkg(d) for p, d in (("softq_ref", "softq-conformance"), ("numpy", "numpy"),
                                                    ("scipy", "scipy"), ("matplotlib", "matplotlib"), ("torch", "torch"),
                                                    ("gymnasium", "gymnasium"))},
    }
    return env


# -- conformance ---------------------------------------------------------------------------------------------
def _conformance(paths: list[str], rejected: list[Rejected]) -> list[dict]:
    out = []
    for p in paths:
        rep, err = load_conformance(p)
        if err is not None:
            rejected.append(Rejected(str(p), f"conformance report: {err}"))
            continue
        bad = [{"id": s["id"], "status": s["status"], "message": str(s.get("message", ""))[:200]}
               for s in rep["specs"] if s["status"] in ("fail", "error", "xfail")]
        e = rep["environment"]
        out.append({"path": str(p), "implementation": rep["implementation"], "version": rep["version"],
                    "summary": rep["summary"], "n_specs": len(rep["specs"]), "wall_time_s": rep.get("wall_time_s"),
                    "date_utc": e.get("date_utc"), "master_seed": e.get("master_seed"),
                    "profile": e.get("hypothesis_profile"), "conventions": rep.get("conventions", {}),
                    "not_passing": bad, "verdict": "pass" if not any(b["status"] in ("fail", "error") for b in bad)
                    else "fail"})
    return out


# -- build ----------------------------------------------------------------------------------------------------
def build_report(results_dir: str, conformance: list[str] | None = None, out: str | os.PathLike | None = None,
                 tier: str | None = None, run_id: str | None = None, figures: bool = True) -> dict:
    """Validate the results, decide the claims, compute the statistics, draw the figures into `out`."""
    loaded = load_results(results_dir, tier)
    rejected = list(loaded.rejected)
    conf = _conformance(list(conformance or []), rejected)
    rs = loaded.results
    figs, fig_notes = ([], [])
    if figures and out is not None and rs:
        from .figures import make_figures

        figs, fig_notes = make_figures(rs, Path(out) / "figures")
    claims = _claim_rows(rs)
    notes = list(loaded.notes)
    if loaded.tier == "smoke":
        notes.append("smoke tier: runs of a few hundred steps exercise the code paths; no verdict here is evidence "
                     "about the paper")
    commits = sorted({r["git_commit"] for r in rs})
    if len(commits) > 1:
        per = Counter(r["git_commit"][:10] for r in rs)
        notes.append(f"the results record {len(commits)} different git commits ("
                     + ", ".join(f"{c}: {n} runs" for c, n in sorted(per.items())) + "): each run records the HEAD "
                     "of the code that ran it when it finished, so runs of different code are pooled here (if HEAD "
                     "moved while a matrix ran in a shared working tree, a run is pinned only to the tree of its time)")
    if loaded.claims is not None:
        old = {v.get("claim"): v.get("verdict") for v in loaded.claims.get("verdicts", []) if isinstance(v, dict)}
        for c in claims:
            if c["claim"] in old and old[c["claim"]] != c["verdict"]:
                notes.append(f"{c['claim']}: the matrix's claims.json says {old[c['claim']]!r}, this report "
                             f"{c['verdict']!r} (the report uses only the valid results listed here)")
    if loaded.matrix is not None:
        bad = {k: o.get("status") for k, o in loaded.matrix.get("outcomes", {}).items()
               if isinstance(o, dict) and o.get("status") in ("failed", "blocked")}
        for k, s in sorted(bad.items()):
            notes.append(f"run {k} {s} in the matrix (matrix.json): it has no result and is not in the report")
    report = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "kind": "softq-reproducibility-report",
        "run_id": run_id or default_run_id(loaded),
        "tier": loaded.tier,
        "claims": claims,
        "aggregates": _aggregates(rs),
        "crossing": crossing_rows(rs),
        "figures": figs,
        "figure_notes": fig_notes,
        "conformance": conf,
        "environment": _environment(loaded),
        "tier_reductions": _reductions(loaded.tier, rs),
        "left_out": [x.to_dict() for x in sorted(rejected, key=lambda x: x.path)],
        "notes": notes,
        "statistics": {"ci_level": _PCT, "bootstrap": f"scipy.stats.bootstrap, percentile, {st.N_RESAMPLES} resamples, "
                                                      f"np.random.default_rng({st.SEED}) per interval",
                       "fractions": "Clopper-Pearson exact (scipy.stats.binomtest.proportion_ci)",
                       "iqm": "scipy.stats.trim_mean(x, 0.25)",
                       "probability_of_improvement": "P(X > Y) + 0.5 P(X = Y) = Mann-Whitney U / (n m); for metrics "
                                                     "where lower is better, of -X over -Y",
                       "verdicts": "softq_ref/benchmarks/claims.py (rules in specs/claims.toml)"},
    }
    return _clean(report)


def _reductions(tier: str | None, rs: list[dict]) -> list[dict]:
    """The tier's departures from Appendix D (tiers.py), for the protocols in the report."""
    from .tiers import TASKS as _TASKS, TIERS, tier_task

    if tier not in TIERS:
        return []
    out, seen = [], set()
    for task in dict.fromkeys(r["task"] for r in rs if r.get("task") in _TASKS):
        proto = _TASKS[task].protocol
        tt = tier_task(tier, task)
        # labelled by protocol when the task uses its protocol's entry (the ci tier), else by task (long: ant_*)
        label = proto if TIERS[tier].get(proto) is tt else task
        for red in tt.reductions:
            key = (red.what, red.why)
            if key in seen:
                continue
            seen.add(key)
            out.append({"protocol": label, "what": red.what, "why": red.why})
    return out


def default_run_id(loaded: LoadedResults) -> str:
    date = None
    if loaded.matrix and isinstance(loaded.matrix.get("time"), str):
        date = loaded.matrix["time"][:10]
    return f"{loaded.tier or 'empty'}-{date or _dt.date.today().isoformat()}"


def write_report(rep: dict, out: str | os.PathLike) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    js, md = out / "report.json", out / "REPORT.md"
    js.write_text(json.dumps(rep, indent=2, sort_keys=False, allow_nan=False) + "\n", encoding="utf-8")
    md.write_text(render_markdown(rep), encoding="utf-8")
    return [md, js]


_NETWORKS = {"sql": ("q", "q_target", "sampler", "noise_set", "full_noise_set"), "ddpg": ("q", "q_target", "actor", "actor_target")}


def archive_results(src: str | os.PathLike, dst: str | os.PathLike) -> int:
    """Copy what a report needs to `dst`, so that the report can be regenerated from the repository:
    every result.json byte for byte (valid or not), config.json, matrix.json / claims.json, and for the
    runs whose figures roll out policies (multigoal, pretrain) a networks-only `policy.pt` from checkpoint.pt
    (no replay buffer, optimizers or random streams). Returns the number of result files copied."""
    import shutil

    import torch

    from .figures import POLICY_FILE

    src, dst = Path(src), Path(dst)
    n = 0
    for p in sorted(src.rglob("result.json")):
        rel = p.relative_to(src)
        d = dst / rel.parent
        d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, d / "result.json")
        n += 1
        if (p.parent / "config.json").exists():
            shutil.copyfile(p.parent / "config.json", d / "config.json")
        try:
            res = json.loads(p.read_text())
            proto, algo = res.get("protocol"), res.get("algo")
        except (OSError, ValueError, AttributeError):
            continue
        ck = p.parent / "checkpoint.pt"
        if proto in ("multigoal", "pretrain") and algo in _NETWORKS and ck.exists():
            state = torch.load(ck, map_location="cpu", weights_only=False)
            torch.save({"algo": algo, "agent": {k: state["agent"][k] for k in _NETWORKS[algo]}}, d / POLICY_FILE)
    for p in sorted(list(src.rglob("matrix.json")) + list(src.rglob("claims.json"))):
        (dst / p.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, dst / p.relative_to(src))
    return n


def newest_results(root: str = "runs") -> str | None:
    """The results root under `root` whose newest result.json is the most recent."""
    best = None
    for p in Path(root).rglob("result.json"):
        t = p.stat().st_mtime
        if best is None or t > best[0]:
            best = (t, p)
    if best is None:
        return None
    # DIR/<tier>/<task>/<variant>/seed<k>/result.json -> DIR
    return str(best[1].parents[4])


# A full run of `python -m softq_conformance` (default --out runs/conformance, git-ignored), else the committed one.
CONFORMANCE_DEFAULTS = (Path("runs/conformance/softq_ref/report.json"), Path("reports/conformance/softq_ref/report.json"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m softq_ref.benchmarks.report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default=None, help="results root (the benchmark's --out) or one <tier>/ folder; "
                                                    "default: the newest results under runs/")
    ap.add_argument("--conformance", action="append", default=None,
                    help="conformance report.json (repeatable); default: the results folder's conformance-*.json "
                         "(an archive), else runs/conformance/softq_ref/report.json (a local full run), else "
                         "reports/conformance/softq_ref/report.json, whichever exists first")
    ap.add_argument("--out", default=None, help="output folder (default reports/<run-id>)")
    ap.add_argument("--tier", default=None, help="restrict to this tier (default: the tier with most results)")
    ap.add_argument("--run-id", default=None, help="report id (default <tier>-<date of the matrix>)")
    ap.add_argument("--no-figures", action="store_true")
    ap.add_argument("--archive", action="store_true",
                    help="first copy the inputs (result files, configs, networks-only policies) to OUT/results and build "
                         "the report from that copy, so it can be regenerated from the repository")
    args = ap.parse_args(argv)
    results = args.results or newest_results("runs")
    if results is None:
        print("error: no --results given and no result.json under runs/", file=sys.stderr)
        return 2
    if not Path(results).is_dir():
        print(f"error: --results {results} is not a folder", file=sys.stderr)
        return 2
    loaded = load_results(results, args.tier)
    if not loaded.results:
        for x in loaded.rejected:
            print(f"left out: {x.path}: {x.reason}", file=sys.stderr)
        print(f"error: no valid result files under {results} ({len(loaded.rejected)} rejected, listed above); "
              "nothing to report", file=sys.stderr)
        return 1
    conf = args.conformance
    if conf is None:  # an archive's own copies, else the newest full local run, else the committed report
        conf = [p.as_posix() for p in sorted(Path(results).glob("conformance-*.json"))]
        local = [d for d in CONFORMANCE_DEFAULTS if d.exists()]
        if not conf and local:
            conf = [str(local[0])]
    out = args.out
    if out is None:
        out = str(Path("reports") / (args.run_id or default_run_id(loaded)))
    import torch

    torch.set_num_threads(1)
    if args.archive:
        dst = Path(out) / "results"
        n = archive_results(results, dst)
        print(f"archived {n} result files from {results} to {dst}")
        results = dst.as_posix()
        import shutil

        copied = []
        for i, c in enumerate(conf):
            if Path(c).is_file():
                target = dst / f"conformance-{i}-{Path(c).parent.name}.json"
                shutil.copyfile(c, target)
                copied.append(target.as_posix())
            else:
                copied.append(c)  # reported as left out by the build
        conf = copied
    rep = build_report(results, conf, out, args.tier, args.run_id,
                       figures=not args.no_figures)
    paths = write_report(rep, out)
    print(render_markdown(rep).split("## Aggregates")[0])
    for x in rep["left_out"]:
        print(f"left out: {x['path']}: {x['reason']}", file=sys.stderr)
    print(f"wrote {', '.join(map(str, paths))} and {len(rep['figures'])} figures in {Path(out) / 'figures'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
