"""Results, the JSON report, its Markdown rendering and the terminal table."""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SpecResult", "Report", "environment_metadata", "write_reports", "report_folder", "print_table",
           "print_row", "print_header", "render_markdown"]

_SYMBOL = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "not_applicable": "n/a", "xfail": "XFAIL"}


@dataclass
class SpecResult:
    spec: Any
    status: str = "error"
    duration_s: float = 0.0
    message: str = ""
    value: Any = None  # the measured value that broke the bound
    bound: Any = None
    measured: dict[str, Any] = field(default_factory=dict)
    repro: str = ""
    detail: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        s = self.spec
        return {"id": s.id, "title": s.title, "source": s.source, "level": s.level, "kind": s.kind,
                "capability": list(s.capability), "conventions": list(s.conventions), "status": self.status,
                "duration_s": round(self.duration_s, 4), "message": self.message, "value": self.value,
                "bound": self.bound, "measured": self.measured, "false_alarm": s.false_alarm,
                "reproduce": self.repro, "detail": self.detail, "warnings": self.warnings}


def environment_metadata(master_seed: int, profile: str) -> dict[str, Any]:
    import numpy
    import scipy

    meta: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform(),
                            "machine": platform.machine(), "cpu_count": os.cpu_count(), "numpy": numpy.__version__,
                            "scipy": scipy.__version__, "master_seed": master_seed, "hypothesis_profile": profile,
                            "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    try:
        import torch

        meta["torch"] = torch.__version__
        meta["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        pass
    try:
        import hypothesis

        meta["hypothesis"] = hypothesis.__version__
    except ImportError:  # pragma: no cover
        pass
    return meta


class Report:
    def __init__(self, adapter: Any, environment: dict[str, Any]):
        self.implementation = str(getattr(adapter, "name", type(adapter).__name__))
        self.version = str(getattr(adapter, "version", "unknown"))
        from .adapter import DEFAULT_CONVENTIONS

        self.conventions = {**DEFAULT_CONVENTIONS, **dict(getattr(adapter, "conventions", {}) or {})}
        self.capabilities = sorted(getattr(adapter, "capabilities", ()))
        self.environment = environment
        self.results: list[SpecResult] = []
        self.warnings: list[str] = []
        self.wall_time_s = 0.0
        self.incomplete = False  # Ctrl-C: only the specs that ran are in `results`
        self.selection: list[str] | None = None  # --only/--level as given; None: every spec

    @property
    def counts(self) -> dict[str, int]:
        c = {s: 0 for s in _SYMBOL}
        for r in self.results:
            c[r.status] += 1
        return c

    @property
    def exit_code(self) -> int:
        c = self.counts
        if self.incomplete:
            return 130
        return 0 if c["fail"] == 0 and c["error"] == 0 else 1

    def by_id(self) -> dict[str, SpecResult]:
        return {r.spec.id: r for r in self.results}

    def to_dict(self) -> dict[str, Any]:
        return {"implementation": self.implementation, "version": self.version, "conventions": self.conventions,
                "capabilities": self.capabilities, "environment": self.environment, "summary": self.counts,
                "wall_time_s": round(self.wall_time_s, 2), "complete": not self.incomplete,
                "selection": self.selection, "warnings": self.warnings,
                "specs": [r.to_dict() for r in self.results]}


def _safe(name: str) -> str:
    # never a path: no separators, no leading dot (so neither "." nor ".." can leave the report root)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).lstrip(".") or "implementation"


def report_folder(report: Report, root: Path) -> Path:
    """OUT/<implementation>/ for a complete run of every spec; OUT/<implementation>/partial/ for an --only /
    --level selection or an interrupted run, so that a partial run never replaces the full report."""
    out = Path(root) / _safe(report.implementation)
    return out / "partial" if (report.incomplete or report.selection) else out


def write_reports(report: Report, root: Path) -> list[Path]:
    out = report_folder(report, root)
    out.mkdir(parents=True, exist_ok=True)
    js, md = out / "report.json", out / "report.md"
    _atomic_write(js, json.dumps(report.to_dict(), indent=2, default=str) + "\n")
    _atomic_write(md, render_markdown(report))
    return [js, md]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def render_markdown(report: Report) -> str:
    c = report.counts
    lines = [f"# Conformance report: {report.implementation} {report.version}", ""]
    if report.incomplete:
        lines += ["**INCOMPLETE: the run was interrupted; only the specs below ran.**", ""]
    if report.selection:
        lines += [f"Selection: {', '.join(report.selection)} (not a full run).", ""]
    lines += [
             "Summary: " + ", ".join(f"{k} {v}" for k, v in c.items()) + f" (wall time {report.wall_time_s:.1f} s).", "",
             "Conventions: " + ", ".join(f"`{k}` = `{v}`" for k, v in report.conventions.items()) + ".", "",
             "Capabilities: " + ", ".join(f"`{x}`" for x in report.capabilities) + ".", "",
             "Environment: " + ", ".join(f"{k} {v}" for k, v in report.environment.items()) + ".", "",
             "| spec | source | level | kind | status | time (s) | message |", "|---|---|---|---|---|---|---|"]
    for r in report.results:
        msg = r.message.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{r.spec.id}` | {r.spec.source} | {r.spec.level} | {r.spec.kind} | {_SYMBOL[r.status]} "
                     f"| {r.duration_s:.2f} | {msg[:160]} |")
    bad = [r for r in report.results if r.status in ("fail", "error", "xfail")]
    if bad:
        lines += ["", "## Failures and errors", ""]
        for r in bad:
            lines += [f"### {r.spec.id}: {r.spec.title}", "", f"Status: {_SYMBOL[r.status]}. {r.message}", ""]
            if r.value is not None or r.bound is not None:
                lines += [f"Measured {r.value!r}, bound {r.bound!r}.", ""]
            if r.repro:
                lines += ["Reproduce:", "", "```", r.repro, "```", ""]
    for w in report.warnings + [w for r in report.results for w in r.warnings]:
        lines.append(f"- warning: {w}")
    return "\n".join(lines) + "\n"


def print_row(r: SpecResult, width: int = 28, file: Any = None) -> None:
    msg = r.message.replace("\n", " ")
    print(f"{r.spec.id:<{width}}  {r.spec.level:<9} {_SYMBOL[r.status]:<6} {r.duration_s:6.1f}s  {msg[:110]}",
          file=file or sys.stdout, flush=True)


def print_header(width: int = 28, file: Any = None) -> None:
    print(f"\n{'spec':<{width}}  {'level':<9} {'status':<6} {'time':>7}  message", file=file or sys.stdout)
    print("-" * (width + 60), file=file or sys.stdout, flush=True)


def print_table(report: Report, file: Any = None, rows: bool = True) -> None:
    """The table; `rows=False` prints only the summary (the rows were printed as the specs ran)."""
    file = file or sys.stdout
    w = max([len(r.spec.id) for r in report.results] + [4])
    if rows:
        print_header(w, file)
        for r in report.results:
            print_row(r, w, file)
    c = report.counts
    print("-" * (w + 60), file=file)
    print("  ".join(f"{k}: {v}" for k, v in c.items()) + ("  (INCOMPLETE: interrupted)" if report.incomplete else ""),
          file=file)
    for wmsg in report.warnings + [f"{r.spec.id}: {x}" for r in report.results for x in r.warnings]:
        print(f"warning: {wmsg}", file=file)
