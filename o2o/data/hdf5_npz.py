"""Single-file datasets: D4RL-layout HDF5 and .npz (o2o's layout, by field name, and OGBench's, one row per step).

Both are written atomically (a temporary file renamed into place); readers never write to their input.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from o2o.data.dataset import FIELDS, MASKS, Dataset
from o2o.data.validate import dataset_from_arrays
from o2o.errors import DatasetError
from o2o.files import atomic_write, jsonable


# ---- D4RL-layout HDF5 ---------------------------------------------------------------------------------------------


def read_d4rl_hdf5(path: Path, check_values: bool = True) -> Dataset:
    import h5py

    try:
        file = h5py.File(path, "r")
    except OSError as e:
        raise DatasetError(f"{path}: cannot be opened as HDF5 (truncated or corrupt?): {e}") from e
    with file:
        arrays, extras = {}, {}
        for name in FIELDS + (MASKS,):
            if name not in file:
                continue
            node = file[name]
            if not isinstance(node, h5py.Dataset):
                raise DatasetError(f"{path}: {name} is an HDF5 group; expected an array")
            try:
                arrays[name] = node[()]
            except OSError as e:
                raise DatasetError(f"{path}: {name} cannot be read (truncated or corrupt file?): {e}") from e
        infos = file.get("infos")
        if isinstance(infos, h5py.Group) and "observations" in arrays:
            extras = {name: node[()] for name, node in infos.items()
                      if isinstance(node, h5py.Dataset) and node.shape[:1] == arrays["observations"].shape[:1]}
        metadata = {"source": str(path), "source_format": "d4rl-hdf5"}
        if "o2o_metadata" in file.attrs:
            metadata.update(metadata_object(file.attrs["o2o_metadata"], path, "o2o_metadata attribute"))
        if not arrays and not len(file.keys()):
            raise DatasetError(f"{path}: HDF5 file holds no arrays; expected D4RL keys observations, actions, rewards, terminals, timeouts")
    return dataset_from_arrays(arrays, str(path), metadata, check_values, extras)


def metadata_object(text: str, path: Path, where: str) -> dict:
    """A dataset's metadata from its JSON text (stored as `where`), refused in one line unless a JSON object."""
    try:
        metadata = json.loads(text)
    except ValueError as e:
        raise DatasetError(f"{path}: its {where} is not valid JSON ({e})") from e
    if not isinstance(metadata, dict):
        raise DatasetError(f"{path}: its {where} holds a {type(metadata).__name__}; expected a JSON object")
    return metadata


def write_d4rl_hdf5(dataset: Dataset, path: str | os.PathLike) -> Path:
    """D4RL layout with next_observations, plus o2o's metadata as a JSON attribute (ignored by other readers)."""
    import h5py

    path = Path(path)

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            for name, value in dataset.arrays().items():
                f.create_dataset(name, data=np.asarray(value))
            for name, value in dataset.extras.items():
                f.create_dataset(f"infos/{name}", data=np.asarray(value))  # where D4RL keeps qpos and qvel
            f.attrs["o2o_metadata"] = json.dumps(dataset.metadata, default=jsonable)

    atomic_write(path, write)
    return path


# ---- .npz ---------------------------------------------------------------------------------------------------------


def read_npz(path: Path, check_values: bool = True) -> Dataset:
    """o2o's .npz (the Dataset's fields by name), or OGBench's layout (one row per step, no rewards: see
    `read_ogbench_npz`)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            if _ogbench_layout(npz.files):
                return read_ogbench_npz(path, check_values)
            arrays = {name: npz[name] for name in npz.files if name in FIELDS + (MASKS,)}
            extras = {name[len(_EXTRA):]: npz[name] for name in npz.files if name.startswith(_EXTRA)}
            metadata = (metadata_object(str(npz["metadata_json"]), path, "metadata_json")
                        if "metadata_json" in npz.files else {})
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # EOFError: an empty file
        raise DatasetError(f"{path}: cannot be read as .npz (truncated or corrupt?): {e}") from e
    metadata.update(source=str(path), source_format="npz")
    return dataset_from_arrays(arrays, str(path), metadata, check_values, extras)


def _ogbench_layout(names: list[str]) -> bool:
    """OGBench's files flag trajectory ends as `terminals` and have no `timeouts`. So may a user's own file, which
    must get the missing-`timeouts` error rather than lose its rewards: only OGBench's signs count, no rewards (its
    raw files), rewards with masks (a task relabelled them), or its per-step simulator state and `valids`."""
    if "timeouts" in names or "terminals" not in names:
        return False
    return "rewards" not in names or MASKS in names or any(name in names for name in ("qpos", "qvel", "valids"))


def write_npz(dataset: Dataset, path: str | os.PathLike) -> Path:
    path = Path(path)
    extras = {f"{_EXTRA}{name}": np.asarray(value) for name, value in dataset.extras.items()}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, metadata_json=np.array(json.dumps(dataset.metadata, default=jsonable)), **dataset.arrays(),
                     **extras)

    atomic_write(path, write)
    return path


_EXTRA = "extra_"


def validation_path(path: str | os.PathLike) -> Path:
    """Where OGBench keeps a dataset's validation split: `name.npz` -> `name-val.npz`."""
    path = Path(path)
    return path.with_name(path.name[: -len(".npz")] + "-val.npz")


def read_ogbench_npz(path: Path, check_values: bool = True) -> Dataset:
    """An OGBench dataset: its file layout (one row per step; read by OGBench's own loader, `ogbench.utils.load_dataset`,
    which drops each episode's last row, having no next observation), or a dataset OGBench's loader returned and the
    user saved: the regular layout (`next_observations`, `terminals` = last transition of each trajectory) or the
    compact one (`valids` = 0 on each trajectory's last row). Rewards and masks, when saved (a singletask dataset),
    are kept (rewards without masks are refused); without them the data is goal-conditioned until a task relabels it
    (`o2o.envs.make.relabel_for_task`). qpos, qvel and button states are kept as extras."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            rows = {name: npz[name] for name in npz.files}
        if "next_observations" not in rows and "valids" not in rows:
            from ogbench.utils import load_dataset as ogbench_load_dataset

            rows = ogbench_load_dataset(str(path), compact_dataset=False, add_info=True)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise DatasetError(f"{path}: cannot be read as an OGBench dataset: {e}") from e
    if "rewards" in rows and "masks" not in rows:  # which steps reach the goal is unknown: do not guess
        raise DatasetError(f"{path}: rewards without masks in OGBench's layout (terminals, no timeouts); a task's "
                           "rewards come with its masks, and o2o's layout needs timeouts")
    if "valids" in rows:  # compact: a transition from every valid row to the row after it
        steps = np.flatnonzero(rows["valids"] > 0)
        if steps.size and steps[-1] == len(rows["valids"]) - 1:
            raise DatasetError(f"{path}: valids[{steps[-1]}] = 1 on the last row; a compact OGBench dataset ends each "
                               "trajectory with a row of valids 0")
        ends = np.zeros(len(rows["valids"]), bool)
        ends[:-1] = rows["valids"][1:] == 0
        rows = {**{k: v[steps] for k, v in rows.items() if k != "valids"},
                "next_observations": rows["observations"][steps + 1], "terminals": ends[steps]}
    n = len(rows["actions"])
    relabelled = "rewards" in rows  # and masks, checked above
    arrays = {"observations": rows["observations"], "actions": rows["actions"],
              "rewards": rows["rewards"] if relabelled else np.zeros(n, np.float32),
              "next_observations": rows["next_observations"], "terminals": np.zeros(n, bool),
              "timeouts": rows["terminals"].astype(bool)}
    if relabelled:
        arrays[MASKS] = rows["masks"]
    extras = {name: rows[name] for name in ("qpos", "qvel", "button_states") if name in rows}
    metadata = {"source": str(path), "source_format": "ogbench-npz", "ogbench_dataset": path.name[: -len(".npz")],
                "goal_conditioned": not relabelled}
    validation = validation_path(path)
    if validation.is_file() and not path.name.endswith("-val.npz"):
        metadata["validation_split"] = str(validation)
    return dataset_from_arrays(arrays, str(path), metadata, check_values, extras)
