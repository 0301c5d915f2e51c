"""The zoo: behaviour policies trained by o2o's own SAC and shipped inside the package, one weight file and one JSON card
per (environment, level), plus the medium policy's training replay buffer for the medium-replay level.

Training (`o2o zoo train`) is an ordinary online SAC run that also keeps a policy snapshot at every evaluation, so it is
resumable like any online run. Export (`o2o zoo export`) picks, from those snapshots, the expert (best evaluation) and
the medium policy (the snapshot whose evaluated return is closest to a third of the way from random to expert, as D4RL's
medium), measures
each over 100 episodes, and writes:
    <zoo>/<ENV_ID>/<level>.msgpack     actor parameters and observation normaliser
    <zoo>/<ENV_ID>/<level>.json        card: env, algorithm and config, training steps, seed, return mean and std over
                                       100 episodes, compute time, the command that retrains it
    <zoo>/<ENV_ID>/medium-replay/      o2o dataset: every transition the training run saw up to the medium snapshot
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import numpy as np

from o2o import files
from o2o.agents import Spec, get_algorithm, sac
from o2o.data import Dataset, load_dataset, write_o2o
from o2o.envs import env_spaces, reference_returns
from o2o.errors import O2OError
from o2o.train import online, runs
from o2o.envs.actions import to_env_actions
from o2o.train.evaluation import evaluate, make_eval_envs

MEDIUM_FRACTION = 1 / 3  # D4RL: medium policies reach about a third of the expert's (normalized) score
CARD_EPISODES = 100


def zoo_root() -> Path:
    return Path(str(resources.files("o2o"))) / "zoo"


def train(env_id: str, steps: int, seed: int = 0, out: str | None = None, eval_every: int = 10_000,
          progress: bool = True, **given: Any) -> dict[str, Any]:
    """A SAC run that keeps a policy snapshot at every evaluation (the raw material of `export`)."""
    settings = online.settings_for("sac", env=env_id, steps=steps, seeds=1, seed=seed, eval_every=eval_every,
                                   eval_episodes=10, keep_policy_snapshots=True, buffer_capacity=steps,
                                   out=out or f"runs/zoo-{env_id}-s{seed}", **given)
    return online.train(settings, progress=progress)


def export(run_dir: str | Path, dest: str | Path | None = None, upto: int | None = None) -> dict[str, dict]:
    """Choose, measure and write the medium and expert policies and the medium-replay dataset of a zoo run, from the
    snapshots taken up to env step `upto` (default: all so far; the run may go on, the choice stays reproducible)."""
    run_dir = Path(run_dir)
    config = files.read_json(run_dir / "config.json")
    if config.get("kind") != "online" or config["settings"]["algo"] != "sac" or not config["settings"].get("keep_policy_snapshots"):
        raise O2OError(f"{run_dir}: not a zoo training run (make one with `o2o zoo train`)")
    snapshots = [path for path in sorted((run_dir / "snapshots").glob("step_*.msgpack"))
                 if upto is None or int(path.stem.removeprefix("step_")) <= upto]
    if not snapshots:
        raise O2OError(f"{run_dir}: no policy snapshots {'yet' if upto is None else f'up to step {upto}'}; "
                       f"let the run reach its first evaluation")
    upto = int(snapshots[-1].stem.removeprefix("step_"))
    raw = [flax.serialization.msgpack_restore(path.read_bytes()) for path in snapshots]
    returns = np.array([float(np.asarray(r["return_per_seed"])[0]) for r in raw])
    env_id, seed = config["env_id"], config["seeds"][0]
    expert = int(np.argmax(returns))
    random_return = _random_return(run_dir, env_id)
    target = random_return + MEDIUM_FRACTION * (returns[expert] - random_return)
    medium = int(np.argmin(np.abs(returns[: expert + 1] - target)))
    seconds_at = _wall_seconds_by_step(run_dir)
    machine = config.get("versions", {})
    flags = f"XLA_FLAGS='{machine['xla_flags']}' " if machine.get("xla_flags") else ""
    dest = Path(dest) if dest else zoo_root() / env_id
    cards = {}
    for level, index in (("medium", medium), ("expert", expert)):
        policy = {"actor": jax.tree.map(lambda x: np.asarray(x)[0], raw[index]["policy"]["actor"]),
                  "normalizer": jax.tree.map(lambda x: np.asarray(x)[0], raw[index]["policy"]["normalizer"])}
        step = int(raw[index]["step"])
        card = {
            "env_id": env_id, "level": level, "algo": "sac", "agent_config": config["agent_config"],
            "training_steps": step, "seed": seed, "selected_by": f"evaluation at step {step}: return {returns[index]:.1f} "
            f"({'best of the run' if level == 'expert' else f'closest to random + {MEDIUM_FRACTION:.2f} x (expert - random) = {target:.1f}'})",
            "compute_seconds": seconds_at.get(step),  # wall time of the training run up to this snapshot
            "machine": {k: machine.get(k) for k in ("backend", "cpu_count", "xla_flags", "jax", "mujoco")},
            "command": f"{flags}o2o zoo train {env_id} --steps {config['settings']['steps']} --seed {seed} "
                       f"--eval-every {config['settings']['eval_every']} && o2o zoo export RUN_DIR --upto {upto}",
        }
        mean, std = _measure(env_id, card, policy)
        card.update(return_mean=mean, return_std=std, return_episodes=CARD_EPISODES)
        files.atomic_write_bytes(dest / f"{level}.msgpack", flax.serialization.msgpack_serialize(policy))
        files.write_json(dest / f"{level}.json", card)
        cards[level] = card
    _write_medium_replay(run_dir, config, int(raw[medium]["step"]), dest / "medium-replay", cards["medium"])
    return cards


def _wall_seconds_by_step(run_dir: Path) -> dict[int, float]:
    rows = (json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip())
    return {row["step"]: row["wall_seconds"] for row in rows if "wall_seconds" in row}


def _random_return(run_dir: Path, env_id: str) -> float:
    """The random reference: published/o2o references when known, else the run's evaluation at step 0 (its initial,
    random policy)."""
    references = reference_returns(env_id)
    if references is not None:
        return references[0]
    first = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    return float(first["return_mean"])


def load_policy(env_id: str, level: str, zoo: str | Path | None = None):
    """(card, policy) where policy(observations, key) samples actions in [-1, 1] like the shipped agent."""
    folder = Path(zoo) if zoo else zoo_root() / env_id
    card_file, weights = folder / f"{level}.json", folder / f"{level}.msgpack"
    if not card_file.is_file() or not weights.is_file():
        raise O2OError(f"no shipped {level} policy for {env_id} yet (looked in {folder}); "
                       f"make one with `o2o zoo train {env_id}` and `o2o zoo export`")
    card = json.loads(card_file.read_text())
    state = _policy_state(env_id, card, flax.serialization.msgpack_restore(weights.read_bytes()))
    return card, lambda observations, key: sac.act(state, observations, key, deterministic=False)


def load_medium_replay(env_id: str, zoo: str | Path | None = None) -> Dataset:
    folder = (Path(zoo) if zoo else zoo_root() / env_id) / "medium-replay"
    if not (folder / "metadata.json").is_file():
        raise O2OError(f"no medium-replay buffer shipped for {env_id} yet (looked in {folder})")
    return load_dataset(folder)


def _policy_state(env_id: str, card: dict, policy: dict) -> sac.State:
    _, config = get_algorithm("sac", inherited=card["agent_config"])
    spaces = env_spaces(env_id)
    state = sac.init(jax.random.PRNGKey(0), Spec.unnormalized(spaces.observation_shape[0], spaces.action_shape[0]), config)
    actor = state.actor.replace(params=flax.serialization.from_state_dict(state.actor.params, policy["actor"]))
    return state.replace(actor=actor, normalizer=flax.serialization.from_state_dict(state.normalizer, policy["normalizer"]))


def _measure(env_id: str, card: dict, policy: dict) -> tuple[float, float]:
    """Mean and std of the stochastic policy's return over CARD_EPISODES episodes (the level's behaviour)."""
    state = _policy_state(env_id, card, policy)
    envs = make_eval_envs(env_id, 1, CARD_EPISODES)
    act = jax.jit(jax.vmap(lambda o, k, t: sac.act(state, o[None], jax.random.fold_in(k, t), False)[0],
                           in_axes=(0, 0, None)))
    try:
        returns, _ = evaluate(lambda o, keys, t, r: act(o[0], keys[0], t)[None], envs, [0], CARD_EPISODES, round_seed=424_242)
    finally:
        envs.close()
    return float(returns.mean()), float(returns.std())


def _write_medium_replay(run_dir: Path, config: dict, medium_step: int, dest: Path, card: dict) -> None:
    """The replay buffer from the first step up to the medium snapshot, in the order it was collected."""
    buffers = runs.load_checkpoint(run_dir, {})["buffers"]
    data = {k: np.asarray(v)[0][:medium_step] for k, v in buffers["data"].items()}
    if int(np.asarray(buffers["size"])[0]) < medium_step:
        raise O2OError(f"{run_dir}: the replay buffer no longer holds the first {medium_step} steps")
    spaces = env_spaces(config["env_id"])
    actions = to_env_actions(data["actions"], spaces.action_low, spaces.action_high)  # the buffer holds [-1, 1]
    terminals = data["dones"].astype(bool)
    # episode ends that were time limits: the next stored observation is not this step's next observation
    cut = np.zeros(medium_step, bool)
    cut[:-1] = ~terminals[:-1] & np.any(data["next_observations"][:-1] != data["observations"][1:], axis=1)
    cut[-1] = not terminals[-1]
    dataset = Dataset(data["observations"], actions.astype(np.float32), data["rewards"], data["next_observations"],
                      terminals, cut, {"env_id": config["env_id"], "level": "medium-replay", "policy": card,
                                       "seed": config["seeds"][0]})
    write_o2o(dataset, dest, overwrite=True)
