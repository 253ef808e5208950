"""Verdicts on the paper's claims from benchmark results: reproduced / not_reproduced / inconclusive.

Every CLAIM.* spec of specs/claims.toml has exactly one verdict function here (`VERDICTS`, checked by
tests/test_conformance_meta.py). The rules, stated once:

Success-fraction claims (multi-goal, swimmer, maze), with s/n successes of SQL and DDPG runs:
  * p_claim   = Fisher exact test, one-sided, H1: P(success | SQL) > P(success | DDPG)
  * p_reverse = Fisher exact test, one-sided, H1: P(success | DDPG) > P(success | SQL)
  * p_paper   = exact binomial test, one-sided, H1: P(success | SQL) < p0, where p0 is the lowest SQL
                success rate consistent with the paper's report (the one-sided 1 - alpha Clopper-Pearson
                lower bound of paper_sql * paper_runs successes in paper_runs runs; 0.549 for 5 of 5)
  not_reproduced if p_reverse < alpha or p_paper < alpha; else reproduced if p_claim < alpha; else
  inconclusive. Also reported: the p-value the paper's own fractions would give at these n (if that
  is >= alpha the matrix cannot reproduce the claim, only fail to refute it) and the n per algorithm
  they would need.

Roles: a success-fraction claim compares the variant in the role "sql" (the max-ent algorithm) with
the variant in the role "ddpg"; by default the variants of those names. `roles={"sql": "sb3_sac"}`
lets another algorithm's runs play a role (`--roles` of the CLI); a mapped verdict's `measured.roles`
says which variants played which role, and the `sql_*` / `ddpg_*` fields are those of the roles.

Curve claims (fine-tuning): per task and DDPG variant, a percentile bootstrap CI of
mean(AUC | SQL pretrained) - mean(AUC | DDPG variant), level 1 - alpha / m (Bonferroni over the m
comparisons); reproduced if all CIs > 0, not_reproduced if any CI < 0, else inconclusive.
"""
from __future__ import annotations

import math
import warnings
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
from scipy import stats

__all__ = ["Verdict", "VERDICTS", "evaluate_claims", "success_fraction_verdict", "curve_verdict", "claim_specs",
           "VERDICT_VALUES", "render_markdown", "ROLES", "ROLE_CLAIMS", "check_roles"]

VERDICT_VALUES = ("reproduced", "not_reproduced", "inconclusive")
ROLES = ("sql", "ddpg")  # the two roles of a success-fraction claim; default variant = role name
ROLE_CLAIMS = ("CLAIM.5_1.multigoal_modes", "CLAIM.5_2.swimmer_forward", "CLAIM.5_2.maze_passage")


def check_roles(roles: dict[str, str] | None) -> dict[str, str]:
    """{role: variant} completed with the default variants; ValueError names an unknown role."""
    roles = dict(roles or {})
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ValueError(f"unknown role(s) {unknown}; accepted roles: {list(ROLES)} (e.g. sql=sb3_sac,ddpg=sb3_ddpg)")
    return {r: roles.get(r, r) for r in ROLES}


@dataclass
class Verdict:
    claim: str
    verdict: str
    rule: str
    statistic: str
    paper: dict[str, Any]
    measured: dict[str, Any]
    tests: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


VERDICTS: dict[str, Callable[[Any, list[dict]], Verdict]] = {}


def verdict(claim_id: str):
    def deco(fn):
        VERDICTS[claim_id] = fn
        return fn
    return deco


def claim_specs() -> dict[str, Any]:
    from softq_specs import load_claim_specs

    return load_claim_specs()


# -- success fractions ---------------------------------------------------------------------------------
def paper_rate_floor(paper_rate: float, paper_runs: int, alpha: float) -> float:
    """Lowest success rate consistent (one-sided, level 1 - alpha) with paper_rate * paper_runs successes."""
    k = int(round(paper_rate * paper_runs))
    if k == 0:
        return 0.0
    return float(stats.binomtest(k, paper_runs).proportion_ci(1 - 2 * alpha, "exact").low)


def _fisher(s1: int, n1: int, s2: int, n2: int, alternative: str) -> float:
    return float(stats.fisher_exact([[s1, n1 - s1], [s2, n2 - s2]], alternative=alternative).pvalue)


def runs_needed(p_sql: float, p_ddpg: float, alpha: float, n_max: int = 200) -> int | None:
    """Smallest n per algorithm at which the paper's fractions, observed exactly, give Fisher p < alpha."""
    for n in range(2, n_max + 1):
        if _fisher(int(round(p_sql * n)), n, int(round(p_ddpg * n)), n, "greater") < alpha:
            return n
    return None


def success_fraction_verdict(claim: str, s_sql: int, n_sql: int, s_ddpg: int, n_ddpg: int, paper_sql: float,
                             paper_ddpg: float, paper_runs: int, alpha: float, statistic: str = "") -> Verdict:
    rule = ("not_reproduced if Fisher(DDPG > SQL) < alpha or binomtest(SQL < p0) < alpha; "
            "reproduced if Fisher(SQL > DDPG) < alpha; else inconclusive")
    paper = {"sql": paper_sql, "ddpg": paper_ddpg, "runs": paper_runs}
    measured = {"sql_successes": s_sql, "sql_runs": n_sql, "ddpg_successes": s_ddpg, "ddpg_runs": n_ddpg,
                "sql_fraction": s_sql / n_sql if n_sql else None, "ddpg_fraction": s_ddpg / n_ddpg if n_ddpg else None}
    from .power import fraction_power_analysis

    pa = fraction_power_analysis(claim, paper_sql, paper_ddpg, paper_runs, alpha, n_sql, n_ddpg)
    if n_sql == 0 or n_ddpg == 0:
        return Verdict(claim, "inconclusive", rule, statistic, paper, measured, {"alpha": alpha, "power": pa.to_dict()},
                       [f"no finished runs for {'SQL' if n_sql == 0 else 'DDPG'}", inconclusive_note(pa)])
    p0 = paper_rate_floor(paper_sql, paper_runs, alpha)
    tests = {
        "alpha": alpha,
        "p_claim_fisher_sql_gt_ddpg": _fisher(s_sql, n_sql, s_ddpg, n_ddpg, "greater"),
        "p_reverse_fisher_ddpg_gt_sql": _fisher(s_sql, n_sql, s_ddpg, n_ddpg, "less"),
        "p0_lowest_sql_rate_consistent_with_paper": p0,
        "p_paper_binom_sql_below_p0": float(stats.binomtest(s_sql, n_sql, p0, alternative="less").pvalue) if p0 > 0 else 1.0,
        "p_if_paper_fractions_at_this_n": _fisher(int(round(paper_sql * n_sql)), n_sql, int(round(paper_ddpg * n_ddpg)),
                                                  n_ddpg, "greater"),
        "runs_needed_per_algo_for_paper_effect": runs_needed(paper_sql, paper_ddpg, alpha),
    }
    tests["power"] = pa.to_dict()
    notes = []
    if tests["p_reverse_fisher_ddpg_gt_sql"] < alpha or tests["p_paper_binom_sql_below_p0"] < alpha:
        v = "not_reproduced"
    elif tests["p_claim_fisher_sql_gt_ddpg"] < alpha:
        v = "reproduced"
    else:
        v = "inconclusive"
        if tests["p_if_paper_fractions_at_this_n"] >= alpha:
            notes.append(f"underpowered: even the paper's fractions would give p = {tests['p_if_paper_fractions_at_this_n']:.3g} "
                         f"with {n_sql} / {n_ddpg} runs; about {tests['runs_needed_per_algo_for_paper_effect']} runs "
                         "per algorithm are needed")
        notes.append(inconclusive_note(pa))
    return Verdict(claim, v, rule, statistic, paper, measured, tests, notes)


def inconclusive_note(pa) -> str:
    """'inconclusive: N runs per algorithm would decide it ...' from a power.PowerAnalysis."""
    parts = [f"{'more than ' + str(200) if n is None else n} ({k})" for k, n in pa.runs_needed.items()]
    plan = " / ".join(str(x) for x in pa.planned.values())
    unit = "variant" if "per_variant" in pa.planned else "algorithm"
    return (f"inconclusive at {plan} runs: the runs per {unit} that would decide it with power "
            f"{pa.target_power:g} at alpha {pa.alpha:g}: " + "; ".join(parts))


def _by_variant(results: list[dict], protocol: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        if r.get("protocol") == protocol:
            out[r["variant"]].append(r)
    return out


def _fraction_claim(spec, results: list[dict], protocol: str, roles: dict[str, str] | None = None) -> Verdict:
    p = spec.params
    roles = check_roles(roles)
    by_variant = _by_variant(results, protocol)
    g = {role: by_variant.get(variant, []) for role, variant in roles.items()}  # role -> its variant's runs
    results = [r for runs in g.values() for r in runs]  # tasks / tiers below: those of the compared runs
    s = {k: sum(bool(r["metrics"].get("success")) for r in g.get(k, [])) for k in ("sql", "ddpg")}
    n = {k: len(g.get(k, [])) for k in ("sql", "ddpg")}
    v = success_fraction_verdict(spec.id, s["sql"], n["sql"], s["ddpg"], n["ddpg"], float(p["paper_sql"]),
                                 float(p["paper_ddpg"]), int(p["paper_runs"]), float(p["alpha"]), p.get("statistic", ""))
    tasks = sorted({r["task"] for r in results if r.get("protocol") == protocol})
    tiers = sorted({r["tier"] for r in results if r.get("protocol") == protocol})
    v.measured.update(tasks=tasks, tiers=tiers)
    if roles != check_roles(None):  # the default verdict stays as it was; a mapped one says who played whom
        v.measured["roles"] = roles
        v.notes.append("roles: " + ", ".join(f"{r} <- {var}" for r, var in roles.items()))
        v.notes.extend(f"no finished runs of variant {var!r} (role {r})" for r, var in roles.items() if not g[r])
    if protocol == "multigoal":
        v.measured["goals_reached"] = {k: [r["metrics"].get("goals_reached") for r in g.get(k, [])] for k in ("sql", "ddpg")}
    if protocol == "swimmer":
        v.measured["max_x"] = {k: [r["metrics"].get("max_x") for r in g.get(k, [])] for k in ("sql", "ddpg")}
        v.measured["min_x"] = {k: [r["metrics"].get("min_x") for r in g.get(k, [])] for k in ("sql", "ddpg")}
    if protocol == "maze":
        v.measured["min_distance"] = {k: [r["metrics"].get("min_distance") for r in g.get(k, [])] for k in ("sql", "ddpg")}
    if len(tiers) > 1 or len(tasks) > 1:
        v.notes.append(f"results pooled over tiers {tiers} and tasks {tasks}")
    if len(tasks) > 1:  # e.g. the long tier's point-mass and quadruped mazes: each body's own fractions
        v.measured["per_task"] = {t: {k: f"{sum(bool(r['metrics'].get('success')) for r in g.get(k, []) if r['task'] == t)}"
                                         f"/{sum(1 for r in g.get(k, []) if r['task'] == t)}" for k in ("sql", "ddpg")}
                                  for t in tasks}
        v.notes.append("per task (SQL, DDPG successes): " + "; ".join(
            f"{t} {c['sql']}, {c['ddpg']}" for t, c in v.measured["per_task"].items()))
    if "smoke" in tiers:
        v.notes.append("smoke-tier results: too short to learn; the verdict is not evidence about the paper")
    return v


@verdict("CLAIM.5_1.multigoal_modes")
def multigoal_modes(spec, results: list[dict], roles: dict[str, str] | None = None) -> Verdict:
    return _fraction_claim(spec, results, "multigoal", roles)


@verdict("CLAIM.5_2.swimmer_forward")
def swimmer_forward(spec, results: list[dict], roles: dict[str, str] | None = None) -> Verdict:
    return _fraction_claim(spec, results, "swimmer", roles)


@verdict("CLAIM.5_2.maze_passage")
def maze_passage(spec, results: list[dict], roles: dict[str, str] | None = None) -> Verdict:
    return _fraction_claim(spec, results, "maze", roles)


# -- curves ---------------------------------------------------------------------------------------------
def bootstrap_diff_ci(a: list[float], b: list[float], level: float, n_resamples: int = 10_000,
                      random_state: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of mean(a) - mean(b), independent samples (scipy.stats.bootstrap)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        return (-math.inf, math.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate (constant) samples warn; the percentile CI is still defined
        res = stats.bootstrap((a, b), lambda x, y, axis=-1: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                              confidence_level=level, n_resamples=n_resamples, method="percentile",
                              vectorized=True, paired=False, random_state=random_state)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def curve_verdict(claim: str, groups: dict[str, dict[str, list[float]]], comparisons: list[str], alpha: float,
                  n_resamples: int = 10_000, random_state: int = 0, statistic: str = "") -> Verdict:
    """groups: task -> variant -> per-run AUCs; compares sql_pretrained with each of `comparisons`."""
    rule = "reproduced if every Bonferroni bootstrap CI of mean(SQL pretrained) - mean(DDPG variant) > 0; " \
           "not_reproduced if any < 0; else inconclusive"
    pairs = [(t, c) for t in sorted(groups) for c in comparisons]
    m = max(1, len(pairs))
    level = 1 - alpha / m
    tests: dict[str, Any] = {"alpha": alpha, "comparisons": m, "ci_level": level, "n_resamples": n_resamples,
                             "random_state": random_state, "intervals": {}}
    measured: dict[str, Any] = {t: {v: list(x) for v, x in g.items()} for t, g in groups.items()}
    notes: list[str] = []
    if not pairs:
        from .power import finetune_power_analysis

        pa = finetune_power_analysis(claim, alpha, 0)
        tests["power"] = pa.to_dict()
        return Verdict(claim, "inconclusive", rule, statistic, {"sql_pretrained": "fastest"}, measured, tests,
                       ["no fine-tuning results", inconclusive_note(pa)])
    above, below = [], []
    for t, c in pairs:
        a, b = groups[t].get("sql_pretrained", []), groups[t].get(c, [])
        lo, hi = bootstrap_diff_ci(a, b, level, n_resamples, random_state)
        tests["intervals"][f"{t}: sql_pretrained - {c}"] = {"low": lo, "high": hi, "n": [len(a), len(b)],
                                                            "mean_diff": float(np.mean(a) - np.mean(b)) if a and b else None}
        above.append(lo > 0)
        below.append(hi < 0)
        if len(a) < 2 or len(b) < 2:
            notes.append(f"{t}: fewer than 2 runs of sql_pretrained or {c}; interval undefined")
    v = "not_reproduced" if any(below) else "reproduced" if all(above) else "inconclusive"
    from .power import finetune_power_analysis

    n_min = min((len(groups[t].get(k, [])) for t in groups for k in ("sql_pretrained", *comparisons)), default=0)
    pa = finetune_power_analysis(claim, alpha, n_min)
    tests["power"] = pa.to_dict()
    if v == "inconclusive":
        notes.append(inconclusive_note(pa))
    return Verdict(claim, v, rule, statistic, {"sql_pretrained": "above both DDPG variants (Figure 5)"},
                   measured, tests, notes)


@verdict("CLAIM.5_3.finetune_faster")
def finetune_faster(spec, results: list[dict]) -> Verdict:
    p = spec.params
    groups: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        if r.get("protocol") == "finetune":
            x = r["metrics"].get("mean_discounted_return")
            if x is not None and math.isfinite(float(x)):
                groups[r["task"]][r["variant"]].append(float(x))
    v = curve_verdict(spec.id, {t: dict(g) for t, g in groups.items()}, list(p["comparisons"]), float(p["alpha"]),
                      int(p.get("n_resamples", 10_000)), int(p.get("random_state", 0)), p.get("statistic", ""))
    if any(r.get("tier") == "smoke" for r in results if r.get("protocol") == "finetune"):
        v.notes.append("smoke-tier results: too short to learn; the verdict is not evidence about the paper")
    return v


def evaluate_claims(results: list[dict], only: list[str] | None = None,
                    roles: dict[str, str] | None = None) -> list[Verdict]:
    """Verdicts of the claims in `only` (default all); `roles` maps role -> variant for the
    success-fraction claims (ROLE_CLAIMS); with a non-default mapping only those are decided."""
    specs = claim_specs()
    missing = set(specs) - set(VERDICTS)
    if missing:
        raise RuntimeError(f"claims without a verdict function: {sorted(missing)}")
    mapped = check_roles(roles) != check_roles(None)
    out = []
    for cid, spec in specs.items():
        if only is not None and cid not in only:
            continue
        if cid in ROLE_CLAIMS:
            out.append(VERDICTS[cid](spec, results, roles=check_roles(roles)))
        elif not mapped:
            out.append(VERDICTS[cid](spec, results))
    return out


def render_markdown(verdicts: list[Verdict]) -> str:
    lines = ["| claim | verdict | measured | decisive p / CI |", "|---|---|---|---|"]
    for v in verdicts:
        if "sql_successes" in v.measured:
            roles = v.measured.get("roles") or check_roles(None)
            name = {r: r.upper() if var == r else f"{var} (as {r.upper()})" for r, var in roles.items()}
            meas = (f"{name['sql']} {v.measured['sql_successes']}/{v.measured['sql_runs']}, "
                    f"{name['ddpg']} {v.measured['ddpg_successes']}/{v.measured['ddpg_runs']}")
            t = v.tests
            dec = (f"Fisher SQL>DDPG p={t.get('p_claim_fisher_sql_gt_ddpg', float('nan')):.3g}, "
                   f"reverse p={t.get('p_reverse_fisher_ddpg_gt_sql', float('nan')):.3g}, "
                   f"binom vs paper p={t.get('p_paper_binom_sql_below_p0', float('nan')):.3g}") if "p_claim_fisher_sql_gt_ddpg" in t else "-"
        else:
            meas = "; ".join(f"{t}: " + ", ".join(f"{k} n={len(x)} mean={np.mean(x):.3g}" for k, x in g.items() if x)
                             for t, g in v.measured.items())
            dec = "; ".join(f"{k} [{iv['low']:.3g}, {iv['high']:.3g}]" for k, iv in v.tests.get("intervals", {}).items())
        lines.append(f"| {v.claim} | **{v.verdict}** | {meas} | {dec} |")
        pw = v.tests.get("power")
        if pw:
            plan = ", ".join(f"{k} {x}" for k, x in pw["planned"].items())
            need = "; ".join(f"{k}: P(reproduced) = {pw['power_planned'][k]['reproduced']:.2f}, needed "
                             f"{'> 200' if n is None else n}" for k, n in pw["runs_needed"].items())
            lines.append(f"|  | power | runs: {plan} | {need} (power {pw['target_power']:g}) |")
        for n in v.notes:
            lines.append(f"|  | note | {n} | |")
    return "\n".join(lines) + "\n"
