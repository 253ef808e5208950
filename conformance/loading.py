"""Load an implementation by reference and validate what it declares, before any spec runs.

Every problem is a `LoadError` with one line naming the field, what was found, what is expected
and how to fix it; the CLI prints it and exits 2 (no traceback).
"""
from __future__ import annotations

import importlib
import re
from typing import Any

from .adapter import CAPABILITY_METHODS

__all__ = ["LoadError", "KNOWN_CONVENTIONS", "LEVELS", "load", "validate_adapter"]

# The values each convention may take (conformance/README.md, "Conventions"): a tuple of names, or the
# forms of a parameterised convention (checked by _parameterised below with the parser its specs use).
KNOWN_CONVENTIONS: dict[str, tuple[str, ...]] = {
    "value_proposal": ("uniform_per_state", "uniform_shared"),
    "squash_correction": ("none", "tanh_log_det"),
    "bandwidth_rule": ("sql_code", "svgd_paper", "svgd_code", "paper_d1", "<rule>; key=value; ..."),
    "temperature_mode": ("alpha", "reward_scale", "none"),
    "particle_counts": ("independent", "tied"),
    "target_update": ("hard", "hard(N)", "polyak(tau)"),
    "critic_reduction": ("single", "min", "mean"),
    "out_of_box_gradient": ("none", "constant(c)"),
    "direction_log_det": ("none", "tanh(eps)"),
    "precision": ("float64", "float32_constants"),
    "n_step": ("1", "N"),
}
_PARAMETERISED = {
    "target_update": r"hard|hard\(\s*[1-9]\d*\s*\)|polyak\(\s*(0?\.\d+|1(\.0*)?|\d(\.\d*)?[eE][+-]?\d+)\s*\)",
    "out_of_box_gradient": r"none|constant\(\s*[0-9.eE+]+\s*\)",
    "direction_log_det": r"none|tanh\(\s*[0-9.eE+-]+\s*\)",
    "n_step": r"[1-9]\d*",
}


def _valid_convention(key: str, value: Any) -> bool:
    if not isinstance(value, str):
        return False
    if key == "bandwidth_rule":
        from .bandwidth_rules import parse_bandwidth_rule

        try:
            parse_bandwidth_rule(value)
        except (ValueError, TypeError):
            return False
        return True
    if key in _PARAMETERISED:
        return re.fullmatch(_PARAMETERISED[key], value.strip()) is not None
    return value in KNOWN_CONVENTIONS[key]
LEVELS = ("operator", "estimator", "sampler", "agent", "benchmark")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}")


class LoadError(ValueError):
    """The implementation cannot be loaded or declares something invalid (exit code 2)."""


def load(ref: str) -> Any:
    """`package.module:factory` (or `:object`, dotted attributes allowed) -> a validated adapter."""
    if ":" not in ref or not all(ref.split(":", 1)):
        raise LoadError(f"--impl {ref!r} must look like package.module:factory (e.g. mypkg.softq_adapter:make_adapter)")
    mod_name, attr = ref.split(":", 1)
    try:
        obj = importlib.import_module(mod_name)
    except ImportError as exc:
        raise LoadError(f"--impl {ref}: cannot import {mod_name!r} ({exc}). Fix: install the package or add its "
                        "folder to PYTHONPATH") from None
    except Exception as exc:  # noqa: BLE001 - any import-time failure of third-party code is a load error
        raise LoadError(f"--impl {ref}: importing {mod_name!r} raised {type(exc).__name__}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise LoadError(f"--impl {ref}: {obj.__name__ if hasattr(obj, '__name__') else obj!r} has no attribute "
                            f"{part!r}. Fix: name the factory function or adapter object after the colon")
        obj = getattr(obj, part)
    if isinstance(obj, type) or (callable(obj) and not hasattr(obj, "capabilities")):
        try:
            obj = obj()
        except BaseException as exc:  # noqa: BLE001 - SystemExit from a factory is a load error too
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise LoadError(f"--impl {ref}: the factory raised {type(exc).__name__}: {exc}") from None
    validate_adapter(obj, ref)
    return obj


def validate_adapter(adapter: Any, ref: str = "the adapter") -> None:
    """Check name, capabilities and conventions; raise LoadError naming the first bad field."""
    name = getattr(adapter, "name", type(adapter).__name__)
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise LoadError(f"{ref}: name = {name!r} is not usable as a report folder name; expected a string of letters, "
                        "digits and _ . + - (starting with a letter or digit, no '..', at most 100 characters)")
    caps = getattr(adapter, "capabilities", None)
    if caps is None:
        raise LoadError(f"{ref}: {type(adapter).__name__} has no `capabilities` attribute; declare a set, a subset "
                        f"of {sorted(CAPABILITY_METHODS)}")
    if isinstance(caps, (str, bytes)) or not isinstance(caps, (set, frozenset, list, tuple)):
        raise LoadError(f"{ref}: capabilities = {caps!r} must be a set (or list) of names, e.g. {{'tabular'}}, "
                        f"not a {type(caps).__name__}; known: {sorted(CAPABILITY_METHODS)}")
    bad = [c for c in caps if not isinstance(c, str) or c not in CAPABILITY_METHODS]
    if bad:
        raise LoadError(f"{ref}: unknown capabilities {bad!r}; known: {sorted(CAPABILITY_METHODS)}")
    conv = getattr(adapter, "conventions", None)
    if conv is None:
        conv = {}
    if not isinstance(conv, dict):
        raise LoadError(f"{ref}: conventions = {conv!r} must be a dict such as {{'bandwidth_rule': 'sql_code'}}, "
                        f"not a {type(conv).__name__}")
    for key, value in conv.items():
        if key not in KNOWN_CONVENTIONS:
            raise LoadError(f"{ref}: unknown convention {key!r}; known: {sorted(KNOWN_CONVENTIONS)}")
        if not _valid_convention(key, value):
            raise LoadError(f"{ref}: conventions[{key!r}] = {value!r} is not one of {list(KNOWN_CONVENTIONS[key])}")
