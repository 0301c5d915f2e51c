"""Agents: one module per algorithm with a frozen `Config` and pure `init`, `update`, `act`, and optionally
`prepare_dataset` (the data transform of the algorithm's paper), `transition_fields` (what its update reads beyond
s, a, r, s', done), `begin_finetuning` (what its authors' fine-tuning restarts), `sample_batch` (batches other than
uniform transitions: DT's windows), `window` (rows of consecutive steps, offline and online: an action-chunking
agent's), `begin_episode` /
`act_in_episode` (a policy that acts on the episode so far: DT's context) and `q_values` (its critic ensemble's values,
what an adversarial data corruption attacks). Which module and variant an algorithm name
means is recorded in `o2o.algorithms`; `get_algorithm` gives the module's functions as one typed `Agent`, optional
ones filled in, so the train layer calls every agent alike."""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from typing import Any, Callable

import jax
import jax.numpy as jnp

from o2o.agents import validation
from o2o.agents.common import Spec
from o2o.algorithms import canonical_name, record
from o2o.data import Dataset
from o2o.data.fields import FIELDS as TRANSITION_FIELDS  # what an update may read beyond s, a, r, s', done
from o2o.errors import O2OError


@dataclasses.dataclass(frozen=True)
class Agent:
    """An algorithm's pure functions."""

    name: str
    Config: type
    init: Callable[[jax.Array, Spec, Any], Any]  # (key, spec, config) -> state
    update: Callable[[Any, dict, jax.Array], tuple[Any, dict]]  # (state, batch, key) -> (state, metrics)
    act: Callable[[Any, jax.Array, jax.Array, bool], jax.Array]  # (state, observations, key, deterministic) -> actions
    prepare_dataset: Callable[[Dataset, Any], Dataset]  # (dataset, config) -> the dataset its paper trains on
    transition_fields: Callable[[Any], tuple[str, ...]]  # config -> names in TRANSITION_FIELDS its update reads
    # (online updates, the config it starts from) -> config changes its fine-tuning recipe makes
    online_overrides: Callable[[int, Any], dict[str, Any]]
    # (the offline run's learned parts carried into online states, fresh online states) -> the states fine-tuning
    # starts from: what its authors' fine-tuning restarts (optimisers, temperature) comes from the fresh ones
    begin_finetuning: Callable[[Any, Any], Any]
    sample_batch: Callable[[Any, dict, jax.Array], dict]  # (config, device data, key) -> a batch for `update`
    # config -> consecutive steps per batch row (1: single transitions); rows of w > 1 hold w steps of every field
    window: Callable[[Any], int]
    # (state) -> one episode's empty memory; None: `act` needs no memory of the episode
    begin_episode: Callable[[Any], Any] | None
    # (state, memory, observation, last reward, t, key) -> (action, memory): one env's action at step t of its episode
    act_in_episode: Callable[..., tuple[jax.Array, Any]] | None
    # (state, raw observations, [-1, 1] actions) -> (num_critics, batch); None: no critic ensemble
    q_values: Callable[[Any, jax.Array, jax.Array], jax.Array] | None

    @classmethod
    def from_module(cls, name: str, module) -> "Agent":
        """The module's functions; a module may leave out the optional ones (no transform, no extra fields, no changes,
        everything carried into fine-tuning, uniform transitions, no episode memory, no critic ensemble)."""
        return cls(name, module.Config, module.init, module.update, module.act,
                   getattr(module, "prepare_dataset", lambda dataset, config: dataset),
                   getattr(module, "transition_fields", lambda config: ()),
                   getattr(module, "online_overrides", lambda updates, config: {}),
                   getattr(module, "begin_finetuning", lambda carried, fresh: carried),
                   getattr(module, "sample_batch", uniform_transitions), getattr(module, "window", lambda config: 1),
                   getattr(module, "begin_episode", None), getattr(module, "act_in_episode", None),
                   getattr(module, "q_values", None))


def uniform_transitions(config: Any, data: dict, key: jax.Array) -> dict:
    """`config.batch_size` transitions drawn uniformly with replacement."""
    index = jax.random.randint(key, (config.batch_size,), 0, data["rewards"].shape[0])
    return jax.tree.map(lambda x: x[index], data)

def uniform_windows(data: dict, key: jax.Array, batch_size: int, window: int) -> dict:
    """`batch_size` rows of `window` consecutive steps (every field (batch_size, window, ...)), each from a uniformly
    drawn first step that leaves room for the window; windows may cross episode ends (the agent masks those steps)."""
    first = jax.random.randint(key, (batch_size,), 0, data["rewards"].shape[0] - window + 1)
    return jax.tree.map(lambda x: x[first[:, None] + jnp.arange(window)], data)


# Config fields an online run inherits from the offline run it starts from, so that networks line up.
INHERITED_FIELDS = ("hidden_dims", "critic_hidden_dims", "num_critics", "critic_layer_norm",
                    "critic_norm_after_activation", "discount", "normalize_observations")


def get_algorithm(
    name: str, overrides: dict[str, Any] | None = None, inherited: dict[str, Any] | None = None,
    preset: dict[str, Any] | None = None, online_updates: int | None = None, utd: int | None = None,
) -> tuple[Agent, Any]:
    """The agent and its config: `inherited` values (fields the Config lacks are ignored), the variant's, the
    dataset's `preset` (`o2o.algorithms.preset`), the algorithm's fine-tuning changes for `online_updates` online
    updates, its actor schedule for an online run's `utd` updates per env step, then the user's `field=value`
    overrides; checked by `o2o.agents.validation` (every value in range, no override of a field the algorithm never
    reads)."""
    algorithm = record(name)
    key, module, variant = algorithm.name, importlib.import_module(f"o2o.agents.{algorithm.module}"), algorithm.variant
    agent = Agent.from_module(key, module)
    fields = {f.name: f for f in dataclasses.fields(module.Config)}
    declared = typing.get_type_hints(module.Config)
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in (inherited or {}).items() if k in fields}
    values.update(variant)
    values.update(preset or {})
    given = {}
    for field_name, value in (overrides or {}).items():
        if field_name not in fields:
            raise O2OError(f"{key} has no config field {field_name!r}; fields: {', '.join(fields)}")
        given[field_name] = _coerce(value, fields[field_name], declared[field_name], key)
    if online_updates is not None:  # the recipe reads the config the user asked for; the user's values stay theirs
        values.update(agent.online_overrides(online_updates, module.Config(**{**values, **given})))
    if utd is not None and algorithm.actor_step_per_env_step:
        values["actor_every"] = utd
    config = module.Config(**{**values, **given})
    validation.check(algorithm, config, overridden=overrides or {})
    every = getattr(config, "actor_every", 1)
    if utd is not None and utd % every and every % utd:
        raise O2OError(f"{key}: actor_every = {every} with {utd} updates per env step would step the actor at varying "
                       "points of the env steps; choose a divisor or a multiple of the UTD")
    unknown = set(agent.transition_fields(config)) - set(TRANSITION_FIELDS)
    assert not unknown, f"{key} asks for unknown transition fields {unknown}"
    return agent, config


def read_fields(name: str) -> set[str]:
    """The config fields algorithm `name` reads: its module's Config's fields but those its record declares unread."""
    algorithm = record(name)
    config_type = importlib.import_module(f"o2o.agents.{algorithm.module}").Config
    return {f.name for f in dataclasses.fields(config_type)} - set(algorithm.unread)


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


# Reward bonuses an online run may add to every batch's rewards (`OnlineSettings.reward_bonus`): name -> module with a
# `Config(neighbours, scale)` and `augment(batch, q_values, config) -> (batch, metrics)`.
REWARD_BONUSES = {"sera": "sera"}


def reward_bonus(name: str, agent: Agent, agent_config: Any, neighbours: int = 10,
                 scale: float = 1.0) -> Callable[[Any, dict], tuple[dict, dict]]:
    """(state, batch) -> (batch with the bonus in its rewards, the bonus's metrics): bonus `name` with its k =
    `neighbours` and lambda = `scale`, reading `agent`'s critic ensemble at the batch's states and actions; refused
    for an agent without a critic, batches of windows, or more neighbours than a batch holds."""
    if name not in REWARD_BONUSES:
        raise O2OError(f"reward bonus {name!r}; choose one of {', '.join(REWARD_BONUSES)}")
    if agent.q_values is None:
        raise O2OError(f"{name} reads a critic's Q values, which {agent.name} has none of")
    if (window := agent.window(agent_config)) != 1:
        raise O2OError(f"{name} needs batches of single transitions; {agent.name} samples windows of {window} steps")
    if neighbours > agent_config.batch_size:
        raise O2OError(f"{name}: {neighbours} neighbours in batches of {agent_config.batch_size}; choose at most the "
                       "batch size")
    for field, value in (("neighbours", neighbours), ("scale", scale)):
        if not (rule := validation.rule_for(REWARD_BONUSES[name], field)).allows(value):
            raise O2OError(f"{name}: {field} = {value!r} is outside {rule.description}")
    module = importlib.import_module(f"o2o.agents.{REWARD_BONUSES[name]}")
    config = module.Config(neighbours=neighbours, scale=scale)
    return lambda state, batch: module.augment(batch, agent.q_values(state, batch["observations"], batch["actions"]),
                                               config)


def restore_algorithm(name: str, recorded: dict[str, Any]) -> tuple[Agent, Any]:
    """The agent and the exact config a run recorded (its config.json's agent_config): nothing re-applied, nothing
    refused (fields that o2o added since take their defaults)."""
    algorithm = record(name)
    module = importlib.import_module(f"o2o.agents.{algorithm.module}")
    fields = {f.name for f in dataclasses.fields(module.Config)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in recorded.items() if k in fields}
    return Agent.from_module(algorithm.name, module), module.Config(**values)


__all__ = ["INHERITED_FIELDS", "TRANSITION_FIELDS", "Agent", "Spec", "canonical_name", "get_algorithm", "read_fields",
           "restore_algorithm", "reward_bonus", "uniform_transitions", "uniform_windows"]
