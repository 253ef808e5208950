"""Issue 14's mutants: one per protocol-contract sentence (the audit in README.md) and one per bug
class reported in public max-ent RL code (/work/shared/notes/field-bug-reports.md summarises the
threads). Each is a `Mutant` subclass, so it joins `mutants.MUTANTS` and the self-test.
"""
from __future__ import annotations

import copy
import dataclasses
import math

import gymnasium as gym
import numpy as np
import torch

from softq_ref import tabular
from softq_ref.sampler import svgd_surrogate_loss
from softq_ref.soft_value import soft_value_uniform_box
from softq_ref.sql import SoftQLearning
from softq_ref.networks import SamplingNetwork
from softq_ref.svgd import median_bandwidth, pairwise_sq_dists, rbf_kernel, svgd_direction

from .mutants import Mutant

__all__: list[str] = []


# -- contract sentences ------------------------------------------------------------------------------
class QIterationStopsOnStep(Mutant):
    bug = "soft_q_iteration stops at ||Q_k - Q_(k-1)|| <= tol, not at the a-posteriori bound gamma/(1-gamma) ||.|| <= tol"
    catches = ("A2.loose_tolerance",)

    def soft_q_iteration(self, R, P, gamma, alpha, tol):
        Q = np.zeros_like(np.asarray(R, dtype=np.float64))
        for _ in range(200_000):
            Qn = tabular.soft_bellman_operator(Q, R, P, gamma, alpha)
            step = float(np.max(np.abs(Qn - Q)))
            Q = Qn
            if step <= tol:
                break
        return Q


class SampleReseeded(Mutant):
    bug = "sample re-seeds its noise generator on every call (the same actions every call)"
    catches = ("D.sample_contract",)

    def sample(self, handle, n):
        net, _ = handle
        with torch.no_grad():
            return net(torch.zeros(1, 1), n, generator=torch.Generator().manual_seed(0))[0]


class SampleSharedNoise(Mutant):
    bug = "sample draws one noise vector per call and repeats it for all n actions"
    catches = ("D.sample_contract",)

    def sample(self, handle, n):
        net, gen = handle
        with torch.no_grad():
            xi = torch.randn(1, 1, net.act_dim, generator=gen).expand(1, n, net.act_dim)
            return net.actions_from_noise(torch.zeros(1, 1), xi)[0]


class SampleBeyondBounds(Mutant):
    bug = "sampled actions scaled by 1.25 after the tanh (leave the action box)"
    catches = ("D.sample_contract",)

    def sample(self, handle, n):
        return 1.25 * super().sample(handle, n)


class ActionsDrawOwnNoise(Mutant):
    bug = "actions_from_noise ignores the given xi and draws fresh noise"
    catches = ("ALG1.agent_contract",)

    def actions_from_noise(self, agent, obs, xi):
        return super().actions_from_noise(agent, obs, torch.randn(xi.shape, generator=agent.generator))


class _QAscent(SoftQLearning):
    def q_update(self, batch):
        for g in self.q_optimizer.param_groups:
            g["lr"] = -abs(g["lr"])  # ascends eq. 11
        return super().q_update(batch)


class QUpdateAscends(Mutant):
    bug = "q_update ascends the eq. 11 loss (sign error in the Q step)"
    catches = ("ALG1.agent_contract",)
    agent_class = _QAscent


class QValuesIgnoresTarget(Mutant):
    bug = "q_values returns the online Q when asked for the target Q"
    catches = ("ALG1.target_frozen",)

    def q_values(self, agent, obs, act, target):
        return super().q_values(agent, obs, act, False)


class SyncTargetNoop(Mutant):
    bug = "sync_target does not copy theta into theta-bar"
    catches = ("ALG1.target_frozen",)

    def sync_target(self, agent):
        pass


class AgentIgnoresAlpha(Mutant):
    bug = "make_agent ignores the temperature it is given (keeps alpha = 1)"
    catches = ("ALG1.td_target_terms",)

    def make_agent(self, obs_dim, act_dim, alpha, gamma, seed):
        return super().make_agent(obs_dim, act_dim, 1.0, gamma, seed)


class KernelWidthDoubled(Mutant):
    bug = "RBF kernel exp(-||x - y||^2 / (2h)) (with its matching gradient) instead of exp(-||x - y||^2 / h)"
    catches = ("C1.stein_identity",)

    def rbf_kernel(self, x, y, h):
        return rbf_kernel(x, y, 2 * h if isinstance(h, (int, float)) else 2 * torch.as_tensor(h))


class SamplePolicyReseeded(Mutant):
    bug = "sample_policy re-seeds its noise on every call (the same actions every call)"
    catches = ("ALG1.trainer_contract",)

    def sample_policy(self, policy, obs, n):
        with torch.no_grad():
            return policy.sampler(torch.as_tensor(obs, dtype=torch.float32), n, generator=torch.Generator().manual_seed(0))


class AgentIgnoresGamma(Mutant):
    bug = "make_agent ignores the discount it is given (keeps a default gamma = 0.99)"
    catches = ("ALG1.td_target_eq10",)

    def make_agent(self, obs_dim, act_dim, alpha, gamma, seed):
        return super().make_agent(obs_dim, act_dim, alpha, 0.99, seed)


# -- which parameters and particles drive eq. 13 (ALG1.policy_update_terms) ---------------------------------
class _PolicyOnTargetQ(SoftQLearning):
    def policy_update(self, batch):
        online, self.q = self.q, self.q_target  # the energy of eq. 13 is theta-bar instead of theta
        try:
            return super().policy_update(batch)
        finally:
            self.q = online


class _PolicyOnStaleQ(SoftQLearning):
    def q_update(self, batch):
        self._q_before_step = copy.deepcopy(self.q)
        return super().q_update(batch)

    def policy_update(self, batch):
        online, self.q = self.q, getattr(self, "_q_before_step", self.q)  # Q from before the last Q step
        try:
            return super().policy_update(batch)
        finally:
            self.q = online


class _PolicyOnReplayParticles(SoftQLearning):
    def policy_update(self, batch):
        obs = batch["obs"]
        c = self.config
        actions = self.sampler(obs, c.svgd_particles, generator=self.generator)
        replayed = batch["action"][:, None, :].expand(-1, c.n_fixed, -1)  # kernel sources x_j from the replay
        actions = torch.cat([replayed, actions[:, c.n_fixed:]], dim=1)
        loss, stats = svgd_surrogate_loss(obs, actions, self.q, self.internal_alpha, c.n_fixed, c.bandwidth_rule,
                                          c.squash_correction)
        self.policy_optimizer.zero_grad()
        loss.backward()
        self.policy_optimizer.step()
        return {"policy_surrogate": float(loss.detach())}


class PolicyUsesTargetQ(Mutant):
    bug = "the policy update's eq. 13 driving term uses the target Q (theta-bar) instead of the online Q"
    catches = ("ALG1.policy_update_terms",)
    agent_class = _PolicyOnTargetQ


class PolicyUsesStaleQ(Mutant):
    bug = "the policy update uses the Q parameters from before the last Q step (a stale copy)"
    catches = ("ALG1.policy_update_terms",)
    agent_class = _PolicyOnStaleQ


class PolicyUsesReplayActions(Mutant):
    bug = "the fixed SVGD particles x_j are the replayed actions, not the sampler's own actions"
    catches = ("ALG1.policy_update_terms",)
    agent_class = _PolicyOnReplayParticles


# -- bug classes reported in public max-ent RL code ---------------------------------------------------------
class _TDNoTemperature(SoftQLearning):
    def soft_value_target(self, next_obs):
        with torch.no_grad():
            q = self.q_target(next_obs, self.proposal_actions(next_obs.shape[0]))
            return soft_value_uniform_box(q, 1.0, self.act_dim)  # eq. 10 at alpha = 1 whatever alpha is


class _SoftPartOutsideMask(SoftQLearning):
    def td_target(self, batch):
        with torch.no_grad():
            q = self.q_target(batch["next_obs"], self.proposal_actions(batch["next_obs"].shape[0]))
            v = soft_value_uniform_box(q, self.internal_alpha, self.act_dim)
            hard = q.max(-1).values
            # the entropy part of the soft value (V_hat - max_j Q_j) escapes the (1 - terminated) mask
            return self.reward_scale * batch["reward"] + self.config.gamma * ((1 - batch["terminated"]) * hard + (v - hard))


class _LogProposalPerDim(SoftQLearning):
    def soft_value_target(self, next_obs):
        # log q(a) = -log 2 per dimension, not summed: (B, M, d) broadcast and averaged instead of summed over d
        return super().soft_value_target(next_obs) - self.internal_alpha * (self.act_dim - 1) * math.log(2.0)


class _TDHardMax(SoftQLearning):
    def soft_value_target(self, next_obs):
        with torch.no_grad():
            q = self.q_target(next_obs, self.proposal_actions(next_obs.shape[0]))
            return q.max(-1).values  # the next state's entropy is missing from the target


class TDMissingTemperature(Mutant):
    bug = "eq. 10 value target evaluated at alpha = 1 whatever the temperature (haarnoja/softqlearning issue 5)"
    catches = ("ALG1.td_target_terms", "ALG1.td_target_eq10")
    agent_class = _TDNoTemperature


class TDEntropyOutsideMask(Mutant):
    bug = "the entropy part of V_hat(s') sits outside the (1 - terminated) mask (SB3 issue 76)"
    catches = ("ALG1.td_target_terms", "ALG1.target_frozen")
    agent_class = _SoftPartOutsideMask


class TDLogProposalNotSummed(Mutant):
    bug = "log q(a) of the uniform proposal not summed over action dimensions: alpha log 2 for alpha d log 2 (tianshou issue 40)"
    catches = ("ALG1.td_target_terms",)
    agent_class = _LogProposalPerDim


class TDMissingFutureEntropy(Mutant):
    bug = "the target value is max_j Q(s', a_j): the next state's entropy is missing (rlkit issue 43)"
    catches = ("ALG1.td_target_terms", "ALG1.td_target_eq10")
    agent_class = _TDHardMax


class BandwidthFromStateCount(Mutant):
    bug = "kernel bandwidth med^2 / log(number of states in the batch) instead of log(number of particles)"
    catches = ("C3.bandwidth",)

    def bandwidth(self, fixed, updated):
        states = fixed.shape[0] if fixed.dim() > 2 else 1
        return median_bandwidth(pairwise_sq_dists(fixed, updated), self.config.bandwidth_rule, max(states, 2))


# -- the training loop (ALG1.truncation_bootstrap) -----------------------------------------------------------
class _DoneAs(gym.Wrapper):
    """Rewrites the env's (terminated, truncated) flags the way a buggy training loop reads them."""

    def __init__(self, env, rule):
        super().__init__(env)
        self.rule = rule

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        return (obs, r, *self.rule(term, trunc), info)


class _LoopMutant:
    """Mixin: train() on the task's env with rewritten done flags."""

    done_rule = staticmethod(lambda term, trunc: (term, trunc))

    def train(self, task, steps, alpha, seed):
        make = task.make_env
        wrapped = dataclasses.replace(task, make_env=lambda: _DoneAs(make(), self.done_rule))
        return super().train(wrapped, steps, alpha, seed)


class TruncationStoredAsTerminal(_LoopMutant, Mutant):
    bug = "time-limit truncation stored as terminal in the replay (cleanrl issue 460, rlpyt issue 57)"
    catches = ("ALG1.truncation_bootstrap",)
    done_rule = staticmethod(lambda term, trunc: (term or trunc, False))


class BootstrapThroughTermination(_LoopMutant, Mutant):
    bug = "terminal transitions stored as non-terminal (the loop only resets the episode): bootstraps through termination"
    catches = ("ALG1.truncation_bootstrap",)
    done_rule = staticmethod(lambda term, trunc: (False, term or trunc))


class PreSquashSVGD(Mutant):
    bug = ("SVGD direction computed in the pre-squash space u (kernel and grad Q w.r.t. u) but applied to the squashed "
           "actions a = tanh(u) (softlearning issue 143)")
    # The distortion is in the shape and the tails, not always in the quadrant masses: under the 5-fit rule
    # (conformance/trained.py) some fit passes D.cell_masses on master seeds 0 and 2; D.mmd and D.support_tails
    # fail all 5 fits on seeds 0-2.
    catches = ("D.mmd", "D.support_tails")

    def fit_sampler(self, energy, action_dim, alpha, steps, seed):
        torch.manual_seed(seed)
        net = SamplingNetwork(1, action_dim, (64, 64))
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        obs, n_particles, n_fixed = torch.zeros(1, 1), 32, 16
        for _ in range(steps):
            xi = net.sample_noise(1, n_particles, gen)
            u = net.net(torch.cat([obs.unsqueeze(-2).expand(1, n_particles, 1), xi], -1))  # pre-squash
            a = torch.tanh(u)
            fixed_u = u[:, :n_fixed].detach().requires_grad_(True)
            grad_u = torch.autograd.grad(energy(torch.tanh(fixed_u)).sum(), fixed_u)[0]  # dQ/da (1 - a^2)
            fixed_u, upd_u = fixed_u.detach(), u[:, n_fixed:].detach()
            sq = pairwise_sq_dists(fixed_u, upd_u)
            h = median_bandwidth(sq, self.config.bandwidth_rule, n_fixed)
            k, grad_k = rbf_kernel(fixed_u, upd_u, h)
            direction = svgd_direction(k, grad_k, grad_u, alpha)  # a direction in u ...
            loss = -(direction.detach() * a[:, n_fixed:]).sum(-1).mean()  # ... applied to a = tanh(u)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return net, gen


class _NoRepulsionAgent(SoftQLearning):
    def policy_update(self, batch):
        obs = batch["obs"]
        c = self.config
        actions = self.sampler(obs, c.svgd_particles, generator=self.generator)
        loss, stats = svgd_surrogate_loss(obs, actions, self.q, 0.0, c.n_fixed, c.bandwidth_rule, "none")
        self.policy_optimizer.zero_grad()
        loss.backward()
        self.policy_optimizer.step()
        return {"policy_surrogate": float(loss.detach())}


class AgentNoRepulsiveTerm(Mutant):
    bug = "the agent's eq. 13 direction without the repulsive alpha grad k term (SVGD collapses to gradient ascent)"
    # The trained specs see the consequence: a policy collapsed onto one mode (no dip, one goal).
    catches = ("ALG1.policy_update_alphas", "ALG1.policy_update_eq13", "ALG1.bandit_optimum", "ALG1.multigoal_coverage")
    agent_class = _NoRepulsionAgent


# -- the target copy schedule under target_update = "hard(N)" (ALG1.target_frozen) ----------------------------
class _OwnTargetSchedule(SoftQLearning):
    """The implementation copies theta -> theta-bar itself, counting its own training steps (q_update calls).

    `copies_at(step)` is the loop's condition; the correct one is step % every == 0."""

    every = 4

    def copies_at(self, step: int) -> bool:
        return step % self.every == 0

    def q_update(self, batch):
        out = super().q_update(batch)
        self.training_steps = getattr(self, "training_steps", 0) + 1
        if self.copies_at(self.training_steps):
            self.sync_target()
        return out


class _CopiesEveryStep(_OwnTargetSchedule):
    def copies_at(self, step):
        return True


class _NeverCopies(_OwnTargetSchedule):
    def copies_at(self, step):
        return False


class _CopiesEvery2N(_OwnTargetSchedule):
    def copies_at(self, step):
        return step % (2 * self.every) == 0


class _CopiesOnNonMultiples(_OwnTargetSchedule):
    def copies_at(self, step):
        return bool(step % self.every)  # `if step % N:` instead of `if step % N == 0:`


class OwnTargetSchedule:
    """Mixin: the reference agent declaring target_update = "hard(4)" (copies inside q_update, no sync_target)."""

    agent_class = _OwnTargetSchedule
    sync_target = None  # the schedule is the implementation's own business under hard(N)

    def __init__(self, config=None):
        super().__init__(config)
        self.conventions = {**self.conventions, "target_update": f"hard({_OwnTargetSchedule.every})"}


class TargetCopiedEveryStep(OwnTargetSchedule, Mutant):
    bug = "declares target_update = hard(4) but copies theta -> theta-bar after every training step"
    catches = ("ALG1.target_frozen",)
    agent_class = _CopiesEveryStep


class TargetNeverCopied(OwnTargetSchedule, Mutant):
    bug = "declares target_update = hard(4) but never copies theta -> theta-bar (the copy is never reached)"
    catches = ("ALG1.target_frozen",)
    agent_class = _NeverCopies


class TargetCopyIntervalDoubled(OwnTargetSchedule, Mutant):
    bug = "declares target_update = hard(4) but copies every 8 training steps (interval off by a factor of 2)"
    catches = ("ALG1.target_frozen",)
    agent_class = _CopiesEvery2N


class TargetCopyConditionInverted(OwnTargetSchedule, Mutant):
    bug = "target copy under `if step % N:` (every step but the multiples of N) instead of `if step % N == 0:`"
    catches = ("ALG1.target_frozen",)
    agent_class = _CopiesOnNonMultiples


# -- a temperature on the wrong power (issue 14 section 3; D.small_alpha) -------------------------------------
class _SamplerRepulsionPower:
    """Mixin: fit_sampler whose eq. 13 repulsive term is alpha^power grad k (the driving term k grad Q unchanged)."""

    power = 1.0

    def fit_sampler(self, energy, action_dim, alpha, steps, seed):
        from softq_ref.sampler import train_sampler

        torch.manual_seed(seed)
        net = self.sampler_network(1, action_dim, (64, 64))
        gen = torch.Generator().manual_seed(seed)
        train_sampler(net, lambda o, a: energy(a), torch.zeros(1, 1), alpha**self.power, steps, lr=1e-3,
                      n_particles=32, bandwidth_rule=self.config.bandwidth_rule, squash_correction="none", generator=gen)
        return net, gen


class SamplerRepulsionAlphaSquared(_SamplerRepulsionPower, Mutant):
    bug = "the sampler's eq. 13 repulsive term is alpha^2 grad k instead of alpha grad k (fits exp(Q/alpha^2))"
    catches = ("D.small_alpha",)
    power = 2.0


class SamplerRepulsionWithoutAlpha(_SamplerRepulsionPower, Mutant):
    bug = ("the sampler's eq. 13 repulsive term is grad k without alpha (the reward-scale code's alpha = 1 mixed "
           "with the paper's Q): fits exp(Q)")
    catches = ("D.small_alpha",)
    power = 0.0


# -- n-step returns (ALG1.nstep_discount): a small stand-in, since the reference has none --------------------
class _NStepAgent(SoftQLearning):
    """The reference agent with n-step targets: reward (B, n) = r_t..r_(t+n-1), next_obs = s_(t+n);
    a (B,) reward is a one-step transition (what every other agent spec sends)."""

    def bootstrap_discount(self, n: int) -> float:
        return self.config.gamma**n

    def td_target(self, batch):
        r = batch["reward"]
        if r.dim() == 1:
            return super().td_target(batch)
        n = r.shape[1]
        disc = self.config.gamma ** torch.arange(n, dtype=r.dtype)
        v_next = self.soft_value_target(batch["next_obs"])
        return self.reward_scale * (r * disc).sum(1) + self.bootstrap_discount(n) * (1.0 - batch["terminated"]) * v_next


class _NStepBootstrapGamma(_NStepAgent):
    def bootstrap_discount(self, n):
        return self.config.gamma  # the one-step discount kept for the n-step bootstrap


class NStepStandIn:
    """Mixin: an adapter declaring 3-step returns (n_step = "3") on the reference agent."""

    agent_class = _NStepAgent

    def __init__(self, config=None):
        super().__init__(config)
        self.conventions = {**self.conventions, "n_step": "3"}


class NStepBootstrapGamma(NStepStandIn, Mutant):
    bug = "n-step returns whose bootstrap term is discounted by gamma instead of gamma^n"
    catches = ("ALG1.nstep_discount",)
    agent_class = _NStepBootstrapGamma


class _TDTemperatureSquared(SoftQLearning):
    def soft_value_target(self, next_obs):
        with torch.no_grad():
            q = self.q_target(next_obs, self.proposal_actions(next_obs.shape[0]))
            return soft_value_uniform_box(q, self.internal_alpha**2, self.act_dim)  # eq. 10 at alpha^2


class TDTemperatureSquared(Mutant):
    bug = "eq. 10 value target evaluated at alpha^2 instead of alpha (the temperature applied twice)"
    # ALG1.td_target_terms fails it at alpha 0.05 (V_hat below alpha d log 2 + min_a Q_target); ALG1.td_target_eq10
    # (alpha 0.5) names the alpha^2 reading of the ratio among its candidates.
    catches = ("ALG1.td_target_terms", "ALG1.td_target_eq10")
    agent_class = _TDTemperatureSquared


class _AgentRepulsionAlphaSquared(SoftQLearning):
    def policy_update(self, batch):
        obs = batch["obs"]
        c = self.config
        actions = self.sampler(obs, c.svgd_particles, generator=self.generator)
        loss, stats = svgd_surrogate_loss(obs, actions, self.q, self.internal_alpha**2, c.n_fixed, c.bandwidth_rule,
                                          c.squash_correction)  # repulsive term alpha^2 grad k (and alpha^2 squash term)
        self.policy_optimizer.zero_grad()
        loss.backward()
        self.policy_optimizer.step()
        return {"policy_surrogate": float(loss.detach())}


class AgentRepulsionAlphaSquared(Mutant):
    bug = "the agent's eq. 13 repulsive term is alpha^2 grad k instead of alpha grad k (the policy targets exp(Q/alpha^2))"
    # Passes the white-box alignment specs and ALG1.bandit_optimum at alpha 0.5 (master seed 0); the thorough-profile
    # small-temperature bandit sees the policy collapse onto one mode.
    catches = ("ALG1.bandit_small_alpha",)
    agent_class = _AgentRepulsionAlphaSquared
