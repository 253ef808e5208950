import numpy as np
import torch


class RBF(torch.nn.Module):
    """adaptive_sig = 4: sigma^2 = mean(d^2) / 2 / (2 log(m + 1)); k = exp(-d^2 / (1e-8 + 2 sigma^2))."""

    def __init__(self, num_particles=None, sigma=None, adaptive_sig=4, device=None):
        super().__init__()
        self.num_particles, self.sigma, self.adaptive_sig = num_particles, sigma, adaptive_sig

    def forward(self, input_1, input_2, h_min=1e-3):
        num_particles = input_2.size()[-2]
        diff = input_1.unsqueeze(-2) - input_2.unsqueeze(-3)
        dist_sq = diff.pow(2).sum(-1).unsqueeze(-1)
        mean_sq = torch.mean(dist_sq.detach().reshape(-1, num_particles * num_particles), dim=1) / 2
        sigma = torch.sqrt(mean_sq.reshape(-1, 1, 1, 1) / (2 * np.log(num_particles + 1.0)))
        gamma = 1.0 / (1e-8 + 2 * sigma**2)
        kappa = (-gamma * dist_sq).exp()
        return kappa.squeeze(-1), diff, gamma, -2.0 * (diff * gamma) * kappa
