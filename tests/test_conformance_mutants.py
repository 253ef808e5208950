"""Self-test: every deliberately broken variant fails on the spec naming its broken equation,
and the unmodified reference passes every spec that does not need long training."""
from __future__ import annotations

import pytest

from softq_conformance.mutants import MUTANTS
from softq_conformance.reference import reference
from softq_conformance.runner import RunOptions, run_suite
from softq_specs import load_check_specs, load_specs


# Trained-agent specs take ~20 s to minutes each; `nox -s conformance` runs them on the reference.
SLOW = {"ALG1.bandit_optimum", "ALG1.multigoal_coverage"}


def test_at_least_twelve_mutants():
    assert len(MUTANTS) >= 12
    specs = load_specs()
    for name, cls in MUTANTS.items():
        assert cls.catches and set(cls.catches) <= set(specs), name
        assert cls.bug, name


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_is_caught(name):
    m = MUTANTS[name]()
    rep = run_suite(m, RunOptions(only=list(m.catches)))
    got = {r.spec.id: (r.status, r.message) for r in rep.results}
    for sid in m.catches:
        assert got[sid][0] == "fail", f"{name} ({m.bug}) not caught by {sid}: {got[sid]}"
    assert rep.exit_code == 1


def test_reference_passes_every_spec():
    only = [s for s in load_check_specs() if s not in SLOW]
    rep = run_suite(reference(), RunOptions(only=only))
    bad = {r.spec.id: (r.status, r.message) for r in rep.results if r.status != "pass"}
    assert not bad, bad
