"""Agents: one module per algorithm with a frozen `Config` and pure `init`, `update`, `act` (and optional
`prepare_dataset`, the data transform of the algorithm's paper)."""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

from o2o.agents import bc, iql, sac, td3_bc
from o2o.agents.common import Spec
from o2o.errors import O2OError

# name -> (module, config overrides that define the variant)
ALGORITHMS: dict[str, tuple[ModuleType, dict[str, Any]]] = {
    "bc": (bc, {}),
    "bc10": (bc, {"top_fraction": 0.1}),
    "td3bc": (td3_bc, {}),
    "iql": (iql, {}),
    "sac": (sac, {}),
    "td3": (td3_bc, {"behavior_cloning": False, "normalize_observations": False}),
    "rlpd": (sac, {"num_critics": 10, "critic_subset": 2, "critic_layer_norm": True, "actor_uses_mean_q": True,
                   "target_entropy_per_action_dim": -0.5}),
}
ALIASES = {"td3+bc": "td3bc", "td3_bc": "td3bc", "10%bc": "bc10", "%bc": "bc10"}


def get_algorithm(name: str, overrides: dict[str, Any] | None = None) -> tuple[ModuleType, Any]:
    """The agent module and its resolved config for an algorithm name and `field=value` overrides."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in ALGORITHMS:
        raise O2OError(f"unknown algorithm {name!r}; choose one of {', '.join(ALGORITHMS)}")
    module, variant = ALGORITHMS[key]
    fields = {f.name: f for f in dataclasses.fields(module.Config)}
    values = {**variant}
    for field_name, value in (overrides or {}).items():
        if field_name not in fields:
            raise O2OError(f"{key} has no config field {field_name!r}; fields: {', '.join(fields)}")
        values[field_name] = _coerce(value, fields[field_name], key)
    return module, module.Config(**values)


def _coerce(value: Any, field: dataclasses.Field, algo: str) -> Any:
    if not isinstance(value, str):
        return tuple(value) if isinstance(value, list) else value
    default = field.default
    try:
        if isinstance(default, bool):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(value)
            return value.lower() in ("true", "1")
        if isinstance(default, tuple):
            return tuple(int(v) for v in value.replace("(", "").replace(")", "").split(",") if v.strip())
        return type(default)(value)
    except ValueError:
        raise O2OError(f"{algo}: config field {field.name} = {value!r} is not a valid {type(default).__name__}") from None


__all__ = ["ALGORITHMS", "Spec", "get_algorithm"]
