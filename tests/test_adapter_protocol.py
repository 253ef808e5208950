"""The adapter protocol for real ports: per-method applicability, units, own-bandwidth SVGD, messages."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from softq_conformance import NotSupported
from softq_conformance.bandwidth_rules import parse_bandwidth_rule, rule_bandwidth
from softq_conformance.reference import ReferenceAdapter
from softq_conformance.runner import RunOptions, run_suite
from softq_ref.soft_value import soft_value_uniform_box
from softq_ref.svgd import rbf_kernel, svgd_direction


def _statuses(adapter, only):
    rep = run_suite(adapter, RunOptions(only=only))
    return {r.spec.id: (r.status, r.message) for r in rep.results}


class BoxOnly:
    """A port with only the uniform-box eq. 10 estimator; the general one is declared unsupported."""

    name, version = "box-only", "0"
    capabilities = {"soft_value_estimator"}
    conventions = {}

    def soft_value_uniform_box(self, q, alpha, d):
        return soft_value_uniform_box(q, alpha, d)

    def soft_value_estimate(self, q, logq, alpha):
        raise NotSupported("the port only samples uniform actions")


def test_missing_general_estimator_does_not_block_the_box_checks():
    got = _statuses(BoxOnly(), ["B"])
    for sid in ("B1.gaussian_value", "B3.soft_lqr", "B4.general_exact_cases"):
        assert got[sid][0] == "not_applicable" and "only samples uniform actions" in got[sid][1], got[sid]
    for sid in ("B2.box_value", "B4.exact_cases", "B4.box_convention", "B4.unbiased_partition"):
        assert got[sid][0] == "pass", (sid, got[sid])


def test_an_omitted_method_is_not_applicable_not_an_error():
    class Omits(BoxOnly):
        soft_value_estimate = None

    got = _statuses(Omits(), ["B1.gaussian_value"])
    assert got["B1.gaussian_value"][0] == "not_applicable"
    assert "does not implement soft_value_estimate" in got["B1.gaussian_value"][1]


def _own_h_direction(fixed, updated, grad_q, alpha, h_fn):
    h = h_fn(fixed, updated)
    k, gk = rbf_kernel(fixed, updated, h)
    return svgd_direction(k, gk, grad_q, alpha)


def _sql_h(fixed, updated):  # per set: lower median / log n_fixed, floor 1e-3 (the reference rule)
    sq = ((fixed.unsqueeze(-2) - updated.unsqueeze(-3)) ** 2).sum(-1).flatten(-2)
    med = sq.sort(-1).values[..., (sq.shape[-1] - 1) // 2]
    return torch.clamp(med / math.log(fixed.shape[-2]), min=1e-3)


class OwnBandwidth:
    """A port whose kernel chooses h itself (no bandwidth(), no external-h direction)."""

    name, version = "own-bandwidth", "0"
    capabilities = {"svgd"}
    conventions = {"bandwidth_rule": "sql_code"}
    h_fn = staticmethod(_sql_h)

    def svgd_direction_auto(self, fixed, updated, grad_q, alpha):
        return _own_h_direction(fixed, updated, grad_q, alpha, self.h_fn)


SVGD_AUTO = ["C1.direction_auto", "C3.bandwidth", "C1.direction_eq13", "C2.fixed_points", "C1.stein_identity"]


def test_own_bandwidth_port_gets_eq13_and_bandwidth_verdicts():
    got = _statuses(OwnBandwidth(), SVGD_AUTO + ["C5.low_dim_no_collapse"])
    assert got["C1.direction_auto"][0] == "pass", got["C1.direction_auto"]
    assert got["C3.bandwidth"][0] == "pass", got["C3.bandwidth"]
    assert got["C5.low_dim_no_collapse"][0] == "pass", got["C5.low_dim_no_collapse"]
    for sid in ("C1.direction_eq13", "C2.fixed_points", "C1.stein_identity"):
        assert got[sid][0] == "not_applicable", (sid, got[sid])


def _pooled_h(fixed, updated):  # one median over the whole batch
    sq = ((fixed.unsqueeze(-2) - updated.unsqueeze(-3)) ** 2).sum(-1)
    med = sq.flatten().sort().values[(sq.numel() - 1) // 2]
    return torch.clamp(med / math.log(fixed.shape[-2]), min=1e-3).expand(fixed.shape[:-2])


def _per_column_h(fixed, updated):  # a median per action coordinate, then averaged
    sq = (fixed.unsqueeze(-2) - updated.unsqueeze(-3)) ** 2  # (..., n, m, d)
    med = sq.flatten(-3, -2).sort(-2).values[..., (sq.shape[-2] * sq.shape[-3] - 1) // 2, :].sum(-1)
    return torch.clamp(med / math.log(fixed.shape[-2]), min=1e-3)


def _batch_size_h(fixed, updated):  # log of the batch size instead of the particle count
    h = _sql_h(fixed, updated)
    return h * math.log(fixed.shape[-2]) / math.log(max(2, fixed.shape[0]))


@pytest.mark.parametrize("h_fn", [_pooled_h, _per_column_h, _batch_size_h])
def test_wrong_own_bandwidth_rules_fail(h_fn):
    class Wrong(OwnBandwidth):
        pass

    Wrong.h_fn = staticmethod(h_fn)
    got = _statuses(Wrong(), ["C1.direction_auto", "C3.bandwidth"])
    assert got["C1.direction_auto"][0] == "fail", got
    assert got["C3.bandwidth"][0] == "fail", got


def test_reference_mutants_are_caught_by_the_auto_direction_spec():
    from softq_conformance.mutants import BandwidthOverWholeBatch, NoRepulsiveTerm

    for mutant in (BandwidthOverWholeBatch(), NoRepulsiveTerm()):
        assert _statuses(mutant, ["C1.direction_auto"])["C1.direction_auto"][0] == "fail", type(mutant).__name__


def test_tied_particle_counts():
    class Tied(OwnBandwidth):
        conventions = {"bandwidth_rule": "sql_code", "particle_counts": "tied"}

        def svgd_direction_auto(self, fixed, updated, grad_q, alpha):
            assert fixed.shape == updated.shape, "this port splits one set in two halves of equal size"
            return super().svgd_direction_auto(fixed, updated, grad_q, alpha)

    got = _statuses(Tied(), ["C1.direction_auto", "C3.bandwidth"])
    assert all(s == "pass" for s, _ in got.values()), got
    class Untied(Tied):
        conventions = {"bandwidth_rule": "sql_code"}

    untied = _statuses(Untied(), ["C1.direction_auto"])
    assert untied["C1.direction_auto"][0] == "error"  # n != m reaches the port, which cannot take it


def test_bandwidth_rule_parameters():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(3, 4, 2)), rng.normal(size=(3, 6, 2))
    sq = np.sort((((x[:, :, None] - y[:, None]) ** 2).sum(-1)).reshape(3, -1), -1)
    avg = 0.5 * (sq[:, 11] + sq[:, 12])
    np.testing.assert_allclose(rule_bandwidth(x, y, "median=average, log=n+1, n=all, floor=0"), avg / math.log(11))
    np.testing.assert_allclose(rule_bandwidth(x, y, "sql_code"), np.maximum(sq[:, 11] / math.log(4), 1e-3))
    assert parse_bandwidth_rule("sql_code; floor=float32(1e-3)").floor == float(np.float32(1e-3))
    mean_rule = "svgd_code; median=mean; scale=0.5; n=updated; plus=1e-8"  # a port's mean-distance rule
    np.testing.assert_allclose(rule_bandwidth(x, y, mean_rule), 0.5 * sq.mean(-1) / math.log(7) + 1e-8)
    with pytest.raises(ValueError, match="median='mode'"):
        parse_bandwidth_rule("median=mode")
    with pytest.raises(ValueError, match="unknown parameter 'bw'"):
        parse_bandwidth_rule("sql_code, bw=1")


class RewardScaled(ReferenceAdapter):
    """alpha = 1 inside; rewards (so Q, V, grad Q) divided by the temperature: no conversion in the adapter."""

    def __init__(self):
        super().__init__()
        self.conventions = {**self.conventions, "temperature_mode": "reward_scale"}

    def soft_value_estimate(self, q_values, log_proposal, alpha):
        assert alpha == 1.0
        return super().soft_value_estimate(q_values, log_proposal, 1.0)

    def soft_value_uniform_box(self, q_values, alpha, action_dim):
        assert alpha == 1.0
        return super().soft_value_uniform_box(q_values, 1.0, action_dim)

    def svgd_direction(self, fixed, updated, grad_q, alpha, h):
        assert alpha == 1.0
        return super().svgd_direction(fixed, updated, grad_q, 1.0, h)


UNITS = ["B1.gaussian_value", "B2.box_value", "B3.soft_lqr", "B4.exact_cases", "B4.general_exact_cases",
         "B4.box_convention", "C1.direction_eq13", "C1.direction_auto", "C2.fixed_points"]


def test_reward_scale_implementation_needs_no_hand_conversion():
    got = _statuses(RewardScaled(), UNITS)
    assert all(s == "pass" for s, _ in got.values()), got


def test_reward_scale_declared_as_alpha_fails():
    class Undeclared(RewardScaled):
        def __init__(self):
            super().__init__()
            self.conventions = {**self.conventions, "temperature_mode": "alpha"}

        def soft_value_uniform_box(self, q_values, alpha, action_dim):
            return ReferenceAdapter.soft_value_uniform_box(self, q_values, 1.0, action_dim)

    got = _statuses(Undeclared(), ["B4.exact_cases"])
    assert got["B4.exact_cases"][0] == "fail"


def test_messages_distinguish_port_maths_from_protocol_misuse(tmp_path, monkeypatch):
    port = tmp_path / "tiny_port.py"
    port.write_text("def value(q):\n    raise ZeroDivisionError('inside the port')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import tiny_port

    class A(BoxOnly):
        def soft_value_uniform_box(self, q, alpha, d):
            return tiny_port.value(q)

    class Misuse(BoxOnly):
        def soft_value_uniform_box(self, q):  # wrong signature
            return q.sum(-1)

    class AdapterBug(BoxOnly):
        def soft_value_uniform_box(self, q, alpha, d):
            return q.nosuchattribute

    msg = _statuses(A(), ["B4.exact_cases"])["B4.exact_cases"]
    assert msg[0] == "error" and "implementation's own code at tiny_port.py:2" in msg[1], msg
    msg = _statuses(Misuse(), ["B4.exact_cases"])["B4.exact_cases"]
    assert msg[0] == "error" and "protocol misuse" in msg[1], msg
    msg = _statuses(AdapterBug(), ["B4.exact_cases"])["B4.exact_cases"]
    assert msg[0] == "error" and "adapter's own code failed" in msg[1] and "test_adapter_protocol.py" in msg[1], msg
