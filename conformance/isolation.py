"""Run one spec in a forked child process, so that nothing an implementation does can lose the run.

A hang inside native code (where SIGALRM never fires), `os._exit`, a segfault or an abort kills
or stalls only the child: the parent waits for the spec's time limit plus a grace period, then
kills it and records an `error` naming the adapter method that was running (the child writes the
name of every call into shared memory before making it). Each spec starting from the parent's
state also means no spec sees another spec's global-state or RNG changes.

Fork (not spawn) is used because the adapter is an arbitrary Python object that may not be
importable by name (tests pass adapter objects; mutants are classes) and forking copies it for
free. Where fork is unavailable (Windows, macOS's default) the runner runs specs in-process.
"""
from __future__ import annotations

import gc
import multiprocessing as mp
import pickle
import signal
import sys
import time
from typing import Any, Callable

from . import guards

__all__ = ["fork_available", "run_in_child", "warm_up", "GRACE_S"]

GRACE_S = 3.0  # after the spec's own limit (which the child's alarm enforces) before the parent kills the child
_PAYLOAD = ("status", "message", "value", "bound", "measured", "repro", "detail", "warnings", "duration_s")


def fork_available() -> bool:
    return "fork" in mp.get_all_start_methods()


def warm_up(capabilities: set[str]) -> None:
    """Import, once in the parent, what a child would otherwise import afresh for every spec.

    Measured: the first torch optimizer in a process imports torch._dynamo (about 3.5 s on the
    project's 2-core machine); without this every agent/sampler spec in its own child paid it.
    """
    if capabilities & {"sampler", "agent", "trainer"} and "torch" in sys.modules:
        import torch._dynamo  # noqa: F401


def _picklable(v: Any) -> Any:
    try:
        pickle.dumps(v)
        return v
    except Exception:  # noqa: BLE001 - anything the check recorded still reaches the report as text
        return repr(v)


def _child(conn: Any, last: Any, running: Any, target: Callable[[], Any]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (it kills this child)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by the parent around the fork

    def listener(qual: str, now_running: bool) -> None:
        last.value = qual.encode("utf-8", "replace")[: len(last) - 1]
        running.value = 1 if now_running else 0

    guards.set_call_listener(listener)
    res = target()
    conn.send({k: _picklable(getattr(res, k)) for k in _PAYLOAD})
    conn.close()


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}" + (" (a crash in native code)" if name in ("SIGSEGV", "SIGBUS", "SIGABRT",
                                                                                      "SIGILL", "SIGFPE") else "")
    return f"exited with status {code} without a result (os._exit, or exit() in native code)"


def run_in_child(result: Any, target: Callable[[], Any], limit_s: float, grace_s: float = GRACE_S) -> Any:
    """Run `target()` (returns a SpecResult) in a forked child; fill `result` from it or with an error.

    KeyboardInterrupt in the parent kills the child and propagates.
    """
    ctx = mp.get_context("fork")
    last, running = ctx.RawArray("c", 256), ctx.RawValue("b", 0)
    recv_end, send_end = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send_end, last, running, target), daemon=True)
    t0 = time.perf_counter()
    gc.freeze()  # the child's collector then leaves the parent's objects (and their copy-on-write pages) alone
    # Ctrl-C during the fork would raise inside os.fork's at-fork hooks, where Python swallows exceptions:
    # hold SIGINT until the child exists, then let it arrive inside the try below (which kills the child).
    masked = hasattr(signal, "pthread_sigmask")
    if masked:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        proc.start()
    except BaseException:
        if masked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        raise
    send_end.close()
    payload, hard_deadline = None, time.monotonic() + limit_s + grace_s
    try:
        if masked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        while time.monotonic() < hard_deadline:
            if recv_end.poll(min(0.2, max(0.0, hard_deadline - time.monotonic()))):
                try:
                    payload = recv_end.recv()
                except (EOFError, OSError):
                    payload = None
                break
            if not proc.is_alive() and not recv_end.poll(0):
                break
        timed_out = payload is None and time.monotonic() >= hard_deadline
    except BaseException:
        proc.kill()
        proc.join()
        raise
    finally:
        recv_end.close()
    proc.join(5 if payload is not None or not timed_out else 0)  # a child that just exited: collect its status
    if proc.is_alive():
        proc.kill()
    proc.join()
    if payload is not None:
        for k, v in payload.items():
            setattr(result, k, v)
        return result
    method = last.value.decode("utf-8", "replace") or None
    in_call = bool(running.value)
    if method and in_call:
        where = f"during {method} (the last adapter call, which did not return)"
    elif method:
        where = f"in the check's own code after {method} returned"
    else:
        where = "before any adapter call"
    result.status = "error"
    result.duration_s = time.perf_counter() - t0
    if timed_out:
        result.message = (f"the spec did not finish within its time limit of {limit_s:.0f} s (+{grace_s:.0f} s grace) "
                          f"and was killed {where}; a hang in native code ignores the in-process alarm. Fix: make "
                          "the method return, or raise --time-scale on a slow machine")
    else:
        result.message = (f"the process running this spec {_describe_exit(proc.exitcode)} {where}. The rest of the "
                          "run is unaffected (each spec runs in its own child process)")
    return result
