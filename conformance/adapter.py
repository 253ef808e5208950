"""The adapter protocol: what an implementation exposes, and the one validation path for its returns.

An adapter is any Python object with

    name: str, version: str
    capabilities: set[str]            # a subset of CAPABILITY_METHODS below
    conventions: dict[str, str]       # value_proposal, squash_correction, bandwidth_rule, temperature_mode

and the methods of each capability it declares. Specs whose capability is not declared are
"not applicable". Within a declared capability a method may be omitted, or raise
`NotSupported("reason")`: the spec (or the split-off part of a spec) that needs it is then
"not applicable" with that reason, never "error". Every call from a check goes through
`Checked.call`, which turns an exception, a wrong shape or dtype, NaN/inf or an exceeded time limit
into an `AdapterError` that names the method, the arguments' shapes and what was expected, and says
whether the exception came from the implementation's own code (with its file:line) or from the
adapter / the call itself (protocol misuse).
"""
from __future__ import annotations

import importlib
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .guards import guarded_call

__all__ = ["CAPABILITY_METHODS", "DEFAULT_CONVENTIONS", "Arr", "AdapterError", "CheckTimeout", "Checked",
           "NotApplicable", "NotSupported", "load_adapter", "IMPL_ENV_VAR"]

IMPL_ENV_VAR = "SOFTQ_CONFORMANCE_IMPL"

# capability -> {method: signature and contract}. This table is the documentation of the protocol.
CAPABILITY_METHODS: dict[str, dict[str, str]] = {
    "tabular": {
        "soft_value": "(Q (S,A), alpha) -> V (S,) float64: alpha * logsumexp(Q/alpha) over actions (eq. 9)",
        "boltzmann_policy": "(Q (S,A), alpha) -> pi (S,A) float64: exp((Q - V)/alpha) (eq. 6)",
        "soft_bellman_operator": "(Q, R (S,A), P (S,A,S), gamma, alpha) -> (S,A) float64: r + gamma P V_Q (eq. 8)",
        "soft_q_iteration": "(R, P, gamma, alpha, tol) -> Q* (S,A) float64, converged to the a-posteriori bound tol",
        "soft_policy_evaluation": "(pi (S,A), R, P, gamma, alpha) -> (Q^pi (S,A), V^pi (S,)) float64",
        "sampled_soft_bellman_operator": "(Q, R, P, gamma, alpha, action_samples (S,M) int) -> (S,A) float64",
    },
    "soft_value_estimator": {
        "soft_value_estimate": "(q_values (...,M), log_proposal (...,M), alpha) torch float64 -> (...): eq. 10",
        "soft_value_uniform_box": "(q_values (...,M), alpha, action_dim) torch float64 -> (...): eq. 10, q = U[-1,1]^d",
    },
    "svgd": {
        "rbf_kernel": "(x (...,n,d), y (...,m,d), h (...) or float) torch float64 -> (k (...,n,m), grad_x k (...,n,m,d))",
        "bandwidth": "(fixed (...,n,d), updated (...,m,d)) torch float64 -> h (...): the declared rule, per set",
        "svgd_direction": "(fixed (...,n,d), updated (...,m,d), grad_q (...,n,d), alpha, h (...)) -> (...,m,d): eq. 13",
        "svgd_direction_auto": "(fixed (...,n,d), updated (...,m,d), grad_q (...,n,d), alpha) -> (...,m,d): eq. 13 with "
                               "the implementation's own bandwidth (declared bandwidth_rule); alternative to the above",
    },
    "sampler": {
        "fit_sampler": "(energy: a (...,d) -> Q (...), action_dim, alpha, steps, seed) -> handle fitted to exp(Q/alpha)",
        "sample": "(handle, n) -> actions (n, d) in [-1, 1], fresh noise (iid)",
    },
    "agent": {
        "make_agent": "(obs_dim, act_dim, alpha, gamma, seed) -> agent",
        "q_values": "(agent, obs (B,o), act (B,d), target: bool) -> (B,) online or target Q (internal units); "
                    "(B, K) for a K-critic ensemble (declared critic_reduction min / mean)",
        "td_target": "(agent, batch dict of float32 tensors obs, action, reward, next_obs, terminated) -> y (B,); "
                     "under n_step = N also an N-step batch: reward (B, N) = r_t..r_(t+N-1), next_obs = s_(t+N), "
                     "y = scale sum_k gamma^k r_(t+k) + gamma^N (1 - terminated) V_hat(s_(t+N))",
        "q_update": "(agent, batch) -> None: one gradient step on eq. 11",
        "policy_update": "(agent, batch) -> None: one step of eq. 13-14",
        "sync_target": "(agent) -> None: theta-bar <- theta (omit under target_update = hard(N) / polyak(tau))",
        "update": "(agent, batch) -> None: one fused training step (eq. 11, eq. 13-14 and the target schedule), "
                  "alternative to q_update + policy_update",
        "parameters": "(agent, target: bool) -> 1-D float tensor: the online or target Q parameters, flattened "
                      "(checks polyak(tau) / hard(N) schedules exactly)",
        "actions_from_noise": "(agent, obs (B,o), xi (B,n,d)) -> actions (B,n,d): a = f(xi; s)",
    },
    "trainer": {
        "train": "(task: conformance.tasks.Task, steps, alpha, seed) -> policy trained on task.make_env()",
        "sample_policy": "(policy, obs (B,o), n) -> actions (B,n,d)",
    },
}

DEFAULT_CONVENTIONS = {
    "value_proposal": "uniform_per_state",
    "squash_correction": "none",
    "bandwidth_rule": "sql_code",
    "temperature_mode": "alpha",
    "particle_counts": "independent",  # "tied": the implementation needs as many updated as fixed particles
    "target_update": "hard",  # hard: sync_target(); "hard(N)": copied every N updates; "polyak(tau)"
    "critic_reduction": "single",  # "min" / "mean" over a critic ensemble (q_values returns (B, K))
    "out_of_box_gradient": "none",  # "constant(c)": grad Q of out-of-box particle coordinates replaced by -c sign(a)
    "direction_log_det": "none",  # "tanh(eps)": svgd_direction_auto adds grad sum log(1 - a^2 + eps) to grad Q itself
    "precision": "float64",  # "float32_constants": float64 paths with float32 constants (exact tolerances 1e-6 rel)
    "n_step": "1",  # "N" (N >= 2): n-step returns; td_target also takes batches whose reward is (B, N) (ALG1.nstep_discount)
}


class AdapterError(Exception):
    """The adapter raised, returned a wrong shape/dtype/non-finite value, or ran out of time."""

    def __init__(self, method: str, message: str, detail: str = ""):
        super().__init__(message)
        self.method, self.detail = method, detail


class CheckTimeout(Exception):
    """The per-check time limit expired."""


class NotSupported(Exception):
    """Raise from an adapter method the implementation cannot provide, with the reason.

    The spec needing that method becomes "not applicable" with the reason (not "error"):

        def soft_value_estimate(self, q_values, log_proposal, alpha):
            raise NotSupported("the port only has the uniform-box estimator (eq. 10 with q = U[-1,1]^d)")
    """


class NotApplicable(Exception):
    """The check cannot apply to this implementation (an optional method or variant it does not provide)."""


@dataclass(frozen=True)
class Arr:
    """Expected return: shape (None = any length on that axis), dtype class and a description."""

    shape: tuple[int | None, ...] | None
    what: str
    dtype: str = "float64"  # "float64" | "float" (any floating) | "int"
    finite: bool = True


def _describe(x: Any) -> str:
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return f"{type(x).__name__}{tuple(x.shape)} {str(x.dtype).replace('torch.', '')}"
    if isinstance(x, dict):
        return "{" + ", ".join(f"{k}: {_describe(v)}" for k, v in x.items()) + "}"
    if isinstance(x, (int, float, str, bool)) or x is None:
        return repr(x)
    return type(x).__name__


def to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


class Checked:
    """Wraps an adapter: every call is timed, validated and converted to float64 numpy."""

    def __init__(self, adapter: Any, deadline: float | None = None):
        self.adapter = adapter
        self.name = getattr(adapter, "name", type(adapter).__name__)
        self.deadline = deadline
        self.conventions = {**DEFAULT_CONVENTIONS, **dict(getattr(adapter, "conventions", {}) or {})}

    def raw(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call without return validation (handles, None-returning updates)."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise CheckTimeout(f"time limit exceeded before calling {self.name}.{method}")
        fn = getattr(self.adapter, method, None)
        if fn is None or not callable(fn):
            raise NotApplicable(f"{self.name} does not implement {method} ({_contract(method)}), which this spec needs")
        try:  # inputs read-only, global settings kept, SystemExit caught, the running method recorded
            return guarded_call(self.name, method, fn, args, kwargs, AdapterError)
        except (CheckTimeout, AdapterError, NotApplicable):
            raise
        except NotSupported as exc:
            raise NotApplicable(f"{self.name}.{method} is not supported: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - every adapter failure becomes an error verdict
            raise self._explain(method, args, kwargs, exc) from exc

    def has(self, method: str) -> bool:
        """Whether the adapter defines `method` at all (it may still raise NotSupported when called)."""
        return callable(getattr(self.adapter, method, None))

    def _explain(self, method: str, args: tuple, kwargs: dict, exc: Exception) -> "AdapterError":
        """Say where the exception came from: the call itself, the adapter's code, or the implementation's."""
        sig = ", ".join([_describe(a) for a in args] + [f"{k}={_describe(v)}" for k, v in kwargs.items()])
        tb = "".join(traceback.format_exception(exc)[-3:])
        frames = [f for f in traceback.extract_tb(exc.__traceback__)[1:]  # [0] is this wrapper
                  if Path(f.filename).name != "guards.py"]  # nor is the guard around the call
        head = f"{self.name}.{method}({sig}) raised {type(exc).__name__}: {exc}"
        if not frames and isinstance(exc, TypeError):
            return AdapterError(method, f"protocol misuse: {head}; the method cannot be called with these "
                                f"arguments. Expected {_contract(method)}. Fix: match the signature", tb)
        own = [f for f in frames if not _is_library_frame(f.filename)]
        where = own[-1] if own else (frames[-1] if frames else None)
        if where is None or _is_adapter_side(where.filename, type(self.adapter)):
            line = f" at {_frame(where)}" if where is not None else ""
            return AdapterError(method, f"the adapter's own code failed{line}: {head}; expected {_contract(method)}. "
                                "Fix the adapter (protocol misuse or an adapter bug)", tb)
        return AdapterError(method, f"exception inside the implementation's own code at {_frame(where)}: {head} "
                            f"(while computing {_contract(method)})", tb)

    def call(self, method: str, *args: Any, returns: Arr | tuple[Arr, ...], **kwargs: Any) -> Any:
        out = self.raw(method, *args, **kwargs)
        sig = ", ".join([_describe(a) for a in args] + [f"{k}={_describe(v)}" for k, v in kwargs.items()])
        if isinstance(returns, tuple):
            if not isinstance(out, (tuple, list)) or len(out) != len(returns):
                raise AdapterError(method, f"{self.name}.{method}({sig}) returned {_describe(out)}; expected a "
                                   f"tuple of {len(returns)}: " + "; ".join(r.what for r in returns))
            return tuple(self._validate(method, sig, o, r, i) for i, (o, r) in enumerate(zip(out, returns)))
        return self._validate(method, sig, out, returns, None)

    def _validate(self, method: str, sig: str, out: Any, r: Arr, index: int | None) -> np.ndarray:
        which = f"{self.name}.{method}({sig})" + (f" output [{index}]" if index is not None else "")
        arr = to_numpy(out)

        def bad(problem: str, fix: str) -> AdapterError:
            return AdapterError(method, f"{which} {problem}; expected {r.what}"
                                f"{'' if r.shape is None else ' with shape ' + _shape(r.shape)}, dtype {r.dtype}. Fix: {fix}")

        kind = arr.dtype.kind
        if r.dtype == "int":
            if kind not in "iu":
                raise bad(f"returned dtype {arr.dtype}", "return integer indices")
        elif kind != "f":
            raise bad(f"returned dtype {arr.dtype}", "return a floating-point array or tensor")
        elif r.dtype == "float64" and arr.dtype != np.float64:
            raise bad(f"returned dtype {arr.dtype}", "compute in float64 when given float64 inputs (exact checks "
                      "compare at ~1e-9; float32 cannot)")
        if r.shape is not None:
            ok = arr.ndim == len(r.shape) and all(e is None or e == a for e, a in zip(r.shape, arr.shape))
            if not ok:
                raise bad(f"returned shape {arr.shape}", "check which axis you reduce over and keep batch axes")
        if r.finite and kind == "f" and not np.all(np.isfinite(arr)):
            n = int(np.size(arr) - np.isfinite(arr).sum())
            raise bad(f"returned {n} non-finite value(s) (NaN/inf)", "use a max-subtracted logsumexp and guard divisions")
        return arr.astype(np.float64) if kind == "f" else arr


def _library_dirs() -> tuple[str, ...]:
    import sysconfig

    dirs = [sysconfig.get_paths()["stdlib"]]
    for mod in ("torch", "numpy", "scipy"):
        m = __import__("sys").modules.get(mod)
        if m is not None and getattr(m, "__file__", None):
            dirs.append(os.path.dirname(m.__file__))
    return tuple(os.path.realpath(d) + os.sep for d in dirs)


def _is_library_frame(filename: str) -> bool:
    """Frames inside torch / numpy / scipy / the standard library are not where a port's bug is."""
    return filename.startswith("<") or os.path.realpath(filename).startswith(_library_dirs())


_SUITE_DIR = os.path.realpath(os.path.dirname(__file__)) + os.sep
_PORT_ADAPTERS = os.path.join(_SUITE_DIR, "third_party", "ports") + os.sep


def _is_adapter_side(filename: str, adapter_cls: type) -> bool:
    """The adapter's module or the suite's own helpers (the kit): a failure there is protocol misuse."""
    real = os.path.realpath(filename)
    own = _module_file(adapter_cls)
    if own and real == os.path.realpath(own):
        return True
    # stand-in ports used in tests live under the suite too; only the kit and adapters count as "adapter side"
    return real.startswith(os.path.join(_SUITE_DIR, "kit") + os.sep) or real.startswith(_PORT_ADAPTERS)


def _module_file(cls: type) -> str | None:
    import inspect

    try:
        return inspect.getfile(cls)
    except (TypeError, OSError):
        return None


def _frame(fr: Any) -> str:
    code = f" `{fr.line.strip()}`" if getattr(fr, "line", None) else ""
    return f"{os.path.basename(fr.filename)}:{fr.lineno} in {fr.name}{code}"


def _shape(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("*" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _contract(method: str) -> str:
    for methods in CAPABILITY_METHODS.values():
        if method in methods:
            return methods[method]
    return "(see CAPABILITY_METHODS)"


def load_adapter(spec: str | None = None) -> Any:
    """`package.module:factory` (or `package.module:object`) -> adapter; None -> $SOFTQ_CONFORMANCE_IMPL or the reference."""
    spec = spec or os.environ.get(IMPL_ENV_VAR) or "softq_conformance.reference:reference"
    if ":" not in spec:
        raise ValueError(f"--impl {spec!r} must look like package.module:factory")
    mod_name, attr = spec.split(":", 1)
    obj = importlib.import_module(mod_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    adapter = obj() if isinstance(obj, type) or (callable(obj) and not hasattr(obj, "capabilities")) else obj
    caps = getattr(adapter, "capabilities", None)
    if caps is None:
        raise TypeError(f"{spec} produced {type(adapter).__name__} without a `capabilities` attribute; "
                        f"declare a subset of {sorted(CAPABILITY_METHODS)}")
    unknown = set(caps) - set(CAPABILITY_METHODS)
    if unknown:
        raise ValueError(f"{spec} declares unknown capabilities {sorted(unknown)}; known: {sorted(CAPABILITY_METHODS)}")
    return adapter
