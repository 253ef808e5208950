"""Issue 14 (remaining items): the target copy schedule of hard(N) and n-step bootstrap discounting."""
from __future__ import annotations

import pytest

from softq_conformance.check_trainer import nstep_windows
from softq_conformance.loading import LoadError, validate_adapter
from softq_conformance.mutants import MUTANTS
from softq_conformance.mutants_field import NStepStandIn, OwnTargetSchedule
from softq_conformance.reference import ReferenceAdapter, reference
from softq_conformance.runner import RunOptions, run_suite


def _results(adapter, only):
    return {r.spec.id: r for r in run_suite(adapter, RunOptions(only=only)).results}


class _CorrectHard4(OwnTargetSchedule, ReferenceAdapter):
    """The reference agent copying its target itself every 4 training steps, as it declares."""

    name = "standin-hard4"


def test_a_correct_own_schedule_passes_and_each_wrong_schedule_is_named():
    ok = _results(_CorrectHard4(), ["ALG1.target_frozen", "ALG1.td_target_eq10"])
    assert all(r.status == "pass" for r in ok.values()), {k: r.message for k, r in ok.items()}
    assert ok["ALG1.target_frozen"].measured["target copies at training steps"] == [4, 8, 12]
    words = {"TargetCopiedEveryStep": "a copy after every step", "TargetNeverCopied": "no copy at all",
             "TargetCopyIntervalDoubled": "a single copy", "TargetCopyConditionInverted": "irregular copies"}
    for name, what in words.items():
        r = _results(MUTANTS[name](), ["ALG1.target_frozen"])["ALG1.target_frozen"]
        assert r.status == "fail" and what in r.message and "hard(4)" in r.message, (name, r.message)


class _NStep3(NStepStandIn, ReferenceAdapter):
    """A correct 3-step stand-in: the reference agent with reward (B, n) windows and a gamma^n bootstrap."""

    name = "standin-nstep3"


def test_nstep_windows_hold_the_known_discounted_rewards():
    w = nstep_windows(8, 3)
    assert w["rewards"].shape == (8, 3) and w["terminated"].tolist() == [0, 0, 0, 0, 0, 1, 1, 1]
    assert w["rewards"][6].tolist() == [0.5, 1.5, 0.0]  # zero after the termination at step 8
    assert w["next_obs"][7].tolist() == w["next_obs"][5].tolist()  # windows reaching the end stop at s_T


def test_correct_nstep_passes_and_gamma_instead_of_gamma_n_fails_naming_the_spec():
    only = ["ALG1.nstep_discount", "ALG1.td_target_terms", "ALG1.td_target_eq10", "ALG1.target_frozen"]
    ok = _results(_NStep3(), only)
    assert all(r.status == "pass" for r in ok.values()), {k: r.message for k, r in ok.items()}
    assert ok["ALG1.nstep_discount"].measured["exponent k of gamma^k on the bootstrap term (estimated)"] == 3.0
    bad = _results(MUTANTS["NStepBootstrapGamma"](), only)
    r = bad["ALG1.nstep_discount"]
    assert r.status == "fail" and "gamma^k with k = 1" in r.message and "gamma ** n" in r.message, r.message
    # the one-step specs cannot see it: only the n-step spec names the bug
    assert all(bad[s].status == "pass" for s in only[1:]), {s: bad[s].message for s in only[1:]}


def test_nstep_is_not_applicable_to_the_reference_with_the_reason():
    r = _results(reference(), ["ALG1.nstep_discount"])["ALG1.nstep_discount"]
    assert r.status == "not_applicable" and "n_step = 1" in r.message and "no n-step returns" in r.message


@pytest.mark.parametrize("value,ok", [("1", True), ("3", True), ("12", True), ("0", False), ("n", False), (3, False)])
def test_n_step_convention_values(value, ok):
    adapter = ReferenceAdapter()
    adapter.conventions = {**adapter.conventions, "n_step": value}
    if ok:
        validate_adapter(adapter, "test")
    else:
        with pytest.raises(LoadError, match="n_step"):
            validate_adapter(adapter, "test")
