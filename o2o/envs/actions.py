"""Agents act in [-1, 1] in every action dimension; environments and datasets use the env's own bounds. The two maps
between them live here and nowhere else."""

from __future__ import annotations

import numpy as np


def to_env_actions(actions: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """[-1, 1] -> [low, high] (agent outputs are clipped to [-1, 1] first)."""
    return low + (np.clip(actions, -1.0, 1.0) + 1.0) * 0.5 * (high - low)


def to_unit_actions(actions: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """[low, high] -> [-1, 1] (clipped: dataset actions may sit a rounding error outside the bounds)."""
    return np.clip(2.0 * (actions - low) / (high - low) - 1.0, -1.0, 1.0)
