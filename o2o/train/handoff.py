"""The offline -> online hand-off: `start` reads an offline run once and returns everything fine-tuning needs (its
data as it trained on them, the online agent's config, the carried-over states, the score at the switch);
`check_pairing` says before any training whether an online algorithm can take over an offline one's networks.

What carries over is decided by the states' types, not by names: every learned part (a `Network`'s parameters and
optimiser state, parameter trees, the observation normaliser) that the online agent has in the same shapes; counters
and other bare arrays start afresh."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from o2o.agents import INHERITED_FIELDS, Spec, canonical_name, get_algorithm, restore_algorithm
from o2o.agents.common import Network
from o2o.algorithms import fine_tunes
from o2o.errors import O2OError
from o2o.train import offline, runs


@dataclasses.dataclass
class Start:
    """An offline run, read once, and the online agent that continues it."""

    run: runs.RunDir
    base: offline.Prepared  # the offline run's settings, agent and dataset, as it trained on them
    agent: Any  # the online agent and its config
    config: Any
    states: Any  # fresh online states with the offline run's learned parts carried over
    start_score: float | None  # the offline run's final normalized score


def online_agent(algo: str, offline_algo: str, offline_config: dict, overrides: dict, online_updates: int | None = None,
                 utd: int | None = None):
    """The online agent and config: all the offline config for the same algorithm, else the fields that make networks
    line up (INHERITED_FIELDS); then the algorithm's fine-tuning changes for `online_updates` updates, `utd` per env
    step, and the user's overrides."""
    same_algorithm = canonical_name(algo) == canonical_name(offline_algo)
    inherited = offline_config if same_algorithm else {k: v for k, v in offline_config.items() if k in INHERITED_FIELDS}
    return get_algorithm(algo, overrides, inherited, online_updates=online_updates, utd=utd)


def check_pairing(offline_algo: str, offline_config: dict, algo: str, overrides: dict, spec: Spec) -> None:
    """Refuse, before any training, an online algorithm that cannot continue this offline agent: one without a critic
    to fine-tune, or whose policy network the offline policy does not fit. Shapes only: nothing is computed."""
    if not fine_tunes(algo):
        raise O2OError(f"{canonical_name(algo)} learns no critic and cannot fine-tune; fine-tune with an algorithm that "
                       "does (see `o2o algos`)")
    agent, config = online_agent(algo, offline_algo, offline_config, overrides)
    offline_agent, offline_config_ = restore_algorithm(offline_algo, offline_config)
    key = jax.random.PRNGKey(0)
    mine = jax.eval_shape(lambda: agent.init(key, spec, config))
    theirs = jax.eval_shape(lambda: offline_agent.init(key, spec, offline_config_))
    if "actor" not in _carried(mine, theirs):
        raise O2OError(f"{canonical_name(offline_algo)}'s policy does not fit {canonical_name(algo)}'s policy network; "
                       f"fine-tune it with --algo {canonical_name(offline_algo)} (or another algorithm with the same policy)")


def start(offline_run: runs.RunDir | str, algo: str, seeds: int, seed: int, overrides: dict,
          online_updates: int, utd: int) -> Start:
    """Read the offline run (its config, checkpoint, data and summary; a directory, or a RunDir its caller opened)
    for fine-tuning with `algo`."""
    run = offline_run if isinstance(offline_run, runs.RunDir) else runs.RunDir.open(offline_run, "offline")
    if seeds != len(run.seeds) or seed != run.seeds[0]:
        raise O2OError(f"{run.path}: trained seeds {run.seeds}; fine-tuning continues exactly those seeds")
    if not runs.has_checkpoint(run.path):
        raise O2OError(f"{run.path}: no checkpoint yet; let the offline run reach its first evaluation")
    base = offline.prepare(offline.OfflineSettings(**{**run.settings, "eval_episodes": 0, "env": run.env_id}), run)
    run.check_dataset(base.dataset_reference["content_hash"])
    check_pairing(base.settings.algo, run.agent_config, algo, overrides, base.spec)
    agent, config = online_agent(algo, base.settings.algo, run.agent_config, overrides, online_updates, utd)
    offline_states = runs.load_checkpoint(run.path, {"states": offline.init_states(base)})["states"]
    fresh = offline.init_states(dataclasses.replace(base, agent=agent, config=config))
    states = agent.begin_finetuning(fresh.replace(**_carried(fresh, offline_states)), fresh)
    states = jax.tree.map(jnp.asarray, states)
    return Start(run, base, agent, config, states, (run.summary or {}).get("normalized_score"))


def _carried(mine, theirs) -> dict[str, Any]:
    """The learned parts of state `theirs` that fit state `mine`, by field name."""
    carried = {}
    for field in dataclasses.fields(mine):
        if not field.metadata.get("pytree_node", True) or not hasattr(theirs, field.name):
            continue
        own, other = getattr(mine, field.name), getattr(theirs, field.name)
        if isinstance(own, Network):  # the trained part moves; module and optimiser stay the online agent's
            if _same_shapes(own.trained_part(), other.trained_part()):
                carried[field.name] = own.replace(params=other.params, opt_state=other.opt_state)
        elif not hasattr(own, "shape") and _same_shapes(own, other):  # bare arrays (counters) start afresh
            carried[field.name] = other
    return carried


def _same_shapes(a, b) -> bool:
    shapes = lambda tree: jax.tree.map(lambda x: tuple(x.shape), tree)  # noqa: E731
    try:
        return jax.tree.structure(a) == jax.tree.structure(b) and shapes(a) == shapes(b)
    except (TypeError, ValueError, AttributeError):
        return False
