"""Corrupted and degenerate inputs to validate / gate / report / resume (issue 15): each is rejected by file and
field, or is a clear error with a non-zero exit; nothing vanishes silently and nothing crashes."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from softq_ref.benchmarks import gate, report
from softq_ref.benchmarks.validate import load_results
from test_report import make_results


def _edit(p: Path, fn) -> None:
    obj = json.loads(p.read_text())
    fn(obj)
    p.write_text(json.dumps(obj))  # json writes NaN / Infinity, as the runner's allow_nan=True would


@pytest.mark.parametrize("value, shown", [(math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")])
def test_non_finite_protocol_metric_is_rejected_by_file_and_field(tmp_path, value, shown):
    root = make_results(tmp_path / "r", tasks=["point_maze"], checkpoints=False)
    p = root / "ci/point_maze/sql/seed0/result.json"
    _edit(p, lambda o: o["metrics"].__setitem__("min_distance", value))
    loaded = load_results(root)
    rej = [x for x in loaded.rejected if x.path.endswith("point_maze/sql/seed0/result.json")]
    assert rej and f"metrics.min_distance = {shown}" in rej[0].reason and "non-finite" in rej[0].reason
    assert len(loaded.results) == len(list(root.rglob("result.json"))) - 1


def test_gate_fails_a_group_whose_results_are_all_invalid(tmp_path, capsys):
    base = make_results(tmp_path / "base", tasks=["point_maze"], checkpoints=False)
    assert gate.main(["--write-baseline", str(tmp_path / "bl"), "--results", str(base)]) == 0
    cur = make_results(tmp_path / "cur", tasks=["point_maze"], checkpoints=False)
    for p in (cur / "ci/point_maze/sql").rglob("result.json"):
        _edit(p, lambda o: o["metrics"].__setitem__("min_distance", math.nan))
    capsys.readouterr()
    assert gate.main(["--baseline", str(tmp_path / "bl"), "--results", str(cur), "--skip-conformance"]) == 1
    out = capsys.readouterr().out
    assert "point_maze/sql" in out and "MISSING" in out and "non-finite" in out and "gate: FAIL" in out


def test_gate_compare_never_drops_a_group_without_finite_values():
    b = {"groups": {"t/sql": {"protocol": "maze", "metrics": {"min_distance": [1.0, 2.0]}}}}
    c = {"groups": {"t/sql": {"protocol": "maze", "metrics": {"min_distance": [None, None]}}}}
    assert gate.compare(b, c)["missing"] == ["t/sql"]


def test_gate_missing_inputs_are_usage_errors(tmp_path, capsys):
    base = make_results(tmp_path / "base", tasks=["point_maze"], checkpoints=False)
    assert gate.main(["--write-baseline", str(tmp_path / "bl"), "--results", str(base)]) == 0
    capsys.readouterr()
    assert gate.main(["--baseline", str(tmp_path / "bl"), "--results", str(tmp_path / "nope"), "--skip-conformance"]) == 2
    assert "--results" in capsys.readouterr().err
    assert gate.main(["--baseline", str(tmp_path / "bl"), "--results", str(base),
                      "--conformance-report", str(tmp_path / "no.json")]) == 2
    assert "--conformance-report" in capsys.readouterr().err
    assert gate.main(["--baseline", str(tmp_path / "missing-bl"), "--results", str(base), "--skip-conformance"]) == 2


def test_gate_progress_and_temporary_folders(tmp_path, monkeypatch, capsys):
    """The smoke run prints progress while it runs; its temporary folder is removed when the gate passes."""
    import subprocess
    import sys

    made = []
    real_mkdtemp = gate.tempfile.mkdtemp

    def mkdtemp(prefix=""):
        d = real_mkdtemp(prefix=prefix, dir=tmp_path)
        made.append(Path(d))
        return d

    monkeypatch.setattr(gate.tempfile, "mkdtemp", mkdtemp)
    base = make_results(tmp_path / "base", tasks=["point_maze"], checkpoints=False)
    assert gate.main(["--write-baseline", str(tmp_path / "bl"), "--results", str(base)]) == 0
    script = ("import shutil, sys, time; out = sys.argv[sys.argv.index('--out') + 1]; time.sleep(0.5); "
              f"shutil.copytree({str(base)!r}, out, dirs_exist_ok=True)")

    real_popen = subprocess.Popen

    def fake_popen(cmd, stdout=None):  # stands in for the benchmark: writes the results after a pause
        return real_popen([sys.executable, "-c", script, *cmd[3:]], stdout=stdout)

    monkeypatch.setattr(gate.subprocess, "Popen", fake_popen)
    monkeypatch.setattr(gate, "_run_with_progress", lambda cmd, res, n, every_s=0.2, _f=gate._run_with_progress:
                        _f(cmd, res, n, every_s=0.2))
    capsys.readouterr()
    assert gate.main(["--baseline", str(tmp_path / "bl"), "--skip-conformance"]) == 0
    out = capsys.readouterr().out
    assert "smoke runs:" in out and "finished" in out and "elapsed" in out
    assert made and not any(d.exists() for d in made)


def test_report_from_no_valid_results_is_an_error(tmp_path, capsys):
    root = make_results(tmp_path / "r", tasks=["point_maze"], checkpoints=False)
    for p in root.rglob("result.json"):
        p.write_text(p.read_text()[:40])  # truncated
    assert report.main(["--results", str(root), "--out", str(tmp_path / "o"), "--no-figures"]) == 1
    err = capsys.readouterr().err
    assert "no valid result files" in err and "corrupt or truncated JSON" in err
