"""The online loop, and offline-to-online fine-tuning.

One env per seed; seeds are vmapped. Per env step there are two jitted calls (`o2o.train.online_step`): one inserts
the step's transition into each seed's device-resident replay buffer (in place), the other runs the `utd` updates of
that step fused in a `lax.scan` and returns the next actions. Every random number derives from (seed, step), env
episodes are reset with seed (seed, episode index), and checkpoints keep each env's unfinished episode
(`o2o.envs.state`), so a resumed run continues exactly as if uninterrupted. Envs whose episodes cannot be saved
(OGBench's tasks) resume with a fresh episode (the unfinished one's transitions stay in the buffer).
"""

from __future__ import annotations

import dataclasses
import math
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from o2o import files
from o2o.agents import Spec, get_algorithm, restore_algorithm, reward_bonus
from o2o.data import replay
from o2o.envs import env_spaces, make_env, recorded_env_kwargs, state as env_state
from o2o.envs.actions import to_env_actions
from o2o.errors import Interrupted, O2OError
from o2o.train import episodes as episode_book, handoff, loggers, offline, runs
from o2o.train.evaluation import batched_policy, evaluate, make_eval_envs, scores
# the online run's settings, used as online.OnlineSettings, online.settings_for, online.NO_UPDATE
from o2o.train.online_settings import NO_UPDATE, OnlineSettings, settings_for  # noqa: F401
from o2o.train.online_step import empty_memory, first_action, make_env_step

NO_ENV = ("trained without an environment (its dataset records none and no --env was given); online fine-tuning needs "
          "one: train the offline run with --env ENV_ID")


@dataclasses.dataclass
class Prepared:
    settings: OnlineSettings
    agent: Any
    config: Any
    env_id: str
    seeds: list[int]
    action_low: np.ndarray
    action_high: np.ndarray
    states: Any
    offline_data: dict | None
    reward_transform: tuple[float, float]  # (scale, bias): online rewards as the agent's dataset has them (`metadata`)
    metadata: dict
    start_score: float | None
    offline_data_settings: dict | None  # offline.OfflineSettings of the offline data in batches
    dataset_reference: dict | None  # runs.dataset_reference of that data
    bonus: Any = None  # (state, batch) -> (batch, metrics): the reward bonus applied to every batch, or None


def prepare(settings: OnlineSettings, recorded: runs.RunDir | None = None,
            offline_run: runs.RunDir | None = None) -> Prepared:
    """A new run's pieces (fine-tuning: from `offline_run`, or the run `settings.init_from` names); or, given its
    `recorded` run directory, an existing run's (for resume), built from its config.json: the offline run it started
    from is not read again."""
    settings.check()
    start = None
    if recorded is not None:
        agent, config = restore_algorithm(settings.algo, recorded.agent_config)  # final values: nothing re-applied
        env_id, offline_settings = recorded.env_id, recorded.record.get("offline_data")
    else:
        if settings.init_from:
            start = handoff.start(offline_run or settings.init_from, settings.algo, settings.seeds, settings.seed,
                                  settings.agent_overrides, settings.learning_steps * settings.utd, settings.utd)
            agent, config = start.agent, start.config
        else:
            agent, config = get_algorithm(settings.algo, settings.agent_overrides, utd=settings.utd)
        env_id = settings.env or (start.base.env_id if start else None)
        if not env_id:
            raise O2OError(f"{settings.init_from}: {NO_ENV}" if start else "an online run needs --env ENV_ID")
        if start and start.base.env_id and env_id != start.base.env_id:
            raise O2OError(f"{settings.init_from}: trained on {start.base.env_id} but --env {env_id} was given; they must match")
        offline_settings = _offline_data_settings(settings, start.base if start else None, env_id)
    seeds = [settings.seed + i for i in range(settings.seeds)]

    offline_data, metadata, reference, data_spec = None, {}, None, None
    if offline_settings is not None:
        offline_prepared = start.base if start else offline.prepare(offline.OfflineSettings(**offline_settings))
        # the online agent's transition fields, from the offline agent's dataset
        offline_data = offline.device_data(dataclasses.replace(offline_prepared, agent=agent, config=config))
        metadata, reference = offline_prepared.dataset.metadata, offline_prepared.dataset_reference
        data_spec = offline_prepared.spec  # a fresh agent standardizes states by its offline data, as offline
    reward_transform = _reward_transform(metadata)
    if recorded is not None:  # runs before reward_bias existed record their scale only
        recorded_transform = (float(recorded.record["reward_scale"]), float(recorded.record.get("reward_bias", 0.0)))
        if offline_settings is not None and not np.allclose(reward_transform, recorded_transform):
            raise O2OError(f"{recorded.path}: its offline data would now be prepared with rewards {reward_transform[0]:g} "
                           f"r + {reward_transform[1]:g}, but it trained on {recorded_transform[0]:g} r + "
                           f"{recorded_transform[1]:g} (a preset changed since); resume it with the o2o that started it")
        reward_transform, metadata = recorded_transform, recorded.dataset_metadata or metadata
    if start is not None:
        reward_transform, metadata = _reward_transform(start.base.dataset.metadata), start.base.dataset.metadata
    spaces = env_spaces(env_id, recorded_env_kwargs(metadata))  # the env the data was recorded in
    low, high = spaces.action_low.astype(np.float64), spaces.action_high.astype(np.float64)
    if start is not None:
        states = start.states
    else:  # a fresh agent (for an existing run: the shapes its checkpoint is read into)
        spec = data_spec or Spec.unnormalized(spaces.observation_shape[0], spaces.action_shape[0])
        states = offline.init_seeds(agent, config, spec, seeds)
    start_score = recorded.record.get("start_score") if recorded is not None else (start.start_score if start else None)
    settings.check_windows(agent.window(config))
    bonus = None
    if settings.reward_bonus != "none":
        bonus = reward_bonus(settings.reward_bonus, agent, config, settings.bonus_neighbours, settings.bonus_scale)
    return Prepared(settings, agent, config, env_id, seeds, low, high, states, offline_data, reward_transform, metadata,
                    start_score, offline_settings, reference, bonus)


def _reward_transform(metadata: dict) -> tuple[float, float]:
    """(scale, bias) of the rewards an agent's dataset holds (`o2o.agents.common.transform_rewards`)."""
    return float(metadata.get("reward_scale", 1.0)), float(metadata.get("reward_bias", 0.0))


def _offline_data_settings(settings: OnlineSettings, base: offline.Prepared | None, env_id: str) -> dict | None:
    """How the offline data mixed into batches is built (an offline run's settings), or None without any."""
    if settings.offline_sampling == "none":
        return None
    if base is not None:
        return {**dataclasses.asdict(base.settings), "eval_episodes": 0, "env": env_id, "out": None}
    if not settings.offline_dataset:
        raise O2OError(f"offline sampling {settings.offline_sampling!r} needs offline data: pass --dataset SOURCE")
    # prepared with the online agent's own config, which takes no preset: its rewards as the agent expects them
    return dataclasses.asdict(offline.OfflineSettings(algo=settings.algo, dataset=settings.offline_dataset, env=env_id,
                                                      eval_episodes=0, agent_overrides=settings.agent_overrides,
                                                      preset="none"))


def train(settings: OnlineSettings, progress: bool = True, offline_run: runs.RunDir | None = None,
          logging: loggers.LogSettings | None = None) -> dict[str, Any]:
    """Train a new online run (fine-tuning: from `offline_run` if the caller has it open, else from
    `settings.init_from`), logged as `logging` says (as `offline.train`); returns the summary (also in summary.json)."""
    settings.check()
    run_dir = Path(settings.out) if settings.out else Path("runs") / f"{settings.algo}-online-{settings.env or 'env'}-{datetime.now():%Y%m%d-%H%M%S}"
    runs.refuse_existing_run(run_dir)  # before anything loads
    # recorded so that the run works from any directory (and `o2o report` finds its offline run from any)
    if settings.offline_dataset:
        settings = dataclasses.replace(settings, offline_dataset=files.absolute_source(settings.offline_dataset))
    if settings.init_from:
        settings = dataclasses.replace(settings, init_from=files.absolute_source(settings.init_from))
    p = prepare(settings, offline_run=offline_run)
    settings.warn_if_no_update()
    run = runs.RunDir.create(
        run_dir, "online", logging, settings=dataclasses.asdict(dataclasses.replace(settings, out=str(run_dir))),
        agent_config=dataclasses.asdict(p.config), env_id=p.env_id, seeds=p.seeds, reward_scale=p.reward_transform[0],
        reward_bias=p.reward_transform[1],
        offline_data=p.offline_data_settings, dataset=p.dataset_reference, dataset_metadata=p.metadata,
        start_score=p.start_score)
    start = {"states": p.states, "buffers": _empty_buffers(p), "step": 0, "episodes": np.zeros(len(p.seeds), np.int64),
             "best": -math.inf, "curve": []}
    return _run(p, run, start, progress)


def resume(run_dir: str | Path, steps: int | None = None, progress: bool = True,
           logging: loggers.LogSettings | None = None) -> dict[str, Any]:
    """Continue a killed online run from its last checkpoint, exactly; a finished one is left as it is unless `steps`
    asks for more env steps (`runs.finished_summary`, `runs.extend`); it logs as `offline.resume` says."""
    run = runs.RunDir.open(run_dir, "online")
    summary = runs.finished_summary(run, steps, "env steps")
    if summary is not None:
        return summary
    logging = runs.resumed_logging(run, logging)
    settings = OnlineSettings(**{**run.settings, "steps": max(steps or 0, run.settings["steps"])})
    p = prepare(settings, run if "offline_data" in run.record else None)  # older runs: rebuilt from their offline run
    if p.dataset_reference is not None:
        run.check_dataset(p.dataset_reference["content_hash"])
    checkpoint = runs.load_checkpoint(run.path, {"states": p.states})
    runs.extend(run, steps, logging)  # once the checkpoint has loaded: a refused resume leaves config.json as it was
    return _run(p, run, {**checkpoint, "buffers": replay.refill(_empty_buffers(p), checkpoint["buffers"])}, progress)


def _empty_buffers(p: Prepared) -> replay.ReplayBuffer:
    """One replay buffer per seed (stacked), `buffer_capacity` transitions each (default: all online steps)."""
    obs_dim = env_spaces(p.env_id, recorded_env_kwargs(p.metadata)).observation_shape[0]
    capacity = p.settings.buffer_capacity or p.settings.steps
    fields = p.agent.transition_fields(p.config)
    return jax.vmap(lambda _: replay.create(capacity, obs_dim, len(p.action_low), fields))(jnp.arange(len(p.seeds)))


def _policy_part(states) -> dict:
    """What acting needs: the actor's parameters and the observation normaliser (per seed, stacked)."""
    return {"actor": states.actor.params, "normalizer": states.normalizer}


def _run(p: Prepared, run: runs.RunDir, start: dict, progress: bool) -> dict[str, Any]:
    s, run_dir = p.settings, run.path
    agent, n = p.agent, len(p.seeds)
    step, episodes, best = int(start["step"]), np.asarray(start["episodes"], np.int64).copy(), float(start["best"])
    start_step = saved_step = step
    curve = [list(map(float, point)) for point in start["curve"]]
    states, buffers = start["states"], start["buffers"]
    seed_keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(seed), 2) for seed in p.seeds])
    offline_data = p.offline_data if p.offline_data is not None else {}
    policy = batched_policy(agent)
    env_kwargs = recorded_env_kwargs(p.metadata)
    eval_envs = make_eval_envs(p.env_id, n, s.eval_episodes, env_kwargs) if s.eval_episodes > 0 else None
    envs = [make_env(p.env_id, **env_kwargs) for _ in p.seeds]
    log = runs.MetricsLog(run, resume_from_step=step if step else None)
    step_fns: dict[tuple[bool, bool], Any] = {}

    def phase(t: int) -> tuple[bool, bool]:
        """(learn, random actions) at env step t."""
        warming = t < s.warmup_steps
        return (not warming, warming and s.warmup_policy == "random")

    def step_fn(t: int):
        key = phase(t)
        if key not in step_fns:
            step_fns[key] = make_env_step(agent, p.config.batch_size, s.utd, s.offline_sampling, *key,
                                          window=agent.window(p.config), offline_fraction=s.offline_fraction,
                                          recent_steps=s.recent_steps, bonus=p.bonus)
        return step_fns[key]

    def run_eval(t: int) -> dict[str, Any]:
        returns = evaluate(lambda *inputs: policy(states, *inputs), eval_envs, p.seeds, s.eval_episodes, round_seed=1_000_003 * (t + 1))
        return {"step": t, "phase": "online", **scores(returns, p.env_id, p.metadata)}

    obs = np.stack([env.reset(seed=episode_book.episode_seed(seed, episodes[i]))[0] for i, (env, seed) in enumerate(zip(envs, p.seeds))]).astype(np.float32)
    episode_end = episode_book.EpisodeEndFields.of(agent.transition_fields(p.config), p.config, n,
                                                   int(buffers.data["rewards"].shape[-1]), envs[0].spec.max_episode_steps)
    saved = start.get("episodes_in_progress")
    resumed_episodes = saved is not None and all([env_state.restore(env, saved["envs"][str(i)]) for i, env in enumerate(envs)])
    # what an agent acting on the episode so far (act_in_episode) is given: its memory, the step t and last reward
    memory, episode_steps, last_rewards = empty_memory(agent, states), np.zeros(n, np.int32), np.zeros(n, np.float32)
    if resumed_episodes:
        obs, actions = np.asarray(saved["observations"]), np.asarray(saved["actions"])
        episode_returns = np.asarray(saved["returns"], np.float64).copy()
        if episode_end is not None:
            episode_end.resume(saved["returns_to_go"])
        if "acting" in saved:
            memory = jax.tree.map(jnp.asarray, saved["acting"]["memory"]) if agent.begin_episode else ()
            episode_steps = np.asarray(saved["acting"]["episode_steps"], np.int32)
            last_rewards = np.asarray(saved["acting"]["last_rewards"], np.float32)
    else:  # a new run, or one whose unfinished episodes could not be kept: each seed starts a new episode
        if saved is not None:
            obs = np.stack([env.reset(seed=episode_book.episode_seed(seed, episodes[i]))[0]
                            for i, (env, seed) in enumerate(zip(envs, p.seeds))]).astype(np.float32)
        actions, memory = first_action(agent, states, obs, seed_keys, step, phase(step)[1], memory, episode_steps,
                                       last_rewards)
        actions = np.asarray(actions)
        episode_returns = np.zeros(n)
    finished: list[float] = [float(x) for x in start.get("finished", [])]  # training episode returns
    successes: list[float] = [float(x) for x in start.get("successes", [])]
    earlier_seconds = float(start.get("wall_seconds", 0.0))  # spent by the processes this run resumed from
    update_seconds = env_seconds = eval_seconds = compile_seconds = warmup_seconds = checkpoint_seconds = 0.0
    wall_start = time.perf_counter()
    runs.divergence({}, states)  # compiles the check that every log record runs, so that it counts as compilation
    compile_seconds += time.perf_counter() - wall_start
    # a resumed run's last evaluation so far: the one its summary reports if no step is left to run
    last_eval = run.last_evaluation(step) if step else None
    if step == 0 and eval_envs is not None:
        t2 = time.perf_counter()
        last_eval = run_eval(0)
        eval_seconds += time.perf_counter() - t2
        curve.append([0, last_eval.get("normalized_score", last_eval["return_mean"])])
        log.write(last_eval)
    bar = runs.ProgressBar(progress, s.steps, step, "online", "env steps/s/seed")
    metrics: dict = {}
    try:
        while step < s.steps:
            t0 = time.perf_counter()
            next_obs = np.empty_like(obs)
            final_obs = np.empty_like(obs)
            rewards, terminated, done = np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(n, bool)
            for i, env in enumerate(envs):
                o, r, term, trunc, info = env.step(to_env_actions(actions[i], p.action_low, p.action_high))
                final_obs[i], rewards[i], terminated[i], done[i] = o, r, float(term), term or trunc
                episode_returns[i] += r
                if done[i]:
                    finished.append(episode_returns[i])
                    if "success" in info or "is_success" in info:
                        successes.append(float(info.get("success", info.get("is_success"))))
                    episode_returns[i] = 0.0
                    episodes[i] += 1
                    o, _ = env.reset(seed=episode_book.episode_seed(p.seeds[i], episodes[i]))
                next_obs[i] = o
            env_seconds += time.perf_counter() - t0
            scale, bias = p.reward_transform
            transition = {"observations": obs, "actions": actions,
                          "rewards": rewards * np.float32(scale) + np.float32(bias),
                          "next_observations": final_obs, "dones": terminated}
            t1 = time.perf_counter()
            compiling = phase(step) not in step_fns
            episode_steps = np.where(done, 0, episode_steps + 1).astype(np.int32)
            last_rewards = np.where(done, 0.0, rewards).astype(np.float32)
            states, buffers, new_actions, memory, step_metrics = step_fn(step)(
                states, buffers, transition, next_obs, seed_keys, step + 1, offline_data, memory, episode_steps,
                last_rewards)
            actions = np.asarray(new_actions)  # waits for the updates
            if compiling:
                compile_seconds += time.perf_counter() - t1
            elif phase(step)[0]:
                update_seconds += time.perf_counter() - t1
            else:
                warmup_seconds += time.perf_counter() - t1
            if episode_end is not None:
                buffers = episode_end.record(buffers, step, transition["rewards"], done)
            obs, step = next_obs, step + 1
            if step_metrics:
                metrics = step_metrics
            if step % s.log_every == 0 or step % s.eval_every == 0 or step == s.steps:
                record = {"step": step, "phase": "online", "wall_seconds": earlier_seconds + time.perf_counter() - wall_start}
                host_metrics = jax.device_get(metrics)
                diverged = runs.divergence(host_metrics, states)
                if diverged:
                    raise O2OError(f"{run_dir}: {diverged} by env step {step}; stopped; "
                                   + runs.last_good_checkpoint(run_dir, saved_step))
                # with finite parameters a NaN metric is undefined at this step (a delayed actor's loss between its updates)
                record.update({k: float(np.mean(v)) for k, v in host_metrics.items() if not np.isnan(v).any()})
                if finished:
                    record["train_episode_return"] = float(np.mean(finished[-10 * n:]))
                if eval_envs is not None and (step % s.eval_every == 0 or step == s.steps):
                    t2 = time.perf_counter()
                    last_eval = run_eval(step)
                    eval_seconds += time.perf_counter() - t2
                    record.update(last_eval)
                    score = last_eval.get("normalized_score", last_eval["return_mean"])
                    curve.append([step, score])
                    best = max(best, score)
                    if s.keep_policy_snapshots:
                        runs.save_checkpoint(run_dir, {"policy": _policy_part(states), "step": step,
                                                       "return_per_seed": np.asarray(last_eval["return_per_seed"])},
                                             f"snapshots/step_{step:09d}.msgpack")
                log.write(record)
                if step % s.eval_every == 0 or step == s.steps:
                    t3 = time.perf_counter()
                    runs.save_checkpoint(run_dir, {"states": states, "buffers": replay.filled(buffers), "step": step,
                                                   "episodes": episodes, "best": best, "curve": np.asarray(curve, np.float64).reshape(-1, 2),
                                                   "finished": np.asarray(finished, np.float64),
                                                   "successes": np.asarray(successes, np.float64),
                                                   "wall_seconds": record["wall_seconds"],
                                                   "episodes_in_progress": episode_book.in_progress(
                                                       envs, obs, actions, episode_returns, episode_end,
                                                       acting={"memory": memory, "episode_steps": episode_steps,
                                                               "last_rewards": last_rewards})})
                    checkpoint_seconds += time.perf_counter() - t3
                    saved_step = step
            bar.advance(1, step / max(time.perf_counter() - wall_start, 1e-9), last_eval)
    except KeyboardInterrupt:
        raise Interrupted(f"{run_dir}: interrupted at env step {step} of {s.steps}; "
                          + runs.resume_hint(run, step, saved_step)) from None
    finally:
        bar.close()
        log.close()
        for env in envs:
            env.close()
        if eval_envs is not None:
            eval_envs.close()
    wall = time.perf_counter() - wall_start
    summary = {
        "run_dir": str(run_dir), "algo": s.algo, "dataset": s.offline_dataset or s.init_from, "env": p.env_id,
        "steps": s.steps, "seeds": n, "seed_values": p.seeds, "utd": s.utd,
        "online_updates": max(0, step - s.warmup_steps) * s.utd,
        "return_mean": last_eval["return_mean"] if last_eval else None,
        "return_per_seed": last_eval["return_per_seed"] if last_eval else None,
        "normalized_score": last_eval.get("normalized_score") if last_eval else None,
        "normalized_score_per_seed": last_eval.get("normalized_score_per_seed") if last_eval else None,
        "success_rate": last_eval.get("success_rate") if last_eval else None,
        "success_rate_per_seed": last_eval.get("success_rate_per_seed") if last_eval else None,
        **o2o_metrics(curve, s.steps, p.start_score, successes),
        "env_steps_per_second": (step * n) / wall if wall > 0 else 0.0,
        # learning steps (after warm-up), excluding the first call of each compiled variant
        "updates_per_second": (max(0, step - max(s.warmup_steps, start_step) - 1) * s.utd * n) / update_seconds
        if update_seconds > 0 else 0.0,
        "wall_seconds": wall, "total_wall_seconds": earlier_seconds + wall, "env_seconds": env_seconds, "update_seconds": update_seconds, "eval_seconds": eval_seconds,
        "compile_seconds": compile_seconds, "warmup_call_seconds": warmup_seconds, "checkpoint_seconds": checkpoint_seconds,
    }
    run.write_summary(summary)
    return summary


def o2o_metrics(curve: list[list[float]], steps: int, offline_score: float | None, successes: list[float]) -> dict:
    """Score at the switch, the online curve, the dip (lowest score in the first 10% of online steps minus the starting
    score) and, on goal tasks, cumulative regret (mean failure rate over online training episodes)."""
    start = curve[0][1] if curve and curve[0][0] == 0 else offline_score
    early = [score for t, score in curve if 0 < t <= 0.1 * steps]  # None without an evaluation in the window
    return {
        "offline_score": offline_score,
        "start_score": start,
        "online_curve": curve,
        "dip": min(0.0, min(early) - start) if early and start is not None else None,
        "cumulative_regret": (1.0 - float(np.mean(successes))) if successes else None,
    }
