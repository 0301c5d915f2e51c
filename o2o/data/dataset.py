"""The `Dataset`: a flat struct-of-arrays of transitions, with episode boundaries derived once."""

from __future__ import annotations

import dataclasses
from functools import cached_property
from typing import Any

import numpy as np

FLOAT_FIELDS = ("observations", "actions", "rewards", "next_observations")
BOOL_FIELDS = ("terminals", "timeouts")
FIELDS = FLOAT_FIELDS + BOOL_FIELDS
MASKS = "masks"


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Transitions `(s, a, r, s', terminal, timeout)` stored as one array per field.

    Arrays may be NumPy memory maps (o2o's own format), so nothing here copies a field unless asked to.
    An episode ends at a step flagged `terminals` (the MDP ended: do not bootstrap) or `timeouts` (the episode was cut:
    bootstrap from `next_observations`), or at the last step of the dataset.

    `masks`, when present, says where the TD target bootstraps apart from the episode boundaries: in a goal task
    relabelled on play data (OGBench singletask) a step that reaches the goal has mask 0 while the recorded trajectory
    goes on. None means the usual rule: bootstrap everywhere but at terminals.
    `extras` holds further per-step arrays the learning does not read (OGBench's qpos, qvel, button_states, from which
    a task's rewards are relabelled); they travel with the transitions through every selection and writer.
    """

    observations: np.ndarray  # (N, obs_dim) float32
    actions: np.ndarray  # (N, act_dim) float32
    rewards: np.ndarray  # (N,) float32
    next_observations: np.ndarray  # (N, obs_dim) float32
    terminals: np.ndarray  # (N,) bool
    timeouts: np.ndarray  # (N,) bool
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    masks: np.ndarray | None = None  # (N,) bool, True = bootstrap from s'
    extras: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.masks is not None and np.array_equal(self.masks, ~np.asarray(self.terminals)):
            object.__setattr__(self, "masks", None)  # recorded only where it says more than the terminals

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def observation_dim(self) -> int:
        return int(self.observations.shape[1])

    @property
    def action_dim(self) -> int:
        return int(self.actions.shape[1])

    @property
    def env_id(self) -> str | None:
        return self.metadata.get("env_id")

    @property
    def bootstrap(self) -> np.ndarray:
        """(N,) bool: whether the TD target bootstraps from step i's next observation."""
        return np.asarray(self.masks) if self.masks is not None else ~np.asarray(self.terminals)

    @cached_property
    def episode_ends(self) -> np.ndarray:
        """Index of the last step of every episode, ascending; the dataset's last step always ends one."""
        ends = np.flatnonzero(np.logical_or(self.terminals, self.timeouts))
        if len(self) and (ends.size == 0 or ends[-1] != len(self) - 1):
            ends = np.append(ends, len(self) - 1)
        return ends

    @cached_property
    def episode_starts(self) -> np.ndarray:
        """Index of the first step of every episode, ascending."""
        return np.concatenate([[0], self.episode_ends[:-1] + 1]).astype(np.int64) if len(self) else np.zeros(0, np.int64)

    @property
    def num_episodes(self) -> int:
        return int(self.episode_ends.size)

    @cached_property
    def episode_lengths(self) -> np.ndarray:
        return self.episode_ends - self.episode_starts + 1

    @cached_property
    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of every episode, (num_episodes,) float64."""
        if not len(self):
            return np.zeros(0)
        return np.add.reduceat(np.asarray(self.rewards, dtype=np.float64), self.episode_starts)

    def returns_to_go(self, discount: float, sparse_failure_reward: float | None = None,
                      stop_at_masks: bool = True) -> np.ndarray:
        """Discounted Monte-Carlo return from every step, (N,) float32, consistent with the TD target
        `r + discount * bootstrap * Q(s')`: the sum stops at a step that does not bootstrap (a terminal, or a goal
        reached mid-trajectory) and at the episode's end (see `episode_returns_to_go` for the sparse-reward
        convention, applied to each such stretch). `stop_at_masks=False` sums to the episode's end whatever the
        masks (terminals end episodes, so without masks it changes nothing)."""
        rewards = np.asarray(self.rewards, dtype=np.float64)
        stops = np.zeros(len(self), dtype=bool)
        stops[self.episode_ends] = True
        if stop_at_masks:
            stops |= ~self.bootstrap
        ends = np.flatnonzero(stops)
        out = np.empty(len(self), dtype=np.float32)
        for start, end in zip(np.concatenate([[0], ends[:-1] + 1]), ends):
            out[start : end + 1] = episode_returns_to_go(rewards[start : end + 1], discount, sparse_failure_reward)
        return out

    def timesteps(self) -> np.ndarray:
        """(N,) int32: each step's index within its episode."""
        return (np.arange(len(self)) - np.repeat(self.episode_starts, self.episode_lengths)).astype(np.int32)

    def episode_last_steps(self) -> np.ndarray:
        """(N,) int32: for each step, the index of its episode's last step."""
        return np.repeat(self.episode_ends, self.episode_lengths).astype(np.int32)

    def next_actions(self, actions: np.ndarray | None = None) -> np.ndarray:
        """The action at step i + 1 for each step i whose episode goes on there; NaN at an episode's last step.
        `actions` replaces the dataset's own (the same actions mapped to another box)."""
        actions = np.asarray(self.actions if actions is None else actions, np.float32)
        following = np.full_like(actions, np.nan)
        following[:-1] = actions[1:]
        following[self.episode_ends] = np.nan
        return following

    def select_episodes(self, episode_indices: np.ndarray) -> Dataset:
        """A new in-memory dataset holding only the given episodes, in the given order."""
        steps = np.concatenate(
            [np.arange(self.episode_starts[e], self.episode_ends[e] + 1) for e in episode_indices]
        ) if len(episode_indices) else np.zeros(0, np.int64)
        return self.take(steps)

    def take(self, steps: np.ndarray) -> Dataset:
        return Dataset(**{name: np.asarray(value)[steps] for name, value in self.arrays().items()},
                       extras={name: np.asarray(value)[steps] for name, value in self.extras.items()},
                       metadata=self.metadata)

    def arrays(self) -> dict[str, np.ndarray]:
        """The transition fields, `masks` included when present (extras apart)."""
        fields = {name: getattr(self, name) for name in FIELDS}
        if self.masks is not None:
            fields[MASKS] = self.masks
        return fields


def concatenate(datasets: list[Dataset], metadata: dict[str, Any]) -> Dataset:
    """Datasets end to end (each part's last step already ends an episode, as every o2o dataset's does); masks and
    extras are kept when every part has them."""
    joined = {name: np.concatenate([np.asarray(getattr(d, name)) for d in datasets]) for name in FIELDS}
    if any(d.masks is not None for d in datasets):
        joined[MASKS] = np.concatenate([d.bootstrap for d in datasets])
    shared = set.intersection(*(set(d.extras) for d in datasets))
    extras = {name: np.concatenate([np.asarray(d.extras[name]) for d in datasets]) for name in sorted(shared)}
    return Dataset(**joined, extras=extras, metadata=metadata)


def episode_returns_to_go(rewards: np.ndarray, discount: float, sparse_failure_reward: float | None = None) -> np.ndarray:
    """Discounted sum of rewards from each step of one episode to its end, float32.

    Goal tasks with sparse rewards (Cal-QL's convention): an episode whose every reward equals `sparse_failure_reward`
    never reached the goal, and would have kept failing, so each of its steps gets
    `sparse_failure_reward / (1 - discount)` instead of a sum truncated at the time limit.
    """
    from scipy.signal import lfilter  # a dependency of jax; the discounted sum in C

    rewards = np.asarray(rewards, dtype=np.float64)
    if sparse_failure_reward is not None and np.all(rewards == sparse_failure_reward):
        return np.full(len(rewards), sparse_failure_reward / (1.0 - discount), np.float32)
    return lfilter([1.0], [1.0, -discount], rewards[::-1])[::-1].astype(np.float32)
