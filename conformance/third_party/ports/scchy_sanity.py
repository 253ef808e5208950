"""Sanity: each scchy/RL adapter method equals what the port's own training path computes on the same inputs.

    SCCHY_RL_ROOT=/path/to/RL python -m softq_conformance.third_party.ports.scchy_sanity

The port's methods return nothing, so the comparisons read the port's own effects: the critic
target through an SGD step of its own loss (Q moves by lr * (y - q) / B under 0.5 mean squared
error), the particle move of its own SVGD step, the noise its policy draws. Exit code 1 on a mismatch.
"""
from __future__ import annotations

import sys

import numpy as np
import torch

from softq_conformance.kit import GivenQ, LinearQ, ParticleSets, same_randomness, swapped
from softq_conformance.third_party.ports.scchy_adapter import ScchyAdapter


def run(adapter: ScchyAdapter | None = None, seed: int = 0) -> list[tuple[str, float, float]]:
    a = adapter or ScchyAdapter()
    rng = np.random.default_rng(seed)
    rows = []
    # 1. soft_value_uniform_box vs the target _create_td_update's own SGD step moves a free critic output toward
    q = torch.as_tensor(rng.normal(size=(6, 16)) * 3)
    got = a.soft_value_uniform_box(q, 1.0, 2)
    agent = a._agent(1, 2)
    out = torch.zeros(6, 1, dtype=torch.float64, requires_grad=True)
    z = torch.zeros
    with swapped(agent, critic=GivenQ(out), tar_critic=GivenQ(q[:, :, None]), value_n_particles=16,
                 critic_opt=torch.optim.SGD([out], lr=1.0)):
        agent._create_td_update(z(6, 1), z(6, 2), z(6, 1), z(6, 1), z(6, 1))
    y_step = out.detach()[:, 0] * 6  # one SGD step on mean 0.5 (y - q)^2 from q = 0 lands on y / B
    rows.append(("soft_value_uniform_box vs the port's own critic step (lr 1, from 0)", float((got - y_step).abs().max()), 1e-12))
    # 2. td_target vs the same, on the port's agent, with the same random target actions
    agent = a.make_agent(3, 2, 0.5, 0.9, seed)
    f = lambda x: torch.as_tensor(np.asarray(x, np.float32))  # noqa: E731
    batch = {"obs": f(rng.normal(size=(8, 3))), "action": f(rng.uniform(-1, 1, (8, 2))), "reward": f(rng.normal(size=8)),
             "next_obs": f(rng.normal(size=(8, 3))), "terminated": f(rng.uniform(size=8) < 0.2)}
    with same_randomness() as rewind:
        got = a.td_target(agent, batch)
        rewind()
        q0 = agent.critic(batch["obs"], batch["action"]).detach()[:, 0]
        out = q0.clone().requires_grad_(True)
        with swapped(agent, critic=GivenQ(out[:, None]), critic_opt=torch.optim.SGD([out], lr=1.0)):
            agent._create_td_update(batch["obs"], batch["action"], batch["reward"].view(-1, 1), batch["next_obs"],
                                    batch["terminated"].view(-1, 1))
    rows.append(("td_target vs the port's own critic step", float((got - (q0 + (out.detach() - q0) * 8)).abs().max()), 1e-4))
    # 3. svgd_direction_auto vs the particle move of _svgd_update's own step (SGD, lr 1e-3)
    x, y = torch.as_tensor(rng.uniform(-0.9, 0.9, (4, 6, 2))), torch.as_tensor(rng.uniform(-0.9, 0.9, (4, 5, 2)))
    g = torch.as_tensor(rng.normal(size=(4, 6, 2)))
    got = a.svgd_direction_auto(x, y, g, 1.0)
    agent, sets = a._agent(1, 2, n_fixed=6, n_updated=5), ParticleSets(torch.cat([x, y], 1), count_arg=None)
    with swapped(agent, actor=sets, critic=LinearQ(g), actor_opt=torch.optim.SGD(sets.parameters(), lr=1e-3)):
        agent._svgd_update(torch.zeros(4, 1))
    moved = (sets.sets[0].detach()[:, 6:] - y) / 1e-3
    rows.append(("svgd_direction_auto vs _svgd_update's own particle move", float((moved - got).abs().max()), 1e-9))
    # 4. actions_from_noise vs the actor's own forward with the noise it drew
    agent = a.make_agent(3, 2, 0.5, 0.9, seed)
    obs = torch.as_tensor(rng.normal(size=(4, 3)).astype(np.float32))
    drawn = []
    real = agent.actor.normal_dist.sample
    with torch.no_grad(), swapped(agent.actor.normal_dist, sample=lambda s: drawn.append(real(s)) or drawn[-1]):
        own = agent.actor(obs, n_action_samples=7)
    got = a.actions_from_noise(agent, obs, drawn[0])
    rows.append(("actions_from_noise vs actor(obs, 7) with its own draw", float((own - got).abs().max()), 0.0))
    return rows


def main() -> int:
    bad = 0
    for what, err, tol in run():
        bad += not err <= tol
        print(f"{'ok ' if err <= tol else 'BAD'} max |diff| = {err:.3e} (tol {tol:g})  {what}")
    return int(bad > 0)


if __name__ == "__main__":
    sys.exit(main())
