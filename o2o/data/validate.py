"""Turn raw arrays from any reader into a checked `Dataset`, or say exactly what is wrong.

Policies (documented in README "Datasets"):
- A step flagged both terminal and timeout is treated as terminal (the MDP ended; there is nothing to bootstrap), with
  a warning.
- Without `next_observations`, they are derived within episodes as `observations[i + 1]`. A step that ends an episode by
  timeout (or is the dataset's last) has no next observation on record, so it is dropped and the step before it becomes
  the timeout, as D4RL's `qlearning_dataset` does; a terminal step keeps its own observation as a placeholder, which
  learning never reads because terminals are not bootstrapped. The metadata then says `derived_next_observations`:
  an episode that ran to the time limit is one step short of it (`o2o.data.stats.complete_episodes`).
- The dataset's last step always ends an episode: if it is not terminal it is marked as a timeout.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Mapping

import numpy as np

from o2o.data.dataset import BOOL_FIELDS, FLOAT_FIELDS, MASKS, Dataset
from o2o.errors import DatasetError, DatasetWarning

REQUIRED_FIELDS = ("observations", "actions", "rewards", "terminals", "timeouts")
_CHUNK_ROWS = 1 << 18  # bounded temporaries when scanning memory-mapped arrays larger than RAM
ACTION_BOUND_TOLERANCE = 1e-5
DERIVED_NEXT_OBSERVATIONS = "derived_next_observations"  # metadata: each timeout's step was dropped (see above)


@dataclasses.dataclass(frozen=True)
class Spaces:
    """What an environment expects: flat Box observations and Box actions."""

    observation_shape: tuple[int, ...]
    action_shape: tuple[int, ...]
    action_low: np.ndarray
    action_high: np.ndarray
    env_id: str = ""
    observation_layout: dict | None = None  # where each key of a flattened Dict observation lies (o2o.data.observations)


def dataset_from_arrays(
    arrays: Mapping[str, Any], source: str, metadata: dict | None = None, check_values: bool = True,
    extras: Mapping[str, Any] | None = None,
) -> Dataset:
    """Check field presence, dtypes, shapes, lengths and (if `check_values`) finiteness, then build a `Dataset`.
    `arrays` may hold `masks` (1 = bootstrap; kept only where it differs from "not terminal"); `extras` are further
    per-step arrays carried along."""
    missing = [k for k in REQUIRED_FIELDS if k not in arrays]
    if missing:
        raise DatasetError(
            f"{source}: missing key(s) {', '.join(missing)}; a dataset needs {', '.join(REQUIRED_FIELDS)} "
            f"(next_observations optional); found: {', '.join(sorted(arrays)) or 'nothing'}"
        )
    fields: dict[str, np.ndarray] = {}
    for name in FLOAT_FIELDS:
        if name in arrays:
            fields[name] = _float_field(arrays[name], name, source)
    for name in BOOL_FIELDS + ((MASKS,) if MASKS in arrays else ()):
        fields[name] = _bool_field(arrays[name], name, source)
    extra_fields = {name: np.asarray(value) for name, value in (extras or {}).items()}

    fields["rewards"] = _one_dimensional(fields["rewards"], "rewards", source)
    for name in ("observations", "actions") + (("next_observations",) if "next_observations" in fields else ()):
        if fields[name].ndim != 2:
            raise DatasetError(
                f"{source}: {name} has shape {fields[name].shape}; expected (transitions, dim) with one flat vector per step"
            )
    n = fields["observations"].shape[0]
    for name, value in {**fields, **extra_fields}.items():
        if value.shape[0] != n:
            raise DatasetError(
                f"{source}: {name} has {value.shape[0]} entries but observations has {n}; every field needs one entry per step"
            )
    if "next_observations" in fields and fields["next_observations"].shape[1:] != fields["observations"].shape[1:]:
        raise DatasetError(
            f"{source}: next_observations has shape {fields['next_observations'].shape} but observations has "
            f"{fields['observations'].shape}; they must match"
        )
    if n == 0:
        raise DatasetError(f"{source}: the dataset is empty (0 transitions); at least one step is needed")
    if check_values:
        for name in FLOAT_FIELDS:
            if name in fields:
                _check_finite(fields[name], name, source)

    terminals, timeouts = fields["terminals"], fields["timeouts"]
    both = np.flatnonzero(terminals & timeouts)
    if both.size:
        warnings.warn(
            f"{source}: {both.size} step(s) flagged both terminal and timeout (first at index {both[0]}); "
            "treated as terminal (no bootstrapping)",
            DatasetWarning,
            stacklevel=2,
        )
        timeouts = timeouts & ~terminals
    if not (terminals[-1] or timeouts[-1]):
        timeouts = timeouts.copy()
        timeouts[-1] = True
    fields["terminals"], fields["timeouts"] = terminals, timeouts
    if MASKS in fields:
        bootstrapped_terminal = np.flatnonzero(terminals & fields[MASKS])
        if bootstrapped_terminal.size:
            raise DatasetError(f"{source}: masks[{bootstrapped_terminal[0]}] = 1 at a terminal step; a terminal step "
                               "cannot bootstrap (expected mask 0)")

    metadata = dict(metadata or {})
    if "next_observations" not in fields:
        keep = _derive_next_observations(fields, source)
        if keep is not None:
            metadata[DERIVED_NEXT_OBSERVATIONS] = True
            fields = {name: value[keep] for name, value in fields.items()}
            extra_fields = {name: value[keep] for name, value in extra_fields.items()}
        if not len(fields["rewards"]):
            raise DatasetError(f"{source}: no transition is left once steps without a next observation are dropped")
    return Dataset(**fields, extras=extra_fields, metadata=metadata)


def check_spaces(dataset: Dataset, spaces: Spaces, source: str) -> None:
    """Observation and action shapes must match the environment's, and actions must lie within its bounds."""
    env = f"environment {spaces.env_id}" if spaces.env_id else "the environment"
    for name, expected in (("observations", spaces.observation_shape), ("actions", spaces.action_shape)):
        got = tuple(getattr(dataset, name).shape[1:])
        if got != tuple(expected):
            raise DatasetError(f"{source}: {name} have shape {got} per step but {env} expects {tuple(expected)}")
    recorded = dataset.metadata.get("observation_layout")
    if recorded and spaces.observation_layout and recorded != spaces.observation_layout:
        raise DatasetError(f"{source}: observations are laid out as {recorded} but {env} flattens its Dict "
                           f"observations as {spaces.observation_layout}")
    low = np.asarray(spaces.action_low, np.float32) - ACTION_BOUND_TOLERANCE
    high = np.asarray(spaces.action_high, np.float32) + ACTION_BOUND_TOLERANCE
    for start in range(0, len(dataset), _CHUNK_ROWS):
        chunk = np.asarray(dataset.actions[start : start + _CHUNK_ROWS])
        outside = np.flatnonzero(((chunk < low) | (chunk > high)).any(axis=1))
        if outside.size:
            i = start + int(outside[0])
            raise DatasetError(
                f"{source}: actions[{i}] = {np.array2string(np.asarray(dataset.actions[i]), precision=4)} lies outside "
                f"the action bounds of {env} [{spaces.action_low.min():g}, {spaces.action_high.max():g}]"
            )


def _float_field(value: Any, name: str, source: str) -> np.ndarray:
    array = value if isinstance(value, np.ndarray) else np.asarray(value)
    if array.dtype.kind not in "fiub":
        raise DatasetError(f"{source}: {name} has dtype {array.dtype}; expected numbers (float32 preferred)")
    return array if array.dtype == np.float32 else array.astype(np.float32)


def _bool_field(value: Any, name: str, source: str) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype == np.bool_:
        return _one_dimensional(array, name, source)
    if array.dtype.kind not in "fiu":
        raise DatasetError(f"{source}: {name} has dtype {array.dtype}; expected booleans (or 0/1 numbers)")
    array = _one_dimensional(array, name, source)
    bad = np.flatnonzero((array != 0) & (array != 1))
    if bad.size:
        raise DatasetError(f"{source}: {name}[{bad[0]}] = {array[bad[0]].item()!r}; expected a boolean (0 or 1)")
    return array.astype(bool)


def _one_dimensional(array: np.ndarray, name: str, source: str) -> np.ndarray:
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise DatasetError(f"{source}: {name} has shape {array.shape}; expected one scalar per step, shape (transitions,)")
    return array


def _check_finite(array: np.ndarray, name: str, source: str) -> None:
    for start in range(0, array.shape[0], _CHUNK_ROWS):
        chunk = np.asarray(array[start : start + _CHUNK_ROWS])
        finite = np.isfinite(chunk)
        if not finite.all():
            row_ok = finite if chunk.ndim == 1 else finite.reshape(len(chunk), -1).all(axis=1)
            i = start + int(np.flatnonzero(~row_ok)[0])
            what = "NaN" if np.isnan(array[i]).any() else "infinite"
            raise DatasetError(f"{source}: {name}[{i}] is {what}; every {name[:-1] if name.endswith('s') else name} value must be finite")


def _derive_next_observations(fields: dict[str, np.ndarray], source: str) -> np.ndarray | None:
    """Fill `fields["next_observations"]` (and move timeouts back a step) in place; the steps to keep, None = all."""
    observations, terminals, timeouts = fields["observations"], fields["terminals"], fields["timeouts"]
    n = len(observations)
    next_observations = np.empty_like(observations)
    next_observations[:-1] = observations[1:]
    next_observations[terminals] = observations[terminals]
    cut = np.flatnonzero(timeouts)
    fields["next_observations"] = next_observations
    if not cut.size:
        return None
    keep = np.ones(n, dtype=bool)
    keep[cut] = False
    timeouts = timeouts.copy()
    previous = cut - 1
    previous_in_episode = previous[(previous >= 0) & ~terminals[np.maximum(previous, 0)] & ~timeouts[np.maximum(previous, 0)]]
    timeouts[previous_in_episode] = True
    fields["timeouts"] = timeouts
    warnings.warn(
        f"{source}: no next_observations; derived them within episodes and dropped {cut.size} step(s) that end an "
        "episode by timeout, whose next observation is not on record (as D4RL's qlearning_dataset)",
        DatasetWarning,
        stacklevel=3,
    )
    return keep
