"""softq_ref: the reference implementation of soft Q-learning (Haarnoja et al., ICML 2017)."""
__version__ = "0.1.0"
