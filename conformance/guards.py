"""Guards around every adapter call, so that one bad method cannot change another spec's verdict.

`guarded_call` (used by `adapter.Checked.raw` for every call into an implementation):

* inputs are read-only: every NumPy array and torch tensor passed in (also inside dicts, lists
  and tuples, e.g. a batch) is copied before the call and compared bit for bit after it; a
  mutation is restored in place (so shared example MDPs never stay corrupted) and becomes an
  `AdapterError` naming the method and the argument;
* process-wide settings are put back: torch default dtype, torch intra-op threads, torch grad
  mode and the NumPy floating-point error state are read before the call and compared after it;
  a change is restored and becomes an `AdapterError` naming the method and the setting;
* `SystemExit` raised by the adapter is an `AdapterError` naming the method (it would otherwise
  end the suite);
* which method is running is recorded (`current_call`, `last_call`, and an optional listener)
  so that a time-limit error, or the parent of an isolated child that died, can name it.

Global RNG states (Python `random`, NumPy's legacy global generator, torch's CPU generator) are
not compared per call: drawing from them is legitimate (a sampler's fresh noise). They are saved
and restored around every spec instead (`rng_state` / `restore_rng_state`), and every spec runs
in its own child process by default (runner), so no spec sees another's RNG use.
"""
from __future__ import annotations

import inspect
import random
import sys
from typing import Any, Callable

import numpy as np

__all__ = ["guarded_call", "set_call_listener", "current_call", "last_call", "rng_state", "restore_rng_state",
           "global_settings"]

_state: dict[str, str | None] = {"current": None, "last": None}
_listener: list[Callable[[str, bool], None] | None] = [None]
# Methods whose first argument is the adapter's own object (a sampler handle, an agent, a policy): the
# adapter may change it; everything else it receives belongs to the suite.
_ADAPTER_OWNED_FIRST = {"sample", "q_values", "td_target", "q_update", "policy_update", "sync_target",
                        "actions_from_noise", "sample_policy"}
_MAX_DEPTH = 3  # how deep into dicts/lists/tuples inputs are looked for arrays (a batch is depth 1)


def set_call_listener(fn: Callable[[str, bool], None] | None) -> None:
    """`fn("name.method", running)` is called before (True) and after (False) every adapter call.

    The isolated runner's child uses it to tell its parent which method it was in when it died."""
    _listener[0] = fn


def current_call() -> str | None:
    """`name.method` of the adapter call running now, None between calls."""
    return _state["current"]


def last_call() -> str | None:
    """`name.method` of the most recent adapter call (running or returned)."""
    return _state["last"]


def reset_calls() -> None:
    _state["current"] = _state["last"] = None


# -- global settings ------------------------------------------------------------------------------
def global_settings() -> dict[str, Any]:
    """The process-wide settings an adapter call must leave as it found them."""
    out: dict[str, Any] = {"numpy error state (np.seterr)": np.geterr()}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch default dtype"] = torch.get_default_dtype()
        out["torch intra-op threads"] = torch.get_num_threads()
        out["torch grad mode"] = torch.is_grad_enabled()
    return out


def _restore_settings(saved: dict[str, Any]) -> list[str]:
    now = global_settings()
    changed = [f"{k} from {saved[k]!r} to {now[k]!r}" for k in saved if k in now and now[k] != saved[k]]
    if changed:
        np.seterr(**saved["numpy error state (np.seterr)"])
        torch = sys.modules.get("torch")
        if torch is not None and "torch default dtype" in saved:
            torch.set_default_dtype(saved["torch default dtype"])
            torch.set_num_threads(saved["torch intra-op threads"])
            torch.set_grad_enabled(saved["torch grad mode"])
    return changed


def rng_state() -> dict[str, Any]:
    out: dict[str, Any] = {"random": random.getstate(), "numpy": np.random.get_state()}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = torch.get_rng_state()
    return out


def restore_rng_state(saved: dict[str, Any]) -> None:
    random.setstate(saved["random"])
    np.random.set_state(saved["numpy"])
    torch = sys.modules.get("torch")
    if torch is not None and "torch" in saved:
        torch.set_rng_state(saved["torch"])


# -- read-only inputs -----------------------------------------------------------------------------
def _arrays(x: Any, path: str, depth: int = 0) -> list[tuple[str, Any]]:
    if isinstance(x, np.ndarray):
        return [(path, x)]
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return [(path, x)]
    if depth >= _MAX_DEPTH:
        return []
    if isinstance(x, dict):
        return [hit for k, v in x.items() for hit in _arrays(v, f"{path}[{k!r}]", depth + 1)]
    if isinstance(x, (list, tuple)):
        return [hit for i, v in enumerate(x) for hit in _arrays(v, f"{path}[{i}]", depth + 1)]
    return []


def _copy(a: Any) -> Any:
    return a.copy() if isinstance(a, np.ndarray) else a.detach().clone()


def _same(a: Any, saved: Any) -> bool:
    if isinstance(a, np.ndarray):
        return a.shape == saved.shape and np.array_equal(a, saved, equal_nan=a.dtype.kind in "fc")
    import torch

    if a.shape != saved.shape or a.dtype != saved.dtype:
        return False
    cur = a.detach()
    if cur.is_floating_point() or cur.is_complex():
        return bool(((cur == saved) | (cur.isnan() & saved.isnan())).all())
    return bool(torch.equal(cur, saved))


def _restore(a: Any, saved: Any) -> None:
    if isinstance(a, np.ndarray):
        if a.shape == saved.shape and a.flags.writeable:
            np.copyto(a, saved)
        return
    import torch

    with torch.no_grad():
        if a.shape != saved.shape or a.dtype != saved.dtype:
            a.set_(saved.clone())
        else:
            a.copy_(saved)


def _arg_names(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
    try:
        bound = inspect.signature(fn).bind_partial(*args, **kwargs)
        names = list(bound.arguments)
    except (TypeError, ValueError):
        names = []
    return [names[i] if i < len(names) else f"argument {i + 1}" for i in range(len(args))] + list(kwargs)


def guarded_call(name: str, method: str, fn: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any], error: Callable[[str, str], BaseException]) -> Any:
    """Call `fn(*args, **kwargs)` with the guards above; `error(method, message)` builds the error raised."""
    qual = f"{name}.{method}"
    _state["current"] = _state["last"] = qual
    if _listener[0] is not None:
        _listener[0](qual, True)
    first = 1 if method in _ADAPTER_OWNED_FIRST else 0
    labelled = [(i, p, a, _copy(a)) for i, x in enumerate(list(args) + list(kwargs.values())) if i >= first
                for p, a in _arrays(x, "")]
    settings = global_settings()
    try:
        out = fn(*args, **kwargs)
    except SystemExit as exc:
        raise error(method, f"{qual} raised SystemExit({exc.code!r}): an implementation must not end the process; "
                    "raise an exception instead") from None
    finally:
        _state["current"] = None
        if _listener[0] is not None:
            _listener[0](qual, False)
        mutated = [(i, p, a, saved) for i, p, a, saved in labelled if not _same(a, saved)]
        for _, _, a, saved in mutated:
            _restore(a, saved)
        changed = _restore_settings(settings)
    if mutated:
        names = _arg_names(fn, args, kwargs)
        which = ", ".join(f"{names[i]}{p}" for i, p, _, _ in mutated)
        raise error(method, f"{qual} modified its input {which} in place; inputs are read-only (the suite reuses "
                    "them, e.g. shared example MDPs; they were restored). Fix: copy before modifying "
                    "(x = x.copy() / x.clone()) or use out-of-place operations")
    if changed:
        raise error(method, f"{qual} changed process-wide state and did not restore it: {'; '.join(changed)} "
                    "(restored by the suite). Fix: use a context manager (np.errstate, torch.set_default_dtype "
                    "inside try/finally) or pass dtypes explicitly")
    return out
