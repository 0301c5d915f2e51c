"""Agents: one module per algorithm with a frozen `Config` and pure `init`, `update`, `act` (and optional
`prepare_dataset`, the data transform of the algorithm's paper). Which module and variant an algorithm name means is
recorded in `o2o.algorithms`."""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from types import ModuleType
from typing import Any

from o2o.agents.common import Spec
from o2o.algorithms import canonical_name, record
from o2o.errors import O2OError

# Config fields an online run inherits from the offline run it starts from, so that networks line up.
INHERITED_FIELDS = ("hidden_dims", "num_critics", "critic_layer_norm", "discount", "normalize_observations")


def get_algorithm(
    name: str, overrides: dict[str, Any] | None = None, inherited: dict[str, Any] | None = None
) -> tuple[ModuleType, Any]:
    """The agent module and its config: `inherited` values (fields the Config lacks are ignored), then the variant's,
    then the user's `field=value` overrides."""
    algorithm = record(name)
    key, module, variant = algorithm.name, importlib.import_module(f"o2o.agents.{algorithm.module}"), algorithm.variant
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


__all__ = ["INHERITED_FIELDS", "Spec", "canonical_name", "get_algorithm"]
