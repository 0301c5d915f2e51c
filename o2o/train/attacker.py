"""The Q-ensemble of an offline run as the attacker of adversarial data corruption (`o2o.data.corrupt`): RIQL's attack
reads a Q-ensemble trained on the clean data (the authors' code loads an EDAC run); o2o reads a run's checkpoint."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from o2o.agents import restore_algorithm
from o2o.data import Dataset, content_hash
from o2o.data.corrupt import Attacker
from o2o.envs import env_spaces, recorded_env_kwargs
from o2o.errors import O2OError
from o2o.train import runs
from o2o.train.offline import checkpoint_template


def attacker_from_run(run_dir: str | Path, clean: Dataset) -> Attacker:
    """The critics and deterministic policy of `run_dir`'s first seed, over raw states and the env's actions. The run
    must have trained on `clean` (its recorded content hash) and its agent must have a critic ensemble (`q_values`;
    the paper attacks with EDAC's)."""
    run = runs.RunDir.open(run_dir, "offline")
    recorded = (run.record.get("dataset") or {}).get("content_hash")
    if recorded != content_hash(clean):
        raise O2OError(f"--attacker {run.path}: trained on other data ({run.record.get('dataset', {}).get('source')}); "
                       "the attack needs a Q-ensemble trained on the dataset being corrupted")
    if not run.env_id:
        raise O2OError(f"--attacker {run.path}: trained without an environment; its action bounds are unknown")
    agent, config = restore_algorithm(run.settings["algo"], run.agent_config)
    if agent.q_values is None:
        raise O2OError(f"--attacker {run.path}: {run.settings['algo']} learns no critic ensemble to attack")
    checkpoint = runs.load_checkpoint(run.path, {"states": checkpoint_template(agent, config, run.env_id, run.seeds,
                                                                               run.dataset_metadata)})
    state = jax.tree.map(lambda x: x[0], checkpoint["states"])
    spaces = env_spaces(run.env_id, recorded_env_kwargs(run.dataset_metadata))
    center = jnp.asarray((spaces.action_high + spaces.action_low) / 2.0, jnp.float32)
    half_width = jnp.asarray((spaces.action_high - spaces.action_low) / 2.0, jnp.float32)

    def q_values(observations, actions):
        return agent.q_values(state, observations, (actions - center) / half_width)

    def policy(observations):
        return center + half_width * agent.act(state, observations, jax.random.PRNGKey(0), True)

    description = {"run": str(run.path), "algo": run.settings["algo"], "seed": run.seeds[0],
                   "updates": int(np.asarray(checkpoint["step"]))}
    return Attacker(q_values, policy, description)
