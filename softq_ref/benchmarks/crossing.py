"""When do swimmer runs get past a line? Shares of runs past each distance, forward and backward, by step.

The swimmer claim's statistic is one line at one step. This table shows the whole picture the line was
chosen from: for every variant, the share of runs whose furthest centre-of-mass x since the start of
training (`max_x_so_far`, the claim's statistic; `min_x_so_far` backwards) is past each distance at a few
steps. It calibrates a tier (where to put the line, how many steps the mechanism needs) and shows where
our runs differ from the paper's (Figure 6: SQL explores both ways, then swims forward; some DDPG runs
commit to swimming backwards).

    python -m softq_ref.benchmarks.crossing --results runs/long     # markdown on stdout

Read from the result files' `curves` (one value per epoch end), so committed reports can be re-tabled.
"""
from __future__ import annotations

import argparse
import math
from collections import defaultdict

__all__ = ["DISTANCES", "crossing_rows", "render_crossing", "main"]

DISTANCES = (0.5, 1.0, 1.5, 2.0)  # metres; the tiers' lines are 1.0 (ci) and 1.5 (long)
_COLUMNS = 5  # step columns: evenly spaced epoch ends up to the run length


def _steps_shown(steps: list[int]) -> list[int]:
    """Up to _COLUMNS epoch ends, evenly spread, always including the last."""
    if len(steps) <= _COLUMNS:
        return steps
    idx = sorted({round(i * (len(steps) - 1) / (_COLUMNS - 1)) for i in range(_COLUMNS)})
    return [steps[i] for i in idx]


def crossing_rows(results: list[dict], distances: tuple[float, ...] = DISTANCES) -> list[dict]:
    """Rows {task, variant, direction, distance, n, steps, past}: `past[i]` = runs past `distance` by
    `steps[i]` (forward: max x >= d; backward: min x <= -d). Only runs with swimmer curves, grouped by
    (task, variant, run length); runs whose curves have other steps than their group's are left out."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in results:
        c = r.get("curves") or {}
        if r.get("protocol") == "swimmer" and c.get("step") and c.get("max_x_so_far") and c.get("min_x_so_far"):
            groups[(r["task"], r["variant"], int(r["steps"]))].append(c)
    rows = []
    for (task, variant, _), curves in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] != "sql", kv[0][1:])):
        steps = list(curves[0]["step"])
        curves = [c for c in curves if list(c["step"]) == steps]
        shown = _steps_shown(steps)
        at = [steps.index(s) for s in shown]
        for direction, key, sign in (("forward", "max_x_so_far", 1.0), ("backward", "min_x_so_far", -1.0)):
            for d in distances:
                past = [sum(1 for c in curves if _num(c[key][i]) * sign >= d) for i in at]
                rows.append({"task": task, "variant": variant, "direction": direction, "distance": d,
                             "n": len(curves), "steps": shown, "past": past})
    return rows


def _num(x) -> float:
    return -math.inf if x is None else float(x)


def render_crossing(rows: list[dict]) -> list[str]:
    """Markdown lines: one table per (task, run length), a row per variant, direction and distance."""
    L: list[str] = []
    by_table: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        by_table[(r["task"], tuple(r["steps"]))].append(r)
    for (task, steps), rs in by_table.items():
        L += [f"`{task}`: runs past each distance by step (forward: max x >= d; backward: min x <= -d, "
              "x = centre of mass since the start of training)", "",
              "| variant | direction | d (m) | " + " | ".join(f"{s:,}" for s in steps) + " |",
              "|---|---|---|" + "---|" * len(steps)]
        for r in rs:
            L.append(f"| {r['variant']} | {r['direction']} | {r['distance']:g} | "
                     + " | ".join(f"{k}/{r['n']}" for k in r["past"]) + " |")
        L.append("")
    return L


def main(argv: list[str] | None = None) -> int:
    from .validate import load_results

    p = argparse.ArgumentParser(prog="python -m softq_ref.benchmarks.crossing", description=__doc__.split("\n\n")[0])
    p.add_argument("--results", required=True, help="a matrix's output folder (the one holding <tier>/) or <tier>/ itself")
    p.add_argument("--tier", default=None)
    a = p.parse_args(argv)
    loaded = load_results(a.results, a.tier)
    rows = crossing_rows(loaded.results)
    if not rows:
        print(f"no swimmer results with curves under {a.results}")
        return 1
    print("\n".join(render_crossing(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
