import numpy as np
import torch


class AdaptiveIsotropicGaussianKernel:
    """k(x, y) = exp(-||x - y||^2 / h), h = max(median ||x - y||^2 / log Kx, h_min) per leading index;
    `kappa` (..., Kx, Ky) and `grad` = d kappa / d xs (..., Kx, Ky, D)."""

    def __init__(self, xs, ys, h_min=1e-3):
        kx, ky = xs.shape[-2], ys.shape[-2]
        diff = xs.unsqueeze(-2) - ys.unsqueeze(-3)
        sq = diff.pow(2).sum(-1)
        top = sq.reshape(xs.shape[:-2] + (kx * ky,)).topk(k=kx * ky // 2 + 1).values
        h = torch.max(top[..., -1] / np.log(kx), torch.FloatTensor([h_min])).detach()
        self.kappa = torch.exp(-sq / h[..., None, None])
        self.grad = -2 * diff / h[..., None, None, None] * self.kappa.unsqueeze(-1)
