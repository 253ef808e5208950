"""softq-conformance: a spec-driven verdict, per equation of the paper, for a soft Q-learning implementation.

    python -m softq_conformance --impl package.module:factory

See conformance/README.md ("Validate your implementation").
"""
from .adapter import (CAPABILITY_METHODS, DEFAULT_CONVENTIONS, AdapterError, Arr, Checked, NotSupported,
                      load_adapter)
from .registry import CHECKS, CheckFailure, Ctx, check

__all__ = ["CAPABILITY_METHODS", "DEFAULT_CONVENTIONS", "AdapterError", "Arr", "Checked", "NotSupported", "load_adapter",
           "CHECKS", "CheckFailure", "Ctx", "check", "run_suite"]


def run_suite(adapter, options=None):
    from .runner import run_suite as _run

    return _run(adapter, options)
