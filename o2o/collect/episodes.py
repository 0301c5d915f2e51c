"""Which episodes of a dataset measure the policy that collected it: the complete ones (`o2o.data.stats.
complete_episodes`), judged against the env's time limit. JAX-free, so that `o2o data info` starts fast."""

from __future__ import annotations

import numpy as np

from o2o.data import Dataset
from o2o.data.stats import complete_episodes
from o2o.envs import episode_limit, recorded_env_kwargs
from o2o.errors import O2OError


def time_limit(data: Dataset, env_id: str | None = None) -> int | None:
    """The env's time limit in steps: the dataset's record of it (o2o's, or the limit its env was made with, as Minari
    records it), else the limit registered for `env_id` or the dataset's env; None when none is known."""
    limit = data.metadata.get("max_episode_steps") or recorded_env_kwargs(data.metadata).get("max_episode_steps")
    env_id = env_id or data.env_id
    if limit is None and env_id:
        try:
            limit = episode_limit(env_id)
        except O2OError:
            pass  # an env this machine cannot make: only the episodes that ended by termination count
    return limit


def complete_episode_returns(data: Dataset, env_id: str | None = None) -> np.ndarray:
    """Returns of the episodes that ended by termination or at the env's time limit (`time_limit`)."""
    return data.episode_returns[complete_episodes(data, time_limit(data, env_id))]
