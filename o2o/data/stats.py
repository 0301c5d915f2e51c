"""What a dataset holds: returns, episode lengths, and the dataset-quality measures TQ and SACo.

TQ and SACo come from Schweighofer et al., "A Dataset Perspective on Offline Reinforcement Learning" (CoLLAs 2022):
- TQ (trajectory quality) is the dataset's average episode return normalized between a random and an expert policy:
  `TQ = (mean_return - random_return) / (expert_return - random_return)`; 0 = random, 1 = expert. It needs reference
  returns, so it is None when none are known. o2o averages the complete episodes (`complete_episodes`).
- SACo (state-action coverage) is the number of unique state-action pairs, normalized. The paper counts exact unique
  pairs of discrete MinAtar states; in continuous spaces every pair is unique, so o2o counts occupied cells of a grid:
  each dimension of the concatenated vector (s, a) is standardized with the reference statistics (the dataset's own unless
  a reference dataset is given) and cut into cells `cell_width` standard deviations wide. Without a reference,
  SACo = occupied cells / transitions (1 = no two steps share a cell); with one, as in the paper,
  SACo = occupied cells / the reference dataset's occupied cells.
Belkhale et al.'s action divergence and transition diversity are estimated in `o2o.data.quality`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from o2o.data.dataset import Dataset
from o2o.data.quality import dataset_quality
from o2o.data.validate import DERIVED_NEXT_OBSERVATIONS

SACO_CELL_WIDTH = 0.5  # in standard deviations per dimension
_SACO_ROWS = 1 << 18


def complete_episodes(dataset: Dataset, time_limit: int | None) -> np.ndarray:
    """(num_episodes,) bool: the episodes that terminated or ran to the env's `time_limit` steps (None: unknown, so only
    terminations count). The others were cut short, as each env's stream is where collection stops: their returns
    misstate the policy (a few steps of Pendulum cost far less than a full episode). Where the next observations were
    derived, an episode cut by its timeout lost its last step, which had none on record: `time_limit - 1` steps then
    ran to the limit."""
    ends = dataset.episode_ends
    complete = dataset.terminals[ends] | (dataset.episode_lengths == (time_limit or -1))
    if time_limit and dataset.metadata.get(DERIVED_NEXT_OBSERVATIONS):
        complete |= dataset.timeouts[ends] & (dataset.episode_lengths == time_limit - 1)
    return complete


def behaviour(dataset: Dataset, reference_returns: tuple[float, float] | None,
              time_limit: int | None) -> dict[str, Any]:
    """How well the policy that collected the data did: the mean return of the complete episodes, and its TQ. Where no
    episode is complete (a time limit other than the env's, say), all episodes are averaged, and
    `return_episodes_complete` = 0 says so."""
    complete = complete_episodes(dataset, time_limit)
    returns = dataset.episode_returns[complete] if complete.any() else dataset.episode_returns
    mean = float(returns.mean())
    low, high = reference_returns or (None, None)
    return {"return_episodes_complete": int(complete.sum()), "behaviour_episodes": int(returns.size),
            "behaviour_return_mean": mean, "tq": None if reference_returns is None else (mean - low) / (high - low)}


def describe(dataset: Dataset, reference_returns: tuple[float, float] | None = None,
             time_limit: int | None = None, quality: bool = False) -> dict[str, Any]:
    """Plain-number summary of a dataset (JSON-ready). `return_*` describe all its episodes; `behaviour_*` and TQ the
    complete ones (`behaviour`), given the env's `time_limit` in steps. `quality` adds `dataset_quality`'s action
    variance and transition noise, which search nearest neighbours: seconds on a million transitions, where the rest
    takes about as long."""
    returns, lengths = dataset.episode_returns, dataset.episode_lengths
    quantiles = np.quantile(returns, [0.1, 0.25, 0.5, 0.75, 0.9])
    summary: dict[str, Any] = {
        "env": dataset.env_id,
        "transitions": len(dataset),
        "episodes": dataset.num_episodes,
        "observation_dim": dataset.observation_dim,
        "action_dim": dataset.action_dim,
        "terminals": int(np.count_nonzero(dataset.terminals)),
        "timeouts": int(np.count_nonzero(dataset.timeouts)),
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "return_min": float(returns.min()),
        "return_max": float(returns.max()),
        "return_quantiles": {f"q{int(q * 100)}": float(v) for q, v in zip([0.1, 0.25, 0.5, 0.75, 0.9], quantiles)},
        "length_mean": float(lengths.mean()),
        "length_min": int(lengths.min()),
        "length_max": int(lengths.max()),
        "reward_mean": float(np.mean(dataset.rewards, dtype=np.float64)),
        "mask_zero_fraction": float(np.mean(~dataset.bootstrap)),  # transitions whose TD target does not bootstrap
        "goal_conditioned": bool(dataset.metadata.get("goal_conditioned", False)),
        **behaviour(dataset, reference_returns, time_limit),
        "saco": state_action_coverage(dataset),
        **(dataset_quality(dataset) if quality else {}),
    }
    return summary


def trajectory_quality(dataset: Dataset, reference_returns: tuple[float, float] | None,
                       time_limit: int | None = None) -> float | None:
    return behaviour(dataset, reference_returns, time_limit)["tq"]



def state_action_coverage(
    dataset: Dataset, reference: Dataset | None = None, cell_width: float = SACO_CELL_WIDTH
) -> float:
    basis = reference if reference is not None else dataset
    mean, std = _state_action_moments(basis)
    occupied = _occupied_cells(dataset, mean, std, cell_width)
    if reference is None:
        return occupied / len(dataset)
    return occupied / _occupied_cells(reference, mean, std, cell_width)


def _state_action_rows(dataset: Dataset):
    for start in range(0, len(dataset), _SACO_ROWS):
        stop = start + _SACO_ROWS
        yield np.concatenate(
            [np.asarray(dataset.observations[start:stop]), np.asarray(dataset.actions[start:stop])], axis=1
        ).astype(np.float64)


def _state_action_moments(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    total = sum_sq = 0.0
    for rows in _state_action_rows(dataset):
        total = total + rows.sum(axis=0)
        sum_sq = sum_sq + np.square(rows).sum(axis=0)
    mean = total / len(dataset)
    std = np.sqrt(np.maximum(sum_sq / len(dataset) - np.square(mean), 0.0))
    return mean, np.where(std > 1e-8, std, 1.0)


def _occupied_cells(dataset: Dataset, mean: np.ndarray, std: np.ndarray, cell_width: float) -> int:
    cells = [np.floor((rows - mean) / (std * cell_width)).astype(np.int64) for rows in _state_action_rows(dataset)]
    return int(np.unique(np.concatenate(cells), axis=0).shape[0])
