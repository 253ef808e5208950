import torch
import torch.nn as nn

from actors.kernels import RBF
from networks import MLPFunction


class ActorSql(nn.Module):
    def __init__(self, actor, obs_dim, act_dim, act_limit, num_svgd_particles, test_action_selection, batch_size, device,
                 hidden_sizes, q1, q2, adaptive_sig, kernel_sigma=None, activation=None):
        super().__init__()
        self.act_dim, self.act_limit, self.num_particles = act_dim, act_limit, num_svgd_particles
        self.svgd_net = MLPFunction(obs_dim, act_dim, act_dim, hidden_sizes, activation)
        self.Kernel = RBF(num_particles=num_svgd_particles, sigma=kernel_sigma, adaptive_sig=adaptive_sig)

    def act(self, obs, action_selection=None, with_logprob=None, itr=None):
        a_0 = torch.rand((len(obs), self.act_dim)).view(-1, self.act_dim)
        a = torch.tanh(self.svgd_net(obs, a_0)) * self.act_limit
        return a.view(-1, self.act_dim), None
