"""Family E: composing two soft Q-functions (exact, tabular)."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from . import truth as T
from .check_tabular import _qstar
from .hyp import EDGE_MDPS, mdps, q_seeds
from .registry import Ctx, check


def _setup(ctx: Ctx, m, s):
    R2 = np.random.default_rng(s).uniform(-10, 10, m.R.shape)
    Q1 = _qstar(ctx, m.R, m.P, m.gamma, m.alpha)
    Q2 = _qstar(ctx, R2, m.P, m.gamma, m.alpha)
    QC = _qstar(ctx, (m.R + R2) / 2, m.P, m.gamma, m.alpha)
    return Q1, Q2, QC


def _fixed_point(f, shape, gamma, tol):
    C = np.zeros(shape)
    for _ in range(200_000):
        Cn = f(C)
        step = np.max(np.abs(Cn - C))
        C = Cn
        if gamma == 0 or gamma / (1 - gamma) * step <= tol:
            return C
    raise RuntimeError("fixed-point iteration did not converge")


@check("E.composition_bound")
def e_bound(ctx: Ctx) -> None:
    @ctx.given(mdps(max_gamma=0.95), q_seeds(), examples=tuple((m, 11) for m in EDGE_MDPS))
    def prop(m, s):
        tol = ctx.params["iteration_tol"]
        atol = m.atol(ctx.params["atol_scale"]) + 4 * tol / (1 - m.gamma)
        Q1, Q2, QC = _setup(ctx, m, s)
        p1, p2 = T.boltzmann(Q1, m.alpha), T.boltzmann(Q2, m.alpha)
        d_half = -2.0 * np.log(np.sqrt(p1 * p2).sum(-1).clip(1e-300, 1.0))  # D_1/2(pi1 || pi2) per state
        C = _fixed_point(lambda C: m.gamma * m.P @ (m.alpha / 2 * d_half + C.max(-1)), m.R.shape, m.gamma, tol)
        Qsum = (Q1 + Q2) / 2
        ctx.le("max (Q_C* - Q_sum)", float(np.max(QC - Qsum)), atol, "Q_sum must upper-bound the composed optimum")
        ctx.le("max (Q_sum - C* - Q_C*)", float(np.max(Qsum - C - QC)), atol, "Q_C* >= Q_sum - C*")

    prop()


@check("E.exact_correction")
def e_exact(ctx: Ctx) -> None:
    @ctx.given(mdps(max_gamma=0.95), q_seeds(), st.booleans(), examples=tuple((m, 12, False) for m in EDGE_MDPS))
    def prop(m, s, same):
        tol = ctx.params["iteration_tol"]
        atol = m.atol(ctx.params["atol_scale"]) + 4 * tol / (1 - m.gamma)
        if same:
            Q1 = Q2 = _qstar(ctx, m.R, m.P, m.gamma, m.alpha)
            QC = Q1
        else:
            Q1, Q2, QC = _setup(ctx, m, s)
        w = np.sqrt(T.boltzmann(Q1, m.alpha) * T.boltzmann(Q2, m.alpha))  # (S, A)

        def f(C):
            inner = T.logsumexp(np.log(np.where(w > 0, w, 1e-300)) - C / m.alpha, axis=-1)
            return -m.gamma * m.P @ (m.alpha * inner)

        C = _fixed_point(f, m.R.shape, m.gamma, tol)
        ctx.close("Q_C* vs Q_sum - C_ex", QC, (Q1 + Q2) / 2 - C, atol)

    prop()
