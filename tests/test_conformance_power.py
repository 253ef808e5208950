"""Issue 14: failure messages that name the right term, and the known values behind the trainer specs."""
from __future__ import annotations

import math

import numpy as np
import pytest

from softq_conformance.check_trainer import TerminateTruncateContinue, truncation_optimum
from softq_conformance.hints import alignment_phrase, ratio_candidates
from softq_conformance.mutants import MUTANTS, Mutant
from softq_conformance.runner import RunOptions, run_suite
from softq_ref.sql import SoftQLearning


def test_alignment_words_follow_the_sign_of_the_cosine():
    assert "wrong sign" in alignment_phrase(-0.3) and "-0.300" in alignment_phrase(-0.3)
    for c in (-0.01, 0.0, 0.02):
        words = alignment_phrase(c)
        assert "no alignment" in words and "wrong sign" not in words
    assert "weak" in alignment_phrase(0.08) and "wrong sign" not in alignment_phrase(0.08)


def test_ratio_hints_name_every_matching_candidate():
    # 2 = 2^d (d = 1) = M for M = 2 = the alpha-1 reading: all three are named
    hints = ratio_candidates(2.0003, 1, 0.5, {"eq. 10 at alpha = 1": 1.0004, "alpha^2": 3.1})
    text = " | ".join(hints)
    assert "2^1" in text and "M = 2" in text and "eq. 10 at alpha = 1" in text and "alpha^2" not in text
    assert any("M = 32" in h for h in ratio_candidates(32.01, 2, 0.5))
    assert any("2^-2" in h for h in ratio_candidates(0.25, 2, 0.5))
    assert ratio_candidates(1.01, 1, 0.5) == []


def test_td_message_names_the_missing_temperature():
    r = run_suite(MUTANTS["TDMissingTemperature"](), RunOptions(only=["ALG1.td_target_eq10"])).results[0]
    assert r.status == "fail" and "temperature missing" in r.message


class _NoPolicyStep(SoftQLearning):
    def policy_update(self, batch):
        return {}


class _FrozenSampler(Mutant):
    bug = "policy_update does nothing (test-local, not in MUTANTS)"
    agent_class = _NoPolicyStep


def test_policy_alignment_message_prints_the_cosine_and_its_meaning():
    wrong = run_suite(MUTANTS["PolicyUpdateWrongSign"](), RunOptions(only=["ALG1.policy_update_eq13"])).results[0]
    assert wrong.status == "fail" and "wrong sign" in wrong.message and "cosine -" in wrong.message
    still = run_suite(_FrozenSampler(), RunOptions(only=["ALG1.policy_update_eq13"])).results[0]
    assert still.status == "fail" and "no alignment" in still.message and "wrong sign" not in still.message


def test_truncation_task_flags_and_optimum():
    env = TerminateTruncateContinue(0.5)
    env.reset(seed=0)
    assert env.step(np.array([0.7]))[1:4] == (0.5, True, False)
    assert env.step(np.array([-0.6]))[1:4] == (0.5, True, False)
    assert env.step(np.array([-0.2]))[1:4] == (0.0, False, True)
    assert env.step(np.array([0.2]))[1:4] == (0.0, False, False)
    opt = truncation_optimum(0.5, 0.9, 0.5)
    v, alpha = opt["V"], 0.5
    # V = alpha log integral exp(Q/alpha): width 1 at Q = r_T, width 1 at Q = gamma V
    assert v == pytest.approx(alpha * math.log(math.exp(0.5 / alpha) + math.exp(0.9 * v / alpha)), abs=1e-12)
    assert opt["terminate"] + opt["truncate"] + opt["continue"] == pytest.approx(1.0)
    assert opt["truncate"] == opt["continue"]
