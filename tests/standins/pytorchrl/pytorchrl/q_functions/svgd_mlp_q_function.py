import torch
import torch.nn as nn
from rllab.misc.overrides import overrides


class SVGDMLPQFunction(nn.Module):
    """Q(obs, act): the first layer adds obs and action projections, so leading axes broadcast."""

    def __init__(self, observation_dim, action_dim, hidden_sizes, hidden_nonlinearity=nn.ReLU):
        super().__init__()
        self.observation_layer = nn.Linear(observation_dim, hidden_sizes[0], bias=False)
        self.action_layer = nn.Linear(action_dim, hidden_sizes[0], bias=False)
        self.bias = nn.Parameter(torch.zeros(hidden_sizes[0]))
        layers = [hidden_nonlinearity()]
        for a, b in zip(hidden_sizes[:-1], hidden_sizes[1:]):
            layers += [nn.Linear(a, b), hidden_nonlinearity()]
        self.rest_layers = nn.Sequential(*layers, nn.Linear(hidden_sizes[-1], 1))

    def forward(self, obs_var, act_var):
        return self.rest_layers(self.bias + self.observation_layer(obs_var) + self.action_layer(act_var))

    @overrides
    def get_param_values(self):
        return torch.cat([p.data.reshape(-1) for _, p in sorted(self.named_parameters())])

    @overrides
    def set_param_values(self, flat):
        at = 0
        for _, p in sorted(self.named_parameters()):
            p.data.copy_(flat[at:at + p.numel()].view_as(p))
            at += p.numel()
