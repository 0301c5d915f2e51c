"""The offline -> online hand-off: the offline run a fine-tuning run starts from, the config values the online agent
inherits from it, and the parts of the offline agent that carry over into the online one."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp

from o2o import files
from o2o.agents import INHERITED_FIELDS, canonical_name
from o2o.agents.common import Network
from o2o.errors import O2OError
from o2o.train import offline, runs

CARRIED = ("actor", "bc_flow", "critic", "target_critic_params", "value", "log_temperature", "target_actor_params",
           "normalizer")


def offline_start(init_from: str, algo: str, seeds: int, seed: int) -> tuple[offline.Prepared, dict]:
    """The offline run to fine-tune, and the config values the online agent inherits from it (all of them for the same
    algorithm, the network shapes and discount otherwise)."""
    run_dir = Path(init_from)
    config = files.read_json(run_dir / "config.json") if (run_dir / "config.json").is_file() else None
    if config is None or config.get("kind") != "offline":
        raise O2OError(f"{run_dir}: not an offline run directory (no config.json of kind 'offline')")
    base = offline.prepare(offline.OfflineSettings(**{**config["settings"], "eval_episodes": 0, "env": config["env_id"]}))
    if seeds != len(base.seeds) or seed != base.seeds[0]:
        raise O2OError(f"{run_dir}: trained seeds {base.seeds}; fine-tuning continues exactly those seeds")
    same_algorithm = canonical_name(algo) == canonical_name(config["settings"]["algo"])
    inherited = config["agent_config"] if same_algorithm else {k: v for k, v in config["agent_config"].items() if k in INHERITED_FIELDS}
    return base, inherited


def carried_states(init_from: str, base: offline.Prepared, algo: str, agent, config):
    """Fresh online states with every part the offline checkpoint has in the same shape (actor, critics, temperature,
    normaliser) carried over; at least the actor must carry over."""
    offline_states = runs.load_checkpoint(Path(init_from), {"states": offline.init_states(base)})["states"]
    fresh = offline.init_states(dataclasses.replace(base, agent=agent, config=config))
    carried = {}
    for name in CARRIED:
        if not (hasattr(fresh, name) and hasattr(offline_states, name)):
            continue
        mine, theirs = getattr(fresh, name), getattr(offline_states, name)
        if isinstance(mine, Network):  # the trained part moves; module and optimiser stay the online agent's
            if _same_shapes(mine.trained_part(), theirs.trained_part()):
                carried[name] = mine.replace(params=theirs.params, opt_state=theirs.opt_state)
        elif _same_shapes(mine, theirs):
            carried[name] = theirs
    if "actor" not in carried:
        raise O2OError(f"{init_from}: its {base.settings.algo} policy does not fit {algo}'s policy network; fine-tune "
                       f"it with --algo {base.settings.algo}")
    return jax.tree.map(jnp.asarray, fresh.replace(**carried))


def _same_shapes(a, b) -> bool:
    shapes = lambda tree: jax.tree.map(lambda x: jnp.shape(x), tree)  # noqa: E731
    try:
        return jax.tree.structure(a) == jax.tree.structure(b) and shapes(a) == shapes(b)
    except (TypeError, ValueError):
        return False
