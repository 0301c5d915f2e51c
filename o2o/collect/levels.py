"""D4RL-protocol datasets: `o2o collect ENV_ID --level random|medium|medium-replay|expert|medium-expert|waypoint`.

random = a randomly initialised SAC policy acting stochastically (D4RL's "random"); medium and expert roll out o2o's
shipped behaviour policies (`o2o.collect.zoo`) with stochastic actions, medium-replay is the replay buffer of the medium
policy's training run, and medium-expert the medium and expert datasets end to end; waypoint is D4RL's maze2d protocol
on PointMaze (`o2o.collect.maze`). Default sizes follow D4RL (1M transitions per policy).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax

from o2o.agents import Spec, sac
from o2o.collect import maze, zoo as zoo_policies
from o2o.collect.episodes import complete_episode_returns, time_limit
from o2o.collect.rollout import rollout
from o2o.data import Dataset, write_minari, write_o2o
from o2o.data.dataset import concatenate
from o2o.data.stats import behaviour
from o2o.envs import env_spaces, episode_limit, normalized_score, reference_returns
from o2o.errors import O2OError
from o2o.files import check_destination

LEVELS = ("random", "medium", "medium-replay", "expert", "medium-expert", "waypoint")


def random_policy(env_id: str, seed: int):
    """A SAC actor at its random initialisation (key = seed), sampling actions."""
    spaces = env_spaces(env_id)
    spec = Spec.unnormalized(spaces.observation_shape[0], spaces.action_shape[0])
    state = sac.init(jax.random.PRNGKey(seed), spec, sac.Config())
    return lambda observations, key: sac.act(state, observations, key, deterministic=False)


def collect(env_id: str, level: str, transitions: int = 1_000_000, seed: int = 0, num_envs: int = 32,
            zoo: str | Path | None = None) -> Dataset:
    """A D4RL-protocol dataset; `transitions` per behaviour policy (medium-expert holds twice as many; medium-replay
    is the medium policy's training buffer whatever its size)."""
    if level not in LEVELS:
        raise O2OError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")
    if transitions < 1:
        raise O2OError(f"--transitions must be at least 1 (got {transitions})")
    metadata = {"env_id": env_id, "level": level, "seed": seed,
                "provenance": {"collector": "o2o collect", "num_envs": num_envs}}
    references = reference_returns(env_id)
    if references is not None:
        metadata.update(ref_min_score=references[0], ref_max_score=references[1])
    if level == "waypoint":  # D4RL's maze2d protocol (o2o.collect.maze), scored in its evaluation env
        data = maze.collect(env_id, transitions, seed)
        low, high, returns = (maze.eval_returns(env_id, policy, seed, maze.EVAL_EPISODES).mean()
                              for policy in ("random", "expert", "noisy"))
        card = {"kind": "waypoint-pd", "p_gain": maze.P_GAIN, "d_gain": maze.D_GAIN, "action_noise": maze.ACTION_NOISE}
        return Dataset(**data.arrays(), metadata={
            **data.metadata, **metadata, "policy": card, "max_episode_steps": episode_limit(env_id),
            "env_kwargs": maze.eval_env_kwargs(env_id), "ref_min_score": float(low), "ref_max_score": float(high),
            "measured_return_mean": float(returns), "measured_episodes": maze.EVAL_EPISODES,
            "measured_in": "evaluation env"})
    if level == "medium-replay":
        data = zoo_policies.load_medium_replay(env_id, zoo)
        data = Dataset(**data.arrays(), metadata={**data.metadata, **metadata, "seed": data.metadata.get("seed"),
                                                  "max_episode_steps": episode_limit(env_id)})
    elif level == "medium-expert":
        parts = [collect(env_id, part, transitions, seed + offset, num_envs, zoo) for offset, part in enumerate(("medium", "expert"))]
        data = concatenate(parts, {**metadata, "max_episode_steps": parts[0].metadata["max_episode_steps"],
                                   "policy": {"medium": parts[0].metadata["policy"], "expert": parts[1].metadata["policy"]}})
    else:
        if level == "random":
            policy, card = random_policy(env_id, seed), {"kind": "random-init", "algo": "sac", "init_seed": seed}
        else:
            card, policy = zoo_policies.load_policy(env_id, level, zoo)
        data = rollout(policy, env_id, transitions, seed=seed, num_envs=num_envs, metadata={**metadata, "policy": card})
    complete = complete_episode_returns(data)
    data.metadata.update(measured_return_mean=float(complete.mean()) if complete.size else None,
                         measured_episodes=int(complete.size))
    return data


def collect_to(env_id: str, level: str, out: str | Path, fmt: str = "o2o", **kwargs) -> tuple[Path, Dataset]:
    """`collect`, then write to `out`; a bad format or destination is refused before collecting."""
    writer = {"o2o": write_o2o, "minari": write_minari}.get(fmt)
    if writer is None:
        raise O2OError(f"unknown format {fmt!r}; choose o2o or minari")
    check_destination(out)
    data = collect(env_id, level, **kwargs)
    return writer(data, out), data


def summary(data: Dataset, path: Path) -> dict[str, Any]:
    """What `o2o collect` reports (JSON-ready): the dataset's size and how well its behaviour policy did, measured on
    the complete episodes (`o2o.data.stats.behaviour`: each env's stream ends in an episode cut by the end of
    collection)."""
    references = reference_returns(data.env_id, data.metadata)
    measured = behaviour(data, references, time_limit(data))
    if data.metadata.get("measured_in") == "evaluation env":  # the stream's episodes end at goals, not time limits
        mean, low, high = data.metadata["measured_return_mean"], *(references or (None, None))
        measured = {"return_episodes_complete": data.metadata["measured_episodes"], "behaviour_return_mean": mean,
                    "behaviour_episodes": data.metadata["measured_episodes"], "measured_in": "evaluation env",
                    "tq": None if references is None else (mean - low) / (high - low)}
    return {"dataset": str(path), "env": data.env_id, "level": data.metadata["level"], "transitions": len(data),
            "episodes": data.num_episodes, **measured,
            "normalized_return_mean": None if references is None else
            float(normalized_score(data.env_id, measured["behaviour_return_mean"], data.metadata))}
