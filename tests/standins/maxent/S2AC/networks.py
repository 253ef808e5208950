import torch
import torch.nn as nn


def mlp(sizes, activation, output_activation=nn.Identity):
    layers = []
    for j in range(len(sizes) - 1):
        layers += [nn.Linear(sizes[j], sizes[j + 1]), (activation if j < len(sizes) - 2 else output_activation)()]
    return nn.Sequential(*layers)


class MLPFunction(nn.Module):
    def __init__(self, obs_dim, act_dim, out_dim, hidden_sizes, activation=nn.Identity, gpu_id=0):
        super().__init__()
        self.net = mlp([obs_dim + act_dim] + list(hidden_sizes) + [out_dim], activation)

    def forward(self, obs, act):
        return torch.squeeze(self.net(torch.cat([obs, act], dim=-1)), -1)
