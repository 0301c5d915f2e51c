"""The online loop, and offline-to-online fine-tuning.

One env per seed; seeds are vmapped. Per env step there are two jitted calls: one inserts the step's transition into
each seed's device-resident replay buffer (in place), the other runs the `utd` updates of that step fused in a
`lax.scan` and returns the next actions. Every random number derives from (seed, step), env episodes are reset with
seed (seed, episode index), and checkpoints keep each env's unfinished episode (`o2o.envs.state`), so a resumed run
continues exactly as if uninterrupted. Envs whose episodes cannot be saved (OGBench's tasks) resume with a fresh episode
(the unfinished one's transitions stay in the buffer).

Offline data enters batches by `offline_sampling`:
- `none`: online buffer only (SAC, TD3, WSRL after its warm-up);
- `union`: uniform over offline + online transitions, as if the offline data sat in the replay buffer (IQL, AWAC, CQL,
  Cal-QL fine-tuning);
- `symmetric`: half of every batch offline, half online (RLPD).
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
from o2o.agents import Spec, canonical_name, get_algorithm
from o2o.algorithms import online_defaults
from o2o.data import replay
from o2o.data.dataset import episode_returns_to_go
from o2o.envs import env_spaces, make_env, state as env_state
from o2o.envs.actions import to_env_actions
from o2o.errors import O2OError
from o2o.train import handoff, offline, runs
from o2o.train.evaluation import batched_policy, evaluate, make_eval_envs, scores

SAMPLING = ("none", "union", "symmetric")
WARMUP_POLICIES = ("random", "pretrained")


@dataclasses.dataclass
class OnlineSettings:
    """Everything that defines an online run; saved as config.json so that a resume rebuilds it."""

    algo: str
    env: str | None = None
    steps: int = 100_000
    seeds: int = 1
    seed: int = 0
    utd: int = 1
    warmup_steps: int = 5_000
    warmup_policy: str = "random"
    eval_every: int = 10_000
    eval_episodes: int = 10
    log_every: int = 1_000
    keep_policy_snapshots: bool = False
    buffer_capacity: int | None = None
    offline_dataset: str | None = None
    offline_sampling: str = "none"
    init_from: str | None = None
    out: str | None = None
    agent_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)


def settings_for(algo: str, **given: Any) -> OnlineSettings:
    """OnlineSettings for `algo`: the user's values where given (not None), else the algorithm's paper defaults."""
    defaults = online_defaults(algo)
    return OnlineSettings(algo=algo, **{**defaults, **{k: v for k, v in given.items() if v is not None}})


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
    reward_scale: float
    metadata: dict
    start_score: float | None
    offline_data_settings: dict | None  # offline.OfflineSettings of the offline data in batches


def prepare(settings: OnlineSettings, recorded: dict | None = None) -> Prepared:
    """A new run's pieces; or, given its `recorded` config.json, an existing run's (for resume and evaluation), built
    from that file alone: the offline run it started from is not read again."""
    if settings.offline_sampling not in SAMPLING:
        raise O2OError(f"offline sampling {settings.offline_sampling!r}; choose one of {', '.join(SAMPLING)}")
    if settings.warmup_policy not in WARMUP_POLICIES:
        raise O2OError(f"warm-up policy {settings.warmup_policy!r}; choose one of {', '.join(WARMUP_POLICIES)}")
    base = None
    if recorded is not None:
        agent, config = get_algorithm(settings.algo, recorded["agent_config"])  # final values: nothing re-applied
        env_id, offline_settings = recorded["env_id"], recorded.get("offline_data")
    else:
        base, inherited = (handoff.offline_start(settings.init_from, settings.algo, settings.seeds, settings.seed)
                           if settings.init_from else (None, None))
        updates = max(0, settings.steps - settings.warmup_steps) * settings.utd if base else None
        agent, config = get_algorithm(settings.algo, settings.agent_overrides, inherited, online_updates=updates)
        env_id = settings.env or (base.env_id if base else None)
        if not env_id:
            raise O2OError("an online run needs --env ENV_ID (or a fine-tuned offline run that records one)")
        if base and base.env_id and env_id != base.env_id:
            raise O2OError(f"{settings.init_from}: trained on {base.env_id} but --env {env_id} was given; they must match")
        offline_settings = _offline_data_settings(settings, base, env_id)
    spaces = env_spaces(env_id)
    seeds = [settings.seed + i for i in range(settings.seeds)]
    low, high = spaces.action_low.astype(np.float64), spaces.action_high.astype(np.float64)

    offline_data, reward_scale, metadata, start_score = None, 1.0, {}, None
    if offline_settings is not None:
        offline_prepared = base or offline.prepare(offline.OfflineSettings(**offline_settings))
        # the online agent's fields (ReBRAC's next actions, Cal-QL's returns) from the offline agent's dataset
        offline_data = offline.device_data(dataclasses.replace(offline_prepared, agent=agent, config=config))
        reward_scale = float(offline_prepared.dataset.metadata.get("reward_scale", 1.0))
        metadata = offline_prepared.dataset.metadata
    if recorded is not None:
        reward_scale, metadata = float(recorded["reward_scale"]), recorded.get("dataset_metadata", metadata)
    if base is not None:
        reward_scale = float(base.dataset.metadata.get("reward_scale", 1.0))
        metadata = base.dataset.metadata
        states = handoff.carried_states(settings.init_from, base, settings.algo, agent, config)
        summary_file = Path(settings.init_from) / "summary.json"
        if summary_file.is_file():
            start_score = files.read_json(summary_file).get("normalized_score")
    else:  # a fresh agent (for an existing run: the shapes its checkpoint is read into)
        spec = Spec.unnormalized(spaces.observation_shape[0], spaces.action_shape[0])
        keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), 0) for s in seeds])
        states = jax.tree.map(jnp.copy, jax.vmap(lambda k: agent.init(k, spec, config))(keys))
    return Prepared(settings, agent, config, env_id, seeds, low, high, states, offline_data, reward_scale, metadata,
                    start_score, offline_settings)


def _offline_data_settings(settings: OnlineSettings, base: offline.Prepared | None, env_id: str) -> dict | None:
    """How the offline data mixed into batches is built (an offline run's settings), or None without any."""
    if settings.offline_sampling == "none":
        return None
    if base is not None:
        return {**dataclasses.asdict(base.settings), "eval_episodes": 0, "env": env_id, "out": None}
    if not settings.offline_dataset:
        raise O2OError(f"offline sampling {settings.offline_sampling!r} needs offline data: pass --dataset SOURCE")
    return dataclasses.asdict(offline.OfflineSettings(algo=settings.algo, dataset=settings.offline_dataset, env=env_id,
                                                      eval_episodes=0, agent_overrides=settings.agent_overrides))


def make_env_step(agent, batch_size: int, utd: int, sampling: str, learn: bool, random_actions: bool):
    """(state, buffer, transition, next_obs, seed_key, step, offline_data) -> (state, buffer, next_action, metrics),
    vmapped over seeds; the step's key is fold_in(seed_key, step). Buffer and state are donated (updated in place)."""

    def sample_batch(buffer, offline_data, key):
        if sampling == "none":
            return replay.sample(buffer, key, batch_size)
        n_offline = offline_data["rewards"].shape[0]
        if sampling == "symmetric":
            k1, k2 = jax.random.split(key)
            half = batch_size // 2
            online = replay.sample(buffer, k1, batch_size - half)
            index = jax.random.randint(k2, (half,), 0, n_offline)
            return {k: jnp.concatenate([offline_data[k][index], online[k]]) for k in online}
        index = jax.random.randint(key, (batch_size,), 0, n_offline + buffer.size)
        from_offline = index < n_offline
        off = {k: v[jnp.minimum(index, n_offline - 1)] for k, v in offline_data.items()}
        on = {k: v[jnp.clip(index - n_offline, 0, None)] for k, v in buffer.data.items()}
        return {k: jnp.where(from_offline.reshape((-1,) + (1,) * (off[k].ndim - 1)), off[k], on[k]) for k in on}

    def learn_and_act(state, buffer, next_obs, seed_key, step, offline_data):
        update_key, act_key = _step_keys(seed_key, step)
        metrics = {}
        if learn:
            sample_keys, update_keys = jnp.moveaxis(jax.vmap(jax.random.split)(jax.random.split(update_key, utd)), 1, 0)
            # all batches are gathered before the scan, so the buffer never enters the loop's state
            batches = jax.vmap(lambda k: sample_batch(buffer, offline_data, k))(sample_keys)
            state, metrics = jax.lax.scan(lambda state, xs: agent.update(state, *xs), state, (batches, update_keys))
            metrics = jax.tree.map(jnp.nanmean, metrics)
        return state, _next_action(agent, state, next_obs, act_key, random_actions), metrics

    # Two calls, not one: a buffer that is both written in place and read for batches in one XLA program gets copied
    # whole on every step (20 ms per env step at 1M Hopper transitions on CPU).
    insert = jax.jit(jax.vmap(replay.add), donate_argnums=(0,))
    learn_and_act = jax.jit(jax.vmap(learn_and_act, in_axes=(0, 0, 0, 0, None, None)), donate_argnums=(0,))

    def env_step(state, buffer, transition, next_obs, seed_key, step, offline_data):
        buffer = insert(buffer, transition)
        state, next_action, metrics = learn_and_act(state, buffer, next_obs, seed_key, step, offline_data)
        return state, buffer, next_action, metrics

    return env_step


def _step_keys(seed_key: jax.Array, step) -> tuple[jax.Array, jax.Array]:
    """(update key, action key) of env step `step` for one seed."""
    return tuple(jax.random.split(jax.random.fold_in(seed_key, step)))


def _next_action(agent, state, observation: jax.Array, key: jax.Array, random_actions: bool) -> jax.Array:
    """One seed's action in [-1, 1]: uniform during a random warm-up, else the agent's exploring policy."""
    if random_actions:
        return jax.random.uniform(key, (state.spec.action_dim,), minval=-1.0, maxval=1.0)
    return agent.act(state, observation[None], key, False)[0]


def _first_action(agent, states, obs, seed_keys, step: int, random_actions: bool):
    """The action at `step` before any env step of this process, drawn exactly as `make_env_step` draws it."""
    def one(state, o, seed_key):
        return _next_action(agent, state, o, _step_keys(seed_key, step)[1], random_actions)

    return jax.jit(jax.vmap(one))(states, obs, seed_keys)


def train(settings: OnlineSettings, progress: bool = True) -> dict[str, Any]:
    p = prepare(settings)
    run_dir = Path(settings.out) if settings.out else Path("runs") / f"{settings.algo}-online-{p.env_id}-{datetime.now():%Y%m%d-%H%M%S}"
    if (run_dir / "config.json").exists():
        raise O2OError(f"{run_dir}: already holds a run; use --resume {run_dir} to continue it or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    files.write_json(run_dir / "config.json", {
        "kind": "online", "settings": dataclasses.asdict(settings), "agent_config": dataclasses.asdict(p.config),
        "env_id": p.env_id, "seeds": p.seeds, "reward_scale": p.reward_scale, "offline_data": p.offline_data_settings,
        "dataset_metadata": p.metadata, "start_score": p.start_score, "versions": runs.versions()})
    start = {"states": p.states, "buffers": _empty_buffers(p), "step": 0, "episodes": np.zeros(len(p.seeds), np.int64),
             "best": -math.inf, "curve": []}
    return _run(p, run_dir, start, progress)


def resume(run_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    run_dir = Path(run_dir)
    config = files.read_json(run_dir / "config.json")
    if config.get("kind") != "online":
        raise O2OError(f"{run_dir}: not an online run directory (config.json kind = {config.get('kind')!r})")
    p = _prepare_recorded(config)
    checkpoint = runs.load_checkpoint(run_dir, {"states": p.states})
    return _run(p, run_dir, {**checkpoint, "buffers": replay.refill(_empty_buffers(p), checkpoint["buffers"])}, progress)


def _prepare_recorded(config: dict) -> Prepared:
    if "offline_data" not in config:  # an older run directory: rebuilt from the offline run it started from
        return prepare(OnlineSettings(**config["settings"]))
    return dataclasses.replace(prepare(OnlineSettings(**config["settings"]), config), start_score=config["start_score"])


def _empty_buffers(p: Prepared) -> replay.ReplayBuffer:
    """One replay buffer per seed (stacked), `buffer_capacity` transitions each (default: all online steps)."""
    obs_dim = env_spaces(p.env_id).observation_shape[0]
    capacity = p.settings.buffer_capacity or p.settings.steps
    fields = p.agent.transition_fields(p.config)
    return jax.vmap(lambda _: replay.create(capacity, obs_dim, len(p.action_low), fields))(jnp.arange(len(p.seeds)))


def _policy_part(states) -> dict:
    """What acting needs: the actor's parameters and the observation normaliser (per seed, stacked)."""
    return {"actor": states.actor.params, "normalizer": states.normalizer}


def _needs_returns_to_go(p: Prepared) -> bool:
    return "mc_returns" in p.agent.transition_fields(p.config)


class _OnlineReturnsToGo:
    """Cal-QL's Monte-Carlo bound for online data: when an episode ends, its discounted returns-to-go are written into
    the buffer slots of its transitions (until then they are -inf: no bound). The unfinished episodes go into
    checkpoints (`unfinished`, `resume`), so that an interrupted run writes the same bounds."""

    def __init__(self, p: Prepared, capacity: int, max_episode_steps: int | None):
        self.capacity, self.discount = capacity, p.config.discount
        self.sparse_failure_reward = p.config.sparse_failure_reward
        self.pad = min(capacity, max_episode_steps or 1000)
        self.slots: list[list[int]] = [[] for _ in p.seeds]
        self.rewards: list[list[float]] = [[] for _ in p.seeds]
        self.write = jax.jit(jax.vmap(replay.set_returns_to_go), donate_argnums=(0,))

    def record(self, buffers, step: int, rewards: np.ndarray, done: np.ndarray):
        """Note the transitions just inserted at `step`; write the returns of episodes that ended there."""
        for i in range(len(self.slots)):
            self.slots[i].append(step % self.capacity)
            self.rewards[i].append(float(rewards[i]))
        ended = [i for i in range(len(self.slots)) if done[i]]
        if not ended:
            return buffers
        values = {i: episode_returns_to_go(np.asarray(self.rewards[i]), self.discount, self.sparse_failure_reward)
                  for i in ended}
        longest = max(len(values[i]) for i in ended)
        for start in range(0, longest, self.pad):  # fixed-size writes: one compilation
            slots = np.full((len(self.slots), self.pad), self.capacity, np.int32)  # out of range: dropped
            chunk = np.zeros((len(self.slots), self.pad), np.float32)
            for i in ended:
                part = slice(start, min(start + self.pad, len(values[i])))
                slots[i, : part.stop - part.start] = self.slots[i][part]
                chunk[i, : part.stop - part.start] = values[i][part]
            buffers = self.write(buffers, slots, chunk)
        for i in ended:
            self.slots[i], self.rewards[i] = [], []
        return buffers

    def unfinished(self) -> dict:
        return {"slots": {str(i): np.asarray(x, np.int64) for i, x in enumerate(self.slots)},
                "rewards": {str(i): np.asarray(x, np.float64) for i, x in enumerate(self.rewards)}}

    def resume(self, saved: dict) -> None:
        self.slots = [np.asarray(saved["slots"][str(i)]).tolist() for i in range(len(self.slots))]
        self.rewards = [np.asarray(saved["rewards"][str(i)]).tolist() for i in range(len(self.rewards))]


def _episodes_in_progress(envs, observations: np.ndarray, actions: np.ndarray, returns: np.ndarray,
                          online_rtg: _OnlineReturnsToGo | None) -> dict | None:
    """What a resume needs to go on with every seed's unfinished episode: the envs' states, the observations and the
    actions already drawn for the next step; None if an env cannot be saved."""
    snapshots = [env_state.snapshot(env) for env in envs]
    if any(snapshot is None for snapshot in snapshots):
        return None
    return {"envs": {str(i): snapshot for i, snapshot in enumerate(snapshots)}, "observations": observations,
            "actions": actions, "returns": np.asarray(returns, np.float64),
            "returns_to_go": online_rtg.unfinished() if online_rtg is not None else {}}


def _episode_seed(seed: int, episode: int) -> int:
    return (seed * 1_000_003 + int(episode)) % (2**31)


def _run(p: Prepared, run_dir: Path, start: dict, progress: bool) -> dict[str, Any]:
    s = p.settings
    agent, n = p.agent, len(p.seeds)
    step, episodes, best = int(start["step"]), np.asarray(start["episodes"], np.int64).copy(), float(start["best"])
    start_step = step
    curve = [list(map(float, point)) for point in start["curve"]]
    states, buffers = start["states"], start["buffers"]
    seed_keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(seed), 2) for seed in p.seeds])
    offline_data = p.offline_data if p.offline_data is not None else {}
    policy = batched_policy(agent)
    eval_envs = make_eval_envs(p.env_id, n, s.eval_episodes) if s.eval_episodes > 0 else None
    envs = [make_env(p.env_id) for _ in p.seeds]
    log = runs.MetricsLog(run_dir, resume_from_step=step if step else None)
    step_fns: dict[tuple[bool, bool], Any] = {}

    def phase(t: int) -> tuple[bool, bool]:
        """(learn, random actions) at env step t."""
        warming = t < s.warmup_steps
        return (not warming, warming and s.warmup_policy == "random")

    def step_fn(t: int):
        key = phase(t)
        if key not in step_fns:
            step_fns[key] = make_env_step(agent, p.config.batch_size, s.utd, s.offline_sampling, *key)
        return step_fns[key]

    def run_eval(t: int) -> dict[str, Any]:
        returns = evaluate(lambda *inputs: policy(states, *inputs), eval_envs, p.seeds, s.eval_episodes, round_seed=1_000_003 * (t + 1))
        return {"step": t, "phase": "online", **scores(returns, p.env_id, p.metadata)}

    obs = np.stack([env.reset(seed=_episode_seed(seed, episodes[i]))[0] for i, (env, seed) in enumerate(zip(envs, p.seeds))]).astype(np.float32)
    online_rtg = (_OnlineReturnsToGo(p, int(buffers.data["rewards"].shape[-1]), envs[0].spec.max_episode_steps)
                  if _needs_returns_to_go(p) else None)
    saved = start.get("episodes_in_progress")
    resumed_episodes = saved is not None and all([env_state.restore(env, saved["envs"][str(i)]) for i, env in enumerate(envs)])
    if resumed_episodes:
        obs, actions = np.asarray(saved["observations"]), np.asarray(saved["actions"])
        episode_returns = np.asarray(saved["returns"], np.float64).copy()
        if online_rtg is not None:
            online_rtg.resume(saved["returns_to_go"])
    else:  # a new run, or one whose unfinished episodes could not be kept: each seed starts a new episode
        if saved is not None:
            obs = np.stack([env.reset(seed=_episode_seed(seed, episodes[i]))[0]
                            for i, (env, seed) in enumerate(zip(envs, p.seeds))]).astype(np.float32)
        actions = np.asarray(_first_action(agent, states, obs, seed_keys, step, phase(step)[1]))
        episode_returns = np.zeros(n)
    finished: list[float] = [float(x) for x in start.get("finished", [])]  # training episode returns
    successes: list[float] = [float(x) for x in start.get("successes", [])]
    earlier_seconds = float(start.get("wall_seconds", 0.0))  # spent by the processes this run resumed from
    update_seconds = env_seconds = eval_seconds = compile_seconds = warmup_seconds = checkpoint_seconds = 0.0
    wall_start = time.perf_counter()
    runs.divergence({}, states)  # compiles the check that every log record runs, so that it counts as compilation
    compile_seconds += time.perf_counter() - wall_start
    last_eval: dict | None = None
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
                    o, _ = env.reset(seed=_episode_seed(p.seeds[i], episodes[i]))
                next_obs[i] = o
            env_seconds += time.perf_counter() - t0
            transition = {"observations": obs, "actions": actions, "rewards": rewards * np.float32(p.reward_scale),
                          "next_observations": final_obs, "dones": terminated}
            t1 = time.perf_counter()
            compiling = phase(step) not in step_fns
            states, buffers, new_actions, step_metrics = step_fn(step)(states, buffers, transition, next_obs, seed_keys,
                                                                       step + 1, offline_data)
            actions = np.asarray(new_actions)  # waits for the updates
            if compiling:
                compile_seconds += time.perf_counter() - t1
            elif phase(step)[0]:
                update_seconds += time.perf_counter() - t1
            else:
                warmup_seconds += time.perf_counter() - t1
            if online_rtg is not None:
                buffers = online_rtg.record(buffers, step, transition["rewards"], done)
            obs, step = next_obs, step + 1
            if step_metrics:
                metrics = step_metrics
            if step % s.log_every == 0 or step % s.eval_every == 0 or step == s.steps:
                record = {"step": step, "phase": "online", "wall_seconds": earlier_seconds + time.perf_counter() - wall_start}
                host_metrics = jax.device_get(metrics)
                diverged = runs.divergence(host_metrics, states)
                if diverged:
                    raise O2OError(f"{run_dir}: {diverged} by env step {step}; stopped; the last good checkpoint is "
                                   f"{run_dir / runs.CHECKPOINT}")
                # with finite parameters a NaN metric is undefined at this step (TD3's actor loss between its updates)
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
                                                   "episodes_in_progress": _episodes_in_progress(envs, obs, actions, episode_returns, online_rtg)})
                    checkpoint_seconds += time.perf_counter() - t3
            bar.advance(1, step / max(time.perf_counter() - wall_start, 1e-9), last_eval)
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
    files.write_json(run_dir / "summary.json", summary)
    return summary


def finetune(run_dir: str | Path, online_steps: int, algo: str | None = None, out: str | None = None,
             progress: bool = True, **given: Any) -> dict[str, Any]:
    """Fine-tune an offline run online: same seeds, same env, the algorithm's paper mechanism (its registry record's `online`)."""
    run_dir = Path(run_dir)
    config = files.read_json(run_dir / "config.json") if (run_dir / "config.json").is_file() else {}
    if config.get("kind") != "offline":
        raise O2OError(f"{run_dir}: not an offline run directory (no config.json of kind 'offline')")
    algo = algo or config["settings"]["algo"]
    settings = settings_for(algo, env=config["env_id"], steps=online_steps, seeds=len(config["seeds"]),
                            seed=config["seeds"][0], init_from=str(run_dir),
                            out=out or str(run_dir.parent / f"{run_dir.name}-finetune-{canonical_name(algo)}"), **given)
    return train(settings, progress=progress)


def evaluate_run(run_dir: str | Path, episodes: int, best: bool = False) -> dict[str, Any]:
    """Evaluate any run directory's latest checkpoint (offline runs: or their best)."""
    run_dir = Path(run_dir)
    config = files.read_json(run_dir / "config.json")
    if config.get("kind") == "offline":
        return offline.evaluate_run(run_dir, episodes, best)
    if best:
        raise O2OError(f"{run_dir}: an online run keeps only its latest checkpoint; drop --best")
    p = _prepare_recorded({**config, "offline_data": None} if "offline_data" in config else config)
    checkpoint = runs.load_checkpoint(run_dir, {"states": p.states})
    return {"run_dir": str(run_dir), "algo": p.settings.algo, "dataset": p.settings.offline_dataset or p.settings.init_from,
            "env": p.env_id, "steps": int(checkpoint["step"]), "seeds": len(p.seeds), "seed_values": p.seeds,
            "episodes": episodes,
            **offline.evaluate_checkpoint(p.agent, checkpoint["states"], p.env_id, p.seeds, episodes, p.metadata)}


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
