"""Read and write datasets: any supported format by its detected kind, o2o's own memory-mappable format and Minari
(D4RL-layout HDF5 and .npz live in `o2o.data.hdf5_npz`).

o2o's format is a directory holding one `.npy` file per field plus `metadata.json`; it opens by memory-mapping, so a
dataset larger than RAM works and opening costs no more than reading the JSON. Readers never write to their input.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from o2o.data.dataset import FIELDS, FLOAT_FIELDS, MASKS, Dataset
from o2o.data.hdf5_npz import metadata_object, read_d4rl_hdf5, read_npz
from o2o.data.observations import dict_layout, flatten_dict_observations
from o2o.data.validate import _CHUNK_ROWS, _check_finite, dataset_from_arrays
from o2o.errors import DatasetError
from o2o.files import jsonable

O2O_FORMAT_VERSION = 1
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZIP_SIGNATURE = b"PK\x03\x04"
SUPPORTED = "a D4RL-layout .hdf5 file, a Minari dataset (id or directory), an o2o dataset directory, or a .npz file"


def load_dataset(source: str | os.PathLike, check_values: bool | None = None) -> Dataset:
    """Open a dataset in any supported format; `check_values` scans every number (default: unless o2o validated it)."""
    kind, path = detect_format(source)
    reader = {"o2o": read_o2o, "d4rl": read_d4rl_hdf5, "npz": read_npz, "minari": read_minari}[kind]
    return reader(path) if check_values is None else reader(path, check_values=check_values)


def detect_format(source: str | os.PathLike) -> tuple[str, Path]:
    path = Path(source)
    if not path.exists():
        minari_dir = _minari_dir_for_id(str(source))
        if minari_dir is not None:
            return "minari", minari_dir
        raise DatasetError(f"{source}: no such file, directory or local Minari dataset id; expected {SUPPORTED}")
    if path.is_dir():
        if (path / "metadata.json").is_file() and (path / "observations.npy").is_file():
            return "o2o", path
        for candidate in (path / "data", path):
            if (candidate / "metadata.json").is_file() and any(candidate.glob("main_data.*")):
                return "minari", candidate
        raise DatasetError(f"{source}: directory is neither an o2o dataset nor a Minari dataset; expected {SUPPORTED}")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise DatasetError(f"{source}: cannot be read ({e.strerror})") from e
    if head.startswith(_HDF5_SIGNATURE) or path.suffix in (".hdf5", ".h5"):
        return "d4rl", path
    if head.startswith(_ZIP_SIGNATURE) or path.suffix == ".npz":
        return "npz", path
    raise DatasetError(f"{source}: unknown dataset format; expected {SUPPORTED}")


# ---- o2o format ---------------------------------------------------------------------------------------------------


def read_o2o(path: Path, check_values: bool | None = None) -> Dataset:
    try:
        text = (path / "metadata.json").read_text()
    except OSError as e:
        raise DatasetError(f"{path / 'metadata.json'}: cannot be read: {e}") from e
    metadata = metadata_object(text, path, "metadata.json")
    arrays = {name: _memory_map(path / f"{name}.npy") for name in FIELDS + (MASKS,) if (path / f"{name}.npy").is_file()}
    extras = {file.stem: _memory_map(file) for file in sorted((path / _EXTRAS_DIR).glob("*.npy"))}
    if check_values is None:
        check_values = not metadata.get("o2o", {}).get("validated", False)
    return dataset_from_arrays(arrays, str(path), metadata, check_values, extras)


_EXTRAS_DIR = "extras"


def _memory_map(file: Path) -> np.ndarray:
    try:
        return np.load(file, mmap_mode="r")
    except (OSError, ValueError, EOFError) as e:  # EOFError: an empty file
        raise DatasetError(f"{file}: cannot be memory-mapped as .npy (truncated or corrupt?): {e}") from e


def write_o2o(dataset: Dataset, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Check every value, then write atomically (a temporary sibling directory renamed into place); records a content
    hash and marks the dataset validated, so that opening it checks shapes only. `overwrite` moves the existing
    directory aside and deletes it only once the new one is in place: a crash leaves the old dataset or the new one."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise DatasetError(f"{path}: already exists; choose another destination or remove it first")
    tmp = _write_beside(dataset, path)
    try:
        if path.exists():
            _replace_directory(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _write_beside(dataset: Dataset, path: Path) -> Path:
    """o2o's format in a new hidden directory beside `path`, its values checked first; the caller renames it."""
    for name in FLOAT_FIELDS:
        _check_finite(getattr(dataset, name), name, f"{path} (not written)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        for name, value in dataset.arrays().items():
            np.save(tmp / f"{name}.npy", np.asarray(value), allow_pickle=False)
        if dataset.extras:
            (tmp / _EXTRAS_DIR).mkdir()
        for name, value in dataset.extras.items():
            np.save(tmp / _EXTRAS_DIR / f"{name}.npy", np.asarray(value), allow_pickle=False)
        metadata = dict(dataset.metadata)
        metadata["o2o"] = {
            "format_version": O2O_FORMAT_VERSION,
            "validated": True,
            "transitions": len(dataset),
            "episodes": dataset.num_episodes,
            "content_hash": content_hash(dataset),
        }
        (tmp / "metadata.json").write_text(json.dumps(metadata, indent=1, default=jsonable))
        tmp.chmod(0o755)  # mkdtemp makes directories private
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def _replace_directory(new: Path, path: Path) -> None:
    old = new.with_name(f"{new.name}-old")
    os.replace(path, old)
    try:
        os.replace(new, path)
    except BaseException:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)  # the new dataset is in place: a copy left behind costs only disk space


def content_hash(dataset: Dataset) -> str:
    """SHA-256 over every field's (and extra's) dtype, shape and bytes: equal hashes mean equal transitions."""
    digest = hashlib.sha256()
    fields = {**dataset.arrays(), **{f"extra:{name}": value for name, value in dataset.extras.items()}}
    for name, value in fields.items():
        digest.update(f"{name}:{value.dtype.str}:{value.shape}".encode())
        for start in range(0, len(value), 1 << 18):
            digest.update(np.ascontiguousarray(value[start : start + (1 << 18)]).tobytes())
    return "sha256:" + digest.hexdigest()


# ---- Minari -------------------------------------------------------------------------------------------------------


def _minari_dir_for_id(dataset_id: str) -> Path | None:
    root = os.environ.get("MINARI_DATASETS_PATH", os.path.join(os.path.expanduser("~"), ".minari", "datasets"))
    candidate = Path(root) / dataset_id / "data"
    return candidate if (candidate / "metadata.json").is_file() else None


def read_minari(data_dir: Path, check_values: bool | None = None) -> Dataset:
    """Convert once into o2o's format under the cache directory, then memory-map the cached copy. Processes that
    convert the same dataset at once (a bench's workers) each write a copy and rename it into place: the first one
    wins, the others discard theirs and read it, so a cached copy that another process may be reading is never
    replaced."""
    cache = _minari_cache_dir(data_dir)
    if not (cache / "metadata.json").is_file():
        tmp = _write_beside(_convert_minari(data_dir), cache)
        try:
            os.rename(tmp, cache)
        except OSError as e:
            if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # nothing is left there once renamed
    return read_o2o(cache, check_values)


# Bumped when a conversion's output changes, so that older cached conversions are not read (2: Dict observations
# flattened, the env's recorded arguments kept)
_MINARI_CONVERSION = 2


def _minari_cache_dir(data_dir: Path) -> Path:
    root = Path(os.environ.get("O2O_CACHE_DIR", Path.home() / ".cache" / "o2o")) / "minari"
    stamp = [f"conversion {_MINARI_CONVERSION}", str(data_dir.resolve())]
    for file in sorted(data_dir.iterdir()):
        st = file.stat()
        stamp.append(f"{file.name}:{st.st_size}:{st.st_mtime_ns}")
    return root / hashlib.sha256("|".join(stamp).encode()).hexdigest()[:24]


def _convert_minari(data_dir: Path) -> Dataset:
    import gymnasium as gym
    from minari.dataset.minari_storage import MinariStorage

    source = str(data_dir)
    try:
        storage = MinariStorage.read(data_dir)
    except Exception as e:  # minari raises many types for a broken directory
        raise DatasetError(f"{source}: cannot be read as a Minari dataset: {e}") from e
    observation_space, action_space = storage.observation_space, storage.action_space
    layout = dict_layout(observation_space, source) if isinstance(observation_space, gym.spaces.Dict) else None
    if not layout and not isinstance(observation_space, gym.spaces.Box):
        raise DatasetError(f"{source}: observations are a {type(observation_space).__name__} space; o2o supports Box "
                           "observations and Dicts of Box observations")
    if not isinstance(action_space, gym.spaces.Box):
        raise DatasetError(
            f"{source}: actions are a {type(action_space).__name__} space; o2o supports only continuous Box actions")
    parts: dict[str, list[np.ndarray]] = {name: [] for name in FIELDS}
    meta = storage.metadata
    extra_parts: dict[str, list[np.ndarray]] = {name: [] for name in meta.get("o2o_extras") or ()}  # see write_minari
    try:
        episodes = list(storage.get_episodes(range(storage.total_episodes)))
    except Exception as e:
        raise DatasetError(f"{source}: episodes cannot be read (truncated or corrupt?): {e}") from e
    for episode in episodes:
        steps = len(episode["rewards"])
        obs = episode["observations"]
        obs = flatten_dict_observations(obs, observation_space, source) if layout else np.asarray(obs)
        if len(obs) != steps + 1:
            raise DatasetError(
                f"{source}: episode {episode['id']} has {len(obs)} observations for {steps} steps; "
                f"Minari stores T+1 observations per episode (expected {steps + 1})"
            )
        parts["observations"].append(obs[:-1].reshape(steps, -1))
        parts["next_observations"].append(obs[1:].reshape(steps, -1))
        parts["actions"].append(np.asarray(episode["actions"]).reshape(steps, -1))
        parts["rewards"].append(np.asarray(episode["rewards"]))
        parts["terminals"].append(np.asarray(episode["terminations"], dtype=bool))
        timeouts = np.asarray(episode["truncations"], dtype=bool)
        if steps and not (episode["terminations"][-1] or timeouts[-1]):
            timeouts = timeouts.copy()
            timeouts[-1] = True  # a Minari episode ends where its record ends
        parts["timeouts"].append(timeouts)
        for name, rows in extra_parts.items():
            info = (episode["infos"] or {}).get(name)
            if not isinstance(info, np.ndarray) or len(info) != steps + 1:
                raise DatasetError(f"{source}: episode {episode['id']} has no info {name!r} of {steps + 1} rows; the "
                                   "dataset's o2o_extras name it as a per-step field, one row per observation")
            rows.append(info[:steps])
    arrays = {name: np.concatenate(value) if value else np.zeros((0,)) for name, value in parts.items()}
    extras = {name: np.concatenate(value) if value else np.zeros((0,)) for name, value in extra_parts.items()}
    metadata: dict[str, Any] = {"source": source, "source_format": "minari", "minari_dataset_id": meta.get("dataset_id")}
    if layout:
        metadata["observation_layout"] = layout
    env_spec = meta.get("eval_env_spec") or meta.get("env_spec")  # the env Minari evaluates the data in, if it names one
    if env_spec:
        spec = json.loads(env_spec)
        limit = {"max_episode_steps": int(spec["max_episode_steps"])} if spec.get("max_episode_steps") else {}
        kwargs = {k: v for k, v in (spec.get("kwargs") or {}).items() if k != "render_mode"}  # never open windows
        metadata.update(env_id=spec["id"], env_kwargs={**kwargs, **limit})
    for key in ("ref_min_score", "ref_max_score"):
        if meta.get(key) is not None:
            metadata[key] = float(meta[key])
    if meta.get("o2o_metadata"):  # written by o2o: its recorded env arguments, not the registered spec it wrote, win
        written = metadata_object(meta["o2o_metadata"], Path(source), "metadata's o2o_metadata")
        metadata = {**written, **metadata, **({"env_kwargs": written["env_kwargs"]} if "env_kwargs" in written else {})}
    return dataset_from_arrays(arrays, source, metadata, check_values=True, extras=extras)


def write_minari(dataset: Dataset, path: str | os.PathLike, dataset_id: str | None = None) -> Path:
    """Write a Minari dataset directory (`path/data/...`) with minari's own storage API.

    `minari.load_dataset(dataset_id)` loads it when `path` is `$MINARI_DATASETS_PATH/<dataset_id>`; the default id is
    the path relative to MINARI_DATASETS_PATH when inside it, else `o2o/<directory name>`. Per-step extras (D4RL's
    qpos and qvel, the flag `corrupted`) become per-step infos, which Minari keeps one per observation (T+1 an
    episode): row i is step i's, as D4RL's infos/qpos[i] is the state of observations[i], and the last row repeats the
    one before it; the metadata's `o2o_extras` names them, so that o2o reads them back.
    """
    import gymnasium as gym
    from minari import __version__ as minari_version
    from minari.data_collector.episode_buffer import EpisodeBuffer
    from minari.dataset.minari_storage import MinariStorage

    path = Path(path).absolute()  # minari resolves its data path against a relative one twice
    if dataset.masks is not None:
        raise DatasetError(f"{path}: a Minari dataset has no place for bootstrap masks apart from episode ends; write "
                           "the o2o, npz or hdf5 format instead, which keep them")
    if path.exists():
        raise DatasetError(f"{path}: already exists; choose another destination or remove it first")
    _check_one_observation_sequence(dataset, path)
    dataset_id = dataset_id or _default_minari_id(path)
    env_spec, observation_space, action_space = None, None, None
    if dataset.env_id and dataset.env_id in gym.registry:
        # the env as the data was recorded in it (its arguments and limit), its Dict observations flattened as the data
        # holds them: Minari's recover_environment() then makes an env that matches the data
        env = gym.make(dataset.env_id, **(dataset.metadata.get("env_kwargs") or {}))
        if isinstance(env.observation_space, gym.spaces.Dict) and dataset.metadata.get("observation_layout"):
            env = gym.wrappers.FlattenObservation(env)
        env_spec = env.spec
        if env.observation_space.shape == (dataset.observation_dim,) and env.action_space.shape == (dataset.action_dim,):
            observation_space, action_space = env.observation_space, env.action_space
        env.close()
    observation_space = observation_space or gym.spaces.Box(-np.inf, np.inf, (dataset.observation_dim,), np.float32)
    action_space = action_space or gym.spaces.Box(-np.inf, np.inf, (dataset.action_dim,), np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        storage = MinariStorage.new(
            tmp / "data", observation_space=observation_space, action_space=action_space, env_spec=env_spec
        )
        metadata: dict[str, Any] = {
            "dataset_id": dataset_id,
            "minari_version": minari_version,
            "algorithm_name": dataset.metadata.get("algorithm", "o2o"),
            "description": dataset.metadata.get("description", "written by o2o"),
            "o2o_metadata": json.dumps(dataset.metadata, default=jsonable),
            "o2o_extras": sorted(dataset.extras),
        }
        for key in ("ref_min_score", "ref_max_score"):
            if key in dataset.metadata:
                metadata[key] = float(dataset.metadata[key])
        storage.update_metadata(metadata)
        observations, next_observations = np.asarray(dataset.observations), np.asarray(dataset.next_observations)
        extras = {name: np.asarray(value) for name, value in dataset.extras.items()}
        buffers = []
        for index, (start, end) in enumerate(zip(dataset.episode_starts, dataset.episode_ends)):
            buffers.append(
                EpisodeBuffer(
                    id=index,
                    observations=np.concatenate([observations[start : end + 1], next_observations[end : end + 1]]),
                    actions=np.asarray(dataset.actions[start : end + 1]),
                    rewards=np.asarray(dataset.rewards[start : end + 1]),
                    terminations=np.asarray(dataset.terminals[start : end + 1]),
                    truncations=np.asarray(dataset.timeouts[start : end + 1]),
                    infos={name: np.concatenate([value[start : end + 1], value[end : end + 1]])
                           for name, value in extras.items()},
                )
            )
        storage.update_episodes(buffers)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _check_one_observation_sequence(dataset: Dataset, path: Path) -> None:
    """A Minari episode holds T+1 observations, so within an episode each next observation must be the following
    step's observation (corrupted states or dynamics break that): refuse rather than drop one of them."""
    n = len(dataset)
    goes_on = np.ones(n, bool)
    goes_on[dataset.episode_ends] = False
    for start in range(0, n - 1, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, n - 1)
        following = np.asarray(dataset.observations[start + 1 : stop + 1])
        differs = (np.asarray(dataset.next_observations[start:stop]) != following).any(axis=1) & goes_on[start:stop]
        if differs.any():
            i = start + int(np.flatnonzero(differs)[0])
            raise DatasetError(f"{path}: next_observations[{i}] differs from observations[{i + 1}] within an "
                               "episode; a Minari episode holds one sequence of T+1 observations and cannot keep both: "
                               "write the o2o, npz or hdf5 format instead")


def _default_minari_id(path: Path) -> str:
    root = os.environ.get("MINARI_DATASETS_PATH")
    if root:
        try:
            return str(path.resolve().relative_to(Path(root).resolve()))
        except ValueError:
            pass
    name = path.name if "-v" in path.name else f"{path.name}-v0"
    return f"o2o/{name}"
