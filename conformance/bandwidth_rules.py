"""The declared SVGD bandwidth rule: a named rule, optionally with parameter overrides.

`conventions["bandwidth_rule"]` is a name, a name with overrides, or overrides alone (on top of
sql_code), e.g.

    "sql_code"                                        # max(med/log n_fixed, 1e-3), lower median
    "svgd_code"                                       # med/log(n_fixed + 1)
    "sql_code; floor=float32(1e-3)"                   # the floor is the float32 number nearest 1e-3
    "median=average, log=n+1, n=all, floor=1e-5"      # np.median-style, log(n_fixed + m + 1), floor 1e-5

Parameters: median = lower | average (of the two middle squared distances when their count is
even) | mean (the mean squared distance, as some ports use), scale = a factor on that statistic,
log = n | n+1, n = fixed (the fixed particles, the first kernel argument) | updated (the second) |
all (fixed plus updated), floor = a number (h = max(h, floor); 0: none; `float32(x)` for a float32
constant), plus = a number added to h (h + eps, as in exp(-d^2 / (h + eps))), form = sq
(h = median / log) | sqrt_half (paper D.1: h = sqrt(median) / (2 log)). The statistic is always of
the squared distances between the fixed and the updated particles of one set (one state).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

__all__ = ["BandwidthRule", "parse_bandwidth_rule", "rule_bandwidth", "NAMED_RULES"]


@dataclass(frozen=True)
class BandwidthRule:
    median: str = "lower"
    log: str = "n"
    n: str = "fixed"
    floor: float = 1e-3
    form: str = "sq"
    scale: float = 1.0
    plus: float = 0.0

    def describe(self) -> str:
        count = {"fixed": "n_fixed", "updated": "m_updated", "all": "n_fixed + m_updated"}[self.n]
        denom = f"log({count}{' + 1' if self.log == 'n+1' else ''})"
        stat = ("mean" if self.median == "mean" else f"{self.median} median") + " of ||x - y||^2"
        stat = stat if self.scale == 1.0 else f"{self.scale!r} * {stat}"
        core = f"{stat} / {denom}" if self.form == "sq" else f"sqrt({stat}) / (2 {denom})"
        core = f"max({core}, {self.floor!r})" if self.floor else core
        return f"{core} + {self.plus!r}" if self.plus else core


NAMED_RULES = {
    "sql_code": BandwidthRule(),
    "svgd_paper": BandwidthRule(floor=0.0),
    "svgd_code": BandwidthRule(log="n+1", floor=0.0),
    "paper_d1": BandwidthRule(log="n+1", floor=0.0, form="sqrt_half"),
}
_CHOICES = {"median": ("lower", "average", "mean"), "log": ("n", "n+1"), "n": ("fixed", "updated", "all"),
            "form": ("sq", "sqrt_half")}
_NUMBERS = ("floor", "scale", "plus")


def _floor(text: str) -> float:
    m = re.fullmatch(r"float32\((.+)\)", text.strip())
    if m:
        return float(np.float32(float(m.group(1))))
    return float(text)


def parse_bandwidth_rule(declared: Any) -> BandwidthRule:
    """A BandwidthRule from a declared convention (string or mapping); a clear ValueError otherwise."""
    if isinstance(declared, BandwidthRule):
        return declared
    if isinstance(declared, dict):
        items = [f"{k}={v}" for k, v in declared.items()]
    else:
        items = [t.strip() for t in re.split(r"[;,]", str(declared)) if t.strip()]
    rule = NAMED_RULES["sql_code"]
    for i, item in enumerate(items):
        if "=" not in item:
            if i != 0 or item not in NAMED_RULES:
                raise ValueError(f"bandwidth_rule {declared!r}: unknown rule name {item!r}; known: {sorted(NAMED_RULES)} "
                                 "(a name may come first, followed by key=value overrides)")
            rule = NAMED_RULES[item]
            continue
        key, val = (s.strip() for s in item.split("=", 1))
        if key in _NUMBERS:
            try:
                rule = replace(rule, **{key: _floor(val)})
            except ValueError:
                raise ValueError(f"bandwidth_rule {declared!r}: {key}={val!r} is not a number or float32(number)") from None
        elif key in _CHOICES:
            if val not in _CHOICES[key]:
                raise ValueError(f"bandwidth_rule {declared!r}: {key}={val!r}; expected one of {_CHOICES[key]}")
            rule = replace(rule, **{key: val})
        else:
            raise ValueError(f"bandwidth_rule {declared!r}: unknown parameter {key!r}; known: "
                             f"{sorted(_CHOICES) + list(_NUMBERS)}")
    return rule


def rule_bandwidth(fixed: np.ndarray, updated: np.ndarray, declared: Any) -> np.ndarray:
    """h per particle set (leading axes) under the declared rule, in float64."""
    rule = parse_bandwidth_rule(declared)
    sq = ((fixed[..., :, None, :] - updated[..., None, :, :]) ** 2).sum(-1)
    flat = np.sort(sq.reshape(sq.shape[:-2] + (-1,)), axis=-1)
    N = flat.shape[-1]
    med = flat[..., (N - 1) // 2]  # lower median
    if rule.median == "average" and N % 2 == 0:
        med = 0.5 * (med + flat[..., N // 2])
    elif rule.median == "mean":
        med = sq.reshape(flat.shape).mean(-1)
    if rule.scale != 1.0:
        med = med * rule.scale
    n = {"fixed": fixed.shape[-2], "updated": updated.shape[-2], "all": fixed.shape[-2] + updated.shape[-2]}[rule.n]
    denom = math.log(n + 1) if rule.log == "n+1" else math.log(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = med / denom if rule.form == "sq" else np.sqrt(med) / (2 * denom)
    h = np.maximum(h, rule.floor) if rule.floor else h
    return h + rule.plus if rule.plus else h
