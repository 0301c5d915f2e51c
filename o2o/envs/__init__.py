"""Environments from gymnasium ids, and D4RL-style normalized scores."""

from o2o.envs import ogbench
from o2o.envs.make import (env_spaces, episode_limit, load_for_env, make_env, observation_layout, recorded_env_kwargs,
                           resolve_env_id)
from o2o.envs.scores import normalized_score, reference_returns

__all__ = ["env_spaces", "episode_limit", "load_for_env", "make_env", "normalized_score", "observation_layout",
           "ogbench", "recorded_env_kwargs", "reference_returns", "resolve_env_id"]
