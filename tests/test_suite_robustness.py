"""The suite survives the implementation it checks (issue 15): crashes, hangs, exits, mutated inputs,
leaked global settings and badly declared adapters each become one clear verdict or load error, the run
continues and the report is written. Hostile adapters: tests/robustness_adapters.py.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import robustness_adapters as ra
from softq_conformance.hyp import EDGE_MDPS
from softq_conformance.loading import LoadError, load, validate_adapter
from softq_conformance.report import Report, write_reports
from softq_conformance.runner import RunOptions, SuiteInterrupted, main, run_suite
from softq_specs import Spec, load_specs

ROOT = Path(__file__).resolve().parents[1]
# A1.sandwich calls soft_value; A2.fixed_point calls soft_q_iteration on the shared EDGE_MDPS; A4.gibbs
# A3.policy_evaluation does not call soft_value (it must stay unaffected by what the spec before it did).
SOFT_VALUE_SPEC, AFTER_SPEC = "A1.sandwich", "A3.policy_evaluation"


@pytest.fixture
def short_limits(monkeypatch):
    """The spec that calls the hostile method limited to 2 s so hangs end quickly (the others keep theirs: on a
    loaded machine a correct spec may need more than 2 s)."""
    specs = {k: Spec(**{**s.__dict__, "params": {**s.params, "time_limit_s": 2}}) if k == SOFT_VALUE_SPEC else s
             for k, s in load_specs().items()}
    monkeypatch.setattr("softq_specs.load_specs", lambda: specs)


def _run(adapter, only, **kw):
    return run_suite(adapter, RunOptions(only=only, verbose=False, **kw)).by_id()


# -- isolation: each spec in a child process -----------------------------------------------------------------
@pytest.mark.parametrize("cls, expect", [
    (ra.OsExit, "exited with status 3"),
    (ra.Segfault, "SIGSEGV"),
    (ra.Abort, "SIGABRT"),
    (ra.NativeHang, "did not finish within its time limit"),
])
def test_process_killers_become_an_error_naming_the_method_and_the_run_continues(short_limits, cls, expect):
    t0 = time.monotonic()
    res = _run(cls(), [SOFT_VALUE_SPEC, AFTER_SPEC])
    bad, after = res[SOFT_VALUE_SPEC], res[AFTER_SPEC]
    assert bad.status == "error" and expect in bad.message, bad.message
    assert f"robust-{cls.__name__}.soft_value" in bad.message
    assert after.status == "pass", after.message
    assert time.monotonic() - t0 < 120  # the hang is cut at 2 s + 3 s grace, not at the spec's own 60 s


def test_python_level_hang_names_the_method_that_did_not_return(short_limits):
    for isolate in (True, False):
        r = _run(ra.PythonLoop(), [SOFT_VALUE_SPEC], isolate=isolate)[SOFT_VALUE_SPEC]
        assert r.status == "error" and "time limit" in r.message, r.message
        assert "robust-PythonLoop.soft_value did not return" in r.message, r.message


@pytest.mark.parametrize("isolate", [True, False])
def test_system_exit_is_an_error_naming_the_method(isolate):
    res = _run(ra.SysExit(), [SOFT_VALUE_SPEC, AFTER_SPEC], isolate=isolate)
    assert res[SOFT_VALUE_SPEC].status == "error"
    assert "robust-SysExit.soft_value raised SystemExit(4)" in res[SOFT_VALUE_SPEC].message
    assert res[AFTER_SPEC].status == "pass"


def test_ctrl_c_writes_a_partial_report_marked_incomplete(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "softq_conformance", "--impl", "robustness_adapters:SlowTabular",
                             "--only", "A1.contraction,A1.monotone_translation,A1.sandwich", "--out", str(tmp_path)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a shell's background job ignores SIGINT and Python would inherit that: reset it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in proc.stdout:  # wait until at least one spec has finished
        if "PASS" in line:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err
    rep = json.loads((tmp_path / "robust-SlowTabular" / "partial" / "report.json").read_text())
    assert rep["complete"] is False and 1 <= len(rep["specs"]) < 3
    assert any("interrupted" in w for w in rep["warnings"])


def test_keyboard_interrupt_in_run_suite_carries_the_partial_report(monkeypatch):
    import softq_conformance.runner as runner

    calls = []

    def fake(spec, adapter, opts, hs):
        if calls:
            raise KeyboardInterrupt
        calls.append(spec.id)
        return runner.run_one(spec, adapter, opts.master_seed, hs, opts.impl_ref)

    monkeypatch.setattr(runner, "_run_spec", fake)
    with pytest.raises(SuiteInterrupted) as info:
        run_suite(ra._Tabular(), RunOptions(only=["A1"], verbose=False))
    rep = info.value.report
    assert rep.incomplete and len(rep.results) == 1 and rep.exit_code == 130


# -- inputs are read-only ------------------------------------------------------------------------------------
@pytest.mark.parametrize("isolate", [True, False])
def test_mutating_an_input_is_an_error_naming_the_method_and_argument(isolate):
    res = _run(ra.MutatesQ(), [SOFT_VALUE_SPEC, AFTER_SPEC], isolate=isolate)
    msg = res[SOFT_VALUE_SPEC].message
    assert res[SOFT_VALUE_SPEC].status == "error" and "robust-MutatesQ.soft_value modified its input Q" in msg, msg
    assert res[AFTER_SPEC].status == "pass"


def test_shared_example_mdps_never_stay_corrupted():
    before = [m.R.copy() for m in EDGE_MDPS]
    res = _run(ra.MutatesR(), ["A2.fixed_point", "A6.optimal_policy"], isolate=False)  # in-process: the worst case
    assert res["A2.fixed_point"].status == "error"
    assert "soft_q_iteration modified its input R" in res["A2.fixed_point"].message
    for m, r in zip(EDGE_MDPS, before):
        np.testing.assert_array_equal(m.R, r)


def test_mutated_batch_tensor_is_named():
    import torch

    from softq_conformance.adapter import AdapterError, Checked

    class A:
        name = "batchy"

        def td_target(self, agent, batch):
            batch["reward"].mul_(2)
            return batch["reward"].clone()

    batch = {"reward": torch.ones(3), "obs": torch.zeros(3, 2)}
    with pytest.raises(AdapterError, match=r"batchy.td_target modified its input batch\['reward'\]"):
        Checked(A()).raw("td_target", object(), batch)
    assert torch.equal(batch["reward"], torch.ones(3))  # restored


# -- global settings -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls, what", [
    (ra.LeaksDefaultDtype, "torch default dtype"),
    (ra.LeaksThreads, "torch intra-op threads"),
    (ra.LeaksNumpyErr, "numpy error state"),
    (ra.LeaksGradMode, "torch grad mode"),
])
def test_changed_global_setting_is_reported_against_the_method_and_restored(cls, what):
    import torch

    before = (torch.get_default_dtype(), torch.get_num_threads(), np.geterr(), torch.is_grad_enabled())
    res = _run(cls(), [SOFT_VALUE_SPEC, AFTER_SPEC], isolate=False)
    msg = res[SOFT_VALUE_SPEC].message
    assert res[SOFT_VALUE_SPEC].status == "error" and f"{cls.__name__}.soft_value changed process-wide state" in msg
    assert what in msg, msg
    assert res[AFTER_SPEC].status == "pass"
    assert (torch.get_default_dtype(), torch.get_num_threads(), np.geterr(), torch.is_grad_enabled()) == before


def test_global_rng_use_is_allowed_but_does_not_leak_to_the_next_spec():
    state = np.random.get_state()[1].copy()
    res = _run(ra.ReseedsGlobalRng(), [SOFT_VALUE_SPEC], isolate=False)
    assert res[SOFT_VALUE_SPEC].status == "pass"
    np.testing.assert_array_equal(np.random.get_state()[1], state)


# -- validated at load ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("ref, needle", [
    ("robustness_adapters:StringCapabilities", "must be a set"),
    ("robustness_adapters:UnknownCapability", "unknown capabilities ['telepathy']"),
    ("robustness_adapters:NoCapabilities", "no `capabilities` attribute"),
    ("robustness_adapters:UnknownConventionValue", "conventions['bandwidth_rule'] = 'median_of_means'"),
    ("robustness_adapters:UnknownConventionKey", "unknown convention 'bandwith_rule'"),
    ("robustness_adapters:ConventionsNotDict", "must be a dict"),
    ("robustness_adapters:DotDotName", "name = '..'"),
    ("robustness_adapters:SlashName", "not usable as a report folder"),
    ("robustness_adapters:NumberName", "name = 3"),
    ("robustness_adapters:factory_raises", "the factory raised RuntimeError: licence server"),
    ("robustness_adapters:factory_exits", "the factory raised SystemExit"),
    ("no_such_module_xyz:make", "cannot import 'no_such_module_xyz'"),
    ("robustness_adapters:no_such_factory", "has no attribute 'no_such_factory'"),
    ("robustness_adapters", "must look like package.module:factory"),
])
def test_bad_declarations_are_one_line_load_errors_exit_2(ref, needle, capsys):
    with pytest.raises(LoadError, match=None) as info:
        load(ref)
    assert needle in str(info.value)
    assert main(["--impl", ref, "--no-report", "-q"]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and err.count("\n") == 1


def test_run_suite_validates_adapters_given_as_objects():
    with pytest.raises(LoadError, match="must be a set"):
        run_suite(ra.StringCapabilities(), RunOptions(only=["A1"], verbose=False))


def test_missing_method_is_not_applicable_naming_it():
    # Per-method applicability (issue 13): an omitted method makes the specs that need it not applicable,
    # with a message naming the method and its contract, never an error.
    r = _run(ra.MissingMethod(), [SOFT_VALUE_SPEC])[SOFT_VALUE_SPEC]
    assert r.status == "not_applicable" and "does not implement soft_value" in r.message


def test_report_folder_never_leaves_the_root(tmp_path):
    class A:
        name, capabilities = "..", set()

    rep = Report(A(), {})
    paths = write_reports(rep, tmp_path / "out")
    assert all((tmp_path / "out") in p.parents for p in paths)


@pytest.mark.parametrize("argv, needle", [
    (["--only", "Z9"], "--only names unknown"),
    (["--level", "galaxy"], "--level galaxy is not a level"),
    (["--only", "A1", "--level", "agent"], "matches no spec"),
    (["--time-scale", "nan"], "--time-scale nan"),
    (["--threads", "-1"], "--threads -1"),
    (["--xfail", "/nonexistent/x.toml"], "--xfail /nonexistent/x.toml: cannot read"),
])
def test_selection_and_option_errors_exit_2(argv, needle, capsys):
    assert main([*argv, "--no-report", "-q"]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_bad_xfail_toml_is_one_line(tmp_path, capsys):
    bad = tmp_path / "x.toml"
    bad.write_text("[expected_failures\n")
    assert main(["--xfail", str(bad), "--no-report", "-q"]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_validate_adapter_accepts_the_reference_and_mutants():
    from softq_conformance.mutants import MUTANTS
    from softq_conformance.reference import reference

    validate_adapter(reference())
    for cls in MUTANTS.values():
        validate_adapter(cls())


def test_only_run_never_replaces_the_full_report_and_default_out_is_ignored(tmp_path, capsys):
    assert main(["--only", "A1.sandwich", "--out", str(tmp_path), "-q"]) == 0
    assert (tmp_path / "softq_ref" / "partial" / "report.json").exists()
    assert not (tmp_path / "softq_ref" / "report.json").exists()
    rep = json.loads((tmp_path / "softq_ref" / "partial" / "report.json").read_text())
    assert rep["selection"] == ["A1.sandwich"] and rep["complete"] is True
    ignored = subprocess.run(["git", "check-ignore", "-q", "runs/conformance/softq_ref/report.json"], cwd=ROOT)
    assert ignored.returncode == 0, "the default --out must be git-ignored"


def test_table_is_printed_once(capsys):
    assert main(["--only", "A1.sandwich", "--no-report"]) == 0
    assert capsys.readouterr().out.count("A1.sandwich ") == 1


def test_a_folder_named_like_a_package_in_the_cwd_does_not_shadow_it(tmp_path):
    (tmp_path / "softq_ref").mkdir()  # e.g. running from reports/conformance/, which holds a softq_ref/ report folder
    (tmp_path / "softq_ref" / "report.json").write_text("{}")
    r = subprocess.run([sys.executable, "-m", "softq_conformance", "--only", "A1.sandwich", "--no-report", "-q"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "pass: 1" in r.stdout
