"""Family A: tabular soft Bellman theory (exact, float64, Hypothesis-drawn finite MDPs)."""
from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from . import truth as T
from .adapter import Arr
from .hyp import EDGE_MDPS, make_mdp, mdps, q_seeds, random_policy, random_q
from .registry import Ctx, check

SEEDS = q_seeds()


def _T(ctx: Ctx, Q, m):
    return ctx.impl.call("soft_bellman_operator", Q, m.R, m.P, m.gamma, m.alpha, returns=T.q_arr(m, "T Q (S, A)"))


def _Vq(ctx: Ctx, Q, alpha):
    return ctx.impl.call("soft_value", Q, alpha, returns=T.v_arr(Q.shape[0]))


def _pi(ctx: Ctx, Q, alpha):
    return ctx.impl.call("boltzmann_policy", Q, alpha, returns=Arr(Q.shape, "a policy pi(a|s), rows summing to 1"))


def _qstar(ctx: Ctx, R, P, gamma, alpha):
    tol = ctx.params.get("iteration_tol", 1e-11)
    return ctx.impl.call("soft_q_iteration", R, P, gamma, alpha, tol, returns=Arr(R.shape, "the optimal soft Q* (S, A)"))


def _pe(ctx: Ctx, pi, m):
    return ctx.impl.call("soft_policy_evaluation", pi, m.R, m.P, m.gamma, m.alpha,
                         returns=(Arr((m.S, m.A), "Q^pi (S, A)"), Arr((m.S,), "V^pi (S,)")))


def _edge(n_extra: int = 0):
    return tuple((m,) + (7,) * n_extra for m in EDGE_MDPS)


@check("A1.contraction")
def a1_contraction(ctx: Ctx) -> None:
    @ctx.given(mdps(), SEEDS, SEEDS, examples=_edge(2))
    def prop(m, s1, s2):
        Q1, Q2 = random_q(m, s1), random_q(m, s2 if s2 != s1 else s1 + 1)
        d = float(np.max(np.abs(Q1 - Q2)))
        lhs = float(np.max(np.abs(_T(ctx, Q1, m) - _T(ctx, Q2, m))))
        ctx.worst("max ratio ||TQ1-TQ2|| / ||Q1-Q2|| - gamma", lhs / d - m.gamma)
        ctx.le("||TQ1 - TQ2||_inf", lhs, m.gamma * d + m.atol(ctx.params["atol_scale"]), f"gamma = {m.gamma}, ||Q1-Q2|| = {d:.4g}")

    prop()


@check("A1.monotone_translation")
def a1_monotone(ctx: Ctx) -> None:
    @ctx.given(mdps(), SEEDS, st.floats(-20, 20), examples=_edge(2))
    def prop(m, s, c):
        Q1 = random_q(m, s)
        Q2 = Q1 + np.random.default_rng(s + 1).uniform(0, 5, size=Q1.shape)
        atol = m.atol(ctx.params["atol_scale"])
        TQ1 = _T(ctx, Q1, m)
        ctx.le("max (T Q1 - T Q2) for Q1 <= Q2", float(np.max(TQ1 - _T(ctx, Q2, m))), atol, "monotonicity")
        ctx.close("T(Q + c) - (T Q + gamma c)", _T(ctx, Q1 + c, m), TQ1 + m.gamma * c, atol + 1e-12 * abs(c))

    prop()


@check("A1.sandwich")
def a1_sandwich(ctx: Ctx) -> None:
    @ctx.given(mdps(), SEEDS, examples=_edge(1))
    def prop(m, s):
        Q = random_q(m, s)
        v = _Vq(ctx, Q, m.alpha)
        atol = m.atol(ctx.params["atol_scale"])
        logA = m.alpha * math.log(m.A)
        ctx.le("max_a Q - V_Q", float(np.max(Q.max(-1) - v)), atol, "V_Q must be >= max_a Q")
        ctx.le("V_Q - max_a Q - alpha log|A|", float(np.max(v - Q.max(-1) - logA)), atol)
        ctx.le("mean_a Q + alpha log|A| - V_Q", float(np.max(Q.mean(-1) + logA - v)), atol,
               "V_Q >= mean_a Q + alpha log|A| (a hard max violates this)")

    prop()


@check("A2.fixed_point")
def a2_fixed_point(ctx: Ctx) -> None:
    @ctx.given(mdps(), examples=_edge())
    def prop(m):
        tol = ctx.params["iteration_tol"]
        atol = m.atol(ctx.params["atol_scale"])
        Qs = _qstar(ctx, m.R, m.P, m.gamma, m.alpha)
        own = m.R + m.gamma * m.P @ T.V(Qs, m.alpha)
        ctx.close("T Q* - Q* (implementation's operator)", _T(ctx, Qs, m), Qs, (1 + m.gamma) * tol + atol)
        ctx.close("T Q* - Q* (eq. 8-9)", own, Qs, (1 + m.gamma) * tol + atol)
        ctx.close("Q* vs independent value iteration", Qs, T.value_iteration(m.R, m.P, m.gamma, m.alpha, tol), 2 * tol + atol)
        logA = m.gamma * m.alpha * math.log(m.A)
        lo, hi = (m.R.min() + logA) / (1 - m.gamma), (m.R.max() + logA) / (1 - m.gamma)
        ctx.le("lower bound - min Q*", lo - float(Qs.min()), atol + tol)
        ctx.le("max Q* - upper bound", float(Qs.max()) - hi, atol + tol)

    prop()


@check("A3.policy_evaluation")
def a3_policy_evaluation(ctx: Ctx) -> None:
    @ctx.given(mdps(), SEEDS, examples=_edge(1))
    def prop(m, s):
        pi = random_policy(m, s)
        Q, V = _pe(ctx, pi, m)
        Qt, Vt = T.policy_evaluation(pi, m.R, m.P, m.gamma, m.alpha)
        atol = m.atol(ctx.params["atol_scale"])
        ctx.close("V^pi vs (I - gamma P_pi)^-1 (r_pi + alpha H_pi)", V, Vt, atol)
        ctx.close("Q^pi vs r + gamma P V^pi", Q, Qt, atol)
        logpi = np.log(np.where(pi > 0, pi, 1.0))
        ctx.close("V^pi vs sum_a pi (Q^pi - alpha log pi)", V, (pi * (Q - m.alpha * logpi)).sum(-1), atol)

    prop()


@check("A4.gibbs")
def a4_gibbs(ctx: Ctx) -> None:
    h, fd_tol = ctx.params["fd_step"], ctx.params["fd_tol"]

    @ctx.given(mdps(), SEEDS, examples=_edge(1))
    def prop(m, s):
        Q = random_q(m, s, scale=10.0)
        pi = random_policy(m, s + 1)
        atol = m.atol(ctx.params["atol_scale"])
        v, piQ = _Vq(ctx, Q, m.alpha), _pi(ctx, Q, m.alpha)
        ctx.close("sum_a pi_Q - 1", piQ.sum(-1), np.ones(m.S), 1e-12 * m.A)
        lhs = (pi * Q).sum(-1) + m.alpha * T.entropy(pi)
        ctx.close("E_pi[Q] + alpha H(pi) - (V_Q - alpha KL(pi || pi_Q))", lhs, v - m.alpha * T.kl(pi, piQ), atol)
        # dV/dQ(s, a) = pi_Q(a|s): one batched call, rows Q[s] +/- h e_a
        S, A = Q.shape
        step = h * max(1.0, m.alpha)
        rows = np.repeat(Q, A, axis=0)  # (S*A, A)
        eye = np.tile(np.eye(A), (S, 1)) * step
        vals = _Vq(ctx, np.concatenate([rows + eye, rows - eye]), m.alpha)
        grad = ((vals[: S * A] - vals[S * A:]) / (2 * step)).reshape(S, A)
        ctx.close("dV_Q/dQ(s, a) - pi_Q(a|s) (central differences)", grad, T.boltzmann(Q, m.alpha), fd_tol)

    prop()


@check("A5.policy_improvement")
def a5_policy_improvement(ctx: Ctx) -> None:
    @ctx.given(mdps(), SEEDS, examples=_edge(1))
    def prop(m, s):
        pi = random_policy(m, s)
        atol = m.atol(ctx.params["atol_scale"])
        Q, V = _pe(ctx, pi, m)
        pi_new = _pi(ctx, Q, m.alpha)
        Qn, Vn = _pe(ctx, pi_new, m)
        ctx.le("max (Q^pi - Q^pi_new)", float(np.max(Q - Qn)), atol, "Theorem 4: Q^{pi_new} >= Q^pi")
        gap = m.alpha * T.resolvent_apply(pi_new, m.P, m.gamma, T.kl(pi, pi_new))
        ctx.close("V^pi_new - V^pi vs alpha (I - gamma P_new)^-1 KL(pi || pi_new)", Vn - V, gap, atol)

    prop()


@check("A6.optimal_policy")
def a6_optimal_policy(ctx: Ctx) -> None:
    @ctx.given(mdps(), SEEDS, examples=_edge(1))
    def prop(m, s):
        atol = m.atol(ctx.params["atol_scale"])
        Qs = _qstar(ctx, m.R, m.P, m.gamma, m.alpha)
        pis = _pi(ctx, Qs, m.alpha)
        Qpi, Vpi = _pe(ctx, pis, m)
        slack = atol + 2 * ctx.params["iteration_tol"] / max(1e-3, 1 - m.gamma)
        ctx.close("Q^{pi*} (policy evaluation) vs Q* (soft Q-iteration)", Qpi, Qs, slack)
        Vs = _Vq(ctx, Qs, m.alpha)
        ctx.close("V^{pi*} vs V* = V_{Q*}", Vpi, Vs, slack)
        pi = random_policy(m, s)
        _, Vp = _pe(ctx, pi, m)
        gap = m.alpha * T.resolvent_apply(pi, m.P, m.gamma, T.kl(pi, pis))
        ctx.close("V* - V^pi vs alpha (I - gamma P_pi)^-1 KL(pi || pi*)", Vs - Vp, gap, slack)
        ctx.le("max (V^pi - V*)", float(np.max(Vp - Vs)), slack, "pi* must be optimal")

    prop()


@check("A7.maxent_objective")
def a7_maxent_objective(ctx: Ctx) -> None:
    p = ctx.params
    n_inst, N, H = p["instances"], p["rollouts"], p["horizon"]
    rng = ctx.rng()
    insts = [make_mdp(int(rng.integers(2, 5)), int(rng.integers(2, 4)), 0.9, float(rng.choice([0.3, 1.0, 3.0])),
                      "dirichlet", int(rng.integers(2**31))) for _ in range(n_inst)]
    z = ctx.z(sum(m.S for m in insts))
    worst = 0.0
    for k, m in enumerate(insts):
        Qs = _qstar(ctx, m.R, m.P, m.gamma, m.alpha)
        pis = np.clip(_pi(ctx, Qs, m.alpha), 0, None)
        pis /= pis.sum(-1, keepdims=True)
        Vs = _Vq(ctx, Qs, m.alpha)
        ent = T.entropy(pis)
        bias = m.gamma**H * (np.abs(m.R).max() + m.alpha * math.log(m.A)) / (1 - m.gamma)
        r2 = ctx.rng(10 + k)
        for s0 in range(m.S):
            s = np.full(N, s0)
            ret = np.zeros(N)
            disc = 1.0
            for _ in range(H):
                a = (r2.random(N)[:, None] > np.cumsum(pis[s], -1)).sum(-1).clip(0, m.A - 1)
                ret += disc * (m.R[s, a] + m.alpha * ent[s])
                s = (r2.random(N)[:, None] > np.cumsum(m.P[s, a], -1)).sum(-1).clip(0, m.S - 1)
                disc *= m.gamma
            se = ret.std(ddof=1) / math.sqrt(N)
            dev = abs(ret.mean() - Vs[s0])
            worst = max(worst, (dev - bias) / max(se, 1e-300))
            ctx.measure("worst z", round(worst, 3))
            ctx.le(f"|MC max-ent return - V*(s={s0})| ({m!r})", dev, z * se + bias + 1e-12,
                   f"z = {z:.2f}, SE = {se:.3g}, truncation bias <= {bias:.2e}")


@check("A8.temperature_limits")
def a8_temperature(ctx: Ctx) -> None:
    @ctx.given(mdps(max_gamma=0.9), SEEDS, st.floats(0.1, 10.0), examples=_edge(2))
    def prop(m, s, c):
        atol = m.atol(ctx.params["atol_scale"])
        tol = ctx.params["iteration_tol"]
        Qa = _qstar(ctx, m.R, m.P, m.gamma, m.alpha)
        Q0 = T.value_iteration(m.R, m.P, m.gamma, None, tol)
        sl = atol + 4 * tol
        ctx.le("max (Q*_0 - Q*_alpha)", float(np.max(Q0 - Qa)), sl, "Q*_alpha >= hard Q*_0")
        ctx.le("max (Q*_alpha - Q*_0 - gamma alpha log|A|/(1-gamma))",
               float(np.max(Qa - Q0 - m.gamma * m.alpha * math.log(m.A) / (1 - m.gamma))), sl)
        Q2 = _qstar(ctx, m.R, m.P, m.gamma, 1.5 * m.alpha)
        ctx.le("max (Q*_alpha - Q*_1.5alpha)", float(np.max(Qa - Q2)), sl, "Q*_alpha non-decreasing in alpha")
        Qc = _qstar(ctx, c * m.R, m.P, m.gamma, c * m.alpha)
        ctx.close("Q*(c r; c alpha) vs c Q*(r; alpha)", Qc, c * Qa, max(1.0, c) * sl)
        phi = np.random.default_rng(s).uniform(-5, 5, m.S)
        Rs = m.R + m.gamma * m.P @ phi - phi[:, None]
        Qsh = _qstar(ctx, Rs, m.P, m.gamma, m.alpha)
        ctx.close("shaped Q* vs Q* - Phi(s)", Qsh, Qa - phi[:, None], 2 * sl + atol)

    prop()


@check("A9.closed_forms")
def a9_closed_forms(ctx: Ctx) -> None:
    @ctx.given(st.integers(1, 6), st.integers(1, 6), st.floats(0.0, 0.97), st.floats(0.05, 5.0), SEEDS)
    def prop(S, A, gamma, alpha, s):
        rng = np.random.default_rng(s)
        R = rng.uniform(-10, 10, (S, A))
        P = rng.dirichlet(np.ones(S), size=(S, A))
        sc = ctx.params["atol_scale"] * (1 + 10 + alpha * math.log(A))
        Qb = _qstar(ctx, R, P, 0.0, alpha)
        ctx.close("bandit Q* vs r", Qb, R, sc)
        ctx.close("bandit V vs alpha lse(r/alpha)", _Vq(ctx, R, alpha), T.V(R, alpha), sc)
        r = R[:1]
        Q1 = _qstar(ctx, r, np.ones((1, A, 1)), gamma, alpha)
        V1 = float(T.V(r, alpha)[0]) / (1 - gamma)
        tol = sc / (1 - gamma) ** 2 + 2 * ctx.params["iteration_tol"]
        ctx.close("self-loop Q* vs r + gamma alpha lse(r/alpha)/(1-gamma)", Q1, r + gamma * V1, tol)
        ctx.close("self-loop V* vs alpha lse(r/alpha)/(1-gamma)", _Vq(ctx, Q1, alpha), [V1], tol)

    prop()


@check("A10.sampled_backup")
def a10_sampled_backup(ctx: Ctx) -> None:
    def sampled(Q, m, idx):
        return ctx.impl.call("sampled_soft_bellman_operator", Q, m.R, m.P, m.gamma, m.alpha, idx,
                             returns=T.q_arr(m, "the sampled backup r + gamma P V_hat (S, A)"))

    @ctx.given(mdps(), SEEDS, st.integers(1, 8), examples=tuple((m, 3, 4) for m in EDGE_MDPS))
    def prop(m, s, M):
        rng = np.random.default_rng(s)
        idx = rng.integers(m.A, size=(m.S, M))
        Q1, Q2 = random_q(m, s), random_q(m, s + 1)
        atol = m.atol(ctx.params["atol_scale"])
        q = np.take_along_axis(Q1, idx, 1) / m.alpha
        vhat = m.alpha * (T.logsumexp(q, axis=1) - math.log(M) + math.log(m.A))
        out1 = sampled(Q1, m, idx)
        ctx.close("sampled backup vs r + gamma P alpha(lse_j Q/alpha - log M + log|A|)", out1, m.R + m.gamma * m.P @ vhat, atol)
        d = float(np.max(np.abs(Q1 - Q2)))
        ctx.le("||T_M Q1 - T_M Q2||", float(np.max(np.abs(out1 - sampled(Q2, m, idx)))), m.gamma * d + atol)

    prop()
    # E[V_hat_M] by exact enumeration of all |A|^M draws: R = 0, P(s|s, a) = 1, gamma = 1/2.
    rng = ctx.rng()
    for A in (2, 3):
        S = 3
        m = make_mdp(S, A, 0.5, 0.7, "uniform", 0)
        P = np.zeros((S, A, S))
        P[np.arange(S), :, np.arange(S)] = 1.0
        m = type(m)(np.zeros((S, A)), P, 0.5, 0.7, f"R=0, self-loops, S={S}, A={A}, gamma=0.5, alpha=0.7")
        Q = rng.uniform(-3, 3, (S, A))
        means = []
        for M in (1, 2, 3):
            draws = np.array(np.meshgrid(*[np.arange(A)] * M, indexing="ij")).reshape(M, -1).T
            tot = np.zeros(S)
            for d in draws:
                tot += 2.0 * sampled(Q, m, np.tile(d, (S, 1)))[:, 0]
            means.append(tot / len(draws))
            ctx.le(f"max (E[V_hat_{M}] - V_Q), A={A}", float(np.max(means[-1] - T.V(Q, m.alpha))), 1e-10, "Jensen")
        for M in (1, 2):
            ctx.le(f"max (E[V_hat_{M}] - E[V_hat_{M + 1}]), A={A}", float(np.max(means[M - 1] - means[M])), 1e-10,
                   "E[V_hat_M] must be non-decreasing in M")
