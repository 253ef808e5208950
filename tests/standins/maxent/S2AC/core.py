import itertools
from copy import deepcopy

import numpy as np
import torch
from render_browser import render_browser  # noqa: F401
from torch.optim import Adam

from actorcritic import ActorCritic
from utils import AttrDict, count_vars  # noqa: F401  (count_vars is missing from utils.py, as at HEAD)


class MaxEntrRL:
    def __init__(self, train_env, test_env, env, actor, critic_kwargs=AttrDict(), actor_kwargs=AttrDict(), device="cuda",
                 RL_kwargs=AttrDict(), optim_kwargs=AttrDict(), tb_logger=None, need_q=False):
        self.actor, self.RL_kwargs, self.optim_kwargs = actor, RL_kwargs, optim_kwargs
        self.obs_dim, self.act_dim = train_env.observation_space.shape[0], train_env.action_space.shape[0]
        self.ac = ActorCritic(actor, train_env.observation_space, train_env.action_space, "", False, "", critic_kwargs,
                              actor_kwargs)
        self.ac_targ = deepcopy(self.ac)
        self.pi_optimizer = Adam(self.ac.pi.parameters(), lr=optim_kwargs.lr_actor)
        self.q_params = itertools.chain(self.ac.q1.parameters(), self.ac.q2.parameters())
        self.q_optimizer = Adam(self.q_params, lr=optim_kwargs.lr_critic)
        self.debugger = None

    def compute_loss_q(self, data, itr):
        o, a, r, o2, d = data["obs"], data["act"], data["rew"], data["obs2"], data["done"]
        q1, q2 = self.ac.q1(o, a), self.ac.q2(o, a)
        n = self.ac.pi.num_particles
        o2 = o2.view(-1, 1, self.obs_dim).repeat(1, n, 1).view(-1, self.obs_dim)
        a2, logp_a2 = self.ac(o2, action_selection=None, with_logprob=True, in_q_loss=False)  # policy samples
        with torch.no_grad():
            q_pi_targ = torch.min(self.ac_targ.q1(o2, a2).view(-1, n), self.ac_targ.q2(o2, a2).view(-1, n))
            alpha = self.RL_kwargs.alpha_c
            V_soft_ = alpha * torch.logsumexp(q_pi_targ / alpha, dim=-1)
            V_soft_ += alpha * (self.act_dim * np.log(2) - np.log(n))  # the uniform-box formula
            backup = r + self.RL_kwargs.gamma * (1 - d) * V_soft_
            self.debugger.add_scalars("Q_target/", {"backup": backup.mean()}, itr)
        return ((q1 - backup) ** 2).mean() + ((q2 - backup) ** 2).mean()

    def compute_loss_pi(self, data, itr):
        n = self.ac.pi.num_particles
        o = data["obs"].view(-1, 1, self.obs_dim).repeat(1, n, 1).view(-1, self.obs_dim)
        a, _ = self.ac(o, action_selection=None, with_logprob=True)
        q_pi = torch.min(self.ac.q1(o, a).view(-1, n), self.ac.q2(o, a).view(-1, n)).mean(-1)
        a_updated, _ = self.ac(o, action_selection=None, with_logprob=True)
        grad_q = torch.autograd.grad((q_pi * n).sum(), a)[0].view(-1, n, self.act_dim).unsqueeze(2).detach()
        a, a_updated = a.view(-1, n, self.act_dim), a_updated.view(-1, n, self.act_dim)
        kappa, _, _, grad_kappa = self.ac.pi.Kernel(input_1=a, input_2=a_updated)
        a_grad = (1 / n) * torch.sum(kappa.unsqueeze(-1) * grad_q + grad_kappa, dim=1)  # no alpha, as at HEAD
        return {"loss_pi_sql": -a_updated, "grad_loss_pi_sql": a_grad, "loss_pi": None}

    def update(self, data, itr):
        self.q_optimizer.zero_grad()
        self.compute_loss_q(data, itr).backward()
        self.q_optimizer.step()
        out = self.compute_loss_pi(data, itr)
        self.pi_optimizer.zero_grad()
        out["loss_pi_sql"].backward(out["grad_loss_pi_sql"])
        self.pi_optimizer.step()
        with torch.no_grad():
            for p, p_targ in zip(self.ac.parameters(), self.ac_targ.parameters()):
                p_targ.data.mul_(self.optim_kwargs.polyak)
                p_targ.data.add_((1 - self.optim_kwargs.polyak) * p.data)
