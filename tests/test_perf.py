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
from softq_ref.perf.multiseed import BatchedSQL, StackedMLP
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


def test_stacked_mlp_matches_the_separate_networks():
    torch.manual_seed(0)
    nets = [mlp(5, (16, 16), 2) for _ in range(3)]
    stacked = StackedMLP(nets)
    x = torch.randn(3, 7, 5)
    want = torch.stack([n(x[i]) for i, n in enumerate(nets)])
    torch.testing.assert_close(stacked(x), want, rtol=1e-5, atol=1e-6)


def test_batched_sql_runs_and_keeps_seeds_apart():
    agent = BatchedSQL(3, 2, CFG, seeds=[0, 1])
    ref = SoftQLearning(3, 2, CFG, seed=1)
    torch.testing.assert_close(agent.q.weights[0][1], ref.q.net[0].weight.t())  # per-seed initialisation
    before = [p.detach().clone() for p in agent.sampler.parameters()]
    agent.update(_batch(lead=(2,)))
    assert all(not torch.equal(a, b) for a, b in zip(before, agent.sampler.parameters()))
    assert all(torch.isfinite(p).all() for p in agent.q.parameters())


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


def test_multiseed_summary_calls_ties_within_the_margin_and_keeps_processes_for_the_runner():
    from softq_ref.perf.measure import multiseed_summary

    def rows(S, processes, batched):
        return [{"S": S, "mode": "processes", "updates_per_s_total": processes},
                {"S": S, "mode": "batched", "threads": 1, "updates_per_s_total": batched / 2},
                {"S": S, "mode": "batched", "threads": 2, "updates_per_s_total": batched}]
    clear = multiseed_summary(rows(1, 50, 90) + rows(2, 100, 130) + rows(4, 90, 120) + rows(10, 95, 96))
    assert clear["faster_by_S"] == {1: "batched", 2: "batched", 4: "batched", 10: "tie"}
    assert clear["faster_mode"] == "batched" and clear["runner_default"] == "processes"
    mixed = multiseed_summary(rows(2, 106, 94) + rows(4, 99.6, 100.7) + rows(10, 83.3, 87.5))
    assert mixed["faster_by_S"] == {2: "processes", 4: "tie", 10: "tie"} and mixed["faster_mode"] == "tie"
