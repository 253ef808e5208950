"""Check registry and the context a check runs in.

    @check("A1.contraction")
    def _(ctx: Ctx) -> None: ...

A check calls the implementation only through `ctx.impl` (validated), records what it measured
with `ctx.measure`, and fails through `ctx.fail / ctx.le / ctx.close`, which carry the measured
value and the bound into the report.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy.stats import norm

from .adapter import Checked, NotApplicable

__all__ = ["CHECKS", "check", "Ctx", "CheckFailure", "NotApplicable", "Units", "bonferroni_z"]

CHECKS: dict[str, Callable[["Ctx"], Any]] = {}
FLOAT32_CONSTANTS_RTOL = 1e-6  # exact checks under the declared precision = "float32_constants"


def check(spec_id: str) -> Callable[[Callable[["Ctx"], Any]], Callable[["Ctx"], Any]]:
    """Register the check implementing `spec_id` (exactly one per spec; the meta-test enforces it)."""

    def deco(fn: Callable[["Ctx"], Any]) -> Callable[["Ctx"], Any]:
        if spec_id in CHECKS:
            raise ValueError(f"two checks registered for spec {spec_id!r}: {CHECKS[spec_id].__qualname__} and {fn.__qualname__}")
        fn.spec_id = spec_id  # type: ignore[attr-defined]
        CHECKS[spec_id] = fn
        return fn

    return deco


class CheckFailure(AssertionError):
    """The implementation violates the spec: carries what was measured and the bound it broke."""

    def __init__(self, message: str, measured: Any = None, bound: Any = None):
        super().__init__(message)
        self.measured, self.bound = measured, bound


@dataclass(frozen=True)
class Units:
    """How a check's (Q, alpha) reach the implementation under its declared temperature_mode.

    alpha (default): Q and alpha are passed as they are. reward_scale: the implementation keeps
    alpha = 1 inside and works with rewards (hence Q, V and grad Q) divided by alpha, so it is called
    with Q / alpha and alpha = 1, and a returned value (V, an eq. 13 direction) is multiplied back by
    alpha. The one place where the suite converts units; checks never convert by hand.
    """

    alpha: float  # the temperature the implementation is called with
    q_scale: float  # multiply Q, grad Q and rewards by this before the call

    def q(self, x: Any) -> Any:
        return x * self.q_scale if self.q_scale != 1.0 else x

    def back(self, internal: Any) -> Any:
        """A returned Q-unit quantity (soft value, direction) in the check's units."""
        return internal / self.q_scale if self.q_scale != 1.0 else internal

    def energy(self, energy: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """An energy a -> Q(a) in the implementation's units (same target exp(Q/alpha))."""
        if self.q_scale == 1.0:
            return energy
        return lambda a: energy(a) * self.q_scale


def bonferroni_z(false_alarm: float, n_assertions: int, two_sided: bool = True) -> float:
    """z such that n_assertions z-tests have family-wise false-alarm probability <= false_alarm."""
    per = false_alarm / max(1, n_assertions) / (2.0 if two_sided else 1.0)
    return float(norm.isf(per))


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist() if v.size <= 64 else f"array{v.shape}"
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


@dataclass
class Ctx:
    spec: Any
    impl: Checked
    seed: int
    hyp_settings: Any = None
    master_seed: int = 0

    def __post_init__(self) -> None:
        self.params: dict[str, Any] = dict(self.spec.params)
        self.measured: dict[str, Any] = {}
        self.conventions = self.impl.conventions

    def units(self, alpha: float) -> Units:
        """(alpha, Q scale) for calling the implementation under its declared temperature_mode."""
        if self.conventions.get("temperature_mode") == "reward_scale":
            return Units(1.0, 1.0 / float(alpha))
        return Units(float(alpha), 1.0)

    # -- randomness: fixed seeds derived from the master seed and the spec id ------------------------
    def rng(self, stream: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, stream])

    def torch_generator(self, stream: int = 0):
        import torch

        return torch.Generator().manual_seed(int(self.rng(1000 + stream).integers(2**62)))

    def sub_seed(self, stream: int = 0) -> int:
        return int(self.rng(2000 + stream).integers(2**31 - 1))

    # -- recording and failing ----------------------------------------------------------------------
    def measure(self, name: str, value: Any) -> None:
        self.measured[name] = _jsonable(value)

    def worst(self, name: str, value: float, larger_is_worse: bool = True) -> None:
        """Keep the worst value of a quantity over many instances (e.g. hypothesis examples)."""
        old = self.measured.get(name)
        if old is None or (value > old if larger_is_worse else value < old):
            self.measured[name] = _jsonable(float(value))

    def fail(self, message: str, measured: Any = None, bound: Any = None) -> None:
        raise CheckFailure(message, _jsonable(measured), _jsonable(bound))

    def le(self, name: str, measured: float, bound: float, context: str = "") -> None:
        """Assert measured <= bound (the caller has put any slack into bound)."""
        measured, bound = float(measured), float(bound)
        self.worst(f"{name} - bound", measured - bound)
        if not measured <= bound:
            self.fail(f"{name} = {measured:.6g} exceeds its bound {bound:.6g}{'; ' + context if context else ''}",
                      measured, bound)

    def close(self, name: str, measured: Any, expected: Any, atol: float, context: str = "") -> float:
        """Assert max |measured - expected| <= atol elementwise; returns the max error."""
        m, e = np.asarray(measured, dtype=np.float64), np.asarray(expected, dtype=np.float64)
        err = float(np.max(np.abs(m - e))) if m.size else 0.0
        if self.conventions.get("precision") == "float32_constants" and self.spec.kind == "exact" and e.size:
            # declared: float64 paths that use float32 constants (log M, d log 2, alpha): their rounding,
            # 2^-23 relative, a few times over, bounds the error; any equation error is far larger
            floor = FLOAT32_CONSTANTS_RTOL * (1 + float(np.max(np.abs(e))))
            if atol < floor:
                atol = floor
                self.measured["tolerance"] = f"float32_constants: atol raised to {FLOAT32_CONSTANTS_RTOL:g} (1 + |expected|)"
        self.worst(f"max |{name} error|", err)
        if not err <= atol:
            idx = np.unravel_index(int(np.argmax(np.abs(m - e))), m.shape) if m.ndim else ()
            self.fail(f"{name}: max abs error {err:.3e} > atol {atol:.3e} (at index {tuple(int(i) for i in idx)}: "
                      f"got {m[idx]:.10g}, expected {e[idx]:.10g}){'; ' + context if context else ''}", err, atol)
        return err

    def z(self, n_assertions: int, two_sided: bool = True) -> float:
        # Trained specs (conformance/trained.py) split their budget: run_false_alarm covers one run's final draws.
        z = bonferroni_z(float(self.params.get("run_false_alarm", self.spec.false_alarm)), n_assertions, two_sided)
        self.measure("z_threshold", round(z, 4))
        return z

    def given(self, *strategies: Any, examples: tuple[tuple[Any, ...], ...] = (), **kw: Any):
        """hypothesis.given with this run's profile; explicit `examples` always run first."""
        from hypothesis import example, given

        def deco(fn: Callable[..., Any]) -> Callable[[], None]:
            wrapped = fn
            for ex in examples:
                wrapped = example(*ex)(wrapped)
            wrapped = given(*strategies, **kw)(wrapped)
            return self.hyp_settings(wrapped) if self.hyp_settings is not None else wrapped

        return deco
