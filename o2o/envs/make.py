"""Make gymnasium environments (gymnasium-robotics included) from an id, and check them against datasets."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import warnings
from functools import lru_cache
from typing import Any, Mapping

import numpy as np

from o2o.data import Dataset, check_spaces, load_dataset
from o2o.data.observations import dict_layout
from o2o.data.validate import Spaces
from o2o.envs import ogbench
from o2o.errors import DatasetError, O2OError


@lru_cache(maxsize=1)
def _register_robotics() -> None:
    import gymnasium as gym

    # gymnasium-robotics warns, and prints straight to stderr, notices about Adroit's reward versions on import
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                import gymnasium_robotics
        except ImportError:  # AntMaze and Adroit then stay unavailable; MuJoCo locomotion still works
            return
        gym.register_envs(gymnasium_robotics)


@lru_cache(maxsize=1)
def _route_mujoco_warnings() -> None:
    """gymnasium's HalfCheetah model uses a compiler attribute that MuJoCo 4 deprecates, and MuJoCo prints that notice
    (and appends it to MUJOCO_LOG.TXT in the working directory) for every env made: 100 lines per evaluation. That
    notice is dropped; other MuJoCo warnings become Python warnings. A handler the user installed stays."""
    import mujoco

    if mujoco.get_mju_user_warning() is not None:
        return

    def forward(message: str) -> None:
        if "settotalmass" not in message:
            warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)

    mujoco.set_mju_user_warning(forward)


def make_env(env_id: str, **kwargs):
    """`gymnasium.make(env_id)`, with gymnasium-robotics registered, a clear error for an unknown id, and Dict
    observations flattened in gymnasium's layout (o2o.data.observations)."""
    import gymnasium as gym

    requested, env_id = env_id, ogbench.registered_id(env_id)
    if ogbench.parse(env_id):  # also when another import of ogbench registered its envs: register() sets filters
        ogbench.register()
        ogbench.check_task(env_id)
    if env_id not in gym.registry:
        _register_robotics()  # imported only when needed: it is slow and prints notices
    if env_id not in gym.registry:
        close = [k for k in gym.registry if k.split("-")[0].lower() == env_id.split("-")[0].lower()]
        hint = f" (registered versions: {', '.join(sorted(close))})" if close else ""
        raise O2OError(f"environment {env_id!r} is not registered with gymnasium{hint}")
    _refuse_mujoco_py_version(env_id)
    if "mujoco" in str(gym.spec(env_id).entry_point):
        _route_mujoco_warnings()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*DISPLAY.*")  # OGBench's envs import glfw, which looks for X
        try:
            env = gym.make(env_id, **kwargs)
        except TypeError as e:  # arguments recorded with a dataset that this version of the env does not take
            if not kwargs:
                raise
            raise O2OError(f"environment {env_id} cannot be made with {', '.join(sorted(kwargs))}: {e}") from e
    if isinstance(env.observation_space, gym.spaces.Dict):  # goal-conditioned envs: AntMaze, PointMaze, Fetch, ...
        dict_layout(env.observation_space, f"environment {env_id}")
        env = gym.wrappers.FlattenObservation(env)
    if ogbench.is_sparse(requested):  # Q-chunking's sparse variant of the task (o2o.envs.ogbench)
        env = gym.wrappers.TransformReward(env, lambda reward: float(ogbench.sparse_rewards(np.float64(reward))))
    return env


def _refuse_mujoco_py_version(env_id: str) -> None:
    """gymnasium still registers the MuJoCo v2 and v3 ids (D4RL's, e.g. Hopper-v2), but making one needs the retired
    mujoco-py and fails with a bare ImportError: name the v5 id o2o runs instead."""
    import gymnasium as gym

    spec = gym.spec(env_id)
    current = gym.envs.registration.get_env_id(spec.namespace, spec.name, 5)
    current_entry_point = str(gym.spec(current).entry_point) if current in gym.registry else ""
    if spec.version in (2, 3) and current_entry_point.startswith("gymnasium.envs.mujoco"):
        raise O2OError(f"environment {env_id}: MuJoCo v{spec.version} environments need mujoco-py, which o2o does not "
                       f"use; o2o runs gymnasium's MuJoCo v5 versions: use {current}")


def observation_layout(env) -> dict[str, list[int]] | None:
    """Where each key of a flattened Dict observation lies in the vector o2o sees (None for a Box env)."""
    import gymnasium as gym

    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.FlattenObservation):
            return dict_layout(env.env.observation_space, str(env.spec.id if env.spec else env))
        env = env.env
    return None


def recorded_env_kwargs(metadata: Mapping | None) -> dict[str, Any]:
    """The keyword arguments of `gymnasium.make` that a dataset's env was made with, as Minari records them (AntMaze's
    goal and start cells, whether the task goes on past the goal, the episode limit): o2o evaluates and fine-tunes on
    that dataset in an env made with them too."""
    return dict((metadata or {}).get("env_kwargs") or {})


def env_spaces(env_id: str, env_kwargs: Mapping | None = None) -> Spaces:
    """Observation and action spaces of an environment: Box spaces (a Dict observation arrives flattened)."""
    return _env_spaces(env_id, json.dumps(dict(env_kwargs or {}), sort_keys=True))


@lru_cache(maxsize=None)
def _env_spaces(env_id: str, env_kwargs: str) -> Spaces:
    import gymnasium as gym

    env = make_env(env_id, **json.loads(env_kwargs))
    try:
        for role, space in (("observation", env.observation_space), ("action", env.action_space)):
            if not isinstance(space, gym.spaces.Box):
                raise O2OError(
                    f"environment {env_id}: {role} space is {type(space).__name__}; o2o supports only Box {role}s for now"
                )
        return Spaces(
            observation_shape=tuple(env.observation_space.shape),
            action_shape=tuple(env.action_space.shape),
            action_low=np.asarray(env.action_space.low, np.float32),
            action_high=np.asarray(env.action_space.high, np.float32),
            env_id=env_id,
            observation_layout=observation_layout(env),
        )
    finally:
        env.close()


@lru_cache(maxsize=None)
def episode_limit(env_id: str) -> int | None:
    """The env's time limit in steps, as registered (None without one)."""
    env = make_env(env_id)
    try:
        return env.spec.max_episode_steps
    finally:
        env.close()


def resolve_env_id(requested: str | None, recorded: str | None, source: str, required: bool = True) -> str | None:
    """The env to use: `--env` if given (it must agree with the dataset's record), else the dataset's record."""
    if requested and recorded and requested != recorded:
        raise O2OError(f"{source}: dataset was recorded on {recorded} but --env {requested} was given; they must match")
    env_id = requested or recorded
    if not env_id and required:
        raise O2OError(f"{source}: the dataset does not record its environment; pass --env ENV_ID (e.g. --env Hopper-v5)")
    return env_id


def relabel_for_task(dataset: Dataset, env_id: str, source: str) -> Dataset:
    """Rewards and bootstrap masks of the single task `env_id`, by OGBench's own relabelling of the dataset's qpos
    (and button states): reward = subtasks done - subtasks, mask 0 where all are done. The trajectory goes on past a
    success, so episode boundaries are unchanged."""
    from ogbench.relabel_utils import relabel_dataset

    needed = ["qpos"] + (["button_states"] if env_id.startswith(("scene", "puzzle")) else [])
    missing = [k for k in needed if k not in dataset.extras]
    if missing:
        raise DatasetError(
            f"{source}: no {' or '.join(missing)} per step; relabelling rewards for the single task {env_id} needs "
            f"the simulator state OGBench datasets record (fields {', '.join(needed)})"
        )
    dense_task = ogbench.registered_id(env_id)  # OGBench relabels the dense task; its sparse variant follows below
    env = make_env(dense_task)
    try:
        labels = {k: np.asarray(dataset.extras[k]) for k in needed}
        relabel_dataset(dense_task, env, labels)
    finally:
        env.close()
    rewards, how = labels["rewards"], "ogbench.relabel_utils.relabel_dataset"
    if ogbench.is_sparse(env_id):
        rewards, how = ogbench.sparse_rewards(rewards), how + ", then sparse: 0 once every subtask is done, else -1"
    metadata = {**dataset.metadata, "env_id": env_id, "goal_conditioned": False, "relabelled_for": env_id,
                "rewards": how}
    return dataclasses.replace(dataset, rewards=rewards, masks=labels["masks"].astype(bool), metadata=metadata)


def load_for_env(source: str, env: str | None, required: bool = False,
                 goal_conditioned: bool = False) -> tuple[Dataset, str | None]:
    """Load a dataset and resolve its environment (`--env` or its record); when known, the dataset is checked against
    the env's spaces and carries the env id in its metadata.

    OGBench: SOURCE may be a dataset name (`cube-single-play-v0`, or with its task,
    `cube-single-play-singletask-task2-v0`) found in `ogbench.dataset_directories()`, and `--env` may name the task
    in either form; a single-task env relabels the rewards and masks (`relabel_for_task`). Goal-conditioned data
    without a task is refused unless `goal_conditioned` (to describe or convert it)."""
    dataset = load_dataset(ogbench.find_dataset(source) or source)
    if env is None and ogbench.is_task_env(source):
        env = source
    env = ogbench.task_env_of(env) if env else env
    if ogbench.is_task_env(env) and dataset.metadata.get("relabelled_for") != env and (
        dataset.metadata.get("goal_conditioned") or "qpos" in dataset.extras
    ):
        dataset = relabel_for_task(dataset, env, source)
    if dataset.metadata.get("goal_conditioned") and not goal_conditioned:
        raise O2OError(
            f"{source}: a goal-conditioned dataset (no task rewards); o2o's algorithms learn one task: pass --env "
            f"{ogbench.task_hint(dataset.metadata.get('ogbench_dataset'))} (any task number) to relabel it with that "
            "task's rewards"
        )
    env_id = resolve_env_id(env, dataset.env_id, source, required=required)
    if env_id:
        check_spaces(dataset, env_spaces(env_id, recorded_env_kwargs(dataset.metadata)), source)
        if dataset.env_id != env_id:
            dataset = dataclasses.replace(dataset, metadata={**dataset.metadata, "env_id": env_id})
    return dataset, env_id
