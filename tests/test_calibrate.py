"""The false-alarm harness: seed purposes, exact bounds, resumable runs, honest summaries."""
from __future__ import annotations

import json

import pytest
from scipy.stats import binom

from softq_conformance import calibrate
from softq_conformance.calibrate import SeedPlan, exact_upper_bound, load_seed_plan, parse_seeds
from softq_specs import load_specs


def test_declared_seed_sets_are_disjoint_and_large_enough():
    plan = load_seed_plan()
    cal, ver = set(plan.sets["calibration"]), set(plan.sets["verification"])
    assert not cal & ver
    assert len(ver) >= 100
    assert {102, 109, 111, 116} <= cal  # the seeds the issue found failing were looked at: never verification


def test_overlapping_plan_is_refused():
    with pytest.raises(ValueError, match="disjoint"):
        SeedPlan({"calibration": [1, 2, 3], "verification": [3, 4]}, {})


def test_parse_seeds_forms():
    plan = SeedPlan({"calibration": [1, 2, 3], "verification": [10, 11, 12]}, {})
    assert parse_seeds("verification:2", plan) == [10, 11]
    assert parse_seeds("calibration", plan) == [1, 2, 3]
    assert parse_seeds("5-7,9", plan) == [5, 6, 7, 9]
    with pytest.raises(ValueError, match="--seeds"):
        parse_seeds("fresh", plan)


def test_exact_upper_bound_is_clopper_pearson():
    # 0 of n: the bound solves (1 - p)^n = 0.05
    assert exact_upper_bound(0, 100) == pytest.approx(1 - 0.05 ** (1 / 100), rel=1e-9)
    # k of n: P(Binom(n, ub) <= k) = 0.05
    ub = exact_upper_bound(3, 50)
    assert binom.cdf(3, 50, ub) == pytest.approx(0.05, rel=1e-6)
    assert exact_upper_bound(5, 5) == 1.0


def test_cli_refuses_verification_seeds_for_calibration(capsys):
    assert calibrate.main(["--specs", "A1.sandwich", "--seeds", "verification:3", "--purpose", "calibration"]) == 2
    assert "cannot be used for 'calibration'" in capsys.readouterr().err


def test_cli_refuses_undeclared_seeds_without_exploration(capsys):
    assert calibrate.main(["--specs", "A1.sandwich", "--seeds", "900000-900001"]) == 2
    assert "--purpose exploration" in capsys.readouterr().err


def test_cli_unknown_spec_is_a_clear_error(capsys):
    assert calibrate.main(["--specs", "Z9.nothing", "--seeds", "calibration:1"]) == 2
    assert "Z9.nothing" in capsys.readouterr().err


def test_run_counts_false_alarms_and_resumes(tmp_path):
    from softq_conformance.mutants import MUTANTS

    out = tmp_path / "cal"
    # A mutant stands in for an implementation with false alarms: A1.sandwich fails on every seed.
    ref = "softq_conformance.mutants:" + "HardMaxBackup"
    assert "HardMaxBackup" in MUTANTS
    s = calibrate.run_calibration(ref, ["A1.sandwich", "A1.contraction"], [7, 8], out, "exploration",
                                  workers=1, progress=False)
    row = s["specs"]["A1.sandwich"]
    assert (row["seeds_run"], row["false_alarms"], row["failing_seeds"]) == (2, 2, [7, 8])
    assert s["specs"]["A1.contraction"]["false_alarms"] == 0
    assert s["family_wise"]["seeds_with_a_false_alarm"] == 2
    per_seed = json.loads((out / "seeds" / "7.json").read_text())
    assert per_seed["purpose"] == "exploration" and per_seed["git_commit"]
    assert per_seed["results"]["A1.sandwich"]["status"] == "fail"
    # Resume: a finished seed is not run again (its file is left untouched), a new seed is added.
    (out / "seeds" / ".8.json.tmp123").write_text("partial")
    mtime = (out / "seeds" / "7.json").stat().st_mtime_ns
    s2 = calibrate.run_calibration(ref, ["A1.sandwich"], [7, 8, 9], out, "exploration", workers=1, progress=False)
    assert (out / "seeds" / "7.json").stat().st_mtime_ns == mtime
    assert s2["specs"]["A1.sandwich"]["seeds_run"] == 3
    assert not list((out / "seeds").glob(".*.tmp*"))
    assert "A1.sandwich" in (out / "summary.md").read_text()


def _fake_folder(root, name, purpose, first_runs, first_run_only=False):
    """A calibration folder as run_calibration writes it, for D.cell_masses (a trained spec) only."""
    folder = root / name
    (folder / "seeds").mkdir(parents=True)
    for seed, status in first_runs.items():
        runs = [{"run": 0, "status": status}] + ([{"run": 1, "status": "pass"}] if status != "pass" else [])
        result = {"status": "pass", "message": "", "duration_s": 1.0, "measured": {"runs": runs}}
        (folder / "seeds" / f"{seed}.json").write_text(json.dumps({"results": {"D.cell_masses": result}}))
    (folder / "run.json").write_text(json.dumps({"first_run_only": first_run_only}))
    summary = calibrate.summarize(folder, ["D.cell_masses"], sorted(first_runs), purpose)
    (folder / "summary.json").write_text(json.dumps(summary))


def test_guarantees_pool_first_runs_of_every_verification_folder_by_seed(tmp_path):
    # Two verification folders overlap on seed 2 (counted once); a calibration folder is ignored.
    _fake_folder(tmp_path, "verification-a", "verification", {1: "fail", 2: "fail", 3: "pass"})
    _fake_folder(tmp_path, "verification-b", "verification", {2: "fail", 4: "pass", 5: "pass", 6: "fail"},
                 first_run_only=True)
    _fake_folder(tmp_path, "calibration-c", "calibration", {7: "fail", 8: "fail"})
    table = calibrate.render_guarantees(tmp_path)
    row = next(line for line in table.splitlines() if line.startswith("| `D.cell_masses`"))
    ub, k = exact_upper_bound(3, 6), load_specs()["D.cell_masses"].params["max_runs"]
    assert "| 3 / 6 |" in row and f"{ub:.3g}^{k}" in row
    assert "verification-a, verification-b" in row
    # 3 failed first runs of 6 is far above the 5e-5 budget at the spec's max_runs: flagged, in the row and below.
    assert "over its budget" in row
    assert "Derived bound above the spec's own budget" in table and "D.cell_masses" in table.split("\n\n")[-1]
