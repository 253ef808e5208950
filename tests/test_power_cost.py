"""Power analysis (softq_ref/benchmarks/power.py), cost estimate (cost.py), throughput table (throughput.py),
the long tier and the CLI's --dry-run printout (issue 16)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from softq_ref.benchmarks import claims, cost, power, throughput, tiers
from softq_ref.benchmarks.__main__ import main as bench_main

P0 = claims.paper_rate_floor(1.0, 5, 0.05)  # 0.549: the lowest SQL rate consistent with 5/5


# -- success fractions: exact power -------------------------------------------------------------------------
def test_vectorised_fisher_equals_scipy_fisher_exact():
    for n1, n2 in ((5, 5), (4, 7), (10, 3)):
        for s1 in range(n1 + 1):
            for s2 in range(n2 + 1):
                table = [[s1, n1 - s1], [s2, n2 - s2]]
                assert power.fisher_greater(s1, n1, s2, n2) == pytest.approx(
                    stats.fisher_exact(table, alternative="greater").pvalue, rel=1e-9, abs=1e-12)
                assert power.fisher_less(s1, n1, s2, n2) == pytest.approx(
                    stats.fisher_exact(table, alternative="less").pvalue, rel=1e-9, abs=1e-12)


def test_decision_table_is_the_verdict_rule_of_claims_py():
    code = {"reproduced": 1, "not_reproduced": -1, "inconclusive": 0}
    for n1, n2 in ((5, 5), (4, 6), (9, 9)):
        dec = power.fraction_decisions(n1, n2, 0.05, P0)
        for s1 in range(n1 + 1):
            for s2 in range(n2 + 1):
                v = claims.success_fraction_verdict("C", s1, n1, s2, n2, 1.0, 0.6, 5, 0.05)
                assert dec[s1, s2] == code[v.verdict], (n1, n2, s1, s2)


def test_power_hand_checked_cases():
    # SQL always succeeds, DDPG never: 4/4 vs 0/4 gives Fisher p = 1/70 < 0.05, 3/3 vs 0/3 gives 1/20 (not < 0.05)
    assert power.fraction_power(1.0, 0.0, 4, 4, 0.05, P0)["reproduced"] == pytest.approx(1.0)
    assert power.fraction_power(1.0, 0.0, 3, 3, 0.05, P0)["reproduced"] == 0.0
    assert power.runs_needed_for_power(1.0, 0.0, 0.05, P0) == 4
    # 5/5 vs s/5: Fisher p = C(5 + s, 5) / 252 -> s = 0: 1/252, s = 1: 6/252 (< 0.05), s = 2: 21/252 (not);
    # so P(reproduced) = P(DDPG <= 1 of 5) = 0.4^5 + 5 * 0.6 * 0.4^4 at DDPG rate 0.6
    assert power.fraction_power(1.0, 0.6, 5, 5, 0.05, P0)["reproduced"] == pytest.approx(0.4 ** 5 + 5 * 0.6 * 0.4 ** 4)
    # SQL at 0.5: the binomial check against p0 refutes whenever it alone gives p < alpha
    p = power.fraction_power(0.5, 0.6, 5, 5, 0.05, P0)
    assert sum(p.values()) == pytest.approx(1.0)
    refuting_s1 = [s for s in range(6) if stats.binomtest(s, 5, P0, alternative="less").pvalue < 0.05]
    assert p["not_reproduced"] >= sum(stats.binom.pmf(s, 5, 0.5) for s in refuting_s1) - 1e-12
    # monotone in the effect: at 13 runs the maze effect (1.0 vs 0.6) first passes power 0.8
    assert power.runs_needed_for_power(1.0, 0.6, 0.05, P0) == 13
    assert power.fraction_power(1.0, 0.6, 12, 12, 0.05, P0)["reproduced"] < 0.8


def test_power_inputs_are_checked():
    with pytest.raises(ValueError, match="p_sql = 1.2"):
        power.fraction_power(1.2, 0.5, 5, 5, 0.05, P0)
    with pytest.raises(ValueError, match="n_ddpg = 0"):
        power.fraction_power(1.0, 0.5, 5, 0, 0.05, P0)


def test_verdicts_carry_the_power_analysis_and_inconclusive_says_how_many_runs():
    v = claims.success_fraction_verdict("CLAIM.5_2.maze_passage", 9, 10, 9, 10, 1.0, 0.6, 5, 0.05)
    assert v.verdict == "inconclusive"
    pw = v.tests["power"]
    assert pw["planned"] == {"sql": 10, "ddpg": 10}
    assert list(pw["runs_needed"].values()) == [13, power.runs_needed_for_power(0.95, 0.6, 0.05, P0)]
    assert any("13 (SQL 1 vs DDPG 0.6 (paper))" in n for n in v.notes), v.notes
    md = claims.render_markdown([v])
    assert "| power | runs: sql 10, ddpg 10 |" in md and "needed 13" in md


# -- fine-tuning: simulated power ---------------------------------------------------------------------------
def test_finetune_power_limits_and_ci_effects():
    big = {t: {"sql_pretrained": (10.0, 1.0), "ddpg_scratch": (0.0, 1.0), "ddpg_pretrained": (0.0, 1.0)}
           for t in ("a", "b", "c")}
    null = {t: {v: (0.0, 1.0) for v in ("sql_pretrained", "ddpg_scratch", "ddpg_pretrained")} for t in ("a", "b", "c")}
    assert power.finetune_power(big, 5, 0.05, sims=2000)["reproduced"] > 0.99
    p = power.finetune_power(null, 10, 0.05, sims=4000)
    assert p["reproduced"] < 0.01 and p["not_reproduced"] < 0.1  # family-wise alpha over 6 intervals
    # the ci effect model has SQL pretrained below DDPG from scratch on the U-maze: never reproduced
    eff = power.finetune_effects("ci-2026-11-21b")
    assert eff["point_umaze"]["sql_pretrained"][0] < eff["point_umaze"]["ddpg_scratch"][0]
    assert power.finetune_runs_needed(eff, 0.05, sims=500, n_max=40) is None
    n = power.finetune_runs_needed(power.finetune_effects("paper"), 0.05, sims=2000)
    assert 10 <= n <= 40
    with pytest.raises(ValueError, match="effect model 'figure5'"):
        power.finetune_effects("figure5")


def test_normal_interval_decides_like_the_percentile_bootstrap():
    """The simulation replaces claims.bootstrap_diff_ci by d +- z sqrt(var0/n); check they agree on data."""
    rng = np.random.default_rng(1)
    level, z, agree = 1 - 0.05 / 6, power._z(0.05, 6), 0
    for _ in range(40):
        a, b = rng.normal(1.35, 1.0, 8), rng.normal(0.0, 1.0, 8)
        lo, _ = claims.bootstrap_diff_ci(list(a), list(b), level, n_resamples=4000)
        d, se = a.mean() - b.mean(), math.sqrt(a.var() / 8 + b.var() / 8)
        agree += (lo > 0) == (d - z * se > 0)
    assert agree >= 34, agree  # the two decide alike on >= 85% of the data sets


# -- cost estimate ------------------------------------------------------------------------------------------
def _table():
    t = {"env_step_us": {"SoftQ/PointMaze2Passage-v0": 50.0, "SoftQ/PointArena-v0": 40.0,
                         "SoftQ/PointHallwayWide-v0": 40.0},
         "act_us": {"ci": {"point": {"sql": 150.0, "ddpg": 100.0}}},
         "update_us": {"ci": {"point": {"sql": 4000.0, "ddpg": 2000.0}}},
         "date": "d", "git_commit": "c", "machine": {"cpu": "x"}, "load_average_before": [1.0, 1.0, 1.0],
         "multiseed_speedup": {"16": 5.0, "4": {"sql": 2.0}}}
    return t


def test_run_cost_by_hand_and_the_multiseed_hook():
    run = [r for r in tiers.matrix("ci", ["point_maze"], [0]) if r.algo == "sql"][0]
    cfg = run.config  # 20,000 steps, learning from 1000 samples, no evaluation roll-outs
    by_hand = (20_000 * (50 + 150) + (20_000 - cfg["min_replay_size"]) * 4000) / 1e6 + cost.PROCESS_START_S
    assert cost.run_core_s(run, _table()) == pytest.approx(by_hand)
    # S = 16 measured: compute / 5, process start / 16; S = 4 measured for sql only; S = 8 unmeasured: 1.0
    assert cost.run_core_s(run, _table(), 16, _table()["multiseed_speedup"]) == pytest.approx(
        (by_hand - cost.PROCESS_START_S) / 5 + cost.PROCESS_START_S / 16)
    assert cost.speedup_factor(_table()["multiseed_speedup"], 4, "sql") == (2.0, True)
    assert cost.speedup_factor(_table()["multiseed_speedup"], 4, "ddpg") == (1.0, False)
    assert cost.speedup_factor(_table()["multiseed_speedup"], 8, "sql") == (pytest.approx(3.5), True)  # log-interpolated
    assert cost.speedup_factor(_table()["multiseed_speedup"], 32, "sql") == (5.0, True)  # the largest measured S
    assert cost.speedup_factor({"4": 2.0}, 2, "sql", stacked=True) == (1.0, False)
    with pytest.raises(cost.CostError, match="seeds_per_process = 0"):
        cost.speedup_factor({}, 0, "sql")
    with pytest.raises(cost.CostError, match=r"multiseed_speedup\[16\] = -1"):
        cost.speedup_factor({"16": -1}, 16, "sql")
    est = cost.estimate(tiers.matrix("ci", ["point_maze"], [0, 1]), {**_table(), "multiseed_speedup": {"16": 5.0}},
                        seeds_per_process=8)
    text = cost.render_estimate(est, 2)
    assert "no speed-up measured for S = 8, factor 1.0 assumed" in text and "CLAIM.5_2.maze_passage" in text
    assert est.group_sizes == [2]  # two seeds per variant: jobs of 2


def test_cost_names_what_the_table_lacks():
    run = tiers.matrix("long", ["ant_maze"], [0])[0]
    with pytest.raises(cost.CostError, match=r"act_us\['long'\]\['ant'\]\['sql'\].*throughput --tiers long"):
        t = _table()
        t["env_step_us"]["SoftQ/AntMaze2Passage-v0"] = 500.0
        cost.run_core_s(run, t)


def test_pretraining_cost_counts_for_the_finetuning_claim_and_the_chain():
    t = _table()
    runs = tiers.matrix("ci", ["point_hallway_wide"], [0])
    est = cost.estimate(runs, t)
    assert set(est.per_claim) == {"CLAIM.5_3.finetune_faster"}
    assert est.per_claim["CLAIM.5_3.finetune_faster"] == pytest.approx(est.core_s)
    pre = next(r for r in runs if r.key == "point_pretrain/sql/seed0")
    ft = next(r for r in runs if r.init_from == pre.key)
    assert est.longest_chain_s >= cost.run_core_s(pre, t) + cost.run_core_s(ft, t) - 1e-9


# -- the committed throughput table and the long tier -------------------------------------------------------
def test_committed_throughput_table_covers_the_measured_tiers():
    t = throughput.load_table()
    assert t["threads"] == 1 and len(t["git_commit"]) >= 7 and t["machine"]["cpu"]
    for tier in throughput.MEASURED_TIERS:
        for body in throughput.BODIES:
            for algo in ("sql", "ddpg"):
                assert t["update_us"][tier][body][algo] > t["act_us"][tier][body][algo] > 0
    for tier in throughput.MEASURED_TIERS:  # every task of every measured tier can be estimated
        assert cost.estimate(tiers.matrix(tier, ["all"], [0]), t).core_s > 0


def test_throughput_table_errors_name_the_file_and_field(tmp_path):
    p = tmp_path / "t.json"
    p.write_text(json.dumps({"env_step_us": {}}))
    with pytest.raises(ValueError, match=r"t.json: missing field 'act_us'"):
        throughput.load_table(p)
    p.write_text("{")
    with pytest.raises(ValueError, match="t.json: unreadable"):
        throughput.load_table(p)


def test_long_tier_fits_three_hours_on_two_cores_and_states_every_reduction():
    from softq_ref.benchmarks.runner import DEFAULT_SEEDS_PER_PROCESS

    est = cost.estimate(tiers.matrix("long", None, None), throughput.load_table(), DEFAULT_SEEDS_PER_PROCESS)
    # margin: the long tier's measured compute (5.77 core-h, reports/long-2026-12-03) was 1.21x this estimate
    # with the marginal multi-seed factors of 2026-12-04 (1.5x with the earlier whole-run factors)
    assert est.wall_s(2) * 1.21 <= 3 * 3600, "the long tier (default seeds, stacked) must fit 3 h on 2 cores"
    long = tiers.TIERS["long"]
    for key, tt in long.items():
        assert tt.reductions and all(r.why and "placeholder" not in r.why for r in tt.reductions), key
    assert tiers.tier_task("long", "ant_maze") is long["ant_maze"]
    assert tiers.tier_task("long", "ant_umaze") is long["ant_finetune"]
    assert tiers.tier_task("long", "point_umaze") is long["finetune"]
    assert tuple(tiers.tier_task("long", "ant_pretrain").sql_config().hidden_sizes) == (128, 128)
    for task in ("swimmer", "point_maze"):
        assert tiers.tier_task("long", task).steps > tiers.tier_task("ci", task).steps
    assert {"ant_maze", "ant_pretrain"} <= set(tiers.DEFAULT_TASKS["long"])


# -- CLI -----------------------------------------------------------------------------------------------------
def test_dry_run_prints_power_and_cost(capsys):
    assert bench_main(["--tier", "long", "--seeds", "5", "--dry-run", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "power CLAIM.5_2.maze_passage" in out and "runs needed per algorithm for power 0.8: 13" in out
    assert "cost estimate (throughput.json measured" in out and "core-h" in out and "on 2 worker(s)" in out
    assert bench_main(["--tier", "long", "--seeds", "2", "--dry-run", "--seeds-per-process", "16"]) == 0
    s16 = throughput.load_table()["multiseed_speedup"]["16"]["sql"]  # the printout quotes the committed table
    assert f"jobs of [2] seeds), measured speed-up factor {s16:.2f} at S = 16" in capsys.readouterr().out
    assert bench_main(["--tier", "long", "--seeds", "2", "--dry-run", "--seeds-per-process", "1"]) == 0
    assert "one process per run (seeds per process 1)" in capsys.readouterr().out
    assert bench_main(["--tier", "smoke", "--seeds", "1", "--dry-run"]) == 0  # unmeasured tier: no estimate
    assert "no cost estimate: throughput table has no act_us['smoke']" in capsys.readouterr().out
    assert bench_main(["--tier", "ci", "--dry-run", "--seeds-per-process", "0"]) == 2
    assert "--seeds-per-process 0: expected an integer >= 1" in capsys.readouterr().err


def test_pooled_maze_verdict_breaks_successes_down_by_task():
    def res(task, variant, ok):
        return {"protocol": "maze", "task": task, "variant": variant, "tier": "long",
                "metrics": {"success": ok, "min_distance": 1.0}}
    rs = [res("point_maze", "sql", True)] * 3 + [res("point_maze", "ddpg", False)] * 3 + \
         [res("ant_maze", "sql", False)] * 2 + [res("ant_maze", "ddpg", False)] * 2
    spec = claims.claim_specs()["CLAIM.5_2.maze_passage"]
    v = claims.maze_passage(spec, rs, roles=None)
    assert v.measured["per_task"] == {"ant_maze": {"sql": "0/2", "ddpg": "0/2"},
                                      "point_maze": {"sql": "3/3", "ddpg": "0/3"}}
    assert any(n.startswith("per task (SQL, DDPG successes): ant_maze 0/2, 0/2; point_maze 3/3, 0/3") for n in v.notes)


def test_multiseed_factors_come_from_marginal_perf_rows_only(tmp_path, capsys):
    rows = [{"mode": "process per seed", "S": 1, "algo": "sql", "task": "swimmer", "speedup": 1.0, "rate_method": "marginal"}]
    rows += [{"mode": "stacked", "S": S, "algo": a, "task": t, "speedup": f, "rate_method": "marginal", "load_1min": 0.4}
             for S, a, t, f in [(16, "sql", "swimmer", 2.0), (16, "sql", "point_maze", 3.0), (16, "ddpg", "swimmer", 4.0),
                                (4, "sql", "swimmer", 1.5)]]
    perf = tmp_path / "perf.json"
    perf.write_text(json.dumps({"machine": {"git_commit": "abcdef123456"}, "multiseed": {"rows": rows}}))
    factors, source = throughput.speedups_from_perf(perf)
    assert factors == {"4": {"sql": 1.5}, "16": {"sql": 2.5, "ddpg": 4.0}}  # mean over tasks, per S and algo
    assert "marginal" in source and "abcdef1234" in source
    table = tmp_path / "t.json"
    table.write_text(json.dumps({"env_step_us": {}, "multiseed_speedup": {"16": 9.9}}))
    assert throughput.main(["--out", str(table), "--speedups-from", str(perf)]) == 0
    written = json.loads(table.read_text())
    assert written["multiseed_speedup"] == factors and written["env_step_us"] == {}  # nothing else touched
    rows[1]["rate_method"] = "whole run (marginal not measurable: ...)"
    perf.write_text(json.dumps({"multiseed": {"rows": rows}}))
    with pytest.raises(ValueError, match="only marginal rates"):
        throughput.speedups_from_perf(perf)
    assert throughput.main(["--out", str(table), "--speedups-from", str(tmp_path / "missing.json")]) == 2
    assert "no multi-seed rows" in capsys.readouterr().err
