"""A bench's datasets: sources as given or `collect:ENV_ID:LEVEL[:TRANSITIONS]` specs and OGBench task names, checked
before Ray starts and made once into `BENCH_DIR/datasets/` by the first cell that needs them (seed 0, so every bench
gets the same bytes)."""

from __future__ import annotations

import fcntl
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from o2o.errors import O2OError

COLLECT = "collect:"


def dataset_label(dataset: str) -> str:
    if dataset.startswith(COLLECT):
        env_id, level, transitions = parse_collect(dataset)
        return f"{env_id}-{level}" + (f"-{transitions}" if transitions is not None else "")
    return Path(dataset.rstrip("/")).name or dataset


def parse_collect(spec: str) -> tuple[str, str, int | None]:
    from o2o.collect.levels import LEVELS

    parts = spec[len(COLLECT):].split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise O2OError(f"dataset {spec!r}: expected collect:ENV_ID:LEVEL or collect:ENV_ID:LEVEL:TRANSITIONS")
    if parts[1] not in LEVELS:
        raise O2OError(f"dataset {spec!r}: unknown level {parts[1]!r}; choose one of {', '.join(LEVELS)}")
    try:
        transitions = int(parts[2]) if len(parts) == 3 else None
    except ValueError:
        raise O2OError(f"dataset {spec!r}: transitions {parts[2]!r} is not an integer") from None
    if transitions is not None and transitions < 1:  # refused here, before Ray starts, not by the cell's collect
        raise O2OError(f"dataset {spec!r}: transitions must be at least 1 (got {transitions})")
    return parts[0], parts[1], transitions


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock held for the block: a worker left running by a killed driver and its replacement never write
    the same run directory at once (the kernel drops the lock when a process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def materialize(dataset: str, bench_dir: Path) -> str:
    """The dataset's source path: `collect:` specs are collected once into BENCH_DIR/datasets, and so are OGBench task
    names (`cube-single-play-singletask-task2-v0`) whose dataset is not found where o2o looks for it."""
    from o2o.envs import ogbench

    name = ogbench.parse(dataset)
    if name and name.singletask and name.kind and not Path(dataset).exists():
        return str(_materialize_ogbench(name, bench_dir))
    if not dataset.startswith(COLLECT):
        return dataset
    from o2o.collect.levels import collect
    from o2o.data import write_o2o

    env_id, level, transitions = parse_collect(dataset)
    dest = bench_dir / "datasets" / dataset_label(dataset)
    with locked(bench_dir / "datasets" / f".{dest.name}.lock"):
        if not (dest / "metadata.json").is_file():
            kwargs = {"transitions": transitions} if transitions is not None else {}
            write_o2o(collect(env_id, level, seed=0, **kwargs), dest, overwrite=True)
    return str(dest)


def _materialize_ogbench(name, bench_dir: Path) -> Path:
    from o2o.collect import ogbench as collect_ogbench
    from o2o.data.hdf5_npz import validation_path
    from o2o.envs import ogbench

    try:
        return ogbench.find_dataset(name.dataset)
    except O2OError:
        pass
    dest = bench_dir / "datasets" / name.dataset
    with locked(bench_dir / "datasets" / f".{dest.name}.lock"):
        if not (dest / "metadata.json").is_file():
            npz = dest.with_name(dest.name + ".npz")
            for partial in (dest, npz, validation_path(npz)):  # collect_to refuses to write over any of them
                if partial.is_dir():
                    shutil.rmtree(partial)
                else:
                    partial.unlink(missing_ok=True)
            collect_ogbench.collect_to(name.goal_env, name.kind, dest)
    return dest


def cell_env(dataset: str, grid_env: str | None) -> str | None:
    """The env a cell evaluates in: an OGBench task name says its own, anything else takes the grid's."""
    from o2o.envs import ogbench

    return ogbench.task_env_of(dataset) if ogbench.is_task_env(dataset) else grid_env


def check_datasets(datasets: list[str]) -> None:
    """Every dataset can be had before Ray starts, not in a cell minutes later: a `collect:` spec (checked by Grid), an
    OGBench task whose dataset is found or that `materialize` can collect, or a source `o2o data info` reads."""
    from o2o.collect import ogbench as collect_ogbench
    from o2o.data import detect_format
    from o2o.envs import ogbench

    for dataset in datasets:
        if dataset.startswith(COLLECT):
            continue
        name = ogbench.parse(dataset)
        if name and name.singletask and name.kind and not Path(dataset).exists():
            try:
                ogbench.find_dataset(name.dataset)
            except O2OError:
                if name.goal_env not in collect_ogbench.MANIPULATION_ENVS or name.kind not in collect_ogbench.LEVELS:
                    raise
            continue
        detect_format(ogbench.find_dataset(dataset) or dataset)
