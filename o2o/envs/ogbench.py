"""OGBench (Park et al., ICLR 2025; PyPI `ogbench`): its names, its singletask relabelling and where its datasets live.

Names: an OGBench dataset is `<env>-<kind>-v0` (`cube-single-play-v0`), its goal-conditioned env `<env>-v0`, and a
single-task env `<env>-singletask-task<k>-v0`. OGBench's loader also takes the combined form
`cube-single-play-singletask-task2-v0` (dataset + task); o2o accepts it wherever it takes an env or a dataset.
Singletask rewards and masks come from `ogbench.relabel_utils.relabel_dataset`, the package's own function, in
`o2o.envs.make.relabel_for_task` (it needs an env made there).

A task's sparse variant, `<env>-singletask-task<k>-sparse-v0` (also with the dataset kind), is Q-chunking's (Li, Zhou &
Levine, 2025, `--sparse`, for scene and puzzle): reward 0 once every subtask is done, else -1, in the data and online;
masks and episodes as the dense task's. `o2o.envs.make` builds it on the dense task OGBench registers.
"""

from __future__ import annotations

import dataclasses
import os
import re
from functools import lru_cache
from pathlib import Path

from o2o.errors import DatasetError, O2OError

DATASET_KINDS = ("play", "noisy", "navigate", "stitch", "explore")
_NAME = re.compile(
    rf"^(?P<env>[a-z0-9-]+?)(?:-(?P<kind>{'|'.join(DATASET_KINDS)}))?(?:-(?P<mode>singletask|oraclerep))?"
    r"(?:-task(?P<task>\d+))?(?P<sparse>-sparse)?-v(?P<version>\d+)$"
)
FAMILIES = frozenset({"cube", "scene", "puzzle", "antmaze", "humanoidmaze", "pointmaze", "antsoccer", "visual",
                      "powderworld"})


@dataclasses.dataclass(frozen=True)
class Name:
    env: str  # cube-single
    kind: str | None  # play
    task: int | None  # 2; None = the env's default task or goal-conditioned
    singletask: bool
    version: str
    sparse: bool = False  # Q-chunking's sparse reward: 0 once every subtask is done, else -1

    @property
    def dataset(self) -> str | None:
        return f"{self.env}-{self.kind}-v{self.version}" if self.kind else None

    @property
    def task_env(self) -> str | None:
        if not self.singletask:
            return None
        task = f"-task{self.task}" if self.task else ""
        return f"{self.env}-singletask{task}{'-sparse' if self.sparse else ''}-v{self.version}"

    @property
    def goal_env(self) -> str:
        return f"{self.env}-v{self.version}"


def parse(name: str) -> Name | None:
    """The parts of an OGBench name, or None when `name` is not one (no OGBench env family matches)."""
    match = _NAME.match(name)
    if not match or match["env"].split("-")[0] not in FAMILIES:
        return None
    if match["sparse"] and match["mode"] != "singletask":
        return None
    return Name(match["env"], match["kind"], int(match["task"]) if match["task"] else None,
                match["mode"] == "singletask", match["version"], bool(match["sparse"]))


def registered_id(env_id: str) -> str:
    """The id gymnasium knows: a sparse task's dense task (`scene-singletask-task1-sparse-v0` -> its id without
    `-sparse`); any other id unchanged."""
    name = parse(env_id)
    return dataclasses.replace(name, sparse=False).task_env if name and name.sparse else env_id


def is_sparse(env_id: str | None) -> bool:
    name = parse(env_id) if env_id else None
    return bool(name and name.sparse)


def sparse_rewards(rewards):
    """Q-chunking's sparse reward from OGBench's singletask reward (subtasks done - subtasks, so 0 exactly when all
    are done): 0 there, -1 elsewhere."""
    return -(rewards != 0).astype(rewards.dtype)


@lru_cache(maxsize=1)
def register() -> None:
    """Register OGBench's envs with gymnasium (importing `ogbench` does; it is slow, so only on demand)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.environ.setdefault("MUJOCO_GL", "egl")  # dm_control would otherwise try an X display at import
        import ogbench  # noqa: F401
    # OGBench's manipulation envs build a Box from float64 bounds at every access of action_space (each reset too)
    warnings.filterwarnings("ignore", message=r".*Box (low|high)'s precision lowered by casting to float32")


def is_task_env(env_id: str | None) -> bool:
    name = parse(env_id) if env_id else None
    return bool(name and name.singletask)


def task_env_of(env_id: str) -> str:
    """`cube-single-play-singletask-task2-v0` -> `cube-single-singletask-task2-v0`; other ids unchanged."""
    name = parse(env_id)
    return name.task_env if name and name.singletask and name.kind else env_id


def dataset_directories() -> list[Path]:
    """Where a dataset named like `cube-single-play-v0` is looked for: $O2O_DATASETS, ./datasets, OGBench's cache."""
    roots = [os.environ.get("O2O_DATASETS"), "datasets", os.environ.get("OGBENCH_DATA_DIR"), "~/.ogbench/data"]
    return [Path(root).expanduser() for root in roots if root]


def find_dataset(source: str) -> Path | None:
    """The file or directory an OGBench dataset name refers to, when `source` is such a name and not a path."""
    name = parse(source)
    if Path(source).exists() or name is None or name.dataset is None:
        return None
    for root in dataset_directories():
        for candidate in (root / name.dataset, root / f"{name.dataset}.npz"):
            if candidate.exists():
                return candidate
    searched = ", ".join(str(root) for root in dataset_directories())
    raise DatasetError(
        f"{source}: OGBench dataset {name.dataset} not found (looked for {name.dataset} and {name.dataset}.npz in "
        f"{searched}); make it with `o2o collect {name.goal_env} --level {name.kind}` or pass its path"
    )


def task_hint(dataset_name: str | None) -> str:
    """A task env for an OGBench dataset name, to show in an error: `cube-single-play-v0` -> cube-single-singletask-task1-v0."""
    name = parse(dataset_name) if dataset_name else None
    return f"{name.env}-singletask-task1-v{name.version}" if name else "ENV-singletask-task1-v0"


def check_task(env_id: str) -> None:
    """A clear error for a task number the env family does not have."""
    import gymnasium as gym

    register()
    name = parse(env_id)
    env_id = registered_id(env_id)
    if name and name.singletask and env_id not in gym.registry:
        prefix = f"{name.env}-singletask-task"
        tasks = sorted(int(k[len(prefix):].split("-")[0]) for k in gym.registry if k.startswith(prefix))
        if tasks:
            raise O2OError(f"{env_id}: {name.env} has tasks {tasks[0]}-{tasks[-1]}, not task {name.task}")
