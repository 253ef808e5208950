import torch


def log_sum_exp(value, dim):
    top = value.max(dim=dim, keepdim=True).values
    return (top + (value - top).exp().sum(dim=dim, keepdim=True).log()).squeeze(dim)
