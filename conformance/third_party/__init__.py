"""Adapters wrapping third-party implementations (optional extras)."""
