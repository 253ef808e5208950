"""The conformance specs as data: one TOML file per property family, loaded into `Spec` records.

Each `[[spec]]` table has: id, title, source (paper section / equation / theorem / appendix,
or the catalogue entry in checkable-properties.md), level (operator | estimator | sampler |
agent | benchmark), capability (what an implementation must expose for the spec to apply),
kind (exact | statistical), statement (one paragraph), conventions (the declared conventions
its meaning depends on) and params (tolerances, sample sizes, false-alarm budget, time limit).
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

__all__ = ["Spec", "load_specs", "load_check_specs", "load_claim_specs", "SPEC_FILES", "LEVELS", "KINDS", "CAPABILITIES", "SpecError"]

SPEC_FILES = ("tabular.toml", "estimator.toml", "svgd.toml", "sampler.toml", "composition.toml", "agent.toml",
              "contracts.toml", "agent_terms.toml", "trainer.toml",  # issue 14: contracts, term separation, loop
              "claims.toml")  # claims.toml: CLAIM.* benchmark claims, decided by softq_ref.benchmarks.claims
LEVELS = ("operator", "estimator", "sampler", "agent", "benchmark")
KINDS = ("exact", "statistical")
CAPABILITIES = ("tabular", "soft_value_estimator", "svgd", "sampler", "agent", "trainer")
CONVENTIONS = ("value_proposal", "squash_correction", "bandwidth_rule", "temperature_mode", "particle_counts",
               "target_update", "critic_reduction", "precision",
               "out_of_box_gradient", "direction_log_det", "n_step")
_REQUIRED = ("id", "title", "source", "level", "capability", "kind", "statement", "params")


class SpecError(ValueError):
    """A spec file is malformed; the message names the file, the spec and the field."""


@dataclass(frozen=True)
class Spec:
    id: str
    title: str
    source: str
    level: str
    capability: tuple[str, ...]
    kind: str
    statement: str
    params: dict[str, Any]
    conventions: tuple[str, ...] = ()
    family: str = ""
    file: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def false_alarm(self) -> float:
        """Per-spec false-alarm budget (0 for exact specs)."""
        return float(self.params.get("false_alarm", 0.0))

    @property
    def time_limit_s(self) -> float:
        return float(self.params.get("time_limit_s", 60.0))


def _parse(fname: str, raw: dict[str, Any]) -> Spec:
    where = f"specs/{fname}, spec {raw.get('id', '?')!r}"
    for key in _REQUIRED:
        if key not in raw:
            raise SpecError(f"{where}: missing field {key!r} (required: {_REQUIRED})")
    cap = raw["capability"]
    cap = (cap,) if isinstance(cap, str) else tuple(cap)
    if raw["level"] not in LEVELS:
        raise SpecError(f"{where}: level {raw['level']!r} not in {LEVELS}")
    if raw["kind"] not in KINDS:
        raise SpecError(f"{where}: kind {raw['kind']!r} not in {KINDS}")
    bad = [c for c in cap if c not in CAPABILITIES]
    if bad:
        raise SpecError(f"{where}: unknown capability {bad} (known: {CAPABILITIES})")
    conv = tuple(raw.get("conventions", ()))
    bad = [c for c in conv if c not in CONVENTIONS]
    if bad:
        raise SpecError(f"{where}: unknown convention {bad} (known: {CONVENTIONS})")
    if raw["kind"] == "statistical" and not 0 < float(raw["params"].get("false_alarm", 0)) < 1:
        raise SpecError(f"{where}: statistical specs must state params.false_alarm in (0, 1)")
    known = set(_REQUIRED) | {"conventions"}
    return Spec(
        id=raw["id"], title=raw["title"], source=raw["source"], level=raw["level"], capability=cap,
        kind=raw["kind"], statement=" ".join(raw["statement"].split()), params=dict(raw["params"]),
        conventions=conv, family=raw["id"].split(".")[0], file=fname,
        extra={k: v for k, v in raw.items() if k not in known},
    )


def load_specs() -> dict[str, Spec]:
    """All specs by id, in file order. Raises SpecError on a malformed or duplicate spec."""
    specs: dict[str, Spec] = {}
    root = resources.files(__name__)
    for fname in SPEC_FILES:
        data = tomllib.loads(root.joinpath(fname).read_text(encoding="utf-8"))
        for raw in data.get("spec", []):
            spec = _parse(fname, raw)
            if spec.id in specs:
                raise SpecError(f"specs/{fname}: duplicate spec id {spec.id!r} (also in {specs[spec.id].file})")
            specs[spec.id] = spec
    return specs


CLAIM_PREFIX = "CLAIM."  # paper claims, decided by benchmark verdicts (softq_ref.benchmarks.claims)


def load_claim_specs() -> dict[str, Spec]:
    """The experimental claims of the paper, decided from benchmark results."""
    return {k: s for k, s in load_specs().items() if k.startswith(CLAIM_PREFIX)}


def load_check_specs() -> dict[str, Spec]:
    """The specs the conformance suite checks on an implementation (everything but the claims)."""
    return {k: s for k, s in load_specs().items() if not k.startswith(CLAIM_PREFIX)}
