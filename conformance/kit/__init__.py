"""Math-free helpers for wrapping real soft Q-learning code in a short adapter (see capture.py and
imports.py for worked examples; conformance/third_party/ports/ for complete adapters)."""
from .capture import (EnergyQ, FixedDraws, GivenQ, LinearQ, ParticleSets, flatten_sets, frozen, given_noise, regression_target,
                      same_randomness, swapped)
from .imports import Inert, import_port, shimmed_imports

__all__ = ["EnergyQ", "FixedDraws", "GivenQ", "LinearQ", "ParticleSets", "flatten_sets", "frozen", "given_noise",
           "regression_target", "same_randomness", "swapped", "Inert", "import_port", "shimmed_imports"]
