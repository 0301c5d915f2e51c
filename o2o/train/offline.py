"""The offline loop: the dataset lives on the device, batches are sampled inside jit, `chunk` updates are fused into
one `lax.scan` per host call, and K seeds train together under `vmap` (each seed its own init and sampling keys).

Seed i of a K-seed run uses the keys of `--seed base + i` alone, so it equals that seed trained by itself.
Update u draws from `fold_in(stream, u)`, whatever the chunks: a resumed or extended run continues the same random
stream, and a chunk ends wherever an evaluation falls (`chunk_size`). Runs recorded before 2026-12-08 keyed whole
chunks (`keys_by="chunk"`) and resume so.
A batch holds the agent's own draw (uniform transitions), or with `--sampler` transitions weighted by their
trajectory's return (`o2o.data.samplers`), drawn inside the same jitted scan.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from o2o.agents import Spec, get_algorithm, restore_algorithm, uniform_transitions
from o2o.algorithms import d4rl_level, preset
from o2o.data import Dataset, content_hash, samplers
from o2o.data.corrupt import corruption_key
from o2o.data.fields import FIELDS
from o2o.envs import env_spaces, load_for_env, ogbench, recorded_env_kwargs
from o2o.envs.actions import to_unit_actions
from o2o.errors import Interrupted, O2OError
from o2o.train import loggers, runs
from o2o.train.fused import KEYS_BY_CHUNK, KEYS_BY_UPDATE, chunk_size, make_train_chunk
from o2o.train.evaluation import batched_policy, evaluate, make_eval_envs, scores

OGBENCH_ACTION_CLIP = 1.0 - 1e-5
PENDING = "pending"  # a checkpoint's record of its step, left unwritten by a Ctrl-C (`_run`)


@dataclasses.dataclass
class OfflineSettings:
    """Everything that defines an offline run; saved as config.json so that `--resume` rebuilds the run exactly."""

    algo: str
    dataset: str
    env: str | None = None
    steps: int = 100_000
    seeds: int = 1
    seed: int = 0
    eval_every: int = 10_000
    eval_episodes: int = 10
    chunk: int = 1_000
    out: str | None = None
    agent_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    preset: str = "auto"  # the paper's per-dataset settings: "auto" (by the dataset's env and level), "none", or a name
    sampler: str = "uniform"  # which transitions a batch holds: uniform, return-weighted, advantage-weighted
    sampler_temperature: float = samplers.DEFAULT_TEMPERATURE  # alpha of the weighted samplers (Hong et al.: 0.1)
    keys_by: str = KEYS_BY_UPDATE  # "update": update u's key is fold_in(stream, u); "chunk": runs before 2026-12-08

    def check(self) -> None:
        runs.check_counts("offline run", ("chunk",), steps=self.steps, seeds=self.seeds, eval_every=self.eval_every,
                          eval_episodes_or_zero=self.eval_episodes, chunk=self.chunk)
        samplers.check(self.sampler, self.sampler_temperature)
        if self.keys_by not in (KEYS_BY_UPDATE, KEYS_BY_CHUNK):
            raise O2OError(f"keys_by must be {KEYS_BY_UPDATE!r} or {KEYS_BY_CHUNK!r}, not {self.keys_by!r}")

    @classmethod
    def recorded(cls, settings: dict[str, Any]) -> OfflineSettings:
        """The settings a run's config.json recorded; one recorded before `keys_by` existed keyed its chunks."""
        return cls(**{"keys_by": KEYS_BY_CHUNK, **settings})


@dataclasses.dataclass
class Prepared:
    """A run's resolved pieces, built identically for a new and a resumed run."""

    settings: OfflineSettings
    agent: Any
    config: Any
    dataset: Dataset
    env_id: str | None
    spec: Spec
    seeds: list[int]
    action_low: np.ndarray
    action_high: np.ndarray
    preset: dict | None  # the preset applied, if any: {"name": "hopper-medium", "values": {field: value}}
    dataset_reference: dict  # runs.dataset_reference of the data as loaded (before the agent's transform)
    trajectories: samplers.WeightedTrajectories | None  # the weighted sampler's table (NumPy); None: the agent's draw


def prepare(settings: OfflineSettings, recorded: runs.RunDir | None = None) -> Prepared:
    """A run's pieces: for a new run, the config its settings resolve to; for an existing run (`recorded`), the config
    it recorded, exactly (nothing re-applied or refused again, whatever o2o's defaults and checks have become)."""
    settings.check()
    if recorded is None:  # a bad algorithm, override or sampler fails before data loads
        check_sampler_fits(settings.algo, get_algorithm(settings.algo, settings.agent_overrides)[0], settings.sampler)
    dataset, env_id = load_for_env(settings.dataset, settings.env, required=settings.eval_episodes > 0)
    reference = runs.dataset_reference(settings.dataset, content_hash(dataset), len(dataset))
    if recorded is None:
        env, metadata = env_id or dataset.env_id, dataset.metadata
        level = metadata.get("level") or d4rl_level(env, metadata.get("source"))  # D4RL's files: in their name only
        preset_name, preset_values = preset(settings.algo, settings.preset, env, level, corruption_key(metadata),
                                            metadata.get("minari_dataset_id"))
        agent, config = get_algorithm(settings.algo, settings.agent_overrides, preset=preset_values)
        applied = {"name": preset_name, "values": preset_values} if preset_name else None
    else:
        agent, config = restore_algorithm(settings.algo, recorded.agent_config)
        applied = recorded.record.get("preset")
        # a run goes on (and is fine-tuned) in the env it started in, whatever the dataset's record has become
        started_in = {"env_kwargs": recorded_env_kwargs(recorded.dataset_metadata)}
        dataset = dataclasses.replace(dataset, metadata={**dataset.metadata, **started_in})
    if env_id:
        spaces = env_spaces(env_id, recorded_env_kwargs(dataset.metadata))
        low, high = spaces.action_low.astype(np.float64), spaces.action_high.astype(np.float64)
    else:
        low, high = -np.ones(dataset.action_dim), np.ones(dataset.action_dim)
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise O2OError(f"environment {env_id}: action bounds must be finite to map them to [-1, 1]")
    loaded, dataset = dataset, agent.prepare_dataset(dataset, config)
    trajectories = _weighted_trajectories(settings, loaded, dataset)
    observations = np.asarray(dataset.observations, np.float64)
    spec = Spec(
        observation_dim=dataset.observation_dim,
        action_dim=dataset.action_dim,
        observation_mean=observations.mean(axis=0).astype(np.float32),
        observation_std=(observations.std(axis=0) + 1e-3).astype(np.float32),  # keeps constant dimensions finite
        episode_return_max=float(dataset.episode_returns.max()) if len(dataset) else None,
    )
    seeds = [settings.seed + i for i in range(settings.seeds)]
    return Prepared(settings, agent, config, dataset, env_id, spec, seeds, low, high, applied, reference, trajectories)


def check_sampler_fits(algo: str, agent, sampler: str) -> None:
    """A weighted sampler draws single transitions: an agent that draws its own batches (DT's windows) cannot use it."""
    if sampler != "uniform" and agent.sample_batch is not uniform_transitions:
        raise O2OError(f"{algo} draws its own batches, not single transitions; --sampler {sampler} weights single "
                       f"transitions: train {algo} with --sampler uniform")


def _weighted_trajectories(settings: OfflineSettings, loaded: Dataset, prepared: Dataset):
    """The weighted sampler's table, computed from the dataset as loaded: from its rewards before the agent's transform
    (a reward shift would change the weights). A transform that selects episodes is refused: the weights would be
    those of other episodes, and a selection by return is itself a sampler (%BC)."""
    if settings.sampler == "uniform":
        return None
    if len(prepared) != len(loaded) or not np.array_equal(prepared.episode_starts, loaded.episode_starts):
        raise O2OError(f"{settings.algo} trains on {prepared.num_episodes} of the dataset's {loaded.num_episodes} "
                       f"episodes and --sampler {settings.sampler} weights all of them: use one or the other")
    return samplers.weighted_trajectories(loaded, settings.sampler, settings.sampler_temperature)


def device_data(p: Prepared) -> dict[str, jax.Array]:
    """Training arrays on the device, actions mapped from the env's bounds to [-1, 1]."""
    scaled = to_unit_actions(np.asarray(p.dataset.actions, np.float64), p.action_low, p.action_high)
    if ogbench.is_task_env(p.env_id):  # OGBench's protocol: boundary log-likelihoods stay finite
        scaled = np.clip(scaled, -OGBENCH_ACTION_CLIP, OGBENCH_ACTION_CLIP)
    data = {
        "observations": jnp.asarray(p.dataset.observations, jnp.float32),
        "actions": jnp.asarray(scaled, jnp.float32),
        "rewards": jnp.asarray(p.dataset.rewards, jnp.float32),
        "next_observations": jnp.asarray(p.dataset.next_observations, jnp.float32),
        "dones": jnp.asarray(~p.dataset.bootstrap, jnp.float32),
    }
    for name in p.agent.transition_fields(p.config):
        data[name] = jnp.asarray(FIELDS[name].from_dataset(p.dataset, scaled, p.config))
    return data


def init_states(p: Prepared):
    return init_seeds(p.agent, p.config, p.spec, p.seeds)


def init_seeds(agent, config, spec: Spec, seeds: list[int]):
    """Every seed's fresh agent state, stacked (seed s draws from fold_in(PRNGKey(s), 0))."""
    keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), 0) for s in seeds])
    states = jax.vmap(lambda k: agent.init(k, spec, config))(keys)
    return jax.tree.map(jnp.copy, states)  # target networks start as copies; donated buffers must not alias


def checkpoint_template(agent, config, env_id: str, seeds: list[int], dataset_metadata: dict | None):
    """Stacked agent states of the shapes a run's checkpoint is read into (its values replace these): built from the
    env's spaces (made as the run's dataset metadata records), so that no dataset is needed."""
    spaces = env_spaces(env_id, recorded_env_kwargs(dataset_metadata))
    spec = Spec.unnormalized(spaces.observation_shape[0], spaces.action_shape[0]).replace(episode_return_max=0.0)
    return init_seeds(agent, config, spec, seeds)


def train(settings: OfflineSettings, progress: bool = True, prepared: Prepared | None = None,
          logging: loggers.LogSettings | None = None, fine_tuning: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train a new run (from `prepared`, this settings' pieces, if the caller has them), its metrics logged as `logging`
    says (default: metrics.jsonl and TensorBoard); returns the summary (also written to summary.json). `fine_tuning`:
    the online phase to follow (`o2o.train.phases.offline_then_online`), recorded so that a resume finishes both."""
    run_dir = Path(settings.out) if settings.out else Path("runs") / (
        f"{settings.algo}-{Path(settings.dataset).name}-{datetime.now():%Y%m%d-%H%M%S}")
    settings.check()
    runs.refuse_existing_run(run_dir)  # before the data loads
    p = prepared or prepare(settings)
    settings = dataclasses.replace(settings, dataset=p.dataset_reference["source"], out=str(run_dir))
    run = runs.RunDir.create(run_dir, "offline", logging, settings=dataclasses.asdict(settings),
                             agent_config=dataclasses.asdict(p.config), preset=p.preset, env_id=p.env_id, seeds=p.seeds,
                             dataset=p.dataset_reference, dataset_metadata=p.dataset.metadata,
                             **({runs.FINE_TUNING: fine_tuning} if fine_tuning is not None else {}))
    return _run(dataclasses.replace(p, settings=settings), run, init_states(p), start_step=0, best=-math.inf,
                progress=progress)


def resume(run_dir: str | Path, steps: int | None = None, progress: bool = True,
           logging: loggers.LogSettings | None = None) -> dict[str, Any]:
    """Continue a killed run from its last checkpoint; on CPU it ends exactly as an uninterrupted run would. A finished
    run is left as it is (its summary comes back, with `"already_finished": True`) unless `steps` asks for more
    updates than it had, which extends it (config.json records the extension). It logs as it recorded, or as
    `logging` says (`runs.resumed_logging`)."""
    run = runs.RunDir.open(run_dir, "offline")
    summary = runs.finished_summary(run, steps, "updates")
    if summary is not None:
        return summary
    logging = runs.resumed_logging(run, logging)
    p = prepare(OfflineSettings.recorded({**run.settings, "steps": max(steps or 0, run.settings["steps"])}), run)
    run.check_dataset(p.dataset_reference["content_hash"])
    checkpoint = runs.load_checkpoint(run.path, {"states": init_states(p), "step": 0, "best": 0.0})
    runs.extend(run, steps, logging)  # once the checkpoint has loaded: a refused resume leaves config.json as it was
    return _run(p, run, checkpoint["states"], int(checkpoint["step"]), float(checkpoint["best"]), progress,
                checkpoint.get(PENDING))


def _run(p: Prepared, run: runs.RunDir, states, start_step: int, best: float, progress: bool,
         pending: dict | None = None) -> dict[str, Any]:
    """Train from `states` at `start_step` to the end. `pending`: the record of `start_step` that a Ctrl-C kept from
    being written ({"record", "evaluate"}), written first, with its evaluation if it has one."""
    s, run_dir = p.settings, run.path
    data, trajectories = device_data(p), jax.device_put(p.trajectories)
    seed_keys = jnp.stack([jax.random.PRNGKey(seed) for seed in p.seeds])
    train_chunks: dict[int, Callable] = {}  # by size
    policy = batched_policy(p.agent)
    env_kwargs = recorded_env_kwargs(p.dataset.metadata)
    envs = make_eval_envs(p.env_id, len(p.seeds), s.eval_episodes, env_kwargs) if s.eval_episodes > 0 else None
    # a pending record is written again, so metrics.jsonl keeps only what came before it
    log = runs.MetricsLog(run, resume_from_step=start_step - (1 if pending else 0) if start_step else None)

    def run_eval(step: int) -> dict[str, Any]:
        returns = evaluate(lambda *inputs: policy(states, *inputs), envs, p.seeds, s.eval_episodes, round_seed=1_000_003 * (step + 1))
        return {"step": step, "phase": "offline", **scores(returns, p.env_id, p.dataset.metadata)}

    def chunk_end(step: int, metrics: dict) -> dict[str, Any]:
        """What is left to do at `step`, the end of a chunk: its record and whether it evaluates and checkpoints."""
        record = {"step": step, "phase": "offline", **{k: float(np.mean(v)) for k, v in metrics.items()}}
        return {"record": record, "evaluate": step % s.eval_every == 0 or step == s.steps}

    def conclude(record: dict[str, Any], evaluate: bool) -> None:
        """The evaluation, record and checkpoints at the end of a chunk (states and step are its end's)."""
        nonlocal best, last_eval, eval_seconds, unlogged, saved_step
        if envs is not None and evaluate:
            t1 = time.perf_counter()
            last_eval = run_eval(step)
            eval_seconds += time.perf_counter() - t1
            record = {**record, **last_eval}
            score = last_eval.get("normalized_score", last_eval["return_mean"])
            if score > best:  # saved before `best` moves: a Ctrl-C in between leaves it to the resume to save
                runs.save_checkpoint(run_dir, {"states": states, "step": step, "best": score}, runs.BEST_CHECKPOINT)
                best = score
        log.write(record)
        unlogged = None
        if evaluate:
            runs.save_checkpoint(run_dir, {"states": states, "step": step, "best": best})
            saved_step = step

    update_seconds = eval_seconds = 0.0
    runs.divergence({}, states)  # compiles the check each chunk runs: not time spent outside the updates
    wall_start = time.perf_counter()
    # a resumed run's last evaluation so far: the one its summary reports if no update is left
    last_eval = run.last_evaluation(start_step) if start_step else None
    step = saved_step = start_step
    # `unlogged`: what is left to do at `step` (chunk_end) until its record is written; `new_states`: a chunk's states
    # until they are adopted. Each moves with `step` in one statement, so that a Ctrl-C never finds them apart.
    unlogged, new_states = pending, None
    bar = runs.ProgressBar(progress, s.steps, start_step, "offline", "upd/s/seed")
    try:
        if unlogged is not None:
            conclude(**unlogged)
        while step < s.steps:
            if s.keys_by == KEYS_BY_CHUNK:  # chunks of gcd(chunk, eval_every), keyed by their index
                chunk = math.gcd(min(s.chunk, s.steps), s.eval_every)
                size, position = chunk_size(step, s.steps, chunk, s.eval_every), step // chunk
            else:
                size, position = chunk_size(step, s.steps, s.chunk, s.eval_every), step
            if size not in train_chunks:
                train_chunks[size] = make_train_chunk(p.agent, p.config, size, s.keys_by)
            t0 = time.perf_counter()
            new_states, metrics = train_chunks[size](states, seed_keys, position, data, trajectories)
            metrics = jax.device_get(metrics)  # waits for the chunk: (seeds,) per metric
            update_seconds += time.perf_counter() - t0
            diverged = runs.divergence(metrics, new_states)
            if diverged:
                raise O2OError(f"{run_dir}: {diverged} in updates {step + 1}-{step + size}; stopped; "
                               + runs.last_good_checkpoint(run_dir, saved_step))
            end = chunk_end(step + size, metrics)
            states, step, new_states, unlogged = new_states, step + size, None, end
            conclude(**unlogged)
            bar.advance(size, _rate(step - start_step, update_seconds), last_eval)
    except KeyboardInterrupt:
        # a Ctrl-C lands nearly always while the host waits for a chunk: the chunk runs to its end, and its input
        # states were donated to it (deleted), so its output is what can be kept
        if new_states is not None:
            metrics = jax.device_get(metrics)
            if runs.divergence(metrics, new_states) is None:
                states, step, unlogged = new_states, step + size, chunk_end(step + size, metrics)
        if step > saved_step and not runs.deleted(states):  # a resume goes on from exactly here
            runs.save_checkpoint(run_dir, {"states": states, "step": step, "best": best,
                                           **({PENDING: unlogged} if unlogged else {})})
            saved_step = step
        raise Interrupted(f"{run_dir}: interrupted at update {step} of {s.steps}; "
                          + runs.resume_hint(run, step, saved_step)) from None
    finally:
        bar.close()
        log.close()
        if envs is not None:
            envs.close()
    wall = time.perf_counter() - wall_start
    summary = {
        "run_dir": str(run_dir),
        "algo": s.algo,
        "dataset": s.dataset,
        "env": p.env_id,
        "preset": p.preset,
        "sampler": samplers.label(s.sampler, s.sampler_temperature),
        "steps": s.steps,
        "seeds": len(p.seeds),
        "seed_values": p.seeds,
        "return_mean": last_eval["return_mean"] if last_eval else None,
        "return_per_seed": last_eval["return_per_seed"] if last_eval else None,
        "normalized_score": last_eval.get("normalized_score") if last_eval else None,
        "normalized_score_per_seed": last_eval.get("normalized_score_per_seed") if last_eval else None,
        "success_rate": last_eval.get("success_rate") if last_eval else None,
        "success_rate_per_seed": last_eval.get("success_rate_per_seed") if last_eval else None,
        "updates_per_second": _rate(step - start_step, update_seconds) * len(p.seeds),
        "updates_per_second_per_seed": _rate(step - start_step, update_seconds),
        "wall_seconds": wall,
        "update_seconds": update_seconds,
        "eval_seconds": eval_seconds,
        "outside_updates_fraction": 1.0 - update_seconds / wall if wall > 0 else 0.0,
    }
    run.write_summary(summary)
    return summary


def _rate(updates: int, seconds: float) -> float:
    return updates / seconds if seconds > 0 else 0.0


def evaluate_checkpoint(agent, states, env_id: str, seeds: list[int], episodes: int, metadata: dict) -> dict[str, Any]:
    """Evaluate stacked per-seed agent states on fresh envs (a fixed round seed, so repeated calls agree)."""
    if episodes < 1:
        raise O2OError(f"--episodes must be at least 1 (got {episodes})")
    envs = make_eval_envs(env_id, len(seeds), episodes, recorded_env_kwargs(metadata))
    policy = batched_policy(agent)
    try:
        returns = evaluate(lambda *inputs: policy(states, *inputs), envs, seeds, episodes, round_seed=7_777_777)
    finally:
        envs.close()
    return scores(returns, env_id, metadata)


def evaluate_run(run_dir: str | Path, episodes: int, best: bool = False) -> dict[str, Any]:
    """Evaluate the latest (or best) checkpoint of an offline run, every seed, `episodes` episodes each; from the run
    directory alone (its dataset is not read)."""
    run = runs.RunDir.open(run_dir, "offline")
    if not run.env_id:
        raise O2OError(f"{run.path}: trained without an environment (none recorded); nothing to evaluate it in")
    agent, config = restore_algorithm(run.settings["algo"], run.agent_config)
    template = checkpoint_template(agent, config, run.env_id, run.seeds, run.dataset_metadata)
    checkpoint = runs.load_checkpoint(run.path, {"states": template},
                                      runs.BEST_CHECKPOINT if best else runs.CHECKPOINT)
    return {"run_dir": str(run.path), "algo": run.settings["algo"], "dataset": run.settings["dataset"],
            "env": run.env_id, "steps": int(checkpoint["step"]), "seeds": len(run.seeds), "seed_values": run.seeds,
            "episodes": episodes,
            **evaluate_checkpoint(agent, checkpoint["states"], run.env_id, run.seeds, episodes, run.dataset_metadata)}
