"""Task runner. `nox -s tests` passes the test suite; `nox -s conformance` runs the spec suite.

Every session runs in ONE shared virtual environment, `.nox/shared` (git-ignored), instead of one per
session: each used to create its own venv and reinstall torch (2.5 min before an 80 s suite). The shared
venv is created on first use with torch==2.13.0 (on the project's machines that pin resolves to a CPU
build on disk, while any unpinned resolution pulls GBs of CUDA packages) and then only grows:

* a session's extras that are not installed yet are added (`nox -s conformance` needs `test`;
  `nox -s tests` adds `sb3`, `plots`, `ray`);
* the package is installed non-editable (tests and checks exercise it as users install it) and
  reinstalled, without dependencies, only when its sources changed (a content hash in the stamp file).

`SOFTQ_TORCH_PIN` changes the torch requirement (a new pin rebuilds the venv). To add a session:

    @nox.session(python=False)
    def mysession(session):
        _run(session, ["test"], "-m", "softq_conformance.something", *session.posargs)
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import nox

nox.options.sessions = ["tests"]

TORCH_PIN = os.environ.get("SOFTQ_TORCH_PIN", "torch==2.13.0")
ROOT = Path(__file__).resolve().parent
SHARED = ROOT / ".nox" / "shared"
STAMP = SHARED / "softq-stamp.json"
_SOURCES = ("softq_ref", "conformance", "specs", "baselines")


def _source_hash() -> str:
    h = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    for top in _SOURCES:
        for p in sorted((ROOT / top).rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts:
                h.update(p.relative_to(ROOT).as_posix().encode())
                h.update(p.read_bytes())
    return h.hexdigest()


def _python() -> Path:
    return SHARED / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def shared_env(session: nox.Session, extras: list[str]) -> str:
    """The shared venv's python, with torch, the package and `extras` installed (installing only what is missing)."""
    stamp = json.loads(STAMP.read_text()) if STAMP.exists() else {}
    if stamp.get("torch") != TORCH_PIN or not _python().exists():
        shutil.rmtree(SHARED, ignore_errors=True)
        session.run(sys.executable, "-m", "venv", str(SHARED), external=True)
        session.run(str(_python()), "-m", "pip", "install", "-q", TORCH_PIN, external=True)
        stamp = {"torch": TORCH_PIN, "extras": [], "source": None}
    py = str(_python())
    missing = sorted(set(extras) - set(stamp["extras"]))
    source = _source_hash()
    if missing or stamp["source"] is None:
        wanted = sorted(set(extras) | set(stamp["extras"]))
        target = "." + (f"[{','.join(wanted)}]" if wanted else "")
        session.run(py, "-m", "pip", "install", "-q", TORCH_PIN, target, external=True)
        if stamp["source"] is None:  # first install: the package is the current sources
            stamp["source"] = source
        stamp["extras"] = wanted
    if stamp["source"] != source:
        session.log("sources changed: reinstalling the package (no dependencies)")
        session.run(py, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", ".", external=True)
        stamp["source"] = source
    elif not missing:
        session.log(f"shared venv {SHARED} is up to date (extras {stamp['extras']})")
    STAMP.write_text(json.dumps(stamp, indent=1) + "\n")
    return py


def _run(session: nox.Session, extras: list[str], *args: str) -> None:
    py = shared_env(session, extras)
    session.run(py, *args, external=True)


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """Fast test suite (unit tests, closed forms, self-test of the conformance suite).

    Installs the sb3, plots and ray extras too, so the SB3 adapters, report figures and the Ray
    executor (against a local Ray instance the test starts) are tested.
    """
    _run(session, ["test", "sb3", "plots", "ray"], "-m", "pytest", "-q", *session.posargs)


@nox.session(python=False)
def conformance(session: nox.Session) -> None:
    """Run the conformance suite; default implementation is the built-in reference.

    `nox -s conformance -- --impl package.module:factory` checks another implementation. Reports go to
    runs/conformance/ (git-ignored); `-- --out reports/conformance` writes the committed ones.
    """
    _run(session, ["test"], "-m", "softq_conformance", *session.posargs)


@nox.session(python=False)
def calibrate(session: nox.Session) -> None:
    """False-alarm harness: specs on the reference over many master seeds, in parallel (conformance/README.md).

    `nox -s calibrate` runs the trained specs on the verification seeds; `-- --specs all --seeds verification:20`
    the whole default suite; results and summary under reports/conformance/calibration/<purpose>/.
    """
    _run(session, ["test"], "-m", "softq_conformance.calibrate", *session.posargs)


@nox.session(python=False)
def benchmark(session: nox.Session) -> None:
    """Run a benchmark matrix and decide the paper's claims (softq_ref/benchmarks/README.md).

    `nox -s benchmark -- --tier ci --tasks multigoal,swimmer --seeds 5` (results under runs/<tier>/, where
    `nox -s report` looks); `--executor ray` installs the `ray` extra and sends the runs to a Ray cluster.
    """
    extras = ["ray"] if "ray" in session.posargs or "--executor=ray" in session.posargs else []
    _run(session, extras, "-m", "softq_ref.benchmarks", *session.posargs)


@nox.session(python=False)
def perf(session: nox.Session) -> None:
    """Speed and memory of the reference; writes reports/perf/perf.json and perf.md (softq_ref/perf/README.md).

    `nox -s perf -- --device cuda` measures on a GPU; `-- --before reports/perf/perf_before.json`
    shows an earlier run beside this one. Installs the `sb3` extra for the DDPG comparison.
    """
    args = session.posargs or ["--out", "reports/perf", "--before", "reports/perf/perf_before.json"]
    _run(session, ["sb3"], "-m", "softq_ref.perf", *args)


@nox.session(python=False)
def report(session: nox.Session) -> None:
    """Reproducibility report (REPORT.md, report.json, figures) from benchmark + conformance results.

    `nox -s report -- --results runs/ci-matrix --out reports/ci-2026-11-21`; without `--results` the
    newest results under runs/ are used (softq_ref/benchmarks/README.md, "Reports and the gate").
    """
    _run(session, ["plots"], "-m", "softq_ref.benchmarks.report", *session.posargs)


@nox.session(python=False)
def gate(session: nox.Session) -> None:
    """Release / CI gate: conformance suite + smoke benchmarks vs the stored baseline; exit 1 on a failure or regression.

    `nox -s gate` (reference, baseline reports/baselines/smoke); `-- --impl mypkg.adapter:make_adapter`;
    `-- --results DIR --baseline DIR` to judge given results.
    """
    _run(session, ["test"], "-m", "softq_ref.benchmarks.gate", *session.posargs)
