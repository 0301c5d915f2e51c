"""OGBench manipulation datasets made here, with the scripted oracles that ship in the `ogbench` package, following
its generator's published protocol (OGBench repository, data_gen_scripts/generate_manipspace.py and commands.sh).

`play` = the plan oracles (a pre-computed plan per subtask, smoothed action noise 0.1 / smoothing 0.5);
`noisy` = the Markov (closed-loop) oracles with per-episode Gaussian noise up to 0.1 and a probability of a random
action (0.1; 0.2 for puzzles). Each episode runs `steps` steps (1001) in `mode="data_collection"`, where the env picks
a new subtask whenever the oracle finishes one. By default as many training episodes as the published dataset has
(`PUBLISHED_EPISODES`: 1000; 3000 for cube-triple and puzzle-4x5, 5000 for cube-quadruple and puzzle-4x6), plus 10%
more as the validation split.

Where the published script draws from NumPy's global generator with no seed, o2o seeds every episode on its own
(`episode_seed`): the env's reset seed and the oracles' global NumPy stream both come from (seed, episode), so the
same seed gives the same bytes however many workers share the episodes.
"""

from __future__ import annotations

import concurrent.futures
import io
import multiprocessing
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from o2o.data.hdf5_npz import read_ogbench_npz, validation_path
from o2o.errors import O2OError
from o2o.files import atomic_write, check_destination

MANIPULATION_ENVS = ("cube-single-v0", "cube-double-v0", "cube-triple-v0", "cube-quadruple-v0", "scene-v0",
                     "puzzle-3x3-v0", "puzzle-4x4-v0", "puzzle-4x5-v0", "puzzle-4x6-v0")
LEVELS = ("play", "noisy")
NOISE, NOISE_SMOOTHING, MIN_NORM = 0.1, 0.5, 0.4
ROW_FIELDS = ("observations", "actions", "terminals", "qpos", "qvel", "button_states")
# training episodes of the published datasets (data_gen_scripts/commands.sh; every episode 1001 steps); 1000 elsewhere
PUBLISHED_EPISODES = {"cube-triple-v0": 3000, "cube-quadruple-v0": 5000, "puzzle-4x5-v0": 3000, "puzzle-4x6-v0": 5000}
PUBLISHED_STEPS = 1001
ROW_DTYPES = {"observations": np.float32, "actions": np.float32, "terminals": bool, "qpos": np.float32,
              "qvel": np.float32, "button_states": np.int64}  # the published files' dtypes


def random_action_probability(env_name: str, level: str) -> float:
    return 0.0 if level == "play" else (0.2 if env_name.startswith("puzzle") else 0.1)


def stacking_probability(env_name: str) -> float:
    """The per-episode chance that a cube subtask stacks one cube on another (the published schedule)."""
    for kind, (low, high) in (("double", (0.0, 0.25)), ("triple", (0.05, 0.35)), ("quadruple", (0.1, 0.5))):
        if kind in env_name:
            return float(np.random.uniform(low, high))
    return 0.0 if "single" in env_name else 0.5


def episode_seed(seed: int, episode: int, attempt: int = 0) -> int:
    return int(np.random.SeedSequence([seed, episode, attempt]).generate_state(1)[0])


def published_episodes(env_name: str) -> int:
    return PUBLISHED_EPISODES.get(env_name, 1000)


def official_name(env_name: str, level: str) -> str:
    """The published dataset's name: `cube-single-v0`, `play` -> `cube-single-play-v0`."""
    return f"{env_name[:-3]}-{level}-v0"


def check_request(env_name: str, level: str, episodes: int | None = None, steps: int = PUBLISHED_STEPS) -> int:
    """Refuse, before any env is built, what cannot be collected; returns the training episodes to make (`episodes`,
    or the published dataset's count for None)."""
    from o2o.train.runs import check_counts  # here, not at the top: it imports JAX, which spawned workers need not

    if env_name not in MANIPULATION_ENVS:
        raise O2OError(f"{env_name}: not an OGBench manipulation environment; expected one of "
                       f"{', '.join(MANIPULATION_ENVS)}")
    if level not in LEVELS:
        raise O2OError(f"--level {level}: OGBench manipulation datasets are made at level play or noisy")
    episodes = published_episodes(env_name) if episodes is None else episodes
    if isinstance(steps, int) and steps < 2:
        raise O2OError(f"o2o collect: --episode-steps must be at least 2 (got {steps}): OGBench's loader drops each "
                       "episode's last row, which has no next observation")
    check_counts("o2o collect", episodes=episodes, episode_steps=steps)
    return episodes


def _oracles(env, env_name: str, level: str) -> dict[str, Any]:
    from ogbench.manipspace.oracles.markov import button_markov, cube_markov, drawer_markov, window_markov
    from ogbench.manipspace.oracles.plan import button_plan, cube_plan, drawer_plan, window_plan

    if level == "noisy":
        kinds = {"cube": cube_markov.CubeMarkovOracle, "button": button_markov.ButtonMarkovOracle,
                 "drawer": drawer_markov.DrawerMarkovOracle, "window": window_markov.WindowMarkovOracle}
        common = {"min_norm": MIN_NORM}
    else:
        kinds = {"cube": cube_plan.CubePlanOracle, "button": button_plan.ButtonPlanOracle,
                 "drawer": drawer_plan.DrawerPlanOracle, "window": window_plan.WindowPlanOracle}
        common = {"noise": NOISE, "noise_smoothing": NOISE_SMOOTHING}
    if env_name.startswith("cube"):
        return {"cube": kinds["cube"](env=env, **common)}
    if env_name.startswith("puzzle"):
        return {"button": kinds["button"](env=env, gripper_always_closed=True, **common)}
    scene = {name: kinds[name](env=env, **common) for name in ("cube", "button", "drawer", "window")}
    if level == "noisy":
        scene["cube"] = kinds["cube"](env=env, max_step=100, **common)
    return scene


_worker: dict[str, Any] = {}


def _start_worker(env_name: str, level: str, steps: int) -> None:
    from o2o.envs import make_env

    env = make_env(env_name, terminate_at_goal=False, mode="data_collection", max_episode_steps=steps)
    _worker.update(env=env, oracles=_oracles(env, env_name, level), env_name=env_name, level=level)


def _scene_is_healthy(qpos: np.ndarray) -> bool:
    """The published health check: the cube never leaves the table to the right, nor to the left outside the drawer."""
    xyz = qpos[:, 14:17]
    too_far_right = (xyz[:, 1] >= 0.29).any()
    lost_left = ((xyz[:, 1] <= -0.3) & ((xyz[:, 2] < 0.06) | (xyz[:, 2] > 0.08))).any()
    return not (too_far_right or lost_left)


def _episode(seed: int, episode: int) -> dict[str, np.ndarray]:
    env, oracles, env_name, level = _worker["env"], _worker["oracles"], _worker["env_name"], _worker["level"]
    p_random = random_action_probability(env_name, level)
    has_buttons = hasattr(env.unwrapped, "_cur_button_states")
    action_shape = env.action_space.shape
    for attempt in range(100):
        episode_key = episode_seed(seed, episode, attempt)
        np.random.seed(episode_key)  # the oracles draw from NumPy's global generator
        observation, info = env.reset(seed=episode_key)
        p_stack = stacking_probability(env_name)
        xi = np.random.uniform(0, NOISE) if level == "noisy" else 0.0
        oracle = oracles[info["privileged/target_task"]]
        oracle.reset(observation, info)
        rows: dict[str, list] = {name: [] for name in ROW_FIELDS}
        done = False
        while not done:
            if np.random.rand() < p_random:  # uniform over the action box, from the seeded stream (the published
                action = np.random.uniform(-1.0, 1.0, size=action_shape)  # script's action_space.sample() is unseeded)
            else:
                action = np.array(oracle.select_action(observation, info))
                if level == "noisy":
                    action = action + np.random.normal(0, [xi, xi, xi, xi * 3, xi * 10], action.shape)
            action = np.clip(action, -1, 1)
            next_observation, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            if oracle.done:
                oracle_observation, oracle_info = env.unwrapped.set_new_target(p_stack=p_stack)
                oracle = oracles[oracle_info["privileged/target_task"]]
                oracle.reset(oracle_observation, oracle_info)
            rows["observations"].append(observation)
            rows["actions"].append(action)
            rows["terminals"].append(done)
            rows["qpos"].append(info["prev_qpos"])
            rows["qvel"].append(info["prev_qvel"])
            if has_buttons:
                rows["button_states"].append(info["prev_button_states"])
            observation = next_observation
        arrays = {name: np.asarray(value, dtype=ROW_DTYPES[name]) for name, value in rows.items() if value}
        if not env_name.startswith("scene") or _scene_is_healthy(arrays["qpos"]):
            return arrays
    raise O2OError(f"{env_name} episode {episode}: no healthy episode in 100 attempts")


def _episodes(seed: int, episodes: range) -> list[dict[str, np.ndarray]]:
    return [_episode(seed, e) for e in episodes]


def generate(
    env_name: str,
    level: str,
    episodes: int | None = None,
    steps: int = PUBLISHED_STEPS,
    seed: int = 0,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(train rows, validation rows) in OGBench's file layout: one row per step, `terminals` at each episode's last
    row, `episodes` training episodes (None: the published dataset's count) and `episodes // 10` validation episodes.
    `progress(n)` is told each batch of finished episodes."""
    episodes = check_request(env_name, level, episodes, steps)
    total = episodes + episodes // 10
    workers = max(1, min(workers or os.cpu_count() or 1, total))
    batch = max(1, min(10, total // (4 * workers) or 1))
    batches = [range(start, min(start + batch, total)) for start in range(0, total, batch)]
    results: list[list[dict[str, np.ndarray]]] = [[] for _ in batches]
    if workers == 1:
        _start_worker(env_name, level, steps)
        try:
            for i, part in enumerate(batches):
                results[i] = _episodes(seed, part)
                if progress:
                    progress(len(part))
        finally:  # in this process the env (about 165 MB) and its oracles would outlive the call
            _worker.pop("env").close()
            _worker.clear()
    else:
        # spawn, not fork: the parent may hold JAX's threads
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                                    initargs=(env_name, level, steps)) as pool:
            futures = {pool.submit(_episodes, seed, part): i for i, part in enumerate(batches)}
            for future in concurrent.futures.as_completed(futures):
                results[futures[future]] = future.result()
                if progress:
                    progress(len(batches[futures[future]]))
    ordered = [episode for part in results for episode in part]

    def join(part: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return {name: np.concatenate([e[name] for e in part]) for name in part[0]}

    return join(ordered[:episodes]), join(ordered[episodes:]) if total > episodes else {}


def write_npz(rows: dict[str, np.ndarray], path: str | os.PathLike) -> Path:
    """OGBench's file layout (`np.savez_compressed`, one row per step, `terminals` as bool), written atomically."""
    path = Path(path)
    atomic_write(path, lambda tmp: tmp.write_bytes(_compressed_npz(rows)))
    return path


def _compressed_npz(rows: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **rows)
    return buffer.getvalue()


def check_destinations(out: str | os.PathLike) -> tuple[Path, Path, Path]:
    """Where `collect_to` writes: o2o's format at OUT, OGBench's layout at OUT.npz and OUT-val.npz; none may exist yet
    (an old validation split would pass for the new data's) and each must be creatable."""
    out = Path(out)
    npz = out.with_name(out.name + ".npz")
    destinations = (out, npz, validation_path(npz))
    for destination in destinations:
        check_destination(destination)
    return destinations


def collect_to(env_name: str, level: str, out: str | os.PathLike, episodes: int | None = None,
               steps: int = PUBLISHED_STEPS, seed: int = 0, workers: int | None = None,
               progress: Callable[[int], None] | None = None) -> dict:
    """Generate, then write OGBench's layout (`OUT.npz`, `OUT-val.npz`) and o2o's format (`OUT/`, the training split;
    goal-conditioned: rewards come from the task chosen at training time): all three, or none of them on failure.
    Returns what was written."""
    from o2o.data import write_o2o

    episodes = check_request(env_name, level, episodes, steps)
    out, npz, validation_npz = check_destinations(out)
    _warn_unless_published_size(env_name, level, out, episodes, steps)
    train, validation = generate(env_name, level, episodes, steps, seed, workers, progress)
    written: list[Path] = []
    try:
        for rows, path in ((train, npz), (validation, validation_npz)):
            if rows:
                written.append(write_npz(rows, path))
        dataset = read_ogbench_npz(npz)
        dataset.metadata.update(source=str(out), level=level, ogbench_dataset=official_name(env_name, level),
                                provenance=_provenance(env_name, level, episodes, steps, seed))
        write_o2o(dataset, out)
    except BaseException:
        for path in written:  # check_destinations found none of them: what is left would only make a rerun refused
            path.unlink(missing_ok=True)
        raise
    return {"o2o": str(out), "npz": str(npz), "validation_npz": str(validation_npz) if validation else None,
            "rows": int(len(train["terminals"])), "transitions": len(dataset), "episodes": episodes,
            "validation_episodes": episodes // 10}


def _warn_unless_published_size(env_name: str, level: str, out: Path, episodes: int, steps: int) -> None:
    """o2o looks a dataset name up in ./datasets before OGBench's download (o2o.envs.ogbench.dataset_directories): one
    of another size under the official name would silently stand in for the published dataset."""
    official, published = official_name(env_name, level), published_episodes(env_name)
    if out.name == official and (episodes, steps) != (published, PUBLISHED_STEPS):
        warnings.warn(f"{out}: {episodes} episodes of {steps} steps under the name of OGBench's {official}, which has "
                      f"{published} of {PUBLISHED_STEPS}; o2o finds it before the official download", stacklevel=2)


def _provenance(env_name: str, level: str, episodes: int, steps: int, seed: int) -> dict[str, Any]:
    return {"collector": "o2o collect (OGBench manipulation oracles)", "env": env_name, "level": level,
            "episodes": episodes, "steps_per_episode": steps, "seed": seed,
            "oracle": "plan" if level == "play" else "markov", "noise": NOISE,
            "noise_smoothing": NOISE_SMOOTHING if level == "play" else None,
            "min_norm": MIN_NORM if level == "noisy" else None,
            "p_random_action": random_action_probability(env_name, level)}
