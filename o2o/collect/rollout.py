"""Fast rollouts: many envs stepped together, one batched jitted policy call per step, transitions kept as arrays.

Each env's stream of episodes is stored contiguously, so episodes never interleave; the stream's last, unfinished
episode ends with a timeout. Episode k of env i resets with a seed derived from (seed, i, k) and the policy's noise for
step t comes from fold_in(key(seed), t): the same seed gives the same dataset.
"""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np

from o2o.data import Dataset
from o2o.envs import make_env, observation_layout
from o2o.envs.actions import to_env_actions

Policy = Callable[[jax.Array, jax.Array], jax.Array]  # (observations (n, obs_dim), key) -> actions in [-1, 1]


def rollout(policy: Policy, env_id: str, transitions: int, seed: int = 0, num_envs: int = 32,
            metadata: dict | None = None) -> Dataset:
    """Collect exactly `transitions` steps with a stochastic policy."""
    num_envs = max(1, min(num_envs, transitions))
    steps = -(-transitions // num_envs)
    # a plain list of envs: gymnasium's vector wrapper merges info dicts every step, which costs more than the policy
    envs = [make_env(env_id) for _ in range(num_envs)]
    space, max_episode_steps = envs[0].action_space, envs[0].spec.max_episode_steps
    layout = observation_layout(envs[0])
    low, high = space.low, space.high
    obs_dim, act_dim = envs[0].observation_space.shape[0], space.shape[0]
    observations = np.empty((steps, num_envs, obs_dim), np.float32)
    next_observations = np.empty((steps, num_envs, obs_dim), np.float32)
    actions = np.empty((steps, num_envs, act_dim), np.float32)
    rewards = np.empty((steps, num_envs), np.float32)
    terminals = np.empty((steps, num_envs), bool)
    timeouts = np.empty((steps, num_envs), bool)
    key = jax.random.PRNGKey(seed)
    act = jax.jit(lambda observations, t: policy(observations, jax.random.fold_in(key, t)))
    episodes = np.zeros(num_envs, np.int64)
    obs = np.stack([env.reset(seed=_reset_seed(seed, i, 0))[0] for i, env in enumerate(envs)]).astype(np.float32)
    try:
        for t in range(steps):
            env_actions = to_env_actions(np.asarray(act(obs, t)), low, high)
            observations[t], actions[t] = obs, env_actions
            for i, env in enumerate(envs):
                o, r, terminated, truncated, _ = env.step(env_actions[i])
                next_observations[t, i], rewards[t, i] = o, r
                terminals[t, i], timeouts[t, i] = terminated, truncated and not terminated
                if terminated or truncated:
                    episodes[i] += 1
                    o, _ = env.reset(seed=_reset_seed(seed, i, episodes[i]))
                obs[i] = o
    finally:
        for env in envs:
            env.close()
    timeouts[-1] |= ~terminals[-1]  # each env's stream ends where collection stopped

    def per_env(array: np.ndarray) -> np.ndarray:  # (steps, envs, ...) -> env 0's steps, then env 1's, ...
        return np.swapaxes(array, 0, 1).reshape(steps * num_envs, *array.shape[2:])

    keep = slice(0, transitions)  # the rounding-up surplus comes off the last env's stream
    timeouts = per_env(timeouts)[keep]
    terminals = per_env(terminals)[keep]
    timeouts[-1] = not terminals[-1]
    return Dataset(per_env(observations)[keep], per_env(actions)[keep], per_env(rewards)[keep],
                   per_env(next_observations)[keep], terminals, timeouts,
                   dict(metadata or {}, env_id=env_id, max_episode_steps=max_episode_steps,
                        **({"observation_layout": layout} if layout else {})))


_SEED_STRIDE, _ENV_STRIDE = 1_000_003, 10_007


def _reset_seed(seed: int, env_index: int, episode: int) -> int:
    offset = env_index * _ENV_STRIDE + int(episode)
    if episode < _ENV_STRIDE and offset < _SEED_STRIDE:  # here (seed, env, episode) -> reset seed is one-to-one
        return (seed * _SEED_STRIDE + offset) % (2**31)
    # past it that formula replays another env's (or seed's) initial states; the datasets collected so far (1M
    # transitions over 32 envs) never get there, so they keep their bytes
    return int(np.random.SeedSequence([seed, env_index, int(episode)]).generate_state(1)[0])
