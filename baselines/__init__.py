"""softq_baselines: the comparison algorithms of the paper, trained by softq_ref.training."""
from .ddpg import DDPG, DDPGConfig

__all__ = ["DDPG", "DDPGConfig"]
