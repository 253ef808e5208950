"""Reproducibility report and release gate (softq_ref.benchmarks.{report,gate,validate,stats,figures}).

Synthetic result files in tmp_path (no training): a ci-shaped matrix of 5 seeds with untrained
checkpoints for the figures that roll out policies. Fast and single-threaded.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from softq_ref.benchmarks import claims as claims_mod
from softq_ref.benchmarks import gate, report
from softq_ref.benchmarks import stats as st
from softq_ref.benchmarks.runner import SCHEMA_VERSION
from softq_ref.benchmarks.tiers import matrix
from softq_ref.benchmarks.validate import load_results

SEEDS = [0, 1, 2, 3, 4]
TASKS = ["multigoal", "swimmer", "point_maze", "point_hallway_wide"]


def _metrics(run, shift: float = 0.0) -> tuple[dict, dict]:
    s, v, p = run.seed, run.variant, run.protocol
    good = v in ("sql", "sql_pretrained")
    steps = [1000 * (i + 1) for i in range(4)]
    if p == "multigoal":
        g = 4 if good else 1
        g = max(0, g - int(shift))
        return ({"final_step": 4000, "goals_reached": g, "goal_counts": [1] * g + [0] * (4 - g), "success": g == 4},
                {"step": steps, "goals_reached": [1, 2, g, g]})
    if p == "swimmer":
        hi = (0.6 if good else 0.3 + 0.1 * (s % 2)) + 0.01 * s - shift
        return ({"final_step": 4000, "max_x": hi, "min_x": -0.2, "finish_line": 0.5, "success": hi >= 0.5},
                {"step": steps, "max_x_so_far": [0.1, 0.2, 0.3, hi], "min_x_so_far": [-0.1, -0.2, -0.2, -0.2]})
    if p == "maze":
        d = (3.0 if good else 6.0 + 0.1 * s) + 0.01 * s + shift
        return ({"final_step": 4000, "min_distance": d, "threshold_distance": math.sqrt(29), "success": d < math.sqrt(29)},
                {"step": steps, "min_distance_so_far": [15.0, 10.0, 8.0, d]})
    if p == "pretrain":
        return ({"final_step": 4000, "max_travel": 20.0 + s}, {"step": steps, "max_travel_so_far": [5, 10, 15, 20.0 + s],
                                                              "mean_return": [1, 2, 3, 4]})
    base = {"sql_pretrained": 10.0, "ddpg_scratch": 5.0, "ddpg_pretrained": 6.0}[v] + 0.1 * s - shift
    ys = [base - 1, base, base + 0.5, base + 0.5]
    return ({"final_step": 4000, "final_discounted_return": ys[-1], "mean_discounted_return": float(np.mean(ys))},
            {"step": steps, "eval_discounted_return": ys, "eval_return": ys, "mean_return": ys})


def make_results(root: Path, tier: str = "ci", seeds=SEEDS, tasks=TASKS, shift: float = 0.0,
                 checkpoints: bool = True) -> Path:
    """Synthetic result files in the runner's layout (+ untrained checkpoints for seed 0)."""
    from softq_ref.config import SQLConfig
    from softq_ref.training import make_agent

    for run in matrix(tier, tasks, seeds):
        d = root / tier / run.task / run.variant / f"seed{run.seed}"
        d.mkdir(parents=True, exist_ok=True)
        m, c = _metrics(run, shift)
        res = {"schema_version": SCHEMA_VERSION, **run.to_dict(), "key": run.key, "status": "completed", "metrics": m,
               "curves": c, "wall_time_s": 1.5, "command": ["python", "-m", "softq_ref.benchmarks", "--tier", tier],
               "git_commit": "abc123", "versions": {"python": "3.11", "torch": "2"}}
        (d / "result.json").write_text(json.dumps(res))
        if checkpoints and run.seed == 0 and run.protocol in ("multigoal", "pretrain"):
            cfg = SQLConfig.from_dict({**run.config, "hidden_sizes": [8, 8]}).validate()
            (d / "config.json").write_text(json.dumps(cfg.to_dict()))
            agent = make_agent(run.algo, 2, 2, cfg, run.seed)
            torch.save({"algo": run.algo, "agent": agent.state_dict()}, d / "checkpoint.pt")
    (root / tier / "matrix.json").write_text(json.dumps({"command": ["python", "-m", "softq_ref.benchmarks"],
                                                         "time": "2026-11-21T21:00:00+00:00", "wall_time_s": 12.5,
                                                         "executor": "process", "workers": 2,
                                                         "counts": {"completed": 1}, "outcomes": {}}))
    return root


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    return make_results(tmp_path_factory.mktemp("res"))


def _files(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


CONF = "reports/conformance/softq_ref/report.json"


def test_report_contents_and_byte_identical_regeneration(results_dir, tmp_path):
    conf = [CONF] if Path(CONF).exists() else []
    outs = []
    for name in ("a", "b"):
        out = tmp_path / name / "ci-test"
        assert report.main(["--results", str(results_dir), "--out", str(out), "--run-id", "ci-test",
                            *sum((["--conformance", c] for c in conf), [])]) == 0
        outs.append(out)
    fa, fb = _files(outs[0]), _files(outs[1])
    assert fa == fb, "same results must give the same bytes"
    assert {"REPORT.md", "report.json", "figures/fig1_multigoal.png", "figures/fig1_multigoal_seeds.png",
            "figures/fig6_swimmer.png", "figures/fig3b_point_maze.png", "figures/fig5_finetune.png",
            "figures/fig7_point_pretrain.png"} <= set(fa)
    for k, v in fa.items():
        if k.endswith(".png"):
            assert v[:8] == b"\x89PNG\r\n\x1a\n" and b"Software" not in v
    rep = json.loads(fa["report.json"])
    assert rep["schema_version"] == report.REPORT_SCHEMA_VERSION and rep["tier"] == "ci" and not rep["left_out"]
    by = {c["claim"]: c for c in rep["claims"]}
    # verdicts are claims.py's, not re-decided
    loaded = load_results(str(results_dir))
    for v in claims_mod.evaluate_claims(loaded.results):
        assert by[v.claim]["verdict"] == v.verdict
    assert by["CLAIM.5_1.multigoal_modes"]["verdict"] == "reproduced"
    lo, hi = by["CLAIM.5_1.multigoal_modes"]["ci95"]["sql_fraction"]
    assert (lo, hi) == pytest.approx(st.clopper_pearson(5, 5))
    assert by["CLAIM.5_3.finetune_faster"]["verdict"] == "reproduced"
    md = fa["REPORT.md"].decode()
    for s in ("## Claims", "| claim | source | paper | ours [95% CI] | test | verdict |", "## Aggregates across seeds",
              "IQM", "## Figures", "## Conformance", "## Environment", "## Left out", "Nothing: every result file"):
        assert s in md
    assert str(tmp_path) not in md  # the output location is not part of the report
    agg = {(a["task"], a["variant"]): a for a in rep["aggregates"]}
    assert agg[("point_maze", "ddpg")]["p_improvement"] == 1.0  # SQL's distance is lower in every pair
    past = {(c["variant"], c["direction"], c["distance"]): c["past"] for c in rep["crossing"]}
    assert past[("sql", "forward", 0.5)] == [0, 0, 0, 5] and past[("ddpg", "forward", 0.5)] == [0, 0, 0, 0]
    assert "## Swimmer: runs past each distance, by step" in md and "| sql | forward | 0.5 | 0/5 | 0/5 | 0/5 | 5/5 |" in md


def test_crossing_counts_runs_past_each_distance_by_step():
    from softq_ref.benchmarks.crossing import crossing_rows, render_crossing

    def res(seed, xs, mins, steps=(1, 2, 3)):
        return {"protocol": "swimmer", "task": "swimmer", "variant": "ddpg", "steps": 3, "seed": seed,
                "curves": {"step": list(steps), "max_x_so_far": xs, "min_x_so_far": mins}}
    rs = [res(0, [0.2, 1.0, 1.6], [-0.1, -0.1, -0.1]), res(1, [None, 0.4, 0.6], [-0.6, -1.2, -2.5]),
          res(2, [3.0, 3.0, 3.0], [0, 0, 0], steps=(1, 2, 4)),  # other steps than its group's: left out
          {"protocol": "maze", "task": "point_maze", "variant": "sql", "steps": 3, "curves": {"step": [1]}}]
    rows = {(r["direction"], r["distance"]): r for r in crossing_rows(rs)}
    assert {r["n"] for r in rows.values()} == {2} and rows[("forward", 1.0)]["steps"] == [1, 2, 3]
    assert rows[("forward", 0.5)]["past"] == [0, 1, 2] and rows[("forward", 1.5)]["past"] == [0, 0, 1]
    assert rows[("backward", 1.0)]["past"] == [0, 1, 1] and rows[("backward", 2.0)]["past"] == [0, 0, 1]
    assert "| ddpg | backward | 2 | 0/2 | 0/2 | 1/2 |" in render_crossing(list(rows.values()))


def test_bad_files_are_reported_and_the_report_still_built(tmp_path):
    root = make_results(tmp_path / "res", checkpoints=False)
    ci = root / "ci"
    t = ci / "multigoal/sql/seed1/result.json"
    t.write_text(t.read_text()[:100])  # truncated
    w = ci / "multigoal/ddpg/seed2/result.json"
    obj = json.loads(w.read_text())
    w.write_text(json.dumps({**obj, "schema_version": 99}))
    m = ci / "point_maze/sql/seed3/result.json"
    obj = json.loads(m.read_text())
    del obj["curves"]
    m.write_text(json.dumps(obj))
    e = ci / "point_maze/ddpg/seed0/result.json"
    e.write_text("")
    wrong_type = ci / "swimmer/sql/seed4/result.json"
    obj = json.loads(wrong_type.read_text())
    wrong_type.write_text(json.dumps({**obj, "seed": "four"}))
    moved = ci / "swimmer/ddpg/seed9/result.json"  # content says seed 0
    moved.parent.mkdir(parents=True)
    moved.write_text((ci / "swimmer/ddpg/seed0/result.json").read_text())
    make_results(tmp_path / "res", tier="smoke", seeds=[0], tasks=["multigoal"], checkpoints=False)  # mixed tiers
    rep = report.build_report(str(root), [str(tmp_path / "nope.json")], tmp_path / "out", figures=False)
    report.write_report(rep, tmp_path / "out")
    left = {x["path"].split("/res/", 1)[1]: x["reason"] for x in rep["left_out"] if "/res/" in x["path"]}
    assert "corrupt or truncated JSON" in left["ci/multigoal/sql/seed1/result.json"]
    assert "schema_version 99" in left["ci/multigoal/ddpg/seed2/result.json"]
    assert "missing required fields ['curves']" in left["ci/point_maze/sql/seed3/result.json"]
    assert "empty file" in left["ci/point_maze/ddpg/seed0/result.json"]
    assert "seed is str" in left["ci/swimmer/sql/seed4/result.json"]
    assert "describes ci/swimmer/ddpg/seed0" in left["ci/swimmer/ddpg/seed9/result.json"]
    assert "tier 'smoke'" in left["smoke/multigoal/sql/seed0/result.json"]
    assert any("conformance report" in r for p, r in ((x["path"], x["reason"]) for x in rep["left_out"]))
    assert rep["tier"] == "ci" and any("mixed tiers" in n for n in rep["notes"])
    mg = next(c for c in rep["claims"] if c["claim"] == "CLAIM.5_1.multigoal_modes")
    assert mg["measured"]["sql_runs"] == 4 and mg["measured"]["ddpg_runs"] == 4  # the valid ones still count
    md = (tmp_path / "out" / "REPORT.md").read_text()
    assert "## Left out" in md and "ci/multigoal/sql/seed1/result.json" in md and "schema_version 99" in md


def test_steps_override_not_pooled(tmp_path):
    root = make_results(tmp_path / "res", tasks=["point_maze"], checkpoints=False)
    p = root / "ci/point_maze/sql/seed4/result.json"
    obj = json.loads(p.read_text())
    p.write_text(json.dumps({**obj, "steps": 123}))
    loaded = load_results(str(root))
    assert [r.path.endswith("seed4/result.json") for r in loaded.rejected] == [True]
    assert "steps" in loaded.rejected[0].reason


def test_stats_against_definitions():
    x, y = [1.0, 2.0, 2.0, 5.0, 9.0], [0.0, 2.0, 3.0, 3.0, 4.0]
    brute = np.mean([(a > b) + 0.5 * (a == b) for a in x for b in y])
    assert st.prob_improvement(x, y) == pytest.approx(brute)
    assert st.iqm(x) == pytest.approx(np.mean([2.0, 2.0, 5.0]))
    assert st.iqm_ci(x) == st.iqm_ci(x)  # fixed random state
    lo, hi = st.prob_improvement_ci(x, y)
    assert 0 <= lo <= brute <= hi <= 1
    assert st.mw_less([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == pytest.approx(1 / 252)
    assert st.min_mw_p(5, 5) == pytest.approx(1 / 252)
    assert st.mw_less([1, 1, 2, 2, 3], [4, 4, 5, 5, 6]) == pytest.approx(1 / 252)  # ties: exact permutation
    assert st.mw_less([3, 3, 3], [3, 3, 3]) == 1.0


def _conf_report(tmp_path: Path, status: str) -> str:
    p = tmp_path / f"conf_{status}.json"
    p.write_text(json.dumps({"implementation": "x", "version": "1", "summary": {"pass": 1, status: 1},
                             "environment": {}, "specs": [{"id": "A1.x", "status": "pass"},
                                                          {"id": "B1.y", "status": status, "message": "broken"}]}))
    return str(p)


def test_gate_exit_codes(tmp_path, capsys):
    base = make_results(tmp_path / "base", checkpoints=False)
    assert gate.main(["--write-baseline", str(tmp_path / "bl"), "--results", str(base)]) == 0
    bl = str(tmp_path / "bl")
    ok = _conf_report(tmp_path, "not_applicable")
    # the same results: pass
    assert gate.main(["--baseline", bl, "--results", str(base), "--conformance-report", ok]) == 0
    # every run clearly worse: regression, named in the output
    worse = make_results(tmp_path / "worse", shift=2.0, checkpoints=False)
    capsys.readouterr()
    assert gate.main(["--baseline", bl, "--results", str(worse), "--skip-conformance", "--json",
                      str(tmp_path / "g.json")]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "regressed:" in out and "point_maze/sql min_distance" in out
    g = json.loads((tmp_path / "g.json").read_text())
    assert g["exit_code"] == 1 and g["benchmark"]["regressions"]
    # a small drop in a few runs is not a significant drop
    small = make_results(tmp_path / "small", checkpoints=False)
    for s in (0, 1):
        p = small / f"ci/point_maze/sql/seed{s}/result.json"
        obj = json.loads(p.read_text())
        obj["metrics"]["min_distance"] += 0.05
        p.write_text(json.dumps(obj))
    assert gate.main(["--baseline", bl, "--results", str(small), "--skip-conformance"]) == 0
    # a missing group fails
    import shutil

    shutil.rmtree(small / "ci/swimmer/ddpg")
    assert gate.main(["--baseline", bl, "--results", str(small), "--skip-conformance"]) == 1
    # a conformance failure fails
    assert gate.main(["--baseline", bl, "--results", str(base), "--conformance-report", _conf_report(tmp_path, "fail")]) == 1
    # an unusable baseline is a usage error
    (tmp_path / "badbl").mkdir()
    (tmp_path / "badbl" / "baseline.json").write_text('{"kind": "softq-gate-baseline", "schema_version": 7}')
    assert gate.main(["--baseline", str(tmp_path / "badbl"), "--results", str(base), "--skip-conformance"]) == 2


def test_gate_bonferroni_and_power():
    b = {"groups": {f"t{i}/sql": {"protocol": "maze", "metrics": {"min_distance": [1.0, 2, 3, 4, 5]}} for i in range(3)}}
    c = {"groups": {k: {"protocol": "maze", "metrics": {"min_distance": [6.0, 7, 8, 9, 10]}} for k in b["groups"]}}
    cmp = gate.compare(b, c, alpha=0.05)
    assert cmp["m"] == 3 and cmp["level"] == pytest.approx(0.05 / 3)
    assert len(cmp["regressions"]) == 3 and not any(t["underpowered"] for t in cmp["tests"])
    small = {"groups": {k: {"protocol": "maze", "metrics": {"min_distance": [1.0, 2]}} for k in b["groups"]}}
    cmp2 = gate.compare(small, {"groups": {k: {"protocol": "maze", "metrics": {"min_distance": [9.0, 9.5]}}
                                           for k in b["groups"]}})
    assert not cmp2["regressions"] and all(t["underpowered"] for t in cmp2["tests"])
    sb = {"groups": {"m/sql": {"protocol": "multigoal", "metrics": {"goals_reached": [4] * 5, "success": [True] * 5}}}}
    sc = {"groups": {"m/sql": {"protocol": "multigoal", "metrics": {"goals_reached": [1] * 5, "success": [False] * 5}}}}
    assert gate.compare(sb, sc)["m"] == 1 and gate.compare(sb, sc, test_success=True)["m"] == 2
    assert len(gate.compare(sb, sc, test_success=True)["regressions"]) == 2


def test_committed_baseline_is_valid():
    p = Path("reports/baselines/smoke/baseline.json")
    if not p.exists():
        pytest.skip("no committed baseline")
    base, err = gate.load_baseline(p.parent)
    assert err is None and base["tier"] == "smoke"
    cmp = gate.compare(base, base)
    assert cmp["m"] >= 1 and not cmp["regressions"] and not any(t["underpowered"] for t in cmp["tests"])


def test_archive_regenerates_from_the_copy(results_dir, tmp_path):
    out = tmp_path / "rep"
    assert report.main(["--results", str(results_dir), "--out", str(out), "--archive"]) == 0
    pol = out / "results/ci/multigoal/sql/seed0/policy.pt"
    assert pol.exists() and not (out / "results/ci/multigoal/sql/seed0/checkpoint.pt").exists()
    assert (out / "results/ci/matrix.json").exists()
    again = tmp_path / "again"
    assert report.main(["--results", (out / "results").as_posix(), "--out", str(again)]) == 0
    a, b = _files(out), _files(again)
    assert {k: v for k, v in a.items() if not k.startswith("results/")} == b
    # the networks-only policies draw the same figures as the full checkpoints
    full = tmp_path / "full"
    assert report.main(["--results", str(results_dir), "--out", str(full)]) == 0
    assert _files(full)["figures/fig1_multigoal.png"] == b["figures/fig1_multigoal.png"]
    assert _files(full)["figures/fig7_point_pretrain.png"] == b["figures/fig7_point_pretrain.png"]


def test_report_usage_errors(tmp_path):
    assert report.main(["--results", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    (tmp_path / "empty").mkdir()  # a report from no valid results is an error, not "tier None, 0 runs"
    assert report.main(["--results", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--no-figures"]) == 1
    assert not (tmp_path / "o" / "report.json").exists()


def test_third_party_variants_are_loaded_but_do_not_enter_the_sql_ddpg_verdicts(tmp_path):
    """Results of --algos runs (e.g. sb3_sac) sit beside the main matrix; an unknown algo is rejected."""
    root = make_results(tmp_path / "res", tasks=["multigoal"], checkpoints=False)
    ci = root / "ci" / "multigoal"
    for variant, algo in (("sb3_sac", "sb3_sac"), ("bogus", "ppo")):
        src = json.loads((ci / "ddpg/seed0/result.json").read_text())
        d = ci / variant / "seed0"
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps({**src, "variant": variant, "algo": algo,
                                                   "key": f"multigoal/{variant}/seed0"}))
    loaded = load_results(str(root))
    assert any(r["variant"] == "sb3_sac" for r in loaded.results)
    reasons = {x.path.split("/res/", 1)[1]: x.reason for x in loaded.rejected}
    assert "unknown algo 'ppo'" in reasons["ci/multigoal/bogus/seed0/result.json"]
    mg = next(v for v in claims_mod.evaluate_claims(loaded.results) if v.claim == "CLAIM.5_1.multigoal_modes")
    assert (mg.measured["sql_runs"], mg.measured["ddpg_runs"]) == (5, 5)


def test_a_resumed_matrix_estimates_only_its_unfinished_runs(tmp_path, capsys):
    from softq_ref.benchmarks.__main__ import main as bench_main

    make_results(tmp_path, seeds=[0, 1], tasks=["multigoal"], checkpoints=False)
    args = ["--tier", "ci", "--seeds", "0-1", "--out", str(tmp_path), "--workers", "2", "--claims-only", "--no-progress"]
    bench_main([*args, "--tasks", "multigoal"])
    assert "cost estimate: " in (out := capsys.readouterr().out) and "core-h for 4 runs; all finished" in out
    bench_main([*args, "--tasks", "multigoal,point_maze"])
    out = capsys.readouterr().out
    assert "core-h for 8 runs; 4 not finished: " in out and "h on 2 worker(s)" in out


def test_a_resumed_matrix_keeps_the_history_of_its_invocations(tmp_path):
    from softq_ref.benchmarks.__main__ import _invocations

    path = tmp_path / "matrix.json"
    first = {"command": ["a"], "time": "t1", "wall_time_s": 100.0, "counts": {"completed": 3}, "executor": "process", "workers": 2}
    assert _invocations(path, first) == [first]  # no matrix.json yet
    path.write_text(json.dumps({**first, "runs": ["x"], "outcomes": {}}))  # a file written before the history existed
    second = {**first, "time": "t2", "wall_time_s": 5.0, "counts": {"skipped": 3}}
    assert _invocations(path, second) == [first, second]
    path.write_text(json.dumps({**second, "invocations": [first, second]}))
    third = {**second, "time": "t3"}
    assert _invocations(path, third) == [first, second, third]
    path.write_text("{not json")
    assert _invocations(path, third) == [third]


def test_report_counts_a_stacked_process_once_and_adds_up_the_invocations():
    from softq_ref.benchmarks.report import _process_wall_sum
    from softq_ref.benchmarks.report_markdown import _matrix_wall

    stacked = [{"task": "swimmer", "variant": "sql", "seed": s, "group_seeds": [0, 1, 2], "wall_time_s": 100.0 + s}
               for s in range(3)]
    alone = [{"task": "swimmer", "variant": "ddpg", "seed": s, "wall_time_s": 10.0} for s in range(2)]
    assert _process_wall_sum(stacked + alone) == pytest.approx(102.0 + 20.0)
    env = {"matrix_wall_time_s": 5.0, "matrix_executor": "process", "matrix_workers": 2, "matrix_counts": {"skipped": 4},
           "matrix_invocations": [{"wall_time_s": 100.0}, {"wall_time_s": 5.0}]}
    text = _matrix_wall(env)
    assert "the last of 2 recorded invocations; all together 105 s" in text and "skipped 4 runs" in text
    text = _matrix_wall({**env, "matrix_invocations": []})
    assert "skipped 4 runs" in text and "no earlier invocation recorded" in text
    assert _matrix_wall({**env, "matrix_counts": {"completed": 4}, "matrix_invocations": [{"wall_time_s": 5.0}]}) == \
        "5 s, executor process, 2 workers"
