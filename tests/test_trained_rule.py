"""The decision rule of trained specs (conformance/trained.py): independent runs, pass at the first success."""
from __future__ import annotations

import pytest

from softq_conformance.registry import CheckFailure, Ctx
from softq_conformance.trained import RUN_STREAM_STRIDE, first_passing_run, run_stream
from softq_specs import load_check_specs


class _Spec:
    id, false_alarm = "X.trained", 1e-4

    def __init__(self, **params):
        self.params = params


class _Impl:
    conventions: dict = {}


def _ctx(**params) -> Ctx:
    return Ctx(_Spec(**params), _Impl(), seed=1)  # type: ignore[arg-type]


def _runs(ctx, outcomes):
    calls = []

    def run(k):
        calls.append(k)
        ctx.measure("statistic", k)
        if not outcomes[k]:
            ctx.fail(f"run {k} failed", k, 0)

    return run, calls


@pytest.mark.parametrize("outcomes, used", [([True], 1), ([False, True, False], 2), ([False, False, True], 3)])
def test_passes_at_the_first_successful_run(outcomes, used):
    ctx = _ctx(max_runs=3)
    run, calls = _runs(ctx, outcomes)
    assert first_passing_run(ctx, run) == used - 1
    assert calls == list(range(used))
    assert ctx.measured["runs used"] == used
    assert [r["status"] for r in ctx.measured["runs"]] == ["fail"] * (used - 1) + ["pass"]
    assert ctx.measured["runs"][-1]["statistic"] == used - 1  # each run keeps its own measurements


def test_fails_when_every_run_fails_and_lists_them():
    ctx = _ctx(max_runs=3)
    run, calls = _runs(ctx, [False, False, False])
    with pytest.raises(CheckFailure, match=r"run 0 failed \[in all 3 independent training runs"):
        first_passing_run(ctx, run)
    assert calls == [0, 1, 2]
    assert [r["message"] for r in ctx.measured["runs"]] == ["run 0 failed", "run 1 failed", "run 2 failed"]


def test_adapter_errors_are_not_retried():
    ctx = _ctx(max_runs=5)
    calls = []

    def run(k):
        calls.append(k)
        raise RuntimeError("adapter broke")

    with pytest.raises(RuntimeError):
        first_passing_run(ctx, run)
    assert calls == [0]


def test_run_zero_keeps_the_old_streams():
    assert run_stream(0, 7) == 7 and run_stream(2, 7) == 2 * RUN_STREAM_STRIDE + 7


def test_every_trained_spec_states_its_rule():
    trained = {k: s for k, s in load_check_specs().items() if s.extra.get("trained")}
    assert {"D.cell_masses", "D.mmd", "D.support_tails", "C4.goodness_of_fit", "ALG1.bandit_optimum",
            "ALG1.multigoal_coverage"} <= set(trained)
    for sid, spec in trained.items():
        assert spec.kind == "statistical" and spec.params.get("max_runs", 0) >= 1, sid
        assert "max_runs" in spec.statement, f"{sid}: the statement must say how many runs decide the verdict"
