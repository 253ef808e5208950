"""Hypothesis strategies for random finite MDPs (ranges from checkable-properties.md)."""
import numpy as np
from hypothesis import strategies as st


@st.composite
def finite_mdps(draw, max_states: int = 8, max_actions: int = 6, max_gamma: float = 0.97):
    S = draw(st.integers(1, max_states))
    A = draw(st.integers(1, max_actions))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    R = rng.uniform(-10, 10, size=(S, A))
    kind = draw(st.sampled_from(["dirichlet", "deterministic", "absorbing"]))
    if kind == "dirichlet":
        P = rng.dirichlet(np.ones(S), size=(S, A))
    else:
        P = np.zeros((S, A, S))
        nxt = rng.integers(0, S, size=(S, A))
        if kind == "absorbing":
            nxt[0, :] = 0
        P[np.arange(S)[:, None], np.arange(A)[None, :], nxt] = 1.0
    gamma = draw(st.sampled_from([0.0, max_gamma, 0.5]) | st.floats(0.0, max_gamma))
    alpha = float(np.exp(draw(st.floats(np.log(0.05), np.log(5.0)))))
    return R, P, gamma, alpha


def tolerance(R, gamma, alpha):
    A = R.shape[1]
    return 1e-9 * (1 + np.abs(R).max() + alpha * np.log(max(A, 1)) + 1) / (1 - gamma) ** 2
