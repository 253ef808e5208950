"""Process-level settings for training and benchmark processes (numbers unchanged, only speed).

`keep_freed_memory()`: glibc's malloc hands blocks above its mmap threshold back to the kernel
when they are freed, and trims the top of the heap above its trim threshold; the next update
then takes page faults to get the same memory back. An SQL update at the paper's settings
allocates and frees ~2.4 MiB activations dozens of times, and took 200-1300 minor page faults
per update with the defaults against ~10 with the thresholds raised (perf README). Called by
the entry points that run updates (training CLI, benchmark runner workers, perf); a library
user calls it once at the start of a process if they want the same.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import platform
from pathlib import Path

__all__ = ["keep_freed_memory", "cpu_model"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>
MMAP_THRESHOLD_BYTES = 32 << 20  # blocks up to 32 MiB come from the heap (glibc's own upper limit)
TRIM_THRESHOLD_BYTES = 1 << 30  # keep up to 1 GiB of freed heap for reuse


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds; False (and nothing changed) off glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
        return libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1 and ok
    except (OSError, AttributeError):
        return False


def cpu_model() -> str:
    """The CPU's model name (recorded with every measurement and report)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
