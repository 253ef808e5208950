"""Meta-tests of the conformance suite: specs and checks correspond one to one; the runner's contract."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from softq_conformance.adapter import CAPABILITY_METHODS, Arr, Checked
from softq_conformance.registry import CHECKS
from softq_conformance.runner import RunOptions, _import_checks, load_expected_failures, run_suite
from softq_specs import CAPABILITIES, load_specs


_import_checks()
SPECS = load_specs()


CLAIMS = {k for k, s in SPECS.items() if s.level == "benchmark" and k.startswith("CLAIM.")}


def test_every_spec_has_a_check_and_every_check_a_spec():
    assert set(SPECS) - CLAIMS - set(CHECKS) == set(), "specs without a check"
    assert set(CHECKS) - set(SPECS) == set(), "checks without a spec"
    assert CLAIMS & set(CHECKS) == set(), "CLAIM.* specs are decided by benchmark verdicts, not checks"


def test_every_claim_has_a_verdict_and_every_verdict_a_claim():
    from softq_ref.benchmarks.claims import VERDICTS

    assert CLAIMS, "specs/claims.toml not loaded"
    assert CLAIMS - set(VERDICTS) == set(), "claims without a verdict function"
    assert set(VERDICTS) - CLAIMS == set(), "verdict functions without a claim"


def test_spec_coverage_of_the_catalogue():
    families = {s.family for s in SPECS.values()}
    needed = {f"A{i}" for i in range(1, 11)} | {"B1", "B2", "B3", "B4", "C1", "C2", "C3", "C4", "C5", "D", "E", "ALG1"}
    assert needed <= families
    assert {"operator", "estimator", "sampler", "agent", "benchmark"} <= {s.level for s in SPECS.values()}


def test_statistical_specs_state_budgets_and_family_wise_rate():
    stat = [s for s in SPECS.values() if s.kind == "statistical" and s.id not in CLAIMS]  # claims: own alpha
    assert stat and all(0 < s.false_alarm < 1 for s in stat)
    default = [s for s in stat if s.extra.get("profile", "default") == "default"]
    # documented family-wise rate of a default run (union bound); thorough-profile specs state their own
    assert sum(s.false_alarm for s in default) <= 1e-3


def test_capabilities_are_documented():
    assert set(CAPABILITIES) == set(CAPABILITY_METHODS)


class _Broken:
    name, version = "broken", "0"
    capabilities = {"tabular", "soft_value_estimator"}
    conventions = {}

    def soft_value(self, Q, alpha):
        return np.zeros((Q.shape[0], 1))  # wrong shape

    def soft_policy_evaluation(self, pi, R, P, gamma, alpha):
        raise RuntimeError("boom")

    def soft_bellman_operator(self, Q, R, P, gamma, alpha):
        return np.full(Q.shape, np.nan)

    def soft_value_estimate(self, q, logq, alpha):
        return q.float().sum(-1)  # float32

    def soft_value_uniform_box(self, q, alpha, d):
        import time

        time.sleep(5)
        return q.sum(-1)


def test_bad_methods_become_errors_and_never_stop_the_run(monkeypatch):
    from softq_specs import Spec

    # shrink the time limit of one spec so the sleeping method times out quickly
    specs = dict(SPECS)
    s = specs["B4.exact_cases"]
    specs["B4.exact_cases"] = Spec(**{**s.__dict__, "params": {**s.params, "time_limit_s": 1}})
    monkeypatch.setattr("softq_specs.load_specs", lambda: specs)
    rep = run_suite(_Broken(), RunOptions(only=["A1.sandwich", "A3.policy_evaluation", "A1.contraction", "B4.exact_cases",
                                                "B4.general_exact_cases", "C1.direction_eq13"]))
    res = rep.by_id()
    assert res["A1.sandwich"].status == "error" and "shape" in res["A1.sandwich"].message
    assert "soft_value" in res["A1.sandwich"].message
    assert res["A3.policy_evaluation"].status == "error" and "RuntimeError" in res["A3.policy_evaluation"].message
    assert "soft_policy_evaluation" in res["A3.policy_evaluation"].message
    assert res["A1.contraction"].status == "error" and "non-finite" in res["A1.contraction"].message
    # B4.box_convention needs the box estimator only since the split; the general one returns float32
    assert res["B4.general_exact_cases"].status == "error" and "float32" in res["B4.general_exact_cases"].message
    assert res["B4.exact_cases"].status == "error" and "time limit" in res["B4.exact_cases"].message
    assert res["C1.direction_eq13"].status == "not_applicable"
    assert rep.exit_code == 1


def test_checked_validates_dtype_shape_and_finiteness():
    class A:
        def f(self):
            return np.ones((2, 3), np.float32)

    c = Checked(A())
    with pytest.raises(Exception, match="dtype float32"):
        c.call("f", returns=Arr((2, 3), "x"))
    assert c.call("f", returns=Arr((2, None), "x", dtype="float")).dtype == np.float64


def test_expected_failures_and_report(tmp_path):
    from softq_conformance.mutants import BoltzmannIgnoresAlpha
    from softq_conformance.report import write_reports

    xf = tmp_path / "xfail.toml"
    xf.write_text('[expected_failures]\n"A4.gibbs" = "known: ignores alpha"\n"Z9.nothing" = "stale entry"\n')
    with pytest.warns(UserWarning, match="Z9.nothing"):
        rep = run_suite(BoltzmannIgnoresAlpha(), RunOptions(only=["A4.gibbs", "A3.policy_evaluation"],
                                                             expected_failures=load_expected_failures(xf)))
    assert rep.by_id()["A4.gibbs"].status == "xfail"
    assert rep.exit_code == 0
    js, md = write_reports(rep, tmp_path / "out")
    data = json.loads(js.read_text())
    assert data["implementation"] == "mutant-BoltzmannIgnoresAlpha"
    assert {"id", "source", "level", "status", "duration_s", "message", "measured"} <= set(data["specs"][0])
    assert "A4.gibbs" in md.read_text()


def test_failure_carries_measured_bound_and_reproduction():
    from softq_conformance.mutants import MissingLogM

    r = run_suite(MissingLogM(), RunOptions(only=["B4.exact_cases"])).by_id()["B4.exact_cases"]
    assert r.status == "fail" and r.value is not None and r.bound is not None
    assert math.isfinite(float(r.value)) and "--only B4.exact_cases" in r.repro


def test_cli_runs_and_sets_exit_code(tmp_path):
    from softq_conformance.runner import main

    assert main(["--only", "B4.exact_cases", "--out", str(tmp_path), "-q"]) == 0
    assert main(["--impl", "softq_conformance.mutants:MissingLogM", "--only", "B4.exact_cases", "--out",
                 str(tmp_path), "-q"]) == 1
    assert (tmp_path / "mutant-MissingLogM" / "partial" / "report.json").exists()  # an --only run: partial/
