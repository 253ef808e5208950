"""Issue 14 (remaining items): the target copy schedule of hard(N) and n-step bootstrap discounting."""
from __future__ import annotations

from softq_conformance.mutants import MUTANTS
from softq_conformance.mutants_field import OwnTargetSchedule
from softq_conformance.reference import ReferenceAdapter
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
