"""Port adapters (conformance/third_party/ports/) against small stand-ins shaped like each port.

The real ports are not available in CI; tests/standins/<port>/ reproduces their module layout,
names, signatures and inline maths closely enough that the adapter runs unchanged on it. Bugs
are re-introduced by replacing a module-level name of the stand-in (as they would sit in the port).
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from softq_conformance.runner import RunOptions, run_suite

STANDINS = Path(__file__).parent / "standins"
PYTORCHRL_PASS = ["B2.box_value", "B4.exact_cases", "B4.box_convention", "B4.unbiased_partition", "C1.direction_auto",
                  "C3.bandwidth", "ALG1.target_frozen", "ALG1.td_target_eq10", "ALG1.policy_update_eq13"]
PYTORCHRL_NA = ["B1.gaussian_value", "B3.soft_lqr", "B4.general_exact_cases", "C1.stein_identity", "C1.direction_eq13",
                "C2.fixed_points", "C5.low_dim_no_collapse"]


@pytest.fixture()
def pytorchrl(monkeypatch):
    from softq_conformance.third_party.ports import pytorchrl_adapter

    monkeypatch.setenv(pytorchrl_adapter.ENV_VAR, str(STANDINS / "pytorchrl"))
    for name in [m for m in list(__import__("sys").modules) if m == "pytorchrl" or m.startswith("pytorchrl.")]:
        monkeypatch.delitem(__import__("sys").modules, name)
    return pytorchrl_adapter.make_adapter()


def _statuses(adapter, only):
    return {r.spec.id: (r.status, r.message) for r in run_suite(adapter, RunOptions(only=only)).results}


def test_adapter_is_at_most_120_lines():
    for path in (Path(__file__).parents[1] / "conformance" / "third_party" / "ports").glob("*_adapter.py"):
        assert len(path.read_text().splitlines()) <= 120, path


def test_pytorchrl_standin_verdicts(pytorchrl):
    got = _statuses(pytorchrl, PYTORCHRL_PASS + PYTORCHRL_NA)
    for sid in PYTORCHRL_PASS:
        assert got[sid][0] == "pass", (sid, got[sid])
    for sid in PYTORCHRL_NA:
        assert got[sid][0] == "not_applicable", (sid, got[sid])


def test_pytorchrl_sanity_on_the_standin(pytorchrl):
    from softq_conformance.third_party.ports.pytorchrl_sanity import run

    for what, err, tol in run(pytorchrl):
        assert err <= tol, what


def test_pytorchrl_missing_log_n_is_caught(pytorchrl, monkeypatch):
    own = pytorchrl.softq.log_sum_exp

    def plus_log_n(value, dim):  # logsumexp without the port's "- log(n)" line taking effect
        return own(value, dim) + math.log(value.shape[dim])

    monkeypatch.setattr(pytorchrl.softq, "log_sum_exp", plus_log_n)
    got = _statuses(pytorchrl, ["B4.exact_cases", "B2.box_value", "ALG1.td_target_eq10"])
    assert all(s == "fail" for s, _ in got.values()), got


def test_pytorchrl_pooled_bandwidth_and_kernel_sign_are_caught(pytorchrl, monkeypatch):
    Kernel = pytorchrl.softq.AdaptiveIsotropicGaussianKernel

    class Pooled(Kernel):  # one median over the whole batch instead of per state
        def __init__(self, xs, ys, h_min=1e-3):
            diff = xs.unsqueeze(-2) - ys.unsqueeze(-3)
            sq = diff.pow(2).sum(-1)
            h = torch.clamp(sq.flatten().sort().values[(sq.numel() - 1) // 2] / math.log(xs.shape[-2]), min=h_min)
            self.kappa = torch.exp(-sq / h)
            self.grad = -2 * diff / h * self.kappa.unsqueeze(-1)

    class WrongSign(Kernel):  # gradient with respect to the second argument
        def __init__(self, xs, ys, h_min=1e-3):
            super().__init__(xs, ys, h_min)
            self.grad = -self.grad

    monkeypatch.setattr(pytorchrl.softq, "AdaptiveIsotropicGaussianKernel", Pooled)
    got = _statuses(pytorchrl, ["C1.direction_auto", "C3.bandwidth"])
    assert all(s == "fail" for s, _ in got.values()), got
    monkeypatch.setattr(pytorchrl.softq, "AdaptiveIsotropicGaussianKernel", WrongSign)
    got = _statuses(pytorchrl, ["C1.direction_auto"])
    assert got["C1.direction_auto"][0] == "fail", got


def test_import_shims_are_scoped(pytorchrl):
    import sys

    assert "rllab" not in sys.modules and "pyprind" not in sys.modules
    assert pytorchrl.softq.SoftQ.__mro__[1].__name__ == "Inert"


SCCHY_PASS = ["B2.box_value", "B4.exact_cases", "B4.box_convention", "C1.direction_auto", "C3.bandwidth",
              "ALG1.target_frozen", "ALG1.td_target_eq10", "ALG1.policy_update_eq13"]


@pytest.fixture()
def scchy(monkeypatch):
    import sys

    from softq_conformance.third_party.ports import scchy_adapter

    monkeypatch.setenv(scchy_adapter.ENV_VAR, str(STANDINS / "scchy"))
    monkeypatch.delitem(sys.modules, "SoftQNew", raising=False)
    return scchy_adapter.make_adapter()


def test_scchy_standin_verdicts_and_sanity(scchy):
    from softq_conformance.third_party.ports.scchy_sanity import run

    got = _statuses(scchy, SCCHY_PASS + ["B1.gaussian_value", "C2.fixed_points"])
    for sid in SCCHY_PASS:
        assert got[sid][0] == "pass", (sid, got[sid])
    assert got["B1.gaussian_value"][0] == got["C2.fixed_points"][0] == "not_applicable"
    for what, err, tol in run(scchy):
        assert err <= tol, what


def test_scchy_squash_convention_and_kernel_bugs_are_caught(scchy, monkeypatch):
    undeclared = type(scchy)(scchy.m)
    undeclared.conventions = {**scchy.conventions, "direction_log_det": "none"}
    assert _statuses(undeclared, ["C1.direction_auto"])["C1.direction_auto"][0] == "fail"
    own = scchy.m.adaptive_isotropic_gaussian_kernel

    def no_floor(xs, ys, h_min=1e-3):  # the bandwidth without its floor
        return own(xs, ys, h_min=0.0)

    monkeypatch.setattr(scchy.m, "adaptive_isotropic_gaussian_kernel", no_floor)
    got = _statuses(scchy, ["C3.bandwidth", "C1.direction_auto"])
    assert all(s == "fail" for s, _ in got.values()), got


def test_scchy_td_target_on_the_online_critic_is_caught(scchy, monkeypatch):
    own = scchy.m.SoftQ._create_td_update

    def online(self, *args):  # eq. 10 on the online critic instead of the frozen target
        with monkeypatch.context() as m:
            m.setattr(self, "tar_critic", self.critic)
            return own(self, *args)

    monkeypatch.setattr(scchy.m.SoftQ, "_create_td_update", online)
    got = _statuses(scchy, ["ALG1.td_target_eq10"])
    assert got["ALG1.td_target_eq10"][0] == "fail", got


MAXENT_MODULES = ("core", "utils", "networks", "actorcritic", "actors", "actors.kernels", "actors.actor_sql")


@pytest.fixture()
def maxent(monkeypatch):
    import sys

    from softq_conformance.third_party.ports import maxent_sql_adapter

    monkeypatch.setenv(maxent_sql_adapter.ENV_VAR, str(STANDINS / "maxent"))
    for name in MAXENT_MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    adapter = maxent_sql_adapter.make_adapter()
    yield adapter
    for name in MAXENT_MODULES:  # generic names: do not leave them to other tests
        sys.modules.pop(name, None)


MAXENT = ["B4.exact_cases", "C1.direction_auto", "C3.bandwidth", "ALG1.target_frozen", "ALG1.td_target_eq10"]


def test_maxent_as_at_head(maxent):
    got = _statuses(maxent, MAXENT)
    for sid in ("B4.exact_cases", "ALG1.target_frozen", "ALG1.td_target_eq10"):  # the call bug of compute_loss_q
        assert got[sid][0] == "error" and "implementation's own code at core.py" in got[sid][1], got[sid]
    assert got["C3.bandwidth"][0] == "pass", got["C3.bandwidth"]  # the declared mean-distance rule
    assert got["C1.direction_auto"][0] == "fail" and "alpha=0.1" in got["C1.direction_auto"][1]  # eq. 13 lacks alpha
    assert "utils.count_vars" in maxent.core.__conformance_filled__


def test_maxent_with_the_call_bug_bypassed(maxent, monkeypatch):
    ActorCritic = maxent.core.ActorCritic
    own = ActorCritic.forward
    monkeypatch.setattr(ActorCritic, "forward", lambda self, obs, *a, in_q_loss=None, **k: own(self, obs, *a, **k))
    got = _statuses(maxent, MAXENT)
    assert got["B4.exact_cases"][0] == "pass" and got["ALG1.target_frozen"][0] == "pass", got
    assert got["ALG1.td_target_eq10"][0] == "fail", got  # policy samples scored as uniform draws
