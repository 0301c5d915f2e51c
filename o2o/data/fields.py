"""Per-transition fields an agent's update may read beyond s, a, r, s', done: one table of what each means, how it is
computed from a dataset, and how the online replay buffer fills it. An agent names the fields it reads
(`transition_fields`); the offline loop and the replay buffer read this table and nothing else about them.

`config` below is the agent's config; a field reads only the attributes its entry names (`discount`,
`sparse_failure_reward`)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from o2o.data.dataset import Dataset, episode_returns_to_go


@dataclasses.dataclass(frozen=True)
class TransitionField:
    description: str
    # (dataset, its actions mapped to [-1, 1], agent config) -> one value per step
    from_dataset: Callable[[Dataset, np.ndarray, Any], np.ndarray]
    per_action_dim: bool = False  # one value per action dimension (else one per step)
    # Online (None: the field has no online form, its agent learns offline only): the buffer's value until known ...
    unknown: float | None = None
    # ... then, when the step's episode ends: (the episode's rewards, agent config) -> one value per step of it
    at_episode_end: Callable[[np.ndarray, Any], np.ndarray] | None = None
    # ... or, once the same episode's next step is inserted: that step's action
    from_next_step: bool = False


def _mc_returns(rewards: np.ndarray, config: Any) -> np.ndarray:
    return episode_returns_to_go(rewards, config.discount, config.sparse_failure_reward)


FIELDS: dict[str, TransitionField] = {
    "mc_returns": TransitionField(
        "discounted Monte-Carlo return-to-go of the behaviour policy (Cal-QL)",
        lambda dataset, actions, config: dataset.returns_to_go(config.discount, config.sparse_failure_reward),
        unknown=-np.inf, at_episode_end=_mc_returns),
    "next_actions": TransitionField(
        "the action taken at s' in the same episode, or NaN where s' ends the data (ReBRAC)",
        lambda dataset, actions, config: dataset.next_actions(actions), per_action_dim=True, unknown=np.nan,
        from_next_step=True),
    "returns_to_go": TransitionField(
        "undiscounted return from the step to its episode's end, past any goal reached on the way (Decision "
        "Transformer, which conditions on a whole episode's return)",
        lambda dataset, actions, config: dataset.returns_to_go(1.0, stop_at_masks=False)),
    "timesteps": TransitionField(
        "the step's index within its episode (Decision Transformer)",
        lambda dataset, actions, config: dataset.timesteps()),
    "steps_to_episode_end": TransitionField(
        "how many steps of its episode follow the step, 0 at its last (windows: DT's, Q-chunking's)",
        lambda dataset, actions, config: dataset.episode_last_steps() - np.arange(len(dataset)),
        unknown=np.inf, at_episode_end=lambda rewards, config: np.arange(len(rewards) - 1, -1, -1.0)),
}


def at_episode_end(names: tuple[str, ...]) -> tuple[str, ...]:
    """Those of `names` that the online buffer fills when an episode ends."""
    return tuple(name for name in names if FIELDS[name].at_episode_end is not None)
