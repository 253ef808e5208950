"""Agent conventions of real ports, for the white-box ALG1 checks.

    target_update    "hard" (the adapter's sync_target copies theta -> theta-bar), "hard(N)" (the
                     implementation copies every N training steps itself), "polyak(tau)"
                     (theta-bar <- tau theta + (1 - tau) theta-bar after every training step)
    critic_reduction "single", or "min" / "mean" over a K-critic ensemble: q_values returns (B, K) and
                     the soft value / policy target is taken on the reduced Q
    fused update     an adapter with `update(agent, batch)` (one call doing eq. 11, eq. 13-14 and the
                     target schedule) instead of q_update + policy_update
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .adapter import AdapterError, Arr, NotApplicable
from .registry import Ctx

__all__ = ["TargetSchedule", "target_schedule", "q_members", "q_reduced", "q_step", "policy_step", "fused",
           "fused_policy", "flat_parameters"]


@dataclass(frozen=True)
class TargetSchedule:
    kind: str  # "hard" | "hard_every" | "polyak"
    every: int = 0
    tau: float = 0.0


def target_schedule(ctx: Ctx) -> TargetSchedule:
    declared = str(ctx.conventions.get("target_update", "hard")).replace(" ", "")
    if declared == "hard":
        return TargetSchedule("hard")
    m = re.fullmatch(r"hard\((\d+)\)", declared)
    if m and int(m.group(1)) >= 1:
        return TargetSchedule("hard_every", every=int(m.group(1)))
    m = re.fullmatch(r"polyak\(([0-9.eE+-]+)\)", declared)
    if m and 0 < float(m.group(1)) <= 1:
        return TargetSchedule("polyak", tau=float(m.group(1)))
    raise ValueError(f"conventions['target_update'] = {declared!r}: expected 'hard', 'hard(N)' with N >= 1, or "
                     "'polyak(tau)' with 0 < tau <= 1")


def fused(ctx: Ctx) -> bool:
    """The adapter trains through one fused update(agent, batch) instead of q_update + policy_update."""
    return not ctx.impl.has("q_update") and ctx.impl.has("update")


def fused_policy(ctx: Ctx) -> bool:
    return not ctx.impl.has("policy_update") and ctx.impl.has("update")


def q_step(ctx: Ctx, agent, batch) -> None:
    """One eq. 11 step (with a fused update, the policy and the target schedule move too)."""
    ctx.impl.raw("update" if fused(ctx) else "q_update", agent, batch)


def policy_step(ctx: Ctx, agent, batch) -> None:
    """One eq. 13-14 step (with a fused update, Q moves in the same call)."""
    ctx.impl.raw("update" if fused_policy(ctx) else "policy_update", agent, batch)


def q_members(ctx: Ctx, agent, obs, act, target) -> np.ndarray:
    """(B, K) Q values of every critic (K = 1 for a single critic)."""
    B = obs.shape[0]
    out = ctx.impl.call("q_values", agent, obs, act, target,
                        returns=Arr(None, "one Q value per (s, a) row: (B,), or (B, K) for a K-critic ensemble",
                                    dtype="float"))
    red = ctx.conventions.get("critic_reduction", "single")
    if out.ndim == 1 and out.shape[0] == B:
        return out[:, None]
    if out.ndim == 2 and out.shape[0] == B and (red != "single" or out.shape[1] == 1):
        return out
    hint = " (an ensemble must declare critic_reduction = 'min' or 'mean')" if out.ndim == 2 and out.shape[0] == B else ""
    raise AdapterError("q_values", f"{ctx.impl.name}.q_values returned shape {out.shape} for {B} rows; expected ({B},) "
                       f"or ({B}, K){hint}")


def q_reduced(ctx: Ctx, agent, obs, act, target) -> np.ndarray:
    q = q_members(ctx, agent, obs, act, target)
    red = ctx.conventions.get("critic_reduction", "single")
    if red == "min":
        return q.min(1)
    if red in ("mean", "single"):
        return q.mean(1)
    raise ValueError(f"conventions['critic_reduction'] = {red!r}: expected 'single', 'min' or 'mean'")


def flat_parameters(ctx: Ctx, agent, target: bool, why: str) -> np.ndarray:
    if not ctx.impl.has("parameters"):
        raise NotApplicable(f"{why} needs parameters(agent, target) (the flattened Q parameters), which "
                            f"{ctx.impl.name} does not implement")
    return ctx.impl.call("parameters", agent, target, returns=Arr((None,), "flattened Q parameters", dtype="float"))
