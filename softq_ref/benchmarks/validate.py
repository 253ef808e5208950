"""Load and validate benchmark result files and conformance reports; say what was rejected and why.

A results directory is the `--out` of `python -m softq_ref.benchmarks` (or one of its `<tier>/`
folders); every `result.json` below it is read. A file is *valid* when it

* parses as JSON (a truncated or corrupted file does not) and is an object;
* carries `schema_version` equal to `runner.SCHEMA_VERSION` (result files are versioned);
* has every required field with the right type (`REQUIRED`), `status == "completed"`, a known tier,
  task, algo and protocol, the protocol's final metrics (finite: NaN/inf is rejected, naming the
  field) and curves of equal length (curves may hold NaN: an epoch without a finished episode);
* lies where its content says it belongs (`<tier>/<task>/<variant>/seed<k>/result.json`), if it
  lies in such a layout at all.

Then, across files: duplicates of the same run are rejected (the first path in sorted order is
kept); results are restricted to one tier (the requested one, else the most common one: mixed tiers
are reported and the others left out); within a (task, variant) group, runs whose `steps` or
`config` differ from the group's most common ones (a `--steps` override, an edited tier) are left out.
Every rejected file is returned with its path and the reason, so a report can list what it left out.
"""
from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..training import ALGOS, is_factory_path
from .runner import SCHEMA_VERSION
from .tiers import TASKS, TIERS

__all__ = ["Rejected", "LoadedResults", "load_results", "validate_result", "load_conformance", "REQUIRED",
           "PRIMARY_METRIC", "load_json_file"]

# field -> accepted types
REQUIRED: dict[str, tuple[type, ...]] = {
    "schema_version": (int,), "status": (str,), "tier": (str,), "task": (str,), "variant": (str,), "algo": (str,),
    "seed": (int,), "env_id": (str,), "steps": (int,), "config": (dict,), "env_kwargs": (dict,), "protocol": (str,),
    "metrics": (dict,), "curves": (dict,), "git_commit": (str,), "versions": (dict,), "command": (list,),
}
# protocol -> final metrics a result must carry
_PROTOCOL_METRICS = {"multigoal": ("goals_reached", "success"), "swimmer": ("max_x", "min_x", "finish_line", "success"),
                     "maze": ("min_distance", "threshold_distance", "success"), "pretrain": ("max_travel",),
                     "finetune": ("mean_discounted_return",)}
# protocol -> (the per-run statistic of its claim or figure, True if higher is better)
PRIMARY_METRIC = {"multigoal": ("goals_reached", True), "swimmer": ("max_x", True), "maze": ("min_distance", False),
                  "pretrain": ("max_travel", True), "finetune": ("mean_discounted_return", True)}
_TIER_ORDER = ("paper", "long", "ci", "smoke")  # tie-break when two tiers have as many results


@dataclass
class Rejected:
    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass
class LoadedResults:
    root: str
    tier: str | None
    results: list[dict] = field(default_factory=list)  # valid, one tier; each has "_path" and "_dir"
    rejected: list[Rejected] = field(default_factory=list)
    matrix: dict | None = None  # <tier>/matrix.json, if present and valid
    claims: dict | None = None  # <tier>/claims.json, if present and valid
    notes: list[str] = field(default_factory=list)


def load_json_file(path: Path) -> tuple[Any, str | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return None, f"unreadable ({type(e).__name__}: {e})"
    if not text.strip():
        return None, "empty file"
    try:
        return json.loads(text), None
    except ValueError as e:
        return None, f"corrupt or truncated JSON ({e})"


def _num_ok(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) or x is None


def validate_result(obj: Any, rel: str | None = None) -> str | None:
    """None if `obj` is a valid finished result (found at `rel`, relative to the results root), else the reason."""
    if not isinstance(obj, dict):
        return f"not a JSON object (a {type(obj).__name__})"
    if "schema_version" not in obj:
        return "no schema_version field (not a result file of softq_ref.benchmarks)"
    sv = obj["schema_version"]
    if sv != SCHEMA_VERSION:
        return f"schema_version {sv!r}; this reader accepts {SCHEMA_VERSION}"
    missing = [k for k in REQUIRED if k not in obj]
    if missing:
        return f"missing required fields {missing}"
    wrong = [f"{k} is {type(obj[k]).__name__}, expected {'/'.join(t.__name__ for t in ts)}"
             for k, ts in REQUIRED.items() if not isinstance(obj[k], ts) or (isinstance(obj[k], bool) and bool not in ts)]
    if wrong:
        return "wrong field types: " + "; ".join(wrong)
    if obj["status"] != "completed":
        return f"status {obj['status']!r} (only completed runs are used)"
    if obj["tier"] not in TIERS:
        return f"unknown tier {obj['tier']!r}"
    if obj["task"] not in TASKS:
        return f"unknown task {obj['task']!r}"
    if obj["algo"] not in ALGOS and not is_factory_path(str(obj["algo"])):
        return f"unknown algo {obj['algo']!r}; accepted: {list(ALGOS)} or a package.module:Factory path"
    if obj["protocol"] != TASKS[obj["task"]].protocol:
        return f"protocol {obj['protocol']!r} does not match task {obj['task']!r} ({TASKS[obj['task']].protocol})"
    need = _PROTOCOL_METRICS[obj["protocol"]]
    miss = [k for k in need if k not in obj["metrics"]]
    if miss:
        return f"metrics lack {miss} (protocol {obj['protocol']})"
    bad = [k for k in need if k != "success" and not _num_ok(obj["metrics"][k])]
    if bad:
        return f"metrics {bad} are not numbers"
    # NaN/inf in a protocol metric (the statistic verdicts and the gate test) is a broken run, not a value
    nonfinite = [f"metrics.{k} = {obj['metrics'][k]!r}" for k in need
                 if k != "success" and isinstance(obj["metrics"][k], float) and not math.isfinite(obj["metrics"][k])]
    if nonfinite:
        return f"non-finite {', '.join(nonfinite)} (a NaN/inf result is invalid; rerun it)"
    steps = obj["curves"].get("step")
    if not isinstance(steps, list) or not steps:
        return "curves lack a non-empty 'step' list"
    lens = {k: len(v) for k, v in obj["curves"].items() if isinstance(v, list)}
    if any(n != len(steps) for n in lens.values()) or len(lens) != len(obj["curves"]):
        return f"curves of unequal lengths or not lists: {lens}"
    if any(not _num_ok(x) for v in obj["curves"].values() for x in v):
        return "curves hold non-numbers"
    if rel is not None:
        parts = Path(rel).parts
        if len(parts) >= 5 and parts[-1] == "result.json" and parts[-2].startswith("seed"):
            where = (parts[-5], parts[-4], parts[-3], parts[-2])
            says = (obj["tier"], obj["task"], obj["variant"], f"seed{obj['seed']}")
            if where != says:
                return f"lies at {'/'.join(where)} but describes {'/'.join(says)}"
    return None


def load_results(root: str | os.PathLike, tier: str | None = None) -> LoadedResults:
    """Every result.json below `root`, validated; restricted to one tier (see the module docstring)."""
    rootp = Path(root)
    out = LoadedResults(str(root), None)
    if not rootp.exists():
        out.notes.append(f"{root} does not exist")
        return out
    paths = sorted(rootp.rglob("result.json"))
    valid: list[dict] = []
    for p in paths:
        rel = p.relative_to(rootp).as_posix()
        shown = f"{rootp.as_posix().rstrip('/')}/{rel}"
        obj, err = load_json_file(p)
        if err is None:
            # the tier folder may be the root itself: prefix it so the location check still applies
            check_rel = rel if len(Path(rel).parts) >= 5 else (f"{rootp.name}/{rel}" if len(Path(rel).parts) == 4 else None)
            err = validate_result(obj, check_rel)
        if err is not None:
            out.rejected.append(Rejected(shown, err))
            continue
        obj = dict(obj)
        obj["_path"], obj["_dir"] = shown, str(p.parent)
        valid.append(obj)
    # duplicates of one run
    seen: dict[tuple, str] = {}
    uniq = []
    for r in valid:
        k = (r["tier"], r["task"], r["variant"], r["seed"])
        if k in seen:
            out.rejected.append(Rejected(r["_path"], f"duplicate of {seen[k]} (same tier, task, variant, seed)"))
            continue
        seen[k] = r["_path"]
        uniq.append(r)
    # one tier
    counts = Counter(r["tier"] for r in uniq)
    if tier is None and counts:
        tier = max(counts, key=lambda t: (counts[t], -_TIER_ORDER.index(t)))
    out.tier = tier
    if len(counts) > 1 or (tier is not None and counts and tier not in counts):
        out.notes.append(f"mixed tiers {dict(sorted(counts.items()))}: the report is restricted to tier {tier!r}")
    kept = []
    for r in uniq:
        if r["tier"] != tier:
            out.rejected.append(Rejected(r["_path"], f"tier {r['tier']!r}, but the report is for tier {tier!r} "
                                                     "(mixed tiers are not pooled)"))
        else:
            kept.append(r)
    # one setting per (task, variant)
    groups: dict[tuple, list[dict]] = {}
    for r in kept:
        groups.setdefault((r["task"], r["variant"]), []).append(r)
    final = []
    for (task, variant), rs in groups.items():
        sig = Counter(_setting(r) for r in rs)
        common = max(sig, key=lambda s: (sig[s], s))
        for r in rs:
            if _setting(r) != common:
                what = "steps" if r["steps"] != json.loads(common)[0] else "config / env kwargs"
                out.rejected.append(Rejected(r["_path"], f"{what} differ from the other {task}/{variant} runs "
                                                         f"(steps {r['steps']} vs {json.loads(common)[0]}); not pooled"))
            else:
                final.append(r)
    out.results = sorted(final, key=lambda r: (list(TASKS).index(r["task"]), r["variant"], r["seed"]))
    out.rejected.sort(key=lambda x: x.path)
    if out.results:
        tdir = Path(out.results[0]["_dir"]).parents[2]  # <tier>/<task>/<variant>/seed<k>
        for name in ("matrix", "claims"):
            p = tdir / f"{name}.json"
            if p.exists():
                obj, err = load_json_file(p)
                if err is None and not isinstance(obj, dict):
                    err = "not a JSON object"
                if err is not None:
                    out.rejected.append(Rejected(_shown(rootp, p), err))
                else:
                    setattr(out, name, obj)
    return out


def _shown(root: Path, p: Path) -> str:
    try:
        return f"{root.as_posix().rstrip('/')}/{p.relative_to(root).as_posix()}"
    except ValueError:
        return p.as_posix()


def _setting(r: dict) -> str:
    return json.dumps([r["steps"], r["config"], r["env_kwargs"], r.get("eval_episodes")], sort_keys=True)


# -- conformance reports (conformance/report.py) ------------------------------------------------------------
_CONF_REQUIRED = {"implementation": str, "version": str, "summary": dict, "specs": list, "environment": dict}


def load_conformance(path: str | os.PathLike) -> tuple[dict | None, str | None]:
    """(report, None) for a valid conformance report.json, else (None, reason).

    conformance/report.py writes no schema_version; the report is validated by its required fields
    and the status of each spec."""
    obj, err = load_json_file(Path(path))
    if err is not None:
        return None, err
    if not isinstance(obj, dict):
        return None, "not a JSON object"
    miss = [k for k in _CONF_REQUIRED if k not in obj]
    if miss:
        return None, f"missing required fields {miss} (not a conformance report.json?)"
    wrong = [k for k, t in _CONF_REQUIRED.items() if not isinstance(obj[k], t)]
    if wrong:
        return None, f"wrong field types {wrong}"
    statuses = {"pass", "fail", "error", "not_applicable", "xfail"}
    for s in obj["specs"]:
        if not isinstance(s, dict) or "id" not in s or s.get("status") not in statuses:
            return None, f"malformed spec entry {str(s)[:80]!r}"
    return obj, None


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x))
