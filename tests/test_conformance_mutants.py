"""Self-test: every deliberately broken variant fails on the spec naming its broken equation,
and the unmodified reference passes every spec that does not need long training."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from softq_conformance.hyp import profile_settings
from softq_conformance.mutants import MUTANTS
from softq_conformance.reference import reference
from softq_conformance.runner import RunOptions, _import_checks, run_one, run_suite
from softq_specs import load_check_specs, load_specs


# Trained-agent specs take ~20-40 s per training run; `nox -s conformance` runs them on the reference, and
# their false-alarm rates are measured by the calibration harness (reports/conformance/calibration/).
SLOW = {"ALG1.bandit_optimum", "ALG1.multigoal_coverage",
        "ALG1.bandit_small_alpha"}  # thorough profile: not in `nox -s conformance`, measured in README "Temperature range"
# Mutants of these run one fit too (a mutant that fails every fit fails the verdict: tests/test_trained_rule.py);
# the reference runs them whole in test_reference_passes_every_spec.
ONE_RUN = SLOW | {"D.small_alpha"}


def test_at_least_twelve_mutants():
    assert len(MUTANTS) >= 12
    specs = load_specs()
    for name, cls in MUTANTS.items():
        assert cls.catches and set(cls.catches) <= set(specs), name
        assert cls.bug, name


def _one_run(spec_id: str):
    """The spec with max_runs = 1: one training run, whose failure the decision rule repeats max_runs times."""
    spec = load_check_specs()[spec_id]
    return dataclasses.replace(spec, params={**spec.params, "max_runs": 1})


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_is_caught(name):
    m = MUTANTS[name]()
    fast = [s for s in m.catches if s not in ONE_RUN]
    if fast:
        rep = run_suite(m, RunOptions(only=fast))
        got = {r.spec.id: (r.status, r.message) for r in rep.results}
        for sid in fast:
            assert got[sid][0] == "fail", f"{name} ({m.bug}) not caught by {sid}: {got[sid]}"
        assert rep.exit_code == 1
    # Trained-agent specs: one run of the mutant must fail the per-run criterion (a mutant whose every run
    # fails fails the verdict after max_runs runs: tests/test_trained_rule.py).
    _import_checks()
    torch.set_num_threads(1)
    for sid in (s for s in m.catches if s in ONE_RUN):
        r = run_one(_one_run(sid), m, 0, profile_settings("ci"), "test")
        assert r.status == "fail", f"{name} ({m.bug}) not caught by one run of {sid}: {r.status} {r.message}"


def test_reference_passes_every_spec():
    only = [s for s in load_check_specs() if s not in SLOW]
    rep = run_suite(reference(), RunOptions(only=only))
    # the reference has no n-step returns: the n-step spec does not apply to it, and says why
    na = {"ALG1.nstep_discount": "n_step = 1"}
    bad = {r.spec.id: (r.status, r.message) for r in rep.results
           if r.status != "pass" and not (r.status == "not_applicable" and na.get(r.spec.id, "\0") in r.message)}
    assert not bad, bad
    assert {r.spec.id for r in rep.results if r.status == "not_applicable"} == set(na)
