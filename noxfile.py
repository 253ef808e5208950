"""Task runner. `nox -s tests` passes the test suite; `nox -s conformance` runs the spec suite.

Every session installs torch==2.13.0 first: on the project's machines that pin resolves to a
CPU build on disk, while any unpinned resolution pulls GBs of CUDA packages.
"""
import os

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests"]

TORCH_PIN = os.environ.get("SOFTQ_TORCH_PIN", "torch==2.13.0")


def _install(session: nox.Session, *extras: str) -> None:
    session.install(TORCH_PIN)
    target = "." + (f"[{','.join(extras)}]" if extras else "")
    # Non-editable: tests and checks exercise the package as users install it.
    session.install(target)


@nox.session
def tests(session: nox.Session) -> None:
    """Fast test suite (unit tests, closed forms, self-test of the conformance suite).

    Installs the sb3, plots and ray extras too, so the SB3 adapters, report figures and the Ray
    executor (against a local Ray instance the test starts) are tested.
    """
    _install(session, "test", "sb3", "plots", "ray")
    session.run("pytest", "-q", *session.posargs)


@nox.session
def conformance(session: nox.Session) -> None:
    """Run the conformance suite; default implementation is the built-in reference.

    `nox -s conformance -- --impl package.module:factory` checks another implementation.
    """
    _install(session, "test")
    session.run("python", "-m", "softq_conformance", *session.posargs)


@nox.session
def calibrate(session: nox.Session) -> None:
    """False-alarm harness: specs on the reference over many master seeds, in parallel (conformance/README.md).

    `nox -s calibrate` runs the trained specs on the verification seeds; `-- --specs all --seeds verification:20`
    the whole default suite; results and summary under reports/conformance/calibration/<purpose>/.
    """
    _install(session, "test")
    session.run("python", "-m", "softq_conformance.calibrate", *session.posargs)


@nox.session
def benchmark(session: nox.Session) -> None:
    """Run a benchmark matrix and decide the paper's claims (softq_ref/benchmarks/README.md).

    `nox -s benchmark -- --tier ci --tasks multigoal,swimmer --seeds 5 --out runs/`;
    `--executor ray` installs the `ray` extra and sends the runs to a Ray cluster.
    """
    extras = ["ray"] if "ray" in session.posargs or "--executor=ray" in session.posargs else []
    _install(session, *extras)
    session.run("python", "-m", "softq_ref.benchmarks", *session.posargs)


@nox.session
def perf(session: nox.Session) -> None:
    """Speed and memory of the reference; writes reports/perf/perf.json and perf.md (softq_ref/perf/README.md).

    `nox -s perf -- --device cuda` measures on a GPU; `-- --before reports/perf/perf_before.json`
    shows an earlier run beside this one. Installs the `sb3` extra for the DDPG comparison.
    """
    _install(session, "sb3")
    args = session.posargs or ["--out", "reports/perf", "--before", "reports/perf/perf_before.json"]
    session.run("python", "-m", "softq_ref.perf", *args)


@nox.session
def report(session: nox.Session) -> None:
    """Reproducibility report (REPORT.md, report.json, figures) from benchmark + conformance results.

    `nox -s report -- --results runs/ci-matrix --out reports/ci-2026-11-21`; without `--results` the
    newest results under runs/ are used (softq_ref/benchmarks/README.md, "Reports and the gate").
    """
    _install(session, "plots")
    session.run("python", "-m", "softq_ref.benchmarks.report", *session.posargs)


@nox.session
def gate(session: nox.Session) -> None:
    """Release / CI gate: conformance suite + smoke benchmarks vs the stored baseline; exit 1 on a failure or regression.

    `nox -s gate` (reference, baseline reports/baselines/smoke); `-- --impl mypkg.adapter:make_adapter`;
    `-- --results DIR --baseline DIR` to judge given results.
    """
    _install(session, "test")
    session.run("python", "-m", "softq_ref.benchmarks.gate", *session.posargs)
