"""python -m softq_ref.perf --out reports/perf [--device cpu|cuda] [--quick] [--before FILE]

Writes OUT/perf.json and OUT/perf.md. With --before (a perf.json of an earlier run, e.g. the code
before an optimisation), perf.md shows both runs side by side; each run's ratios are from that run.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .measure import run

__all__ = ["main", "markdown"]


def _f(x, fmt="{:.2f}"):
    return fmt.format(x) if isinstance(x, (int, float)) else str(x)


def _rows(r: dict) -> dict[str, str]:
    """Figure name -> formatted value (with the load average it was measured under)."""
    out = {}
    for key, s in r.get("sql_update", {}).items():
        ld = f" (load {s['load_1min_median']:.2f})"
        out[f"SQL update {key}, ms"] = _f(s["update_ms"]) + ld
        out[f"SQL update {key}, GFLOP/s achieved"] = _f(s["achieved_gflops"], "{:.1f}")
        out[f"SQL update {key}, matmul rate at its shapes, GFLOP/s"] = _f(s["matmul_rate_gflops"], "{:.1f}")
        out[f"SQL update {key}, ratio achieved / matmul rate"] = _f(s["ratio_to_matmul_rate"])
        out[f"SQL update {key}, FLOPs per update (counted)"] = f"{s['flops_per_update'] / 1e9:.3f} G"
        if "minor_page_faults_per_update" in s:
            out[f"SQL update {key}, minor page faults per update"] = _f(s["minor_page_faults_per_update"], "{:.0f}")
    if "gemm_peak_1t" in r:
        out["one 3200x200 @ 200x200 GEMM, 1 thread, GFLOP/s"] = _f(r["gemm_peak_1t"]["gflops"], "{:.1f}")
    d = r.get("ddpg_vs_sb3")
    if d:
        out["DDPG update (ours), ms"] = _f(d["ours_update_ms"]) + f" (load {d['load_1min_median']:.2f})"
        out["SB3 DDPG train step, ms"] = _f(d["sb3_train_step_ms"])
        out["DDPG speed-up ours vs SB3"] = _f(d.get("speedup_ours_vs_sb3", "not measured")) + "x"
    for algo, t in r.get("train_run", {}).items():
        if isinstance(t, dict) and "env_steps_per_s" in t:
            out[f"train run {algo} swimmer, env steps/s"] = _f(t["env_steps_per_s"], "{:.1f}")
            out[f"train run {algo} swimmer, peak RSS MiB"] = _f(t["peak_rss_mib"], "{:.0f}")
    ms = r.get("multiseed")
    if ms and "update_flop_rate" in ms:
        for row in ms["rows"]:
            tag = "one process per seed" if row["mode"] != "stacked" else f"stacked S={row['S']}"
            name = f"multi-seed {row['algo']} {row['task']} ({row['tier']}), {tag}"
            if "whole_run_seed_steps_per_s_per_core" in row:  # a marginal rate; under its own name, so that a
                # --before file of whole-run rates is not set beside it as if comparable
                method = "" if row.get("rate_method", "marginal") == "marginal" else "; NOT marginal: whole run"
                out[f"{name}, marginal seed-steps/s per core"] = (
                    _f(row["seed_steps_per_s_per_core"], "{:.0f}")
                    + f" (whole run {row['whole_run_seed_steps_per_s_per_core']:.0f}; {row['speedup']:.2f}x{method}; "
                      f"load {row['load_1min']:.2f})")
            else:
                out[f"{name}, seed-steps/s per core"] = \
                    _f(row["seed_steps_per_s_per_core"], "{:.0f}") + f" ({row['speedup']:.1f}x; load {row['load_1min']:.2f})"
        for f in ms["update_flop_rate"]:
            out[f"multi-seed {f['algo']} update S={f['S']}, ms / GFLOP/s / ratio to matmul rate"] = \
                f"{f['update_ms']:.1f} / {f['achieved_gflops']:.1f} / {f['ratio_to_matmul_rate']:.2f}"
            if "single_update_ms" in f:
                out[f"multi-seed {f['algo']} update S={f['S']}, single-seed update ms / update speed-up / "
                    "speed-up ceiling at the matmul rate"] = \
                    f"{f['single_update_ms']:.2f} / {f['update_speedup']:.2f}x / {f['speedup_ceiling_at_matmul_rate']:.2f}x"
    elif ms:  # files written before the stacked trainer: S processes vs the old batched update
        for row in ms["rows"]:
            mode = row["mode"] + (f" @{row['threads']}t" if "threads" in row else "")
            out[f"multi-seed S={row['S']} {mode}, updates/s total"] = _f(row["updates_per_s_total"], "{:.1f}")
    return out


def markdown(after: dict, before: dict | None = None) -> str:
    m = after["machine"]
    lines = [f"# Performance of the reference ({m['device']})", "",
             f"CPU: {m['cpu_model']}, {m['logical_cpus']} logical CPUs; torch {m['versions']['torch']}; "
             f"git {m['git_commit'][:10]}; command `{' '.join(m['command'])}`; {m['time']}.",
             f"1-minute load average: {after['load_1min_start']} at start, {after['load_1min_end']} at end "
             f"(figures with load > {after['contended_if_load_above']} are contended; the machine is shared).",
             "Threads: the figures marked @1t use torch.set_num_threads(1) (per core); @2t two threads.", ""]
    a = _rows(after)
    if before:
        b = _rows(before)
        lines += ["| figure | before | after |", "|---|---|---|"]
        lines += [f"| {k} | {b.get(k, '-')} | {a[k]} |" for k in a]
        lines += ["", f"before: git {before['machine']['git_commit'][:10]} ({before['machine']['time']}, "
                      f"load {before['load_1min_start']} -> {before['load_1min_end']})"]
    else:
        lines += ["| figure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in a.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m softq_ref.perf", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="reports/perf")
    p.add_argument("--device", default="cpu", help="cpu or cuda (an error if cuda is not available)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, few repeats (tests)")
    p.add_argument("--label", default="")
    p.add_argument("--before", default=None, help="perf.json of an earlier run, shown beside this one")
    p.add_argument("--sections", default="sql,ddpg,train,multiseed")
    args = p.parse_args(argv)
    res = run(args.out, device=args.device, quick=args.quick, label=args.label,
              sections=tuple(args.sections.split(",")), log=lambda s: print(s, file=sys.stderr))
    before = json.loads(Path(args.before).read_text()) if args.before else None
    res["before_file"] = args.before
    (Path(args.out) / "perf.md").write_text(markdown(res, before))
    print((Path(args.out) / "perf.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
