"""Agents: one module per algorithm with a frozen `Config` and pure `init`, `update`, `act` (and optional
`prepare_dataset`, the data transform of the algorithm's paper)."""

from __future__ import annotations

import dataclasses
import types
import typing
from types import ModuleType
from typing import Any

from o2o.agents import awac, bc, cql, iql, sac, td3_bc
from o2o.agents.common import Spec
from o2o.errors import O2OError

# name -> (module, config overrides that define the variant)
ALGORITHMS: dict[str, tuple[ModuleType, dict[str, Any]]] = {
    "bc": (bc, {}),
    "bc10": (bc, {"top_fraction": 0.1}),
    "td3bc": (td3_bc, {}),
    "iql": (iql, {}),
    "awac": (awac, {}),
    "cql": (cql, {}),
    "calql": (cql, {"calibrated": True}),
    "sac": (sac, {}),
    "td3": (td3_bc, {"behavior_cloning": False, "normalize_observations": False}),
    "rlpd": (sac, {"num_critics": 10, "critic_subset": 2, "critic_layer_norm": True, "actor_uses_mean_q": True,
                   "target_entropy_per_action_dim": -0.5}),
    "wsrl": (sac, {}),
}

# How each algorithm runs online (o2o.train.online.OnlineSettings fields), from its paper.
ONLINE_DEFAULTS: dict[str, dict[str, Any]] = {
    "sac": {"warmup_steps": 5_000},
    "td3": {"warmup_steps": 25_000},  # TD3 paper: 25k random steps (start_timesteps)
    "iql": {"offline_sampling": "union", "warmup_steps": 0},  # IQL paper, Sec. 5.3: offline data stays in the buffer
    "awac": {"offline_sampling": "union", "warmup_steps": 0},  # AWAC paper: replay buffer seeded with the offline data
    "cql": {"offline_sampling": "union", "warmup_steps": 0},
    # TD3+BC's paper defines no fine-tuning; o2o keeps its BC term and the offline data, and never warms up at random
    "td3bc": {"offline_sampling": "union", "warmup_steps": 0},
    "calql": {"offline_sampling": "symmetric", "warmup_steps": 0},  # Cal-QL paper: mixing ratio 0.5 offline/online
    "rlpd": {"offline_sampling": "symmetric", "utd": 20, "warmup_steps": 0},  # RLPD paper: 50/50 batches, UTD 20
    # WSRL paper and code: 5k warm-up steps by the pre-trained policy, no offline data kept, UTD 4
    "wsrl": {"offline_sampling": "none", "warmup_policy": "pretrained", "warmup_steps": 5_000, "utd": 4},
}
# Config fields an online run inherits from the offline run it starts from, so that networks line up.
INHERITED_FIELDS = ("hidden_dims", "num_critics", "critic_layer_norm", "discount", "normalize_observations")
# Algorithms without a critic: nothing to fine-tune online with.
OFFLINE_ONLY = ("bc", "bc10")
ALIASES = {"td3+bc": "td3bc", "td3_bc": "td3bc", "10%bc": "bc10", "%bc": "bc10"}


def canonical_name(name: str) -> str:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in ALGORITHMS:
        raise O2OError(f"unknown algorithm {name!r}; choose one of {', '.join(ALGORITHMS)}")
    return key


def get_algorithm(
    name: str, overrides: dict[str, Any] | None = None, inherited: dict[str, Any] | None = None
) -> tuple[ModuleType, Any]:
    """The agent module and its config: `inherited` values (fields the Config lacks are ignored), then the variant's,
    then the user's `field=value` overrides."""
    key = canonical_name(name)
    module, variant = ALGORITHMS[key]
    fields = {f.name: f for f in dataclasses.fields(module.Config)}
    declared = typing.get_type_hints(module.Config)
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in (inherited or {}).items() if k in fields}
    values.update(variant)
    for field_name, value in (overrides or {}).items():
        if field_name not in fields:
            raise O2OError(f"{key} has no config field {field_name!r}; fields: {', '.join(fields)}")
        values[field_name] = _coerce(value, fields[field_name], declared[field_name], key)
    return module, module.Config(**values)


def _coerce(value: Any, field: dataclasses.Field, declared: Any, algo: str) -> Any:
    """A command-line string as the field's declared type (`int`, `float`, `bool`, `tuple[int, ...]`, or any of them
    `| None`, where "none" gives None)."""
    if not isinstance(value, str):
        return tuple(value) if isinstance(value, list) else value
    if typing.get_origin(declared) in (typing.Union, types.UnionType):
        if type(None) in typing.get_args(declared) and value.strip().lower() in ("none", "null", ""):
            return None
        declared = next(k for k in typing.get_args(declared) if k is not type(None))
    kind = typing.get_origin(declared) or declared
    try:
        if kind is bool:
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(value)
            return value.lower() in ("true", "1")
        if kind is tuple:
            return tuple(int(v) for v in value.replace("(", "").replace(")", "").split(",") if v.strip())
        return kind(value)
    except ValueError:
        raise O2OError(f"{algo}: config field {field.name} = {value!r} is not a valid "
                       f"{getattr(kind, '__name__', kind)}") from None


__all__ = ["ALGORITHMS", "INHERITED_FIELDS", "OFFLINE_ONLY", "ONLINE_DEFAULTS", "Spec", "canonical_name", "get_algorithm"]
