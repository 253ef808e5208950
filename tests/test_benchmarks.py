"""Benchmark runner, tiers and claim verdicts (softq_ref/benchmarks/README.md)."""
from __future__ import annotations

import json
import math
import os

import pytest
from scipy import stats

from softq_ref.benchmarks import claims, jobs, runner, tiers
from softq_ref.benchmarks.__main__ import main as cli_main

SMOKE_STEPS = 120  # below the smoke tier's 200: these tests only exercise the plumbing


def _runs(tasks, seeds=(0,), steps=SMOKE_STEPS):
    return tiers.matrix("smoke", tasks, list(seeds), steps)


def _results(out, tier="smoke"):
    res, problems = runner.collect_results(out, tier)
    return {r["key"]: r for r in res}, problems


# -- tiers ------------------------------------------------------------------------------------------------
def test_tiers_cover_every_task_and_paper_tier_is_appendix_d():
    for tier in tiers.TIERS:
        for task in tiers.TASKS:
            tiers.tier_task(tier, task).sql_config()  # validates
    p = tiers.TIERS["paper"]
    assert p["multigoal"].steps == 100 * 10_000 and p["finetune"].steps == 200 * 10_000 and p["maze"].steps == 500 * 10_000
    c = p["swimmer"].sql_config()
    assert (c.q_lr, c.policy_lr, c.batch_size, c.replay_size, c.min_replay_size, c.hidden_sizes) == \
           (1e-3, 1e-4, 64, 1_000_000, 10_000, (200, 200))
    assert c.target_update_interval == 5000 and c.value_samples == 50 and c.exploration_noise == "ou"
    assert p["multigoal"].sql_config().alpha == 10 and p["multigoal"].sql_config().svgd_particles == 100
    assert p["finetune"].sql_config().finetune_epochs == 20
    assert all(t.reductions for t in tiers.TIERS["ci"].values()), "every ci reduction needs its reason"
    ci = tiers.matrix("ci", None, list(range(5)))
    assert {r.task for r in ci} >= {"multigoal", "swimmer", "point_maze", "point_pretrain", "point_umaze"}
    assert all(sum(1 for r in ci if (r.task, r.variant) == (t, v)) == 5 for t, v in {(r.task, r.variant) for r in ci})


def test_finetune_tasks_pull_in_their_pretraining_and_reject_unknown_tasks():
    runs = tiers.matrix("smoke", ["point_umaze"], [0])
    assert [r.key for r in runs][:2] == ["point_pretrain/sql/seed0", "point_pretrain/ddpg/seed0"]
    ft = {r.variant: r.init_from for r in runs if r.task == "point_umaze"}
    assert ft == {"sql_pretrained": "point_pretrain/sql/seed0", "ddpg_scratch": None,
                  "ddpg_pretrained": "point_pretrain/ddpg/seed0"}
    with pytest.raises(Exception, match="unknown task"):
        tiers.matrix("smoke", ["nope"], [0])


# -- runner ------------------------------------------------------------------------------------------------
def test_smoke_runs_through_the_process_executor_write_valid_results_and_resume_skips(tmp_path):
    # two runs, one per worker (spawned interpreters cost seconds each on a loaded machine)
    runs = [r for r in _runs(["multigoal", "point_maze"]) if r.key in ("multigoal/sql/seed0", "point_maze/ddpg/seed0")]
    s = runner.run_matrix(runs, tmp_path, "process", workers=2, progress=False)
    assert {o["status"] for o in s["outcomes"].values()} == {"completed"}, s
    res, problems = _results(tmp_path)
    assert problems == [] and set(res) == {r.key for r in runs}
    r = res["point_maze/ddpg/seed0"]
    assert r["schema_version"] == runner.SCHEMA_VERSION and r["tier"] == "smoke" and r["git_commit"]
    assert {"torch", "numpy", "gymnasium"} <= set(r["versions"]) and r["command"]
    assert r["metrics"]["min_distance"] == min(r["curves"]["min_distance_so_far"])
    assert r["metrics"]["threshold_distance"] == pytest.approx(math.sqrt(29))
    d = tmp_path / "smoke" / "point_maze" / "ddpg" / "seed0"
    assert {"config.json", "metadata.json", "metrics.csv", "checkpoint.pt", "result.json"} <= set(os.listdir(d))
    assert 0 <= res["multigoal/sql/seed0"]["metrics"]["goals_reached"] <= 4
    # a second invocation skips every finished run
    s2 = runner.run_matrix(runs, tmp_path, "process", workers=2, progress=False)
    assert {o["status"] for o in s2["outcomes"].values()} == {"skipped"}


@pytest.mark.parametrize("seeds_per_process", [None, 1])  # the stacked trainer (default) and one process per run
def test_interrupted_run_resumes_to_the_same_result(tmp_path, seeds_per_process):
    """A run stopped half-way (checkpoint, no result.json) resumes; its curve equals an uninterrupted run."""
    full = _runs(["swimmer"], steps=200)[:1]
    runner.run_matrix(full, tmp_path / "a", "inline", progress=False, seeds_per_process=seeds_per_process)
    half = [tiers.RunDef(**{**full[0].to_dict(), "steps": 100})]
    runner.run_matrix(half, tmp_path / "b", "inline", progress=False, seeds_per_process=seeds_per_process)
    (tmp_path / "b" / "smoke" / full[0].key / "result.json").unlink()  # as if killed before the run finished
    import json as _j
    p = tmp_path / "b" / "smoke" / full[0].key / "metadata.json"
    s = runner.run_matrix(full, tmp_path / "b", "inline", progress=False, seeds_per_process=seeds_per_process)
    assert s["outcomes"][full[0].key]["status"] == "completed"
    a = _results(tmp_path / "a")[0][full[0].key]
    b = _results(tmp_path / "b")[0][full[0].key]
    assert b["resumed_from_step"] == 100 and "resumed" in _j.loads(p.read_text())
    assert a["curves"] == b["curves"] and a["metrics"] == b["metrics"]


def test_finetune_initialises_from_pretraining_and_failed_pretraining_blocks(tmp_path):
    import torch

    runs = _runs(["point_hallway_narrow"], steps=100)
    s = runner.run_matrix(runs, tmp_path, "inline", progress=False)
    assert {o["status"] for o in s["outcomes"].values()} == {"completed"}
    res, _ = _results(tmp_path)
    assert "eval_discounted_return" in res["point_hallway_narrow/sql_pretrained/seed0"]["curves"]
    # the fine-tuned run started from the pretrained networks: check with a fresh copy
    pre = torch.load(tmp_path / "smoke/point_pretrain/sql/seed0/checkpoint.pt", weights_only=False)["agent"]["sampler"]
    from softq_ref.config import SQLConfig
    from softq_ref.training import make_agent

    r = next(x for x in runs if x.variant == "sql_pretrained")
    agent = make_agent("sql", 2, 2, SQLConfig.from_dict(r.config), 0)
    runner._init_from_pretrained(agent, tmp_path / "smoke/point_pretrain/sql/seed0/checkpoint.pt")
    assert all(torch.equal(agent.sampler.state_dict()[k], v) for k, v in pre.items())
    # a corrupt pretraining result and checkpoint: fine-tuning is reported as blocked, not crashed
    out2 = tmp_path / "c"
    runs2 = _runs(["point_umaze"], steps=100)
    d = out2 / "smoke" / "point_pretrain" / "sql" / "seed0"
    d.mkdir(parents=True)
    (d / "checkpoint.pt").write_bytes(b"garbage")
    s = runner.run_matrix(runs2, out2, "inline", progress=False, log=lambda m: None)
    assert s["outcomes"]["point_pretrain/sql/seed0"]["status"] == "failed"
    assert s["outcomes"]["point_umaze/sql_pretrained/seed0"]["status"] == "blocked"
    assert s["outcomes"]["point_umaze/ddpg_scratch/seed0"]["status"] == "completed"


def test_bad_result_files_are_reported_not_crashing(tmp_path):
    run = _runs(["multigoal"])[0]
    d = runner.run_dir(tmp_path, run)
    d.mkdir(parents=True)
    (d / "result.json").write_text("{not json")
    res, problem = runner.load_result(d / "result.json", run)
    assert res is None and "corrupt JSON" in problem
    (d / "result.json").write_text(json.dumps({"schema_version": 999}))
    assert "missing fields" in runner.load_result(d / "result.json", run)[1]
    good = {k: None for k in runner._REQUIRED} | json.loads(json.dumps(run.to_dict())) | {
        "schema_version": runner.SCHEMA_VERSION, "status": "completed"}
    (d / "result.json").write_text(json.dumps({**good, "steps": run.steps + 1}))
    assert "different run" in runner.load_result(d / "result.json", run)[1]
    (d / "result.json").write_text(json.dumps(good))
    assert runner.load_result(d / "result.json", run)[0] is not None
    # collect_results reports, and the CLI decides claims from what is valid
    (d / "result.json").write_text("[1, 2")
    results, problems = runner.collect_results(tmp_path, "smoke")
    assert results == [] and len(problems) == 1
    assert cli_main(["--tier", "smoke", "--tasks", "multigoal", "--out", str(tmp_path), "--claims-only"]) == 0
    assert json.loads((tmp_path / "smoke" / "claims.json").read_text())["problems"]


def test_cli_usage_errors_and_dry_run(capsys, tmp_path):
    assert cli_main(["--tier", "ci", "--tasks", "nope", "--dry-run"]) == 2
    assert cli_main(["--tier", "ci", "--seeds", "5", "--dry-run"]) == 0
    assert "85 runs" in capsys.readouterr().out
    with pytest.raises(runner.RunnerError, match="unknown executor"):
        runner.run_matrix([], tmp_path, "dask")


def test_ray_executor_is_a_clear_error_without_ray(monkeypatch, tmp_path):
    import builtins

    real = builtins.__import__

    def no_ray(name, *a, **k):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(runner.RunnerError, match=r"softq-conformance\[ray\]"):
        runner.run_matrix(_runs(["multigoal"]), tmp_path, "ray", progress=False)


def test_ray_executor_runs_a_smoke_run_on_a_local_instance(tmp_path):
    ray = pytest.importorskip("ray", reason="ray is an optional extra (pip install 'softq-conformance[ray]')")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        runs = _runs(["point_maze"])[:1]
        s = runner.run_matrix(runs, tmp_path, "ray", progress=False)
        assert s["outcomes"][runs[0].key]["status"] == "completed", s
        res, problems = _results(tmp_path)
        assert problems == [] and res[runs[0].key]["metrics"]["min_distance"] > 0
    finally:
        ray.shutdown()


# -- claims -------------------------------------------------------------------------------------------------
def test_fraction_verdicts_match_scipy_and_the_stated_rule():
    v = claims.success_fraction_verdict("X", 5, 5, 0, 5, 1.0, 0.0, 5, 0.05)
    assert v.verdict == "reproduced"
    assert v.tests["p_claim_fisher_sql_gt_ddpg"] == pytest.approx(1 / 252)
    assert v.tests["p_claim_fisher_sql_gt_ddpg"] == stats.fisher_exact([[5, 0], [0, 5]], alternative="greater").pvalue
    assert v.tests["p0_lowest_sql_rate_consistent_with_paper"] == pytest.approx(0.05 ** (1 / 5))
    # the paper's own maze fractions at 5 seeds cannot decide: inconclusive, flagged as underpowered
    v = claims.success_fraction_verdict("X", 5, 5, 3, 5, 1.0, 0.6, 5, 0.05)
    assert v.verdict == "inconclusive" and "underpowered" in v.notes[0]
    assert v.tests["p_claim_fisher_sql_gt_ddpg"] == pytest.approx(stats.fisher_exact([[5, 0], [3, 2]], alternative="greater").pvalue)
    assert v.tests["runs_needed_per_algo_for_paper_effect"] == claims.runs_needed(1.0, 0.6, 0.05)
    # DDPG significantly better than SQL: not reproduced
    v = claims.success_fraction_verdict("X", 0, 5, 5, 5, 1.0, 0.6, 5, 0.05)
    assert v.verdict == "not_reproduced"
    # SQL far below the paper's "all runs" even with DDPG equally bad: not reproduced by the binomial test
    v = claims.success_fraction_verdict("X", 1, 10, 0, 10, 1.0, 0.8, 5, 0.05)
    p = stats.binomtest(1, 10, 0.05 ** (1 / 5), alternative="less").pvalue
    assert v.tests["p_paper_binom_sql_below_p0"] == pytest.approx(p) and p < 0.05 and v.verdict == "not_reproduced"
    assert claims.success_fraction_verdict("X", 0, 0, 1, 2, 1.0, 0.6, 5, 0.05).verdict == "inconclusive"


def test_curve_verdicts_bootstrap_with_bonferroni():
    up = {"t": {"sql_pretrained": [5.0, 5.2, 4.9, 5.1, 5.3], "ddpg_scratch": [1.0, 1.2, 0.8, 1.1, 0.9],
                "ddpg_pretrained": [2.0, 2.1, 1.9, 2.2, 1.8]}}
    v = claims.curve_verdict("X", up, ["ddpg_scratch", "ddpg_pretrained"], 0.05)
    assert v.verdict == "reproduced" and v.tests["ci_level"] == pytest.approx(1 - 0.05 / 2)
    iv = v.tests["intervals"]["t: sql_pretrained - ddpg_scratch"]
    ref = stats.bootstrap((up["t"]["sql_pretrained"], up["t"]["ddpg_scratch"]),
                          lambda x, y, axis=-1: x.mean(axis) - y.mean(axis), confidence_level=1 - 0.025,
                          n_resamples=10_000, method="percentile", random_state=0).confidence_interval
    assert (iv["low"], iv["high"]) == pytest.approx((ref.low, ref.high))
    down = {"t": {**up["t"], "ddpg_scratch": [9.0, 9.5, 8.8, 9.2, 9.1]}}
    assert claims.curve_verdict("X", down, ["ddpg_scratch", "ddpg_pretrained"], 0.05).verdict == "not_reproduced"
    mixed = {"t": {"sql_pretrained": [1.0, 5.0, 3.0], "ddpg_scratch": [2.0, 4.0, 3.0], "ddpg_pretrained": [0.0, 0.1, 0.2]}}
    assert claims.curve_verdict("X", mixed, ["ddpg_scratch", "ddpg_pretrained"], 0.05).verdict == "inconclusive"
    assert claims.curve_verdict("X", {}, ["ddpg_scratch"], 0.05).verdict == "inconclusive"


def test_every_claim_spec_is_decided_from_synthetic_results():
    def res(task, protocol, variant, seed, **m):
        return {"task": task, "protocol": protocol, "variant": variant, "seed": seed, "tier": "ci", "metrics": m}

    results = [res("multigoal", "multigoal", "sql", i, success=True, goals_reached=4) for i in range(5)]
    results += [res("multigoal", "multigoal", "ddpg", i, success=False, goals_reached=1) for i in range(5)]
    results += [res("point_maze", "maze", a, i, success=True, min_distance=1.0) for a in ("sql", "ddpg") for i in range(5)]
    results += [res("point_umaze", "finetune", v, i, mean_discounted_return=x + 0.1 * i)
                for v, x in (("sql_pretrained", 10), ("ddpg_scratch", 1), ("ddpg_pretrained", 2)) for i in range(5)]
    out = {v.claim: v.verdict for v in claims.evaluate_claims(results)}
    assert out == {"CLAIM.5_1.multigoal_modes": "reproduced", "CLAIM.5_2.swimmer_forward": "inconclusive",
                   "CLAIM.5_2.maze_passage": "inconclusive", "CLAIM.5_3.finetune_faster": "reproduced"}
    assert "reproduced" in claims.render_markdown(claims.evaluate_claims(results))


def test_full_smoke_tier_every_task_both_bodies(tmp_path):
    """The whole smoke tier (30 runs, 200 steps each, ant tasks included; ~30 s inline) gives valid results."""
    runs = tiers.matrix("smoke", None, [0])
    s = runner.run_matrix(runs, tmp_path, "inline", progress=False)
    assert {o["status"] for o in s["outcomes"].values()} == {"completed"}, s
    res, problems = _results(tmp_path)
    assert problems == [] and len(res) == len(runs) == 30
    assert {v.claim for v in claims.evaluate_claims(list(res.values()))} == set(claims.VERDICTS)


# -- seeds and jobs ---------------------------------------------------------------------------------------
def test_default_seeds_per_task_cover_fine_tuning_and_the_maze(capsys):
    assert tiers.default_seeds("ci", "point_maze") == list(range(10))
    assert tiers.default_seeds("ci", "point_pretrain") == tiers.default_seeds("ci", "point_umaze") == list(range(5))
    runs = tiers.matrix("ci", None, None)
    pre = {r.key for r in runs if r.task == "point_pretrain"}
    assert all(r.init_from in pre for r in runs if r.init_from)  # every fine-tuning seed has its pretraining
    assert cli_main(["--tier", "ci", "--dry-run"]) == 0
    assert f"{len(runs)} runs" in capsys.readouterr().out


def test_jobs_stack_runs_that_differ_only_in_their_seed(tmp_path):
    runs = _runs(["multigoal", "point_finetune"], seeds=range(5))
    planned = jobs.plan_jobs(runs, 3, tmp_path)
    for job in planned:
        assert len({jobs.group_key(r) for r in job}) == 1 and len(job) <= 3
    assert sorted(len(j) for j in planned if j[0].task == "multigoal") == [2, 2, 3, 3]  # 5 seeds at S = 3: 3 + 2
    assert sorted(r.key for j in planned for r in j) == sorted(r.key for r in runs)
    assert all(len(j) == 1 for j in jobs.plan_jobs(runs, 1, tmp_path))


def test_runs_resumed_at_different_steps_go_to_different_jobs(tmp_path):
    runs = _runs(["multigoal"], seeds=range(3))
    sql = [r for r in runs if r.algo == "sql"]
    s = runner.run_matrix(sql[:1], tmp_path, "inline", progress=False, seeds_per_process=4)
    assert s["outcomes"][sql[0].key]["status"] == "completed"
    (runner.run_dir(tmp_path, sql[0]) / "result.json").unlink()  # finished at 200 steps: a checkpoint, no result
    planned = jobs.plan_jobs(sql, 4, tmp_path)
    assert sorted(len(j) for j in planned) == [1, 2]
    s = runner.run_matrix(sql, tmp_path, "inline", progress=False, seeds_per_process=4)
    assert all(o["status"] == "completed" for o in s["outcomes"].values())
    res, _ = _results(tmp_path)
    assert res[sql[1].key]["trainer"] == "vectorized" and res[sql[1].key]["group_seeds"] == [1, 2]


def test_one_process_per_run_is_still_available(tmp_path):
    runs = _runs(["multigoal"], seeds=(0,))
    s = runner.run_matrix(runs, tmp_path, "inline", progress=False, seeds_per_process=1)
    res, _ = _results(tmp_path)
    assert s["seeds_per_process"] == 1 and {r["trainer"] for r in res.values()} == {"process"}
    with pytest.raises(runner.RunnerError, match="seeds_per_process"):
        runner.run_matrix(runs, tmp_path, "inline", progress=False, seeds_per_process=0)
