"""The zoo: behaviour policies trained by o2o's own SAC and shipped inside the package, one weight file and one JSON card
per (environment, level), plus a card from which the medium-replay level (the medium policy's training replay buffer) is
regenerated on demand: replay buffers are not shipped.

Training (`o2o zoo train`) is an ordinary online SAC run that also keeps a policy snapshot at every evaluation, so it is
resumable like any online run. Export (`o2o zoo export`) picks, from those snapshots, the expert (best evaluation) and
the medium policy (the snapshot whose evaluated return is closest to a third of the way from random to expert, as D4RL's
medium), measures
each over 100 episodes, and writes:
    <zoo>/<ENV_ID>/<level>.msgpack     actor parameters and observation normaliser
    <zoo>/<ENV_ID>/<level>.json        card: env, algorithm and config, training steps, seed, return mean and std over
                                       100 episodes, compute time, the command that retrains it
    <zoo>/<ENV_ID>/medium-replay.json  card of every transition the training run saw up to the medium snapshot: the
                                       run's settings, machine flags and the data's content hash

`load_medium_replay` reruns the recorded SAC run to the medium snapshot in a subprocess with the recorded XLA flags
(same code, seed and flags on the same kind of machine give the same bytes), checks the content hash and caches the
dataset under $O2O_CACHE_DIR (default ~/.cache/o2o)/zoo.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import numpy as np

from o2o import files
from o2o.agents import Spec, get_algorithm, sac
from o2o.data import Dataset, content_hash, load_dataset, write_o2o
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
    config = runs.RunDir.open(run_dir).record
    if config.get("kind") != "online" or config["settings"]["algo"] != "sac" or not config["settings"].get("keep_policy_snapshots"):
        raise O2OError(f"{run_dir}: not a zoo training run (make one with `o2o zoo train`)")
    env_id, seed = config["env_id"], config["seeds"][0]
    dest = Path(dest) if dest else zoo_root() / env_id
    files.check_destination(dest, may_exist=True, name="--dest")  # a zoo folder is updated in place
    snapshots = [path for path in sorted((run_dir / "snapshots").glob("step_*.msgpack"))
                 if upto is None or int(path.stem.removeprefix("step_")) <= upto]
    if not snapshots:
        raise O2OError(f"{run_dir}: no policy snapshots {'yet' if upto is None else f'up to step {upto}'}; "
                       f"let the run reach its first evaluation")
    upto = int(snapshots[-1].stem.removeprefix("step_"))
    raw = [flax.serialization.msgpack_restore(path.read_bytes()) for path in snapshots]
    returns = np.array([float(np.asarray(r["return_per_seed"])[0]) for r in raw])
    expert = int(np.argmax(returns))
    random_return = _random_return(run_dir, env_id)
    target = random_return + MEDIUM_FRACTION * (returns[expert] - random_return)
    medium = int(np.argmin(np.abs(returns[: expert + 1] - target)))
    seconds_at = _wall_seconds_by_step(run_dir)
    machine = config.get("versions", {})
    flags = f"XLA_FLAGS='{machine['xla_flags']}' " if machine.get("xla_flags") else ""
    # --set as given to `o2o zoo train`: without them the card's command would train a different policy
    overrides = "".join(f" --set {shlex.quote(f'{field}={value}')}"
                        for field, value in (config["settings"].get("agent_overrides") or {}).items())
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
                       f"--eval-every {config['settings']['eval_every']}{overrides} && o2o zoo export RUN_DIR "
                       f"--upto {upto}",
        }
        mean, std = _measure(env_id, card, policy)
        card.update(return_mean=mean, return_std=std, return_episodes=CARD_EPISODES)
        files.atomic_write_bytes(dest / f"{level}.msgpack", flax.serialization.msgpack_serialize(policy))
        files.write_json(dest / f"{level}.json", card)
        cards[level] = card
    medium_step = int(raw[medium]["step"])
    buffers = runs.load_checkpoint(run_dir, {})["buffers"]
    replay = _medium_replay(buffers, config, medium_step, cards["medium"])
    replay_card = {
        "env_id": env_id, "level": "medium-replay", "seed": seed, "transitions": medium_step,
        "episodes": replay.num_episodes, "content_hash": content_hash(replay), "policy": cards["medium"],
        # the run's directory is left out: regeneration runs in a temporary one, and the card should not carry a local path
        "run_config": {"settings": {k: v for k, v in config["settings"].items() if k != "out"},
                       **{k: config[k] for k in ("agent_config", "env_id", "seeds")}},
        "machine": cards["medium"]["machine"], "training_seconds": seconds_at.get(medium_step),
    }
    files.write_json(dest / "medium-replay.json", replay_card)
    write_o2o(replay, _cache_dir(replay_card), overwrite=True)  # this machine need not regenerate it
    cards["medium-replay"] = replay_card
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


def load_medium_replay(env_id: str, zoo: str | Path | None = None, progress: bool = True) -> Dataset:
    """The medium-replay dataset of `env_id`: from the cache, else regenerated from its card (minutes: it reruns the
    zoo's SAC run up to the medium snapshot; the card's `training_seconds` says how long that took when it was made)."""
    card_file = (Path(zoo) if zoo else zoo_root() / env_id) / "medium-replay.json"
    if not card_file.is_file():
        raise O2OError(f"no medium-replay card for {env_id} yet (looked for {card_file}); make one with "
                       f"`o2o zoo train {env_id}` and `o2o zoo export`")
    card = json.loads(card_file.read_text())
    cache = _cache_dir(card)
    if not (cache / "metadata.json").is_file():
        regenerate_medium_replay(card_file, cache, progress)
    return load_dataset(cache)


def _cache_dir(card: dict) -> Path:
    root = Path(os.environ.get("O2O_CACHE_DIR", Path.home() / ".cache" / "o2o"))
    return root / "zoo" / card["env_id"] / f"medium-replay-{card['content_hash'].removeprefix('sha256:')[:16]}"


def regenerate_medium_replay(card_file: Path, dest: Path, progress: bool = True) -> None:
    """Rerun the card's SAC run to its medium snapshot in a fresh process with the recorded XLA flags (they take
    effect only before JAX starts), check the content hash and write the dataset to `dest`."""
    card = json.loads(Path(card_file).read_text())
    if progress:
        print(f"regenerating {card['env_id']} medium-replay: rerunning the zoo's SAC run to step {card['transitions']:,} "
              f"(it took {card.get('training_seconds') or 0:.0f} s when the zoo was trained)", file=sys.stderr)
    environment = {**os.environ, "XLA_FLAGS": card["machine"].get("xla_flags") or ""}
    with tempfile.TemporaryDirectory() as tmp:
        error_file = Path(tmp) / "error.txt"
        command = [sys.executable, "-m", "o2o.collect.zoo", str(card_file), str(dest), str(int(progress)), str(error_file)]
        if subprocess.run(command, env=environment).returncode != 0:
            raise O2OError(error_file.read_text() if error_file.is_file() else
                           f"regenerating {card['env_id']} medium-replay failed (see the messages above)")


def _regenerate_here(card_file: Path, dest: Path, progress: bool) -> None:
    card = json.loads(card_file.read_text())
    run = card["run_config"]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="o2o-medium-replay-") as tmp:
        settings = online.OnlineSettings(**{**run["settings"], "steps": card["transitions"], "eval_episodes": 0,
                                            "keep_policy_snapshots": False, "out": f"{tmp}/run"})
        online.train(settings, progress=progress)
        buffers = runs.load_checkpoint(Path(tmp) / "run", {})["buffers"]
    replay = _medium_replay(buffers, run, card["transitions"], card["policy"])
    seconds = time.perf_counter() - started
    found = content_hash(replay)
    if found != card["content_hash"]:
        kept = write_o2o(replay, dest.with_name(dest.name + "-unverified"), overwrite=True)
        here = {k: v for k, v in runs.versions().items() if k in card["machine"]}
        raise O2OError(f"{card['env_id']} medium-replay regenerated in {seconds:.0f} s but its content hash {found} is not "
                       f"the card's {card['content_hash']}: the bytes depend on the code, the XLA flags and the CPU "
                       f"(recorded: {card['machine']}; here: {here}). The regenerated data is kept, unverified, at {kept}")
    write_o2o(replay, dest, overwrite=True)
    if progress:
        print(f"regenerated and verified in {seconds:.0f} s: {dest}", file=sys.stderr)


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


def _medium_replay(buffers: dict, config: dict, medium_step: int, medium_card: dict) -> Dataset:
    """The replay buffer from the first step up to the medium snapshot, in the order it was collected."""
    if int(np.asarray(buffers["size"])[0]) < medium_step:
        raise O2OError(f"the replay buffer no longer holds the first {medium_step} steps")
    data = {k: np.asarray(v)[0][:medium_step] for k, v in buffers["data"].items()}
    spaces = env_spaces(config["env_id"])
    actions = to_env_actions(data["actions"], spaces.action_low, spaces.action_high)  # the buffer holds [-1, 1]
    terminals = data["dones"].astype(bool)
    # episode ends that were time limits: the next stored observation is not this step's next observation
    cut = np.zeros(medium_step, bool)
    cut[:-1] = ~terminals[:-1] & np.any(data["next_observations"][:-1] != data["observations"][1:], axis=1)
    cut[-1] = not terminals[-1]
    return Dataset(data["observations"], actions.astype(np.float32), data["rewards"], data["next_observations"],
                   terminals, cut, {"env_id": config["env_id"], "level": "medium-replay", "policy": medium_card,
                                    "seed": config["seeds"][0]})


if __name__ == "__main__":  # the subprocess of `regenerate_medium_replay`
    try:
        _regenerate_here(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1")
    except O2OError as error:
        Path(sys.argv[4]).write_text(str(error))
        sys.exit(1)
