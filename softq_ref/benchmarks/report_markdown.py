"""REPORT.md from a report dict (`report.build_report`): the markdown layout and number formatting.

Kept apart from the report's statistics so that each file reads on its own; `report.write_report` calls
`render_markdown`, and the claims' texts in `report.py` use the same `_f` / `_ci` formatting.
"""
from __future__ import annotations

import json
import math
from typing import Any

from .crossing import render_crossing

__all__ = ["render_markdown"]


def _f(x: Any, nd: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return str(x)
    x = float(x)
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{nd}g}"


def _ci(lo_hi: tuple[float, float], nd: int = 3) -> str:
    lo, hi = lo_hi
    if lo is None or hi is None or (isinstance(lo, float) and math.isnan(lo)):
        return "[n/a]"
    return f"[{_f(lo, nd)}, {_f(hi, nd)}]"


def _matrix_wall(env: dict) -> str:
    if env["matrix_wall_time_s"] is None:
        return "-"
    text = f"{_f(env['matrix_wall_time_s'], 4)} s, executor {env['matrix_executor']}, {env['matrix_workers']} workers"
    inv = env.get("matrix_invocations") or []
    skipped = (env.get("matrix_counts") or {}).get("skipped", 0)
    if len(inv) > 1:
        total = sum(float(i.get("wall_time_s") or 0.0) for i in inv)
        text += f" (the last of {len(inv)} recorded invocations; all together {_f(total, 4)} s)"
    if skipped:
        text += (f"; the last invocation skipped {skipped} runs finished earlier, so their time is not in it"
                 + ("" if len(inv) > 1 else " (no earlier invocation recorded in matrix.json)"))
    return text


_VERDICT_MD = {"reproduced": "**reproduced**", "not_reproduced": "**not reproduced**", "inconclusive": "inconclusive",
               "not_run": "not run"}


def render_markdown(rep: dict) -> str:
    env = rep["environment"]
    L = [f"# Reproducibility report `{rep['run_id']}`", "",
         "Haarnoja, Tang, Abbeel, Levine (ICML 2017), *Reinforcement Learning with Deep Energy-Based Policies*: "
         f"benchmark tier **{rep['tier']}**, {env['n_valid_results']} valid runs, seeds {_seeds(env['seeds'])}. "
         f"Regenerate: `python -m softq_ref.benchmarks.report --results {env['results_dir']}"
         + "".join(f" --conformance {c['path']}" for c in rep["conformance"]) + " --out <dir>` "
         "(same results, same bytes). Machine-readable: `report.json` "
         f"(schema_version {rep['schema_version']}).", ""]
    if rep["notes"]:
        L += [f"> {n}" for n in rep["notes"]] + [""]
    L += ["## Claims", "",
          "Verdicts by `softq_ref/benchmarks/claims.py` (rules in `specs/claims.toml`); the 95% CI is of our statistic "
          "and does not decide the verdict.", "",
          "| claim | source | paper | ours [95% CI] | test | verdict |", "|---|---|---|---|---|---|"]
    for c in rep["claims"]:
        L.append(f"| `{c['claim']}`: {c['title']} | {c['source']} | {c['paper_text']} | {c['ours_text']} | "
                 f"{c['test_text']} | {_VERDICT_MD.get(c['verdict'], c['verdict'])} |")
    for c in rep["claims"]:
        for n in c.get("notes", []):
            L.append(f"- `{c['claim']}`: {n}")
    pw_rows = [(c["claim"], c["tests"]["power"]) for c in rep["claims"] if (c.get("tests") or {}).get("power")]
    if pw_rows:
        L += ["", "### Power", "",
              "Probability that the claim's rule says `reproduced` at the runs of this report if the paper's effect "
              "is true, and the runs per algorithm (fine-tuning: per variant) that reach power 0.8 at the claim's "
              "alpha (`softq_ref/benchmarks/power.py`: exact enumeration for success fractions, simulation from a "
              "normal model for fine-tuning).", "",
              "| claim | assumption | runs here | P(reproduced) | P(not_reproduced) | runs for power 0.8 |",
              "|---|---|---|---|---|---|"]
        for cid, pw in pw_rows:
            here = ", ".join(f"{k} {v}" for k, v in pw["planned"].items())
            for k, p in pw["power_planned"].items():
                need = pw["runs_needed"].get(k)
                L.append(f"| `{cid}` | {k} | {here} | {_f(p['reproduced'])} | {_f(p['not_reproduced'])} | "
                         f"{'> 200' if need is None else need} |")
    L += ["", "## Aggregates across seeds", "",
          "Per run, the claim's statistic (or the figure's, for pretraining). IQM = interquartile mean; P(better) = "
          "probability that a run of the SQL variant beats a run of this variant (P(X > Y) + 0.5 P(X = Y); lower "
          "is better for the maze distance). 95% percentile-bootstrap CIs; with 5 runs they under-cover.", "",
          "| task | variant | metric | n | mean [95% CI] | median | IQM [95% CI] | P(SQL better) [95% CI] |",
          "|---|---|---|---|---|---|---|---|"]
    for a in rep["aggregates"]:
        poi = (f"{_f(a['p_improvement'], 2)} {_ci(a['p_improvement_ci95'], 2)}" if "p_improvement" in a else "-")
        arrow = "up" if a["higher_is_better"] else "down"
        L.append(f"| {a['task']} | {a['variant']} | {a['metric']} ({arrow}) | {a['n']} | {_f(a['mean'])} "
                 f"{_ci(a['mean_ci95'])} | {_f(a['median'])} | {_f(a['iqm'])} {_ci(a['iqm_ci95'])} | {poi} |")
    if rep.get("crossing"):
        L += ["", "## Swimmer: runs past each distance, by step", "",
              "The swimmer claim decides at one line and one step; this is the picture the line was chosen from "
              "(`crossing.py`).", ""] + render_crossing(rep["crossing"])
    L += ["", "## Figures", ""]
    for f in rep["figures"]:
        L += [f"### {f['paper']}: `{f['file']}`", "", f"![{f['paper']}](figures/{f['file']})", "", f["caption"], ""]
    for n in rep["figure_notes"]:
        L.append(f"- {n}")
    L += ["", "## Conformance", ""]
    if not rep["conformance"]:
        L.append("No conformance report given (`--conformance PATH`).")
    for c in rep["conformance"]:
        s = c["summary"]
        L.append(f"- **{c['implementation']} {c['version']}**: {c['verdict'].upper()} ({', '.join(f'{k} {v}' for k, v in s.items())} "
                 f"of {c['n_specs']} specs; master seed {c['master_seed']}, profile {c['profile']}, {c['date_utc']}, "
                 f"wall {_f(c['wall_time_s'])} s; `{c['path']}`). Conventions: "
                 + ", ".join(f"{k}={v}" for k, v in c["conventions"].items()) + ".")
        for b in c["not_passing"]:
            L.append(f"  - `{b['id']}` {b['status']}: {b['message']}")
    L.append("")
    L.append("The DDPG baseline (`softq_baselines.ddpg`) is a comparison, not an implementation under test; the "
             "suite's agent specs concern soft Q-learning.")
    if rep.get("tier_reductions"):
        L += ["", f"## Tier `{rep['tier']}`: departures from the paper's Appendix D", "",
              "From `softq_ref/benchmarks/tiers.py`; the verdicts are about this scaled-down setting.", "",
              "| first seen in | what | why |", "|---|---|---|"]
        L += [f"| {x['protocol']} | {x['what']} | {x['why']} |" for x in rep["tier_reductions"]]
    L += ["", "## Environment", "", "| item | value |", "|---|---|"]
    rows = [("tier", env["tier"]), ("results", f"`{env['results_dir']}`"), ("seeds", _seeds(env["seeds"])),
            ("runs per task/variant", ", ".join(f"{k} {v}" for k, v in env["runs_per_group"].items())),
            ("matrix command", f"`{env['matrix_command']}`" if env["matrix_command"] else "-"),
            ("matrix finished (UTC)", env["matrix_time_utc"] or "-"),
            ("matrix wall time", _matrix_wall(env)),
            ("matrix outcomes", json.dumps(env["matrix_counts"]) if env["matrix_counts"] else "-"),
            ("compute of the runs", f"{_f(env['process_wall_time_s_sum'] / 3600, 3)} core-h: the wall times of the "
                                    f"training processes (stacked seeds share one), summed; longest run "
                                    f"{_f(env['run_wall_time_s_max'], 4)} s"),
            ("torch threads per run", env["torch_threads_per_run"]),
            ("git commits of the results", ", ".join(f"`{k}` ({v} runs)" for k, v in env["git_commits_of_results"].items())),
            ("run commands", "; ".join(f"`{k}` ({v})" for k, v in env["commands_of_results"].items()))]
    for i, pv in enumerate(env["package_versions_of_results"]):
        rows.append((f"packages of the runs ({pv['runs']} runs)" if i == 0 else f"packages ({pv['runs']} runs)",
                     ", ".join(f"{k} {v}" for k, v in pv.items() if k != "runs")))
    rm = env["report_machine"]
    rows += [("report built on", f"{rm['cpu_model']}, {rm['cpu_count']} CPUs, {rm['platform']}, Python {rm['python']}"),
             ("report packages", ", ".join(f"{k} {v}" for k, v in env["report_packages"].items()))]
    L += [f"| {k} | {v} |" for k, v in rows]
    L += ["", "The runs' machine is the one the matrix ran on (result files record versions and commits, not the CPU); "
              "the CPU row is the report builder's.", "", "## Left out", ""]
    if not rep["left_out"]:
        L.append("Nothing: every result file found was valid and used.")
    else:
        L += [f"{len(rep['left_out'])} file(s) were not used:", "", "| file | reason |", "|---|---|"]
        L += [f"| `{x['path']}` | {x['reason'].replace('|', '/')} |" for x in rep["left_out"]]
    s = rep["statistics"]
    L += ["", "## Statistics", ""] + [f"- {k}: {v}" for k, v in s.items()]
    return "\n".join(L) + "\n"


def _seeds(seeds: list[int]) -> str:
    if seeds and seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds)) or "none"
