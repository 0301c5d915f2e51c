"""D4RL-style normalized scores: 0 = a random policy's return, 100 = an expert's.

Hopper, HalfCheetah, Walker2d, Ant, Adroit (and kitchen) use D4RL's published reference returns, so numbers line up with
published tables. Adroit's sparse variants (AdroitHandPenSparse-v1, ...) do not: they pay 10 per success and -0.1
otherwise. Nor do the mazes: D4RL's AntMaze (0, 1) assumes an episode that ends at the goal, where gymnasium-robotics'
AntMaze goes on and pays 1 for every step there, and on D4RL's maze2d scale a noisy waypoint controller in gymnasium's
PointMaze scores 140 to 208. They take the dataset's references (Minari's datasets and `o2o collect --level waypoint`
record them), or else the success rate. o2o runs the gymnasium MuJoCo v5 versions of these tasks, which are close to
but not identical with D4RL's v2 ones: compare orderings and magnitudes, not decimals. Any other environment takes its
references from the dataset's metadata (`ref_min_score` = mean return of a random policy, `ref_max_score` = an
expert's).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Mapping

import numpy as np

from o2o.errors import O2OError

# gymnasium / gymnasium-robotics id (without version) -> D4RL task key
_D4RL_TASKS = [
    (r"^Hopper$", "hopper"),
    (r"^HalfCheetah$", "halfcheetah"),
    (r"^Walker2d$", "walker2d"),
    (r"^Ant$", "ant"),
    # anchored: the AdroitHand*Sparse ids reward differently from D4RL's tasks (module docstring)
    (r"^AdroitHandPen$", "pen"),
    (r"^AdroitHandHammer$", "hammer"),
    (r"^AdroitHandDoor$", "door"),
    (r"^AdroitHandRelocate$", "relocate"),
    (r"^FrankaKitchen$", "kitchen"),
]


# Environments D4RL does not cover, with references o2o measured itself (mean return over 100 episodes, reset seeds
# 10000-10099): a uniformly random policy, and the best behaviour o2o has for the task.
O2O_REFERENCES = {
    "Pendulum-v1": (-1170.0, -142.4),  # random torques; o2o.collect.scripted.pendulum_controller with noise 0.3
}


@lru_cache(maxsize=1)
def _d4rl_table() -> dict[str, dict[str, float]]:
    text = resources.files("o2o.envs").joinpath("d4rl_scores.json").read_text()
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def d4rl_task(env_id: str) -> str | None:
    """D4RL task key for a gymnasium id (`Hopper-v5` -> `hopper`), or None when D4RL has no reference for it."""
    name = env_id.split("/")[-1].rsplit("-v", 1)[0]
    for pattern, key in _D4RL_TASKS:
        if re.search(pattern, name):
            return key
    return None


def reference_returns(env_id: str | None, metadata: Mapping | None = None) -> tuple[float, float] | None:
    """(random return, expert return): D4RL's when it has them, else the dataset metadata's, else o2o's own, else None."""
    task = d4rl_task(env_id) if env_id else None
    if task is not None:
        ref = _d4rl_table()[task]
        return float(ref["min"]), float(ref["max"])
    if metadata and metadata.get("ref_min_score") is not None and metadata.get("ref_max_score") is not None:
        return float(metadata["ref_min_score"]), float(metadata["ref_max_score"])
    return O2O_REFERENCES.get(env_id)


def normalized_score(env_id: str | None, returns, metadata: Mapping | None = None) -> np.ndarray:
    """`100 * (return - random) / (expert - random)`, elementwise over `returns`."""
    ref = reference_returns(env_id, metadata)
    if ref is None:
        raise O2OError(
            f"no reference returns for {env_id or 'this dataset'}: D4RL has none and the dataset metadata lacks "
            "ref_min_score and ref_max_score"
        )
    low, high = ref
    return 100.0 * (np.asarray(returns, dtype=np.float64) - low) / (high - low)
