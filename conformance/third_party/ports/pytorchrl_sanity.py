"""Sanity: each pytorchrl adapter method equals what the port's own training path computes on the same inputs.

    PYTORCHRL_ROOT=/path/to/pytorchrl python -m softq_conformance.third_party.ports.pytorchrl_sanity

Each line compares the adapter's value with a value read from the port's own code path (its return
values, its kernel class, its optimiser's actual parameter move), never with a formula of ours.
Exit code 1 if any comparison exceeds its tolerance.
"""
from __future__ import annotations

import sys

import numpy as np
import torch

from softq_conformance.kit import GivenQ, LinearQ, ParticleSets, same_randomness, swapped
from softq_conformance.third_party.ports.pytorchrl_adapter import PytorchrlAdapter


def _batch(rng, B, o, d):
    f = lambda x: torch.as_tensor(np.asarray(x, np.float32))  # noqa: E731
    return {"obs": f(rng.normal(size=(B, o))), "action": f(rng.uniform(-1, 1, (B, d))), "reward": f(rng.normal(size=B)),
            "next_obs": f(rng.normal(size=(B, o))), "terminated": f(rng.uniform(size=B) < 0.2)}


def run(adapter: PytorchrlAdapter | None = None, seed: int = 0) -> list[tuple[str, float, float]]:
    a = adapter or PytorchrlAdapter()
    rng = np.random.default_rng(seed)
    rows = []
    # 1. soft_value_uniform_box vs the ys train_qf returns with the same Q values in its target critic
    q = torch.as_tensor(rng.normal(size=(6, 16)) * 3)
    got = a.soft_value_uniform_box(q, 1.0, 2).numpy()
    agent = a._agent(1, 2)
    z = np.zeros
    with swapped(agent, target_qf=GivenQ(q[:, :, None]), qf_target_K=16):
        ys = agent.train_qf(z((6, 1)), z((6, 2)), z(6), z((6, 1)), z(6))[2]
    rows.append(("soft_value_uniform_box vs train_qf's returned ys", float(np.abs(got - ys).max()), 1e-6))
    # 2. td_target vs the ys of train_qf on the same batch and the same random target actions
    agent = a.make_agent(3, 2, 0.5, 0.9, seed)
    batch = _batch(rng, 8, 3, 2)
    with same_randomness() as rewind:
        got = a.td_target(agent, batch).numpy()
        rewind()
        b = a._batch(agent, batch)
        ys = agent.train_qf(*(b[k] for k in ("observations", "actions", "rewards", "next_observations", "terminals")))[2]
    rows.append(("td_target vs train_qf's returned ys (rewards * scale_reward as train() stores them)",
                 float(np.abs(got - ys).max()), 1e-5))
    # 3. svgd_direction_auto vs the port's kernel class in the port's eq. 13 line, and vs the particle move
    x, y = torch.as_tensor(rng.uniform(-0.9, 0.9, (4, 6, 2))), torch.as_tensor(rng.uniform(-0.9, 0.9, (4, 5, 2)))
    g = torch.as_tensor(rng.normal(size=(4, 6, 2)))
    got = a.svgd_direction_auto(x, y, g, 1.0)
    kern = a.softq.AdaptiveIsotropicGaussianKernel(x, y)
    want = torch.mean(kern.kappa.unsqueeze(3) * g.unsqueeze(2) + 1.0 * kern.grad, dim=1)
    rows.append(("svgd_direction_auto vs the port's kernel (kappa, grad) in eq. 13", float((got - want).abs().max()), 1e-12))
    agent, sets = a._agent(1, 2), ParticleSets(x, y)
    with swapped(agent, policy=sets, qf=LinearQ(g), kernel_K_fixed=6, kernel_K_updated=5,
                 policy_optimizer=torch.optim.SGD(sets.sets, lr=1e-3)):
        agent.train_policy(np.zeros((4, 1), np.float32))
    moved = (sets.sets[1].detach() - y) / 1e-3
    rows.append(("svgd_direction_auto vs the particle move of train_policy's own step (SGD, lr 1e-3)",
                 float((moved - got).abs().max()), 1e-9))
    # 4. actions_from_noise vs the policy's own forward with the noise it drew (it keeps it in .xi)
    agent = a.make_agent(3, 2, 0.5, 0.9, seed)
    obs = torch.as_tensor(rng.normal(size=(1, 3)).astype(np.float32))
    with torch.no_grad():
        own = agent.policy(obs, 7)
        got = a.actions_from_noise(agent, obs, agent.policy.xi.reshape(1, 7, 2))
    rows.append(("actions_from_noise vs policy(obs, k) with its own xi", float((own - got).abs().max()), 0.0))
    # 5. q_values / parameters are the port's modules; update is the port's do_training
    with torch.no_grad():
        diff = (a.q_values(agent, obs, own[0, :1], False) - agent.qf(obs, own[0, :1]).squeeze(-1)).abs().max()
    rows.append(("q_values vs qf(obs, act)", float(diff), 0.0))
    rows.append(("parameters vs get_param_values()", float((a.parameters(agent, True)
                                                            - agent.target_qf.get_param_values()).abs().max()), 0.0))
    return rows


def main() -> int:
    rows = run()
    bad = 0
    for what, err, tol in rows:
        ok = err <= tol
        bad += not ok
        print(f"{'ok ' if ok else 'BAD'} max |diff| = {err:.3e} (tol {tol:g})  {what}")
    return int(bad > 0)


if __name__ == "__main__":
    sys.exit(main())
