"""Evaluate K seeds' policies at once: the seeds' episodes run in one gymnasium vector env and all of them act
through one batched, jitted policy call per step.

At most `max_eval_envs()` envs are alive at once (an OGBench manipulation env holds about 165 MB): when K seeds x E
episodes need more, the episodes run in waves of K x W envs, each episode with the same reset seed as when all run
together, so results do not depend on the cap. The cap is `O2O_EVAL_ENVS` (the CLI's `--eval-envs`), default 16.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from o2o.envs import make_env, normalized_score, reference_returns
from o2o.envs.actions import to_env_actions
from o2o.errors import O2OError


DEFAULT_MAX_EVAL_ENVS = 16


def max_eval_envs() -> int:
    value = os.environ.get("O2O_EVAL_ENVS", str(DEFAULT_MAX_EVAL_ENVS))
    if not value.isdigit() or int(value) < 1:
        raise O2OError(f"O2O_EVAL_ENVS / --eval-envs = {value!r}; expected a positive number of envs")
    return int(value)


def wave_width(num_seeds: int, episodes: int) -> int:
    """Episodes per seed that run at once: as many as fit in the cap (at least one, so K seeds need K envs)."""
    return max(1, min(episodes, max_eval_envs() // num_seeds))


def make_eval_envs(env_id: str, num_seeds: int, episodes: int, env_kwargs: dict | None = None) -> gym.vector.VectorEnv:
    """The envs that evaluate `num_seeds` seeds x `episodes` episodes: one wave's worth (made with the dataset's
    recorded `env_kwargs`, if any)."""
    width = num_seeds * wave_width(num_seeds, episodes)
    return gym.vector.SyncVectorEnv([lambda: make_env(env_id, **(env_kwargs or {})) for _ in range(width)])


def batched_policy(agent) -> Callable:
    """(states, observations, episode_keys, t, last_rewards) -> actions: every seed's evaluation actions for
    (seeds, envs, obs_dim) observations in one jitted call. An agent whose evaluation samples draws with
    fold_in(episode key, t), so an episode's draws depend on nothing but its own reset seed and step. An agent that
    acts on the episode so far (`act_in_episode`) keeps one memory per env here, begun afresh at t = 0."""
    def one_env(state, memory, observation, key, t, last_reward):
        key = jax.random.fold_in(key, t)
        if agent.act_in_episode is None:
            return agent.act(state, observation[None], key, True)[0], memory
        return agent.act_in_episode(state, memory, observation, last_reward, t, key)

    begin = agent.begin_episode or (lambda state: ())
    step = jax.jit(jax.vmap(jax.vmap(one_env, in_axes=(None, 0, 0, 0, None, 0)), in_axes=(0, 0, 0, 0, None, 0)))
    memory: dict[str, Any] = {}

    def policy(states, observations, episode_keys, t, last_rewards):
        if t == 0:  # a memory of the right shape; act_in_episode starts it afresh at t = 0
            one = begin(jax.tree.map(lambda x: x[0], states))
            memory["now"] = jax.tree.map(lambda x: jnp.broadcast_to(x, observations.shape[:2] + x.shape), one)
        actions, memory["now"] = step(states, memory["now"], observations, episode_keys, t, last_rewards)
        return actions

    return policy


def evaluate(
    policy: Callable[[np.ndarray, jax.Array, np.ndarray, np.ndarray], jax.Array],
    envs: gym.vector.VectorEnv,
    seeds: list[int],
    episodes: int,
    round_seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Undiscounted return of the first episode of every env, and its success (1/0 from `info["success"]` at the
    episode's last step; NaN where the env reports none), both of shape (num_seeds, episodes).

    `policy` maps observations (num_seeds, W, obs_dim), each episode's key (num_seeds, W), the step t and the rewards
    of step t - 1 (num_seeds, W) to actions in [-1, 1] of shape (num_seeds, W, act_dim) (see `batched_policy`), W the
    episodes per seed of one wave (`envs` holds num_seeds x W envs; the last wave repeats its final episode to fill
    them, and the repeats are dropped). Episode e of training seed s resets its env with seed
    `round_seed + 10_007 * s + e`: an evaluation round is reproducible, and a seed is evaluated on the same episodes
    whether it trains alone or beside others, in one wave or many.
    """
    num_seeds = len(seeds)
    width = envs.num_envs // num_seeds
    assert envs.num_envs == num_seeds * width, f"{envs.num_envs} envs for {num_seeds} seeds"
    returns = np.zeros((num_seeds, episodes))
    successes = np.full((num_seeds, episodes), np.nan)
    for first in range(0, episodes, width):
        wave = np.minimum(np.arange(first, first + width), episodes - 1)
        wave_returns, wave_successes = _run_wave(policy, envs, seeds, wave, round_seed)
        returns[:, wave], successes[:, wave] = wave_returns, wave_successes
    return returns, successes


def _run_wave(policy, envs, seeds: list[int], wave: np.ndarray, round_seed: int) -> tuple[np.ndarray, np.ndarray]:
    num_seeds, width = len(seeds), len(wave)
    n = num_seeds * width
    low, high = envs.single_action_space.low, envs.single_action_space.high
    reset_seeds = [round_seed + 10_007 * s + int(e) for s in seeds for e in wave]
    observations, _ = envs.reset(seed=reset_seeds)
    episode_keys = jax.vmap(jax.random.PRNGKey)(np.asarray(reset_seeds, np.int64) % 2**31).reshape(num_seeds, width, -1)
    returns = np.zeros(n)
    successes = np.full(n, np.nan)
    running = np.ones(n, dtype=bool)
    t, rewards = 0, np.zeros(n)
    while running.any():
        actions = np.asarray(policy(observations.reshape(num_seeds, width, -1).astype(np.float32), episode_keys,
                                    np.int32(t), rewards.reshape(num_seeds, width).astype(np.float32)))
        t += 1
        observations, rewards, terminated, truncated, infos = envs.step(to_env_actions(actions.reshape(n, -1), low, high))
        returns += np.where(running, rewards, 0.0)
        ending = running & (terminated | truncated)
        for key in ("success", "is_success"):
            if key in infos:
                reported = ending & np.asarray(infos.get(f"_{key}", np.ones(n, bool)), bool)
                successes[reported] = np.asarray(infos[key], np.float64)[reported]
                break
        running &= ~ending
    return returns.reshape(num_seeds, width), successes.reshape(num_seeds, width)


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
    elif "success_rate" in record:  # a goal task without reference returns is scored by its success rate
        record.update(normalized_score=record["success_rate"], normalized_score_per_seed=record["success_rate_per_seed"])
    return record
