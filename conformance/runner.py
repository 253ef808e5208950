"""Run the conformance suite: python -m softq_conformance [--impl pkg.mod:factory] [--seed N] ...

Verdict per spec: pass | fail | error | not_applicable | xfail. Exit code 0 only when nothing
failed or errored (2: the implementation or the options could not be loaded; 130: interrupted).
One bad method never stops the run: every spec runs in its own forked child process
(isolation.py: crashes and native hangs become an error naming the method), every check in its
own try block under a per-check time limit (SIGALRM in the main thread, plus a deadline test
before every adapter call), and every adapter call under the guards of guards.py (read-only
inputs, process-wide settings kept).
"""
from __future__ import annotations

import argparse
import contextlib
import math
import signal
import sys
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from . import guards, isolation
from .adapter import DEFAULT_CONVENTIONS, AdapterError, Checked, CheckTimeout
from .registry import CHECKS, CheckFailure, Ctx, NotApplicable
from .loading import LEVELS, LoadError, load, validate_adapter
from .report import Report, SpecResult, environment_metadata, print_header, print_row, print_table, write_reports

__all__ = ["run_suite", "run_one", "RunOptions", "SuiteInterrupted", "main", "load_expected_failures", "spec_seed", "STATUSES"]

STATUSES = ("pass", "fail", "error", "not_applicable", "xfail")
DEFAULT_OUT = "runs/conformance"  # git-ignored; `--out reports/conformance` writes the committed reports


def _import_checks() -> None:
    from . import (check_agent, check_composition, check_estimator, check_sampler,  # noqa: F401
                   check_svgd, check_tabular)
    from . import check_agent_terms, check_contracts, check_trainer  # noqa: F401  (issue 14)


def spec_seed(master_seed: int, spec_id: str) -> int:
    """Fixed per-spec seed: a stable hash of (master seed, spec id), independent of run order."""
    import hashlib

    return int.from_bytes(hashlib.sha256(f"{master_seed}:{spec_id}".encode()).digest()[:8], "little") >> 1


def load_expected_failures(path: str | Path | None) -> dict[str, str]:
    """TOML file `[expected_failures]` with `"SPEC.id" = "reason"` entries."""
    if path is None:
        return {}
    import tomllib

    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"--xfail {path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise ValueError(f"--xfail {path}: cannot read it ({exc.strerror})") from None
    table = data.get("expected_failures", data)
    bad = {k: v for k, v in table.items() if not isinstance(v, str) or not v.strip()}
    if bad:
        raise ValueError(f"{path}: every expected failure needs a non-empty reason string; offending: {sorted(bad)}")
    return dict(table)


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        running, last = guards.current_call(), guards.last_call()
        where = (f"{running} did not return" if running else
                 f"in the check's own code after {last} returned" if last else "before any adapter call")
        raise CheckTimeout(f"check exceeded its time limit of {seconds:.0f} s: {where}")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _find(exc: BaseException, kinds: tuple[type, ...]) -> BaseException | None:
    """Hypothesis may wrap errors (ExceptionGroup for multiple distinct failures)."""
    if isinstance(exc, kinds):
        return exc
    for sub in getattr(exc, "exceptions", ()) or ():
        hit = _find(sub, kinds)
        if hit is not None:
            return hit
    if exc.__cause__ is not None and exc.__cause__ is not exc:
        return _find(exc.__cause__, kinds)
    return None


def _notes(exc: BaseException) -> str:
    notes = list(getattr(exc, "__notes__", []) or [])
    for sub in getattr(exc, "exceptions", ()) or ():
        notes += list(getattr(sub, "__notes__", []) or [])
    return "\n".join(n for n in notes if n.strip())


def run_one(spec: Any, adapter: Any, master_seed: int, hyp_settings: Any, impl_ref: str,
            time_scale: float = 1.0) -> SpecResult:
    res = SpecResult(spec)
    missing = [c for c in spec.capability if c not in set(getattr(adapter, "capabilities", ()))]
    if missing:
        res.status, res.message = "not_applicable", f"implementation does not declare capability {', '.join(missing)}"
        return res
    conv = {**DEFAULT_CONVENTIONS, **dict(getattr(adapter, "conventions", {}) or {})}
    if spec.extra.get("requires_temperature") and conv["temperature_mode"] == "none":
        res.status, res.message = "not_applicable", ("implementation declares temperature_mode = none (no entropy "
                                                     "temperature); this spec's target depends on alpha")
        return res
    fn = CHECKS.get(spec.id)
    if fn is None:
        res.status, res.message = "error", f"no check is registered for spec {spec.id} (suite bug)"
        return res
    seed = spec_seed(master_seed, spec.id)
    limit = spec.time_limit_s * time_scale
    impl = Checked(adapter, deadline=time.monotonic() + limit)
    ctx = Ctx(spec, impl, seed, hyp_settings, master_seed)
    res.repro = (f"python -m softq_conformance --impl {impl_ref} --only {spec.id} --seed {master_seed}"
                 f" --profile {getattr(hyp_settings, '_softq_profile', 'ci')}")
    t0 = time.perf_counter()
    rng_saved = guards.rng_state()  # the adapter may draw from global RNGs; the next spec must not see it
    guards.reset_calls()
    try:
        with _time_limit(limit):
            fn(ctx)
        res.status = "pass"
    except BaseException as exc:  # noqa: BLE001 - one bad method never stops the run
        if isinstance(exc, KeyboardInterrupt):
            raise
        fail = _find(exc, (CheckFailure,))
        err = _find(exc, (AdapterError, CheckTimeout))
        notes = _notes(exc)
        if err is not None and (fail is None or isinstance(exc, (AdapterError, CheckTimeout))):
            res.status = "error"
            res.message = str(err) if not isinstance(err, CheckTimeout) else (
                f"{err} (limit {limit:.0f} s from the spec's params.time_limit_s). Fix: make the method faster or "
                "check for an infinite loop; --time-scale X multiplies every limit on a slow machine")
            res.detail = getattr(err, "detail", "")
        elif fail is not None:
            res.status = "fail"
            res.message, res.bound, res.value = str(fail), fail.bound, fail.measured
        elif isinstance(exc, NotApplicable):
            res.status, res.message = "not_applicable", str(exc)
        else:
            res.status = "error"
            last = guards.last_call()
            res.message = f"check raised {type(exc).__name__}: {exc}" + (f" (last adapter call: {last})" if last else "")
            res.detail = "".join(traceback.format_exception(exc)[-4:])
        if notes:
            res.repro += "\n" + notes
    finally:
        guards.restore_rng_state(rng_saved)
    res.duration_s = time.perf_counter() - t0
    res.measured = ctx.measured
    return res


def _interrupted(report: Report, spec_id: str, n_selected: int) -> None:
    report.incomplete = True
    report.warnings.append(f"interrupted (Ctrl-C) at {spec_id}: {len(report.results)} of {n_selected} selected specs "
                           "ran; this report is incomplete")
    raise SuiteInterrupted(report) from None


def _run_spec(spec: Any, adapter: Any, opts: "RunOptions", hs: Any) -> SpecResult:
    def target() -> SpecResult:
        return run_one(spec, adapter, opts.master_seed, hs, opts.impl_ref, opts.time_scale)

    if not (opts.isolate and isolation.fork_available()):
        return target()
    return isolation.run_in_child(SpecResult(spec), target, spec.time_limit_s * opts.time_scale)


@dataclass
class RunOptions:
    master_seed: int = 0
    profile: str = "ci"
    only: list[str] | None = None
    levels: list[str] | None = None
    expected_failures: dict[str, str] = field(default_factory=dict)
    impl_ref: str = "softq_conformance.reference:reference"
    time_scale: float = 1.0
    verbose: bool = False
    torch_threads: int | None = 1  # small tensors: one thread is fastest and deterministic; None keeps torch's
    isolate: bool = True  # each spec in a forked child (isolation.py); False, or no fork on this OS: in-process


class SuiteInterrupted(KeyboardInterrupt):
    """Ctrl-C during run_suite: carries the partial report (marked incomplete) so it can still be written."""

    def __init__(self, report: Report):
        super().__init__("interrupted")
        self.report = report


def run_suite(adapter: Any, options: RunOptions | None = None) -> Report:
    """Run every (selected) spec against `adapter`; never raises for a misbehaving implementation."""
    from softq_specs import load_check_specs, load_specs

    from .hyp import profile_settings

    opts = options or RunOptions()
    validate_adapter(adapter, f"the adapter {type(adapter).__name__}")  # the CLI already validated at load
    if opts.torch_threads is not None:
        try:
            import torch

            torch.set_num_threads(opts.torch_threads)
        except ImportError:  # pragma: no cover
            pass
    _import_checks()
    specs = load_check_specs()  # the CLAIM.* specs are decided by benchmark verdicts, not checks
    if opts.only:
        def hit(spec: Any, sel: str) -> bool:
            return spec.id == sel or spec.family == sel or spec.family.rstrip("0123456789") == sel

        unknown = [s for s in opts.only if not any(hit(v, s) for v in specs.values())]
        if unknown:
            raise LoadError(f"--only names unknown spec ids or families {unknown}; known: {sorted(specs)}")
        specs = {k: v for k, v in specs.items() if any(hit(v, s) for s in opts.only)}
    if opts.levels:
        bad = [lv for lv in opts.levels if lv not in LEVELS]
        if bad:
            raise LoadError(f"--level {','.join(bad)} is not a level; known: {','.join(LEVELS)}")
        specs = {k: v for k, v in specs.items() if v.level in opts.levels}
    # Specs marked profile = "thorough" (a measured false-alarm rate above the default budget, or long) run
    # under --profile thorough or when named by id in --only; never silently: the report lists them.
    named = set(opts.only or ())
    thorough_only = [k for k, v in specs.items()
                     if v.extra.get("profile") == "thorough" and opts.profile != "thorough" and k not in named]
    specs = {k: v for k, v in specs.items() if k not in thorough_only}
    if not specs:
        raise LoadError(f"the selection (--only {','.join(opts.only or []) or '-'}, --level "
                        f"{','.join(opts.levels or []) or '-'}) matches no spec with a check; nothing would run")
    hs = profile_settings(opts.profile)
    hs._softq_profile = opts.profile  # type: ignore[attr-defined]
    if opts.profile != "ci":
        from hypothesis import settings as _s

        hs = _s(hs, derandomize=False)
        hs._softq_profile = opts.profile  # type: ignore[attr-defined]
    report = Report(adapter, environment_metadata(opts.master_seed, opts.profile))
    if thorough_only:
        report.warnings.append(f"not run in the default profile (run with --profile thorough or --only ID): "
                               f"{', '.join(thorough_only)}")
    if opts.only or opts.levels:
        report.selection = [*(opts.only or []), *(f"level={lv}" for lv in opts.levels or [])]
    width = max(len(k) for k in specs)
    if opts.isolate and isolation.fork_available():
        isolation.warm_up({c for spec in specs.values() for c in spec.capability})
    if opts.verbose:
        print_header(width)
    known_xfail = set(opts.expected_failures)
    spec_id = ""
    try:
        for spec in specs.values():
            spec_id = spec.id
            if opts.profile != "ci":
                import random

                random.seed(spec_seed(opts.master_seed, spec.id))  # hypothesis draws its seed from here when not derandomized
            r = _run_spec(spec, adapter, opts, hs)
            if spec.id in opts.expected_failures:
                reason = opts.expected_failures[spec.id]
                if r.status in ("fail", "error"):
                    r.message = f"expected failure ({reason}): {r.message}"
                    r.status = "xfail"
                elif r.status == "pass":
                    r.warnings.append(f"listed as an expected failure ({reason}) but passed: remove the entry")
            report.results.append(r)
            if opts.verbose:  # the table, one row as each spec finishes (main prints only the summary after)
                print_row(r, width)
    except KeyboardInterrupt:
        _interrupted(report, spec_id, len(specs))
    stale = sorted(known_xfail - set(load_specs()))
    for sid in stale:
        msg = f"expected-failures entry {sid!r} matches no spec id; remove or fix it"
        report.warnings.append(msg)
        warnings.warn(msg, stacklevel=2)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m softq_conformance", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--impl", default=None, help="package.module:factory (default: $SOFTQ_CONFORMANCE_IMPL, else the reference)")
    ap.add_argument("--seed", type=int, default=0, help="master seed; every statistical check derives its seeds from it")
    ap.add_argument("--out", default=DEFAULT_OUT,
                    help=f"report root; files go to OUT/<implementation>/ (OUT/<implementation>/partial/ for an --only, "
                         f"--level or interrupted run). Default {DEFAULT_OUT} (git-ignored); the committed reports "
                         "are written only when asked for: --out reports/conformance")
    ap.add_argument("--xfail", default=None, help="expected-failures TOML file (spec id = reason)")
    ap.add_argument("--only", default=None, help="comma-separated spec ids or families (e.g. A1,C3.bandwidth)")
    ap.add_argument("--level", default=None, help=f"comma-separated levels to run ({','.join(LEVELS)})")
    ap.add_argument("--profile", default="ci", choices=["ci", "thorough"], help="hypothesis profile")
    ap.add_argument("--time-scale", type=float, default=1.0, help="multiply every per-check time limit (slow machines)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads during the run (0: leave torch's default)")
    ap.add_argument("--in-process", action="store_true",
                    help="run specs in this process instead of one forked child per spec (faster to debug; a crash "
                         "or native hang in the implementation then ends the run)")
    ap.add_argument("--no-report", action="store_true", help="do not write report files")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    import os

    impl_ref = args.impl or os.environ.get("SOFTQ_CONFORMANCE_IMPL") or "softq_conformance.reference:reference"
    try:
        if not math.isfinite(args.time_scale) or args.time_scale <= 0:
            raise LoadError(f"--time-scale {args.time_scale} must be a positive finite number")
        if args.threads < 0:
            raise LoadError(f"--threads {args.threads} must be >= 0 (0 keeps torch's default)")
        xfail = load_expected_failures(args.xfail)
        adapter = load(impl_ref)
    except (LoadError, ValueError, OSError) as exc:
        print(f"softq-conformance: error: {exc}", file=sys.stderr)
        return 2
    opts = RunOptions(master_seed=args.seed, profile=args.profile,
                      only=[s.strip() for s in args.only.split(",") if s.strip()] if args.only else None,
                      levels=[s.strip() for s in args.level.split(",") if s.strip()] if args.level else None,
                      expected_failures=xfail, impl_ref=impl_ref,
                      time_scale=args.time_scale, verbose=not args.quiet,
                      torch_threads=args.threads or None, isolate=not args.in_process)
    t0 = time.perf_counter()
    print(f"softq-conformance: {getattr(adapter, 'name', impl_ref)} {getattr(adapter, 'version', '')} "
          f"(seed {args.seed}, profile {args.profile})", flush=True)
    try:
        report = run_suite(adapter, opts)
    except LoadError as exc:
        print(f"softq-conformance: error: {exc}", file=sys.stderr)
        return 2
    except SuiteInterrupted as exc:
        report = exc.report
        print("\ninterrupted: writing the partial report", file=sys.stderr, flush=True)
    report.wall_time_s = time.perf_counter() - t0
    print_table(report, rows=args.quiet)  # not quiet: the rows were printed as the specs finished
    if not args.no_report:
        try:
            paths = write_reports(report, Path(args.out))
        except OSError as exc:
            print(f"softq-conformance: error: cannot write the report under --out {args.out}: {exc}", file=sys.stderr)
            return 2
        print("report: " + ", ".join(str(p) for p in paths))
    print(f"total wall time: {report.wall_time_s:.1f} s")
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
