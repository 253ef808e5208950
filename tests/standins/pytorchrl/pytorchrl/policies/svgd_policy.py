import numpy as np
import torch
import torch.nn as nn


class SVGDPolicy(nn.Module):
    """a = f(obs, xi): k noise vectors xi ~ N(0, I) drawn inside forward, one set shared by the batch."""

    def __init__(self, observation_dim, action_dim, hidden_sizes, hidden_nonlinearity=nn.ReLU):
        super().__init__()
        self.action_dim = action_dim
        self.observation_layer = nn.Linear(observation_dim, hidden_sizes[0], bias=False)
        self.noise_layer = nn.Linear(action_dim, hidden_sizes[0])
        layers = [hidden_nonlinearity()]
        for a, b in zip(hidden_sizes[:-1], hidden_sizes[1:]):
            layers += [nn.Linear(a, b), hidden_nonlinearity()]
        self.rest_layers = nn.Sequential(*layers, nn.Linear(hidden_sizes[-1], action_dim))

    def forward(self, obs_var, k):
        shape = np.ones(obs_var.dim() + 1, dtype=np.int64)
        shape[-2:] = (k, self.action_dim)
        self.xi = torch.randn(torch.Size(shape.tolist()))
        return self.rest_layers(self.observation_layer(obs_var.unsqueeze(-2)) + self.noise_layer(self.xi))
