import os
import sys


def _import_our_packages_first() -> None:
    """A folder in the working directory named like one of our packages (e.g. a report folder `softq_ref/`, as in
    reports/conformance/) would be imported as an empty namespace package in its place, ahead of an editable
    install's finder. Import the real packages with the working directory off sys.path, then put it back (the
    user's own adapter package may live there)."""
    cwd = os.getcwd()
    shadowed = [n for n in ("softq_ref", "softq_specs", "softq_baselines")
                if n not in sys.modules and os.path.isdir(n) and not os.path.exists(os.path.join(n, "__init__.py"))]
    if not shadowed:
        return
    saved = list(sys.path)
    sys.path[:] = [p for p in sys.path if p not in ("", ".", cwd)]
    try:
        for name in shadowed:
            try:
                __import__(name)
            except ImportError:
                pass  # not installed at all: the normal error comes later, where it is used
    finally:
        sys.path[:] = saved


_import_our_packages_first()

from .runner import main  # noqa: E402

sys.exit(main())
