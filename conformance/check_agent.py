"""Algorithm 1 as a whole: white-box agent specs (capability agent) and black-box trainer specs."""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.integrate import trapezoid

from .adapter import Arr
from .agent_conventions import (flat_parameters, fused_policy, policy_step, q_members, q_reduced, q_step,
                                target_schedule)
from .check_svgd import box_adjusted_grad, own_bandwidth, own_direction
from .hints import alignment_phrase, ratio_candidates
from .registry import Ctx, check
from .trained import first_passing_run, run_stream
from .tasks import BANDIT_DIP_CELLS, bandit_task, multigoal_task, optimum_cell_masses


def _scales(ctx: Ctx, alpha: float) -> tuple[float, float]:
    """(internal alpha, reward scale) under the declared temperature convention."""
    u = ctx.units(alpha)
    return u.alpha, u.q_scale


def _batch(rng, B, o, d, reward=None, terminated=0.0):
    f = lambda x: torch.as_tensor(np.asarray(x, dtype=np.float32))  # noqa: E731
    return {"obs": f(rng.normal(size=(B, o))), "action": f(rng.uniform(-1, 1, (B, d))),
            "reward": f(rng.normal(3.0, 2.0, B) if reward is None else reward),
            "next_obs": f(rng.normal(size=(B, o))), "terminated": f(np.full(B, terminated))}


def _q(ctx: Ctx, agent, obs, act, target):
    """Q (reduced over a critic ensemble by the declared critic_reduction)."""
    return q_reduced(ctx, agent, obs, act, target)


def _y(ctx: Ctx, agent, batch):
    B = batch["reward"].shape[0]
    return ctx.impl.call("td_target", agent, batch, returns=Arr((B,), "one TD target per transition", dtype="float"))


@check("ALG1.target_frozen")
def alg1_target_frozen(ctx: Ctx) -> None:
    alpha = 0.5
    a_int, scale = _scales(ctx, alpha)
    rng = ctx.rng()
    sched = target_schedule(ctx)
    agent = ctx.impl.raw("make_agent", 2, 1, alpha, 0.9, ctx.sub_seed())
    probe = _batch(rng, 32, 2, 1)
    ctx.measure("target_update", str(ctx.conventions.get("target_update", "hard")))
    if sched.kind == "hard":
        _hard_sync(ctx, agent, probe, rng)
    elif sched.kind == "hard_every":
        _hard_every(ctx, agent, probe, rng, sched.every)
    else:
        _polyak(ctx, agent, rng, sched.tau)
    term = _batch(rng, 16, 2, 1, terminated=1.0)
    y = _y(ctx, agent, term)
    ctx.close("TD target of terminal transitions vs reward_scale * r", y, scale * term["reward"].numpy(),
              1e-5 * (1 + np.abs(y).max()))


def _hard_sync(ctx: Ctx, agent, probe, rng) -> None:
    qm = lambda tgt: q_members(ctx, agent, probe["obs"], probe["action"], tgt)  # noqa: E731
    t0, o0 = qm(True), qm(False)
    for _ in range(ctx.params["updates"]):
        q_step(ctx, agent, _batch(rng, 64, 2, 1))
    t1, o1 = qm(True), qm(False)
    ctx.measure("online Q change", float(np.abs(o1 - o0).max()))
    ctx.le("max |Q_target after q_update - before|", float(np.abs(t1 - t0).max()), 0.0,
           "target parameters theta-bar must stay frozen between syncs")
    if not np.abs(o1 - o0).max() > 0:
        ctx.fail("q_update did not change the online Q at all", 0.0, "> 0")
    ctx.impl.raw("sync_target", agent)
    ctx.close("Q_target after sync_target vs online Q", qm(True), o1, 1e-6 * (1 + np.abs(o1).max()))


def _hard_every(ctx: Ctx, agent, probe, rng, every: int) -> None:
    """hard(N): between copies the target is bit-for-bit frozen; a copy makes it equal the online Q;
    copies are exactly N training steps apart."""
    qm = lambda tgt: q_members(ctx, agent, probe["obs"], probe["action"], tgt)  # noqa: E731
    prev, copies, moved = qm(True), [], 0.0
    o_prev = qm(False)
    for step in range(1, 3 * every + 2):
        q_step(ctx, agent, _batch(rng, 64, 2, 1))
        t, o = qm(True), qm(False)
        moved = max(moved, float(np.abs(o - o_prev).max()))
        o_prev = o
        if np.array_equal(t, prev):
            continue
        ctx.close(f"Q_target vs online Q right after the target changed (training step {step})", t, o,
                  1e-6 * (1 + np.abs(o).max()), "under hard(N) the target changes only by a full copy")
        copies.append(step)
        prev = t
    ctx.measure("target copies at training steps", copies)
    if not moved > 0:
        ctx.fail("training steps did not change the online Q at all", 0.0, "> 0")
    gaps = np.diff(copies)
    if len(copies) < 3 or np.any(gaps != every):
        what = ("no copy at all" if not copies else "a single copy" if len(copies) == 1
                else "a copy after every step" if set(gaps.tolist()) == {1}
                else f"copies {int(gaps[0])} steps apart" if len(set(gaps.tolist())) == 1 else "irregular copies")
        ctx.fail(f"target copies at training steps {copies} in {3 * every + 1} steps ({what}); the declared "
                 f"hard({every}) copies every {every} steps, so {every} apart and at least 3 in {3 * every + 1} steps. "
                 f"Fix the loop's copy condition (`if steps % {every} == 0: copy`) or declare the interval the code uses", copies, f"every {every}")


def _polyak(ctx: Ctx, agent, rng, tau: float) -> None:
    """polyak(tau): after every training step theta-bar = tau theta + (1 - tau) theta-bar_before, exactly."""
    why = f"checking the declared polyak({tau}) schedule exactly"
    t_prev = flat_parameters(ctx, agent, True, why)
    moved = 0.0
    for step in range(1, ctx.params["updates"] + 1):
        o_before = flat_parameters(ctx, agent, False, why)
        q_step(ctx, agent, _batch(rng, 64, 2, 1))
        o, t = flat_parameters(ctx, agent, False, why), flat_parameters(ctx, agent, True, why)
        moved = max(moved, float(np.abs(o - o_before).max()))
        want = tau * o + (1 - tau) * t_prev
        ctx.close(f"theta-bar after training step {step} vs tau theta + (1 - tau) theta-bar_before (tau={tau})", t, want,
                  1e-6 * (1 + np.abs(want).max()), "float32 parameters: 1e-6 relative")
        t_prev = t
    if not moved > 0:
        ctx.fail("training steps did not change the online parameters at all", 0.0, "> 0")


@check("ALG1.td_target_eq10")
def alg1_td_target(ctx: Ctx) -> None:
    p = ctx.params
    alpha, gamma = 0.5, 0.9
    a_int, scale = _scales(ctx, alpha)
    rng = ctx.rng()
    agent = ctx.impl.raw("make_agent", 2, 1, alpha, gamma, ctx.sub_seed())
    for _ in range(20):  # move the online network away from the target
        q_step(ctx, agent, _batch(rng, 64, 2, 1, reward=rng.normal(5.0, 2.0, 64)))
    sched = target_schedule(ctx)
    probe = _batch(np.random.default_rng(ctx.sub_seed(7)), 32, 2, 1)
    for _ in range(sched.every):  # hard(N): do not stop right on a copy
        if not np.array_equal(_q(ctx, agent, probe["obs"], probe["action"], True),
                              _q(ctx, agent, probe["obs"], probe["action"], False)):
            break
        q_step(ctx, agent, _batch(rng, 64, 2, 1, reward=rng.normal(5.0, 2.0, 64)))
    S = p["states"]
    s_next = rng.normal(size=(S, 2)).astype(np.float32)
    grid = np.linspace(-1, 1, p["grid_points"])
    logZ, alt_alphas = {}, {"eq. 10 evaluated at alpha = 1 (the temperature missing)": 1.0,
                            "alpha applied twice (alpha^2 in eq. 10)": a_int**2}
    for tgt in (True, False):
        obs = torch.as_tensor(np.repeat(s_next, len(grid), 0))
        act = torch.as_tensor(np.tile(grid, S)[:, None].astype(np.float32))
        q_raw = _q(ctx, agent, obs, act, tgt).reshape(S, -1)
        for key, temp in [(tgt, a_int)] + ([(name, t) for name, t in alt_alphas.items()] if tgt else []):
            q = q_raw / temp
            mx = q.max(1, keepdims=True)
            logZ[key] = mx[:, 0] + np.log(trapezoid(np.exp(q - mx), x=grid, axis=1))
    vhat = np.zeros((p["repetitions"], S))
    r = rng.normal(size=S).astype(np.float32)
    for i in range(p["repetitions"]):
        b = {"obs": torch.as_tensor(rng.normal(size=(S, 2)).astype(np.float32)),
             "action": torch.as_tensor(rng.uniform(-1, 1, (S, 1)).astype(np.float32)),
             "reward": torch.as_tensor(r), "next_obs": torch.as_tensor(s_next), "terminated": torch.zeros(S)}
        vhat[i] = (_y(ctx, agent, b) - scale * r) / gamma
    z = ctx.z(S)
    w = np.exp(vhat / a_int - logZ[True])
    mean, se = w.mean(0), w.std(0, ddof=1) / math.sqrt(p["repetitions"])
    sep = np.abs(logZ[False] - logZ[True])
    ctx.measure("mean exp(V_hat/alpha)/Z_target per state", np.round(mean, 5))
    ctx.measure("|log Z_online - log Z_target| per state", np.round(sep, 5))
    for s in range(S):
        alt = {name: float(np.mean(np.exp(vhat[:, s] / t - logZ[name][s]))) for name, t in alt_alphas.items() if t != a_int}
        alt["the online network used for V_hat (ratio = Z_online/Z_target)"] = float(
            np.mean(np.exp(vhat[:, s] / a_int - logZ[False][s])))
        hints = ratio_candidates(float(mean[s]), 1, a_int, alt)
        ctx.le(f"|mean exp(V_hat/alpha) / Z_target - 1| (state {s})", abs(mean[s] - 1), z * se[s] + 1e-6,
               f"ratio {mean[s]:.5g} (SE {se[s]:.2g}); Z_online/Z_target = {math.exp(logZ[False][s] - logZ[True][s]):.4g}; "
               + ("candidates: " + "; ".join(hints) if hints else "no simple factor (M, 2^d, alpha) explains the ratio"))
    if not np.all(sep > 2 * z * se.max()):
        ctx.fail("after 20 q_update calls the online and target soft values are indistinguishable, so the target "
                 "network's use cannot be verified; q_update must move the online Q", float(sep.min()), 2 * z * se.max())


def _fd_grad_q(ctx: Ctx, agent, obs, a, eps=1e-3):
    B, n, d = a.shape
    g = np.zeros_like(a)
    ob = torch.as_tensor(np.repeat(obs, n, 0))
    for k in range(d):
        e = np.zeros(d, np.float32)
        e[k] = eps
        qp = _q(ctx, agent, ob, torch.as_tensor((a + e).reshape(-1, d)), False)
        qm = _q(ctx, agent, ob, torch.as_tensor((a - e).reshape(-1, d)), False)
        g[..., k] = ((qp - qm) / (2 * eps)).reshape(B, n)
    return g


@check("ALG1.policy_update_eq13")
def alg1_policy_update(ctx: Ctx) -> None:
    p = ctx.params
    alpha = 0.5
    a_int, _ = _scales(ctx, alpha)
    rng = ctx.rng()
    agent = ctx.impl.raw("make_agent", 2, 2, alpha, 0.9, ctx.sub_seed())
    for _ in range(10):
        q_step(ctx, agent, _batch(rng, 64, 2, 2))
    B, n = p["states"], p["particles"]
    cos = []
    for _ in range(p["repetitions"]):
        obs = rng.normal(size=(B, 2)).astype(np.float32)
        xi = torch.as_tensor(rng.normal(size=(B, n, 2)).astype(np.float32))
        a0 = ctx.impl.call("actions_from_noise", agent, torch.as_tensor(obs), xi,
                           returns=Arr((B, n, 2), "actions a = f(xi; s)", dtype="float"))
        batch = _batch(rng, B, 2, 2)
        batch["obs"] = torch.as_tensor(obs)
        if fused_policy(ctx):  # Q moves in the same call: eq. 13 there sees the updated critic
            policy_step(ctx, agent, batch)
        g = _fd_grad_q(ctx, agent, obs, a0.astype(np.float32))
        if ctx.conventions["squash_correction"] == "tanh_log_det":
            g = g + a_int * (-2 * a0 / (1 - a0**2 + 1e-6))
        h = own_bandwidth(a0, a0, ctx.conventions["bandwidth_rule"])
        want = own_direction(a0, a0, box_adjusted_grad(ctx, a0, g), a_int, h)
        if not fused_policy(ctx):
            policy_step(ctx, agent, batch)
        a1 = ctx.impl.call("actions_from_noise", agent, torch.as_tensor(obs), xi,
                           returns=Arr((B, n, 2), "actions a = f(xi; s)", dtype="float"))
        da = (a1 - a0).ravel()
        c = float(da @ want.ravel() / (np.linalg.norm(da) * np.linalg.norm(want) + 1e-30))
        cos.append(c)
    ctx.measure("cosine(Delta a, eq. 13 direction) per update", np.round(cos, 4))
    mean_cos = float(np.mean(cos))
    ctx.measure("mean cosine", round(mean_cos, 4))
    ctx.worst("min_alignment - mean cosine", p["min_alignment"] - mean_cos)
    if not mean_cos >= p["min_alignment"]:
        ctx.fail(f"mean cosine between the particle change and the eq. 13 direction = {mean_cos:.3f} < min_alignment "
                 f"{p['min_alignment']}: {alignment_phrase(mean_cos)}", mean_cos, p["min_alignment"])


@check("ALG1.bandit_optimum")
def alg1_bandit(ctx: Ctx) -> None:
    first_passing_run(ctx, lambda run: _bandit_run(ctx, run))


def _bandit_run(ctx: Ctx, run: int) -> None:
    p = ctx.params
    task = bandit_task(p["alpha"])
    policy = ctx.impl.raw("train", task, p["train_steps"], p["alpha"], ctx.sub_seed(run_stream(run)))
    N = p["samples"]
    a = ctx.impl.call("sample_policy", policy, np.zeros((1, 1), np.float32), N,
                      returns=Arr((1, N, 1), "N actions for the one state", dtype="float"))[0, :, 0]
    edges = np.linspace(-1, 1, 9)
    pc = optimum_cell_masses(p["alpha"], edges, ctx.conventions["squash_correction"])
    ph = np.histogram(np.clip(a, -1, 1), edges)[0] / N
    ctx.measure("optimum cell masses", np.round(pc, 4))
    ctx.measure("sampled cell masses", np.round(ph, 4))
    z = ctx.z(len(pc) + 1)
    for i in range(len(pc)):
        ctx.le(f"|p_hat - p| on cell [{edges[i]:.2f}, {edges[i + 1]:.2f}]", abs(ph[i] - pc[i]),
               p["eps"] + z * math.sqrt(pc[i] * (1 - pc[i]) / N))
    pos_t = pc[4:].sum()
    ctx.le("|mass(a > 0) - optimum|", abs(float((a > 0).mean()) - pos_t), p["eps"] + z * math.sqrt(pos_t * (1 - pos_t) / N))
    # Multimodality: the band above admits the best single Gaussian (max cell error 0.05), so also
    # require the valley between the modes to hold less mass than the left mode (equal-width cells).
    (l_lo, l_hi), (v_lo, v_hi) = BANDIT_DIP_CELLS
    left, valley = float(((a >= l_lo) & (a < l_hi)).mean()), float(((a >= v_lo) & (a < v_hi)).mean())
    truth = optimum_cell_masses(p["alpha"], np.array([l_lo, l_hi, v_lo, v_hi]), ctx.conventions["squash_correction"])
    ctx.measure("optimum (left-mode, valley) masses", np.round(truth[[0, 2]], 4))
    ctx.le("valley mass - left-mode mass", valley - left, 0.0,
           "the sampler has no dip between the modes: a unimodal policy cannot represent exp(r/alpha)/Z")


@check("ALG1.bandit_small_alpha")
def alg1_bandit_small_alpha(ctx: Ctx) -> None:
    """ALG1.bandit_optimum's criteria at the spec's small alpha (the optimum m does not depend on alpha)."""
    first_passing_run(ctx, lambda run: _bandit_run(ctx, run))


@check("ALG1.multigoal_coverage")
def alg1_multigoal(ctx: Ctx) -> None:
    first_passing_run(ctx, lambda run: _multigoal_run(ctx, run))


def goal_balance(reached: np.ndarray, episodes: int) -> dict[str, float]:
    """Balance statistics of a goal histogram: shares of all episodes, and the entropy of the reached goals."""
    share = np.sort(reached)[::-1] / episodes
    q = reached[reached > 0] / max(1, reached.sum())
    return {"second_share": float(share[1]), "entropy": float(-(q * np.log(q)).sum()) if q.size else 0.0}


def _multigoal_run(ctx: Ctx, run: int) -> None:
    from softq_ref.envs.multigoal import GOALS

    p = ctx.params
    task = multigoal_task()
    policy = ctx.impl.raw("train", task, p["train_steps"], 10.0, ctx.sub_seed(run_stream(run)))
    env = task.make_env()
    reached = np.zeros(len(GOALS), int)
    for ep in range(p["episodes"]):
        obs, _ = env.reset(seed=ctx.sub_seed(run_stream(run, ep + 1)))
        for _ in range(task.horizon):
            a = ctx.impl.call("sample_policy", policy, obs[None].astype(np.float32), 1,
                              returns=Arr((1, 1, task.act_dim), "one action", dtype="float"))[0, 0]
            obs, _, term, trunc, _ = env.step(a.astype(np.float32))
            if term or trunc:
                break
        d = np.linalg.norm(GOALS - obs[:2], axis=1)
        if d.min() < 1.0:
            reached[int(d.argmin())] += 1
    env.close()
    bal = goal_balance(reached, p["episodes"])
    ctx.measure("episodes reaching each goal", reached)
    ctx.measure("goals reached", int((reached > 0).sum()))
    ctx.measure("share of episodes at the second most reached goal", round(bal["second_share"], 4))
    ctx.measure("entropy of the reached goals (nats)", round(bal["entropy"], 4))
    if bal["second_share"] < p["min_second_share"]:
        ctx.fail(f"the trained policy's second most reached goal got {bal['second_share']:.0%} of {p['episodes']} "
                 f"episodes (goals: {reached.tolist()}); expected at least {p['min_second_share']:.0%}: a max-ent "
                 "policy keeps several modes, one that commits to a goal (no repulsive term, hard max, alpha ~ 0) "
                 "sends at most a few episodes elsewhere", bal["second_share"], p["min_second_share"])
