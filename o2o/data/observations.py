"""Dict observations (goal-conditioned envs such as gymnasium-robotics' AntMaze, PointMaze and Fetch, and Minari's
datasets of them) become flat vectors in gymnasium's own layout, that of `gymnasium.spaces.flatten`: the Dict's keys in
the space's order (sorted, as gymnasium sorts a plain dict: achieved_goal, desired_goal, observation), each Box
flattened. Environments get gymnasium's
FlattenObservation wrapper (o2o.envs.make_env) and datasets this module, so a dataset and its env agree dimension for
dimension."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from o2o.errors import DatasetError


def dict_layout(space: Any, source: str) -> dict[str, list[int]]:
    """Each key's [start, stop) in the flattened vector of a Dict of Box spaces; a one-line error for any other Dict."""
    import gymnasium as gym

    layout, start = {}, 0
    for key, subspace in space.spaces.items():
        if not isinstance(subspace, gym.spaces.Box):
            raise DatasetError(
                f"{source}: observations are a Dict space whose {key!r} is a {type(subspace).__name__} space; "
                "o2o flattens only Dicts of Box spaces"
            )
        stop = start + int(np.prod(subspace.shape))
        layout[key], start = [start, stop], stop
    return layout


def flatten_dict_observations(observations: Mapping[str, np.ndarray], space: Any, source: str) -> np.ndarray:
    """Per-key arrays of T steps -> a (T, dim) float32 array in the layout of `dict_layout`."""
    dict_layout(space, source)
    missing = [key for key in space.spaces if key not in observations]
    if missing:
        raise DatasetError(f"{source}: Dict observations lack the key(s) {', '.join(missing)} of their space")
    steps = len(observations[next(iter(space.spaces))])
    parts = []
    for key, subspace in space.spaces.items():
        part = np.asarray(observations[key], np.float32)
        if part.shape != (steps, *subspace.shape):
            raise DatasetError(f"{source}: Dict observations' {key!r} has shape {part.shape}; its space says "
                               f"{(steps, *subspace.shape)} for {steps} steps")
        parts.append(part.reshape(steps, -1))
    return np.concatenate(parts, axis=1)
