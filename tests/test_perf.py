"""softq_ref.perf: FLOP counting, the perf.json writer, and the fast paths against the plain formulas.

No timing assertions: the machines are shared and timings are reports, not tests.
"""
import json

import numpy as np
import pytest
import torch

from softq_ref.config import SQLConfig
from softq_ref.networks import mlp
from softq_ref.perf.flops import MatmulReplay, count_flops, record_matmuls
from softq_ref.perf.measure import resolve_device
from softq_ref.sql import SoftQLearning
from softq_ref.svgd import lower_median


@pytest.fixture(autouse=True)
def float32_default():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    yield
    torch.set_default_dtype(old)


def _batch(B=8, o=3, d=2, lead=()):
    g = torch.Generator().manual_seed(0)
    return {"obs": torch.randn(*lead, B, o, generator=g), "action": torch.rand(*lead, B, d, generator=g) * 2 - 1,
            "reward": torch.randn(*lead, B, generator=g), "next_obs": torch.randn(*lead, B, o, generator=g),
            "terminated": torch.zeros(*lead, B)}


CFG = SQLConfig(batch_size=8, svgd_particles=4, value_samples=5, hidden_sizes=(16, 16), min_replay_size=8)


def test_flop_counter_counts_the_sql_update():
    agent = SoftQLearning(3, 2, CFG, seed=0)
    flops = count_flops(lambda: agent.update(_batch()))
    assert flops > 0
    # the target forward alone: B*M rows through 5->16->16->1
    assert flops >= 2 * 8 * 5 * (5 * 16 + 16 * 16 + 16)
    calls = record_matmuls(lambda: agent.update(_batch()))
    assert sum(c.flops for c in calls) == flops  # the update's FLOPs are all matrix products
    replay = MatmulReplay(calls)
    replay.run()
    assert replay.flops == flops


def test_lower_median_is_torch_median():
    g = torch.Generator().manual_seed(1)
    for shape in [(7, 16), (3, 4, 9), (5, 1), (2, 256)]:
        x = torch.rand(*shape, generator=g)
        assert torch.equal(lower_median(x), x.median(dim=-1).values)
        assert torch.equal(lower_median(x.double()), x.double().median(dim=-1).values)
    x = torch.rand(4, 10, generator=g)
    x[1, 3] = float("nan")
    assert torch.equal(lower_median(x).isnan(), x.median(dim=-1).values.isnan())
    ties = torch.tensor([[1.0, 1.0, 0.0, 2.0], [3.0, 3.0, 3.0, 3.0]])
    assert torch.equal(lower_median(ties), ties.median(dim=-1).values)


def test_cuda_flag_fails_clearly_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(RuntimeError, match="cuda"):
        resolve_device("cuda")


def test_quick_perf_run_writes_valid_json(tmp_path):
    from softq_ref.perf.__main__ import markdown
    from softq_ref.perf.measure import run

    res = run(tmp_path, quick=True, sections=("sql", "ddpg"), log=lambda s: None)
    data = json.loads((tmp_path / "perf.json").read_text())
    assert data["quick"] and data["machine"]["versions"]["torch"] == torch.__version__
    s = data["sql_update"]["tiny@1t"]
    assert s["flops_per_update"] > 0 and s["update_ms"] > 0 and s["matmul_rate_gflops"] > 0
    assert np.isfinite(s["ratio_to_matmul_rate"]) and isinstance(s["load_1min"], list)
    d = data["ddpg_vs_sb3"]
    assert d["ours_update_ms"] > 0 and ("speedup_ours_vs_sb3" in d or d["sb3_train_step_ms"] == "not measured")
    md = markdown(res, res)
    assert "| figure | before | after |" in md


def test_quick_multiseed_section_measures_both_trainers(tmp_path):
    from softq_ref.perf.__main__ import markdown
    from softq_ref.perf.measure import run

    res = run(tmp_path, quick=True, sections=("multiseed",), log=lambda s: None)
    rows = res["multiseed"]["rows"]
    assert {(r["algo"], r["mode"], r["S"]) for r in rows} == {
        (a, m, S) for a in ("sql", "ddpg") for m, S in (("process per seed", 1), ("stacked", 2))}
    for r in rows:
        assert r["update_steps_long"] > r["update_steps_short"] and r["wall_s_short"] > 0 and r["wall_s"] == r["wall_s_long"]
        assert np.isfinite(r["seed_steps_per_s_per_core"]) and r["seed_steps_per_s_per_core"] > 0
        assert r["whole_run_seed_steps_per_s_per_core"] == pytest.approx(r["S"] * r["steps"] / r["wall_s_long"])
        if r["rate_method"] == "marginal":  # else timing noise beat the extra steps (allowed in quick mode only)
            assert r["seed_steps_per_s_per_core"] == pytest.approx(
                r["S"] * (r["update_steps_long"] - r["update_steps_short"]) / (r["wall_s_long"] - r["wall_s_short"]))
    base = {r["algo"]: r["seed_steps_per_s_per_core"] for r in rows if r["mode"] == "process per seed"}
    assert all(r["speedup"] == pytest.approx(r["seed_steps_per_s_per_core"] / base[r["algo"]]) for r in rows)
    for f in res["multiseed"]["update_flop_rate"]:
        assert f["flops_per_update"] > 0 and 0 < f["ratio_to_matmul_rate"] and f["single_update_ms"] > 0
        assert f["update_speedup"] == pytest.approx(f["S"] * f["single_update_ms"] / f["update_ms"])
        assert f["speedup_ceiling_at_matmul_rate"] == pytest.approx(
            f["single_update_ms"] / (1e3 * f["flops_per_update"] / f["S"] / (1e9 * f["matmul_rate_gflops"])))
    md = markdown(res)
    assert "stacked S=2, marginal seed-steps/s per core" in md and "whole run" in md
    assert "speed-up ceiling at the matmul rate" in md


def test_marginal_rate_is_the_rate_of_the_extra_steps():
    from softq_ref.perf.multiseed import marginal_rate

    # 16 seeds, 40 vs 160 update steps: the 120 extra steps x 16 seeds took 4.0 s
    assert marginal_rate(16, 40, 2.5, 160, 6.5) == pytest.approx(16 * 120 / 4.0)
    assert marginal_rate(1, 0, 1.0, 100, 1.5) == pytest.approx(200.0)
    with pytest.raises(ValueError, match=r"long run \(160 update steps\) took 2\.500 s, not longer than the short run"):
        marginal_rate(16, 40, 2.5, 160, 2.5)
    with pytest.raises(ValueError, match="not longer than the short run"):
        marginal_rate(16, 40, 2.6, 160, 2.5)
    with pytest.raises(ValueError, match="0 <= n_short < n_long"):
        marginal_rate(16, 160, 1.0, 40, 2.0)


def test_a_long_run_no_slower_than_the_short_one_is_an_error_naming_mode_and_S(monkeypatch):
    from softq_ref.perf import multiseed

    # the stacked S = 4 long run "took" less than its short one; no child process is started
    walls = iter([1.0, 2.0, 3.0, 2.9])
    monkeypatch.setattr(multiseed, "_timed_child", lambda *args: next(walls))
    with pytest.raises(ValueError, match=r"sql point_maze \(smoke\), stacked S=4: the long run"):
        multiseed.training_throughput("sql", "smoke", "point_maze", (4,), lambda S: (10, 50), warmup=8)
    walls = iter([1.0, 2.0, 3.0, 2.9])
    rows = multiseed.training_throughput("sql", "smoke", "point_maze", (4,), lambda S: (10, 50), warmup=8,
                                         allow_whole_run_fallback=True)
    w = rows[0]["warmup_steps"]
    assert rows[0]["rate_method"] == "marginal" and rows[0]["seed_steps_per_s_per_core"] == pytest.approx(40 / 1.0)
    assert rows[1]["rate_method"].startswith("whole run")
    assert rows[1]["seed_steps_per_s_per_core"] == pytest.approx(4 * (w + 50) / 2.9)
    assert rows[1]["speedup"] == pytest.approx(4 * (w + 50) / 2.9 / 40)


def test_a_failing_measurement_child_is_an_error_not_a_hang():
    from softq_ref.perf.multiseed import _timed_child, tier_config

    env_id, cfg = tier_config("smoke", "point_maze", 8, 20)
    assert cfg.min_replay_size == cfg.batch_size  # warm-up raised to one batch
    with pytest.raises(RuntimeError, match="failed: ConfigError: unknown algo 'nope'"):
        _timed_child("process", "nope", env_id, cfg.to_dict(), [0], 20)


def test_multiseed_summary_reports_the_speedup_against_the_target():
    from softq_ref.perf.measure import multiseed_summary

    rows = [{"algo": "ddpg", "task": "swimmer", "mode": "stacked", "S": S, "speedup": x} for S, x in ((4, 2.0), (16, 5.5))]
    rows += [{"algo": "sql", "task": "swimmer", "mode": "stacked", "S": 16, "speedup": 1.7}]
    s = multiseed_summary(rows)
    assert s["speedup_by_algo_task_S"] == {"ddpg swimmer": {4: 2.0, 16: 5.5}, "sql swimmer": {16: 1.7}}
    assert s["meets_target_at_S16"] == {"ddpg swimmer": True, "sql swimmer": False}


def test_update_flop_rate_refuses_the_padded_S1():
    from softq_ref.perf.multiseed import update_flop_rate

    with pytest.raises(ValueError, match="needs S >= 2"):
        update_flop_rate("sql", CFG, 1, 3, 2)
