"""Third-party implementations through the conformance suite (issue 6).

* the minimal stand-alone SQL port passes the estimator / kernel / SVGD / white-box agent specs it
  declares, and re-introducing a common port bug makes the named spec fail;
* the Stable-Baselines3 adapters (optional extra) train, sample valid actions, and their sanity
  errors (NaN, wrong shape, out of bounds) come out as "error" verdicts; DDPG's missing
  temperature makes the temperature-dependent spec "not applicable".
"""
from __future__ import annotations

import ast
import dataclasses
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from softq_conformance.runner import RunOptions, run_one, run_suite
from softq_conformance.third_party import minimal_sql as msql
from softq_conformance.third_party.minimal_sql_adapter import make_adapter
from softq_specs import load_specs

HAVE_SB3 = importlib.util.find_spec("stable_baselines3") is not None
needs_sb3 = pytest.mark.skipif(not HAVE_SB3, reason="stable-baselines3 is not installed (optional extra for the "
                               "SB3 adapters: pip install stable-baselines3)")

# Everything the minimal port declares except the two trained-agent specs (minutes; see reports/third_party).
PORT_FAST = ["B", "C", "ALG1.target_frozen", "ALG1.td_target_eq10", "ALG1.policy_update_eq13"]


def _statuses(adapter, only):
    rep = run_suite(adapter, RunOptions(only=only))
    return {r.spec.id: (r.status, r.message) for r in rep.results}


# -- the minimal port -------------------------------------------------------------------------------------
def test_minimal_port_is_standalone():
    """The port must not import the reference: it is code the suite did not write."""
    src = Path(msql.__file__).read_text(encoding="utf-8")
    mods = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            mods |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            mods.add((node.module or "").split(".")[0] if node.level == 0 else ".")
    assert mods <= {"__future__", "copy", "math", "numpy", "torch"}, mods


def test_minimal_port_passes_its_specs():
    got = _statuses(make_adapter(), PORT_FAST)
    assert len(got) == 17  # B4.general_exact_cases and C1.direction_auto since the adapter-protocol split
    bad = {k: v for k, v in got.items() if v[0] != "pass"}
    assert not bad, bad


def _no_log_m(q_values, log_proposal, alpha):  # logsumexp instead of log-mean-exp
    return alpha * torch.logsumexp(q_values / alpha - log_proposal, dim=-1)


def _no_d_log_2(q_values, alpha, action_dim):  # treats the uniform proposal density as 1
    return msql.soft_value(q_values, torch.zeros_like(q_values), alpha)


def _grad_wrt_y(xs, ys, h=None):  # kernel gradient w.r.t. the wrong argument
    k, g = _orig_kernel(xs, ys, h)
    return k, -g


_orig_kernel = msql.rbf_kernel


@pytest.mark.parametrize("attr,bug,catches", [
    ("soft_value", _no_log_m, ["B1.gaussian_value", "B2.box_value", "B4.exact_cases", "ALG1.td_target_eq10"]),
    ("soft_value_uniform", _no_d_log_2, ["B2.box_value", "B4.box_convention", "ALG1.td_target_eq10"]),
    ("rbf_kernel", _grad_wrt_y, ["C1.stein_identity", "C1.direction_eq13"]),
], ids=["missing_log_M", "missing_d_log_2", "kernel_grad_wrt_y"])
def test_bugged_port_is_caught(monkeypatch, attr, bug, catches):
    monkeypatch.setattr(msql, attr, bug)  # the port's own agent and the adapter both use the patched function
    got = _statuses(make_adapter(), catches)
    for sid in catches:
        assert got[sid][0] == "fail", (sid, got[sid])


# -- the no-temperature mechanism (runner) ----------------------------------------------------------------
class _NoTemperature:
    name, version = "no-temperature", "0"
    capabilities = {"trainer"}
    conventions = {"temperature_mode": "none"}


def test_no_temperature_makes_bandit_not_applicable():
    specs = load_specs()
    r = run_one(specs["ALG1.bandit_optimum"], _NoTemperature(), 0, None, "x:y")
    assert r.status == "not_applicable" and "temperature" in r.message


# -- Stable-Baselines3 -----------------------------------------------------------------------------------
def _tiny(spec_id, **params):
    s = load_specs()[spec_id]
    return dataclasses.replace(s, params={**s.params, **params})


@needs_sb3
@pytest.mark.parametrize("algo", ["sac", "ddpg"])
def test_sb3_tiny_train_valid_actions(algo):
    from softq_conformance.tasks import bandit_task, multigoal_task
    from softq_conformance.third_party import sb3

    ad = getattr(sb3, algo)()
    torch.set_num_threads(1)
    pol = ad.train(bandit_task(0.5), 80, 0.5, seed=1)
    a = ad.sample_policy(pol, np.zeros((3, 1), np.float32), 16)
    assert a.shape == (3, 16, 1) and np.isfinite(a).all() and np.abs(a).max() <= 1
    if algo == "ddpg":  # deterministic mu(s): the same action n times
        assert np.ptp(a[0]) == 0
        assert ad.conventions["temperature_mode"] == "none"
    else:
        assert np.ptp(a[0]) > 0
        assert pol.model.ent_coef == 0.5 or math.isclose(float(pol.model.ent_coef), 0.5)
    pol = ad.train(multigoal_task(), 40, 10.0, seed=1)
    a = ad.sample_policy(pol, np.zeros((2, 2), np.float32), 4)
    assert a.shape == (2, 4, 2) and np.isfinite(a).all()


@needs_sb3
def test_sb3_ddpg_temperature_specs_not_applicable():
    from softq_conformance.third_party import sb3

    specs = load_specs()
    ad = sb3.ddpg()
    assert run_one(specs["ALG1.bandit_optimum"], ad, 0, None, "x").status == "not_applicable"
    for sid, spec in specs.items():  # every non-trainer spec is not applicable without running
        if "trainer" not in spec.capability:
            assert run_one(spec, ad, 0, None, "x").status == "not_applicable", sid


@needs_sb3
@pytest.mark.parametrize("bug,expect", [
    ("nan", "non-finite"), ("shape", "shape"), ("bounds", "outside the action space"),
])
def test_sb3_sanity_errors_become_error_verdicts(monkeypatch, bug, expect):
    from softq_conformance.third_party import sb3

    ad = sb3.sac()
    orig = ad.raw_actions

    def broken(policy, obs, n):
        a = orig(policy, obs, n)
        if bug == "nan":
            a[0, 0] = np.nan
        elif bug == "shape":
            a = a[:, :0]
        else:
            a = a * 3.0 + 2.0
        return a

    monkeypatch.setattr(ad, "raw_actions", broken)
    r = run_one(_tiny("ALG1.bandit_optimum", train_steps=60, samples=50), ad, 0, None, "sb3:sac")
    assert r.status == "error", (r.status, r.message)
    assert "sample_policy" in r.message and expect in r.message, r.message
