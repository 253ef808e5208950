"""Malformed and hostile adapters for tests/test_suite_robustness.py (also loadable by --impl in a subprocess:
PYTHONPATH=tests python -m softq_conformance --impl robustness_adapters:SlowTabular).

Each is the reference with one tabular method replaced, so the spec that calls that method shows the effect
and the other specs show that nothing leaked.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import time

import numpy as np

from softq_conformance.reference import ReferenceAdapter


class _Tabular(ReferenceAdapter):
    capabilities = {"tabular"}

    def __init__(self):
        super().__init__()
        self.name = "robust-" + type(self).__name__


class OsExit(_Tabular):
    def soft_value(self, Q, alpha):
        os._exit(3)


class Segfault(_Tabular):
    def soft_value(self, Q, alpha):
        ctypes.string_at(0)  # reads address 0: SIGSEGV


class Abort(_Tabular):
    def soft_value(self, Q, alpha):
        os.abort()


class NativeHang(_Tabular):
    """A hang the in-process alarm cannot interrupt (as in C code that never returns to Python)."""

    def soft_value(self, Q, alpha):
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
        time.sleep(600)


class PythonLoop(_Tabular):
    def soft_value(self, Q, alpha):
        while True:
            time.sleep(0.01)


class SysExit(_Tabular):
    def soft_value(self, Q, alpha):
        sys.exit(4)


class MutatesQ(_Tabular):
    def soft_value(self, Q, alpha):
        out = super().soft_value(Q, alpha)
        Q -= 1.0  # in place: the caller's array
        return out


class MutatesR(_Tabular):
    def soft_q_iteration(self, R, P, gamma, alpha, tol):
        R *= 2.0  # corrupts the suite's shared example MDPs unless the guard restores them
        return super().soft_q_iteration(R / 2.0, P, gamma, alpha, tol)


class LeaksDefaultDtype(_Tabular):
    def soft_value(self, Q, alpha):
        import torch

        torch.set_default_dtype(torch.float64)
        return super().soft_value(Q, alpha)


class LeaksThreads(_Tabular):
    def soft_value(self, Q, alpha):
        import torch

        torch.set_num_threads(max(2, torch.get_num_threads() + 1))
        return super().soft_value(Q, alpha)


class LeaksNumpyErr(_Tabular):
    def soft_value(self, Q, alpha):
        np.seterr(all="ignore")
        return super().soft_value(Q, alpha)


class LeaksGradMode(_Tabular):
    def soft_value(self, Q, alpha):
        import torch

        torch.set_grad_enabled(False)
        return super().soft_value(Q, alpha)


class ReseedsGlobalRng(_Tabular):
    """Legitimate: draws from / reseeds the global RNGs. Not an error; the next spec must not see it."""

    def soft_value(self, Q, alpha):
        np.random.seed(123)
        np.random.random(10)
        return super().soft_value(Q, alpha)


class SlowTabular(_Tabular):
    """Correct but slow (for the Ctrl-C test)."""

    def soft_value(self, Q, alpha):
        time.sleep(0.5)
        return super().soft_value(Q, alpha)


# -- declared badly ----------------------------------------------------------------------------------------
class StringCapabilities(_Tabular):
    capabilities = "tabular"


class UnknownCapability(_Tabular):
    capabilities = {"tabular", "telepathy"}


class NoCapabilities:
    name, version = "none", "0"


class UnknownConventionValue(_Tabular):
    def __init__(self):
        super().__init__()
        self.conventions = {**self.conventions, "bandwidth_rule": "median_of_means"}


class UnknownConventionKey(_Tabular):
    def __init__(self):
        super().__init__()
        self.conventions = {**self.conventions, "bandwith_rule": "sql_code"}


class ConventionsNotDict(_Tabular):
    def __init__(self):
        super().__init__()
        self.conventions = ["sql_code"]


class DotDotName(_Tabular):
    def __init__(self):
        super().__init__()
        self.name = ".."


class SlashName(_Tabular):
    def __init__(self):
        super().__init__()
        self.name = "../../etc/x"


class NumberName(_Tabular):
    def __init__(self):
        super().__init__()
        self.name = 3


def factory_raises():
    raise RuntimeError("licence server unreachable")


def factory_exits():
    sys.exit("bye")


class MissingMethod(_Tabular):
    soft_value = None  # declared capability, method absent
