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
    """Fast test suite (unit tests, closed forms, self-test of the conformance suite)."""
    _install(session, "test")
    session.run("pytest", "-q", *session.posargs)


@nox.session
def conformance(session: nox.Session) -> None:
    """Run the conformance suite; default implementation is the built-in reference.

    `nox -s conformance -- --impl package.module:factory` checks another implementation.
    """
    _install(session, "test")
    session.run("python", "-m", "softq_conformance", *session.posargs)
