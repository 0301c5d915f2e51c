"""Evaluate K seeds' policies at once: every seed's episodes run in one gymnasium vector env and all of them act
through one batched, jitted policy call per step."""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
import jax
import numpy as np

from o2o.envs import make_env, normalized_score, reference_returns
from o2o.envs.actions import to_env_actions


def make_eval_envs(env_id: str, num_envs: int) -> gym.vector.VectorEnv:
    return gym.vector.SyncVectorEnv([lambda: make_env(env_id) for _ in range(num_envs)])


def evaluate(
    policy: Callable[[jax.Array], jax.Array],
    envs: gym.vector.VectorEnv,
    seeds: list[int],
    episodes: int,
    round_seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Undiscounted return of the first episode of every env, and its success (1/0 from `info["success"]` at the
    episode's last step; NaN where the env reports none), both of shape (num_seeds, episodes).

    `policy` maps observations (num_seeds, episodes, obs_dim) to actions in [-1, 1] of shape (num_seeds, episodes, act_dim).
    Episode e of training seed s resets its env with seed `round_seed + 10_007 * s + e`: an evaluation round is
    reproducible, and a seed is evaluated on the same episodes whether it trains alone or beside others.
    """
    num_seeds = len(seeds)
    n = num_seeds * episodes
    assert envs.num_envs == n, f"{envs.num_envs} envs for {num_seeds} seeds x {episodes} episodes"
    low, high = envs.single_action_space.low, envs.single_action_space.high
    observations, _ = envs.reset(seed=[round_seed + 10_007 * s + e for s in seeds for e in range(episodes)])
    returns = np.zeros(n)
    successes = np.full(n, np.nan)
    running = np.ones(n, dtype=bool)
    while running.any():
        actions = np.asarray(policy(observations.reshape(num_seeds, episodes, -1).astype(np.float32)))
        observations, rewards, terminated, truncated, infos = envs.step(to_env_actions(actions.reshape(n, -1), low, high))
        returns += np.where(running, rewards, 0.0)
        ending = running & (terminated | truncated)
        for key in ("success", "is_success"):
            if key in infos:
                reported = ending & np.asarray(infos.get(f"_{key}", np.ones(n, bool)), bool)
                successes[reported] = np.asarray(infos[key], np.float64)[reported]
                break
        running &= ~ending
    return returns.reshape(num_seeds, episodes), successes.reshape(num_seeds, episodes)


def scores(episodes: tuple[np.ndarray, np.ndarray], env_id: str, metadata: dict) -> dict:
    """Per-seed mean return, every episode's return and, when known, normalized score and success rate (%), from
    `evaluate`'s (seeds, episodes) returns and successes."""
    returns, successes = episodes
    per_seed = returns.mean(axis=1)
    record = {"return_mean": float(per_seed.mean()), "return_per_seed": per_seed.tolist(),
              "episode_returns": returns.tolist()}
    if not np.isnan(successes).all():
        rate = 100.0 * np.nanmean(successes, axis=1)
        record.update(success_rate=float(rate.mean()), success_rate_per_seed=rate.tolist(),
                      episode_successes=np.nan_to_num(successes, nan=0.0).tolist())
    if reference_returns(env_id, metadata) is not None:
        normalized = normalized_score(env_id, per_seed, metadata)
        record.update(normalized_score=float(normalized.mean()), normalized_score_per_seed=normalized.tolist())
    return record
