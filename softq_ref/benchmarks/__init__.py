"""Regression benchmarks reproducing the paper experiments (tiers smoke / ci / paper)."""
