"""Learning parity, the reference's side: train a reference implementation on an o2o dataset (saved as .npz by
`o2o data convert DATASET FILE.npz --format npz`) for a given number of updates, evaluate it every `--eval-every`
updates in the gymnasium env, and write its per-seed curve in `o2o results import`'s CSV format.

    python benchmarks/parity/learn.py ALGO --reference WORK_TREE --dataset FILE.npz --env Hopper-v5 --steps 20000 \
        --eval-every 5000 --eval-episodes 10 --seeds 0 1 2 --score-range RANDOM EXPERT --out FILE.csv

Runs in the reference's environment (no o2o import; gymnasium and MuJoCo installed there at o2o's versions). Each
adapter builds the reference's agent with the paper's settings exactly as the reference's own training script does,
feeds it the dataset through the reference's own data code where that code does not need d4rl (d4rl's loader is
replaced by the .npz), and calls its own update once per step, or, where the reference's loop runs its updates in
jitted chunks (ReBRAC's epochs), once per chunk (the adapter returns the chunk's size and its metrics, written to
OUT's .metrics.jsonl; an adapter whose update returns its metrics, as Cal-QL's, has their mean over every
`--metrics-every` updates written there). Evaluation is o2o's protocol: deterministic actions,
`--eval-episodes` episodes to termination or the env's time limit, episode e of seed s after `step` updates reset
with o2o's seed 1_000_003 * (step + 1) + 10_007 * s + e (new initial states at every evaluation, as o2o's; before
2026-12-07 this script reset with 10_000 * (s + 1) + e, the same states every time: `--fixed-reset-seeds`), the mean
return normalized as 100 * (return - RANDOM) / (EXPERT - RANDOM) (o2o's reference returns, passed in by
benchmarks/parity/learning.sh).

OGBench single-task (`--env` an OGBench task env such as cube-single-singletask-task2-v0; `--dataset` the OGBench-layout
file DIR/cube-single-play-v0.npz, with DIR/cube-single-play-v0-val.npz beside it, as `o2o collect` writes them): the
adapter reads the file itself through the reference's / OGBench's loader (no D4RL keys are read here), and the score is
o2o's for OGBench single-task (`o2o.train.evaluation`): the success rate in % (mean over `--eval-episodes` episodes of
`info["success"]` at the episode's last step), each episode in a fresh `gymnasium.make(ENV)` (OGBench's registration:
200 steps, terminating at the goal), reset with o2o's seeds (1_000_003 * (step + 1) + 10_007 * seed + episode), the
policy's draws keyed by fold_in(PRNGKey(reset seed), t) as o2o's `batched_policy`; `--score-range` is not used.

Online methods (`rlpd`): a step is an environment step of the reference's online loop (act, env step, insert, then
`--utd` critic updates and its actor and temperature update on batches half offline, half online, after
`--start-training` random steps); `--steps` and `--eval-every` count environment steps and the curve also holds step 0
(the untrained agent, as o2o's online runs do).
"""

from __future__ import annotations

import argparse
import copy
import csv
import functools
import importlib
import json
import os
import sys
import time
import types
from pathlib import Path

# One thread for the reference's math (XLA's and PyTorch's pools): on a shared machine a spinning pool of 2 threads
# ran TD3_BC's update at 2.4 updates/s; o2o's side of a comparison is timed separately and never against this one.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np


def load(path: Path) -> dict[str, np.ndarray]:
    """The D4RL keys of an o2o .npz (float32 arrays; terminals and timeouts as 0/1)."""
    with np.load(path) as data:
        return {key: data[key] for key in ("observations", "actions", "rewards", "next_observations", "terminals",
                                           "timeouts")}


def td3bc(reference: Path, data: dict, seed: int, config: dict):
    """The authors' TD3_BC (sfujim/TD3_BC, PyTorch): main.py's settings, its ReplayBuffer.convert_D4RL and
    normalize_states, one `policy.train(replay_buffer, 256)` per update."""
    import torch
    torch.set_num_threads(1)
    sys.path.insert(0, str(reference))
    import TD3_BC
    import utils
    torch.manual_seed(seed)
    np.random.seed(seed)  # its ReplayBuffer.sample draws from NumPy's global stream
    dims = data["observations"].shape[1], data["actions"].shape[1]
    policy = TD3_BC.TD3_BC(state_dim=dims[0], action_dim=dims[1], max_action=1.0, discount=0.99, tau=0.005,
                           policy_noise=0.2, noise_clip=0.5, policy_freq=2, alpha=2.5)
    buffer = utils.ReplayBuffer(*dims)
    buffer.convert_D4RL({k: data[k].astype(np.float64) for k in ("observations", "actions", "next_observations",
                                                                 "rewards", "terminals")})
    mean, std = buffer.normalize_states()
    return (lambda: policy.train(buffer, 256)), (lambda obs: policy.select_action((obs.reshape(1, -1) - mean) / std))


def iql(reference: Path, data: dict, seed: int, config: dict):
    """The authors' IQL (ikostrikov/implicit_q_learning, JAX; its environment: benchmarks/parity/iql.py): the MuJoCo
    config, its D4RLDataset on the data (actions clipped to 1 - 1e-5, episode ends from the data), rewards scaled by
    1000 / (best - worst episode return) as train_offline.py's `normalize`, the actor's cosine decay over 1M updates
    (the paper's budget, so a shorter run sees the schedule the paper's run saw), one `Learner.update` per update."""
    dataset, reference_learner = _iql_code(reference, data, seed, "learner")
    agent = reference_learner.Learner(seed, dataset.observations[:1], dataset.actions[:1], actor_lr=3e-4, value_lr=3e-4,
                                      critic_lr=3e-4, hidden_dims=(256, 256), discount=0.99, expectile=0.7,
                                      temperature=3.0, dropout_rate=None, tau=0.005, max_steps=1_000_000,
                                      opt_decay_schedule="cosine")
    return (lambda: agent.update(dataset.sample(256))), (lambda obs: agent.sample_actions(obs, temperature=0.0))


def famo2o(reference: Path, data: dict, seed: int, config: dict):
    """The authors' FamO2O (LeapLabTHU/FamO2O, jax_iql/, on the IQL authors' code; refs .venv-iql), offline, as
    `iql` runs IQL: its D4RLDataset and reward scale (family_train_finetune.py scales every batch by the same
    1000 / return range), its `FamilyLearner` with IQL's MuJoCo settings (expectile 0.7, as o2o's famo2o: the
    authors give no locomotion config), its learner's default coefficients [1, 5], embedding 6 / 10000, balance
    temperature 1 and target entropy -0.5, a constant actor learning rate (`opt_decay_schedule=None`, its config),
    one `update(batch, random_hierarchical_coefficients=True)` (its offline phase) per update; acting: its
    `sample_actions` at temperature 0 (the balance model's deterministic coefficient, the universal actor's mean)."""
    dataset, family_learner = _iql_code(reference / "jax_iql", data, seed, "family_learner")
    agent = family_learner.FamilyLearner(
        seed, dataset.observations[:1], dataset.actions[:1], actor_lr=3e-4, value_lr=3e-4, critic_lr=3e-4,
        hidden_dims=(256, 256), discount=0.99, tau=0.005, expectile=0.7, dropout_rate=None, max_steps=None,
        opt_decay_schedule=None, family_coefficient_range=(1.0, 5.0))
    return ((lambda: agent.update(dataset.sample(256), random_hierarchical_coefficients=True)),
            (lambda obs: agent.sample_actions(obs, temperature=0.0)))


def _iql_code(reference: Path, data: dict, seed: int, learner_module: str):
    """The IQL authors' D4RLDataset (theirs or FamO2O's copy in `reference`) on the data, rewards scaled by 1000 /
    (best - worst episode return), NumPy's global stream seeded (their Dataset.sample draws from it); and the module
    `learner_module`, imported with iql.py's compatibility shims."""
    import flax
    import jax
    sys.path.insert(0, str(reference))
    sys.path.insert(0, str(Path(__file__).parent))
    from iql import compatibility
    # dataset_utils imports d4rl and gym for its loader only: the loader reads the .npz instead
    sys.modules["d4rl"] = types.SimpleNamespace(qlearning_dataset=lambda env: {k: v.copy() for k, v in data.items()})
    sys.modules["gym"] = types.SimpleNamespace(Env=object, spaces=types.SimpleNamespace(Box=object))
    with compatibility(jax, flax):
        import dataset_utils
        module = importlib.import_module(learner_module)
    dataset = dataset_utils.D4RLDataset(env=None)
    episodes = np.split(dataset.rewards, np.flatnonzero(dataset.dones_float) + 1)
    returns = [float(e.sum()) for e in episodes if len(e)]
    dataset.rewards = dataset.rewards / (max(returns) - min(returns)) * 1000.0
    np.random.seed(seed)
    return dataset, module


def rebrac(reference: Path, data: dict, seed: int, config: dict):
    """The authors' ReBRAC (tinkoff-ai/ReBRAC, JAX): its own `main()` builds everything (its Config from the dataset's
    configs/rebrac/ENV/ENV_LEVEL.yaml, its ReplayBuffer filled by its `create_from_d4rl` and `qlearning_dataset` from a
    D4RL-style dict of the .npz, the actor, critic and Adam states, its `td3_loop_update_step` with the
    `delayed_updates` schedule), then stops at its epoch loop (`trange`, replaced, hands over main()'s locals and
    yields no epoch); each call runs one epoch as that loop does: fresh Metrics, `jax.lax.fori_loop` over
    `td3_loop_update_step`, `Metrics.compute()`. An epoch is gcd(eval_every, its 1000 updates) updates (even: the
    actor steps on updates 1, 3, 5, ... throughout, as in its 1000-update epochs). Acting: its jitted
    `actor_action_fn` on the observation through `wrap_env`'s (s - buffer.mean) / buffer.std (0 and 1:
    normalize_states is false for locomotion). Stubbed, for its training script's imports only: wandb, pyrallis,
    distrax, h5py, d4rl, dm_control's vd4rl_utils, gym (`make` returns the .npz as a D4RL env for the loader and a
    placeholder for the eval env main() builds and this run does not use); `jax.tree_map` (removed in jax 0.6, its
    sample_batch calls it) is `jax.tree_util.tree_map`."""
    import math

    import jax
    import yaml
    sys.path.insert(0, str(reference))
    sys.path.insert(0, str(Path(__file__).parent))
    from fixture import stub_training_imports
    stub_training_imports("wandb", "pyrallis", "distrax", "h5py", "d4rl", "gym", "src.utils.vd4rl_utils")
    sys.modules["wandb"].init = sys.modules["wandb"].mark_preempting = sys.modules["wandb"].log = lambda *a, **k: None
    raw = {k: data[k] for k in ("observations", "actions", "rewards", "terminals", "timeouts")}
    space = types.SimpleNamespace(seed=lambda seed: None)
    env = types.SimpleNamespace(get_dataset=lambda **kwargs: raw, seed=lambda seed: None, action_space=space,
                                observation_space=space)
    sys.modules["gym"].make = lambda name: env
    sys.modules["gym"].wrappers = types.SimpleNamespace(TransformObservation=lambda env, function: env)
    if not hasattr(jax, "tree_map"):
        jax.tree_map = jax.tree_util.tree_map
    from src.algorithms import rebrac as reference_rebrac
    from src.utils.common import Metrics

    env_name, level = config["dataset"].split("-", 1)
    path = reference / "configs" / "rebrac" / env_name / f"{env_name}_{level.replace('-', '_')}.yaml"
    settings = yaml.safe_load(path.read_text())
    chunk = math.gcd(config["eval_every"], settings["num_updates_on_epoch"])
    assert chunk % settings["policy_freq"] == 0, f"epochs of {chunk} updates would change its actor schedule"
    settings.update(train_seed=seed, num_updates_on_epoch=chunk, num_epochs=config["steps"] // chunk)
    main_locals = {}

    def handover(*args, **kwargs):  # main()'s `for epoch in trange(config.num_epochs, ...)`
        main_locals.update(sys._getframe(1).f_locals)
        return iter(())

    reference_rebrac.trange = handover
    reference_rebrac.main(reference_rebrac.Config(**settings))
    state = {"carry": main_locals["update_carry"]}
    buffer, action_fn = main_locals["buffer"], main_locals["actor_action_fn"]

    def epoch():
        carry = state["carry"]
        carry["metrics"] = Metrics.create(main_locals["bc_metrics_to_log"])
        carry = jax.lax.fori_loop(lower=0, upper=chunk, body_fun=main_locals["td3_loop_update_step"], init_val=carry)
        state["carry"] = carry
        return {k: float(np.asarray(v).reshape(-1)[0]) for k, v in carry["metrics"].compute().items()}

    def act(obs):
        return action_fn(state["carry"]["actor"].params, (obs - buffer.mean) / buffer.std)

    print(f"rebrac: {path.name}, {buffer.size} transitions, mean reward {float(buffer.data['rewards'].mean()):.4f}, "
          f"epochs of {chunk} updates", flush=True)
    return epoch, act, chunk


# EDAC paper (An et al., 2021), Table 5, run as its README says: `python -m scripts.sac --env_name ENV --num_qs N
# --eta ETA`, every other setting the script's defaults (CORL's edac configs hold the same N and eta)
EDAC_PAPER = {"halfcheetah-medium": (10, 1.0), "halfcheetah-medium-replay": (10, 1.0),
              "halfcheetah-medium-expert": (10, 5.0), "hopper-medium": (50, 1.0), "hopper-medium-replay": (50, 1.0),
              "hopper-medium-expert": (50, 1.0), "walker2d-medium": (10, 1.0), "walker2d-medium-replay": (10, 1.0),
              "walker2d-medium-expert": (10, 5.0)}


def d4rl_qlearning_dataset(data: dict) -> dict[str, np.ndarray]:
    """D4RL 1.1's `qlearning_dataset(env)` (rail-berkeley/d4rl, d4rl/__init__.py: the d4rl EDAC's README installs) on
    the .npz's D4RL keys, vectorized: with a `timeouts` key every transition i < N - 1 with timeouts[i] = 0 is kept (a
    timeout's transition is skipped, as is the file's last one), its next state is observations[i + 1] (the file's
    next_observations are not read), float32 arrays, terminals as bool."""
    assert "timeouts" in data, "without timeouts D4RL counts steps against env._max_episode_steps"
    keep = np.flatnonzero(~data["timeouts"][:-1].astype(bool))
    return {"observations": data["observations"][keep].astype(np.float32),
            "actions": data["actions"][keep].astype(np.float32),
            "next_observations": data["observations"][keep + 1].astype(np.float32),
            "rewards": data["rewards"][keep].astype(np.float32),
            "terminals": data["terminals"][keep].astype(bool)}


def edac(reference: Path, data: dict, seed: int, config: dict):
    """The authors' EDAC (snu-mllab/EDAC, PyTorch, lifelong_rl): its own training entry point, `python -m scripts.sac
    --env_name ENV-LEVEL-v2 --seed SEED --num_qs N --eta ETA` with the paper's N and eta for the dataset (`EDAC_PAPER`;
    halfcheetah-medium-replay: 10 and 1), run by `runpy` in a scratch directory (its logger writes results/... there).
    Its `experiment()` builds everything as in the paper's runs: the seeds (torch, NumPy, random), the
    MujocoReplayBuffer (2M) filled by `load_hdf5` from `d4rl.qlearning_dataset` (rewards as they are: --reward_mean and
    --reward_std off), sac_config.get_config's 3 x 256 TanhGaussianPolicy, two ParallelizedEnsembleFlattenMLP (critics,
    targets) and SACTrainer, and the TorchOfflineRLAlgorithm (batch 256, 1000 updates an epoch); then its `train()`
    hands the algorithm over instead of looping. Each call runs the loop body of `OfflineRLAlgorithm._train`
    gcd(eval_every, 1000) times, in its training mode: `replay_buffer.random_batch(256)` (NumPy's global stream) and
    `trainer.train(batch, indices)` (np_to_pytorch_batch, `train_from_torch`: alpha, policy, critics with the eta term,
    targets), then the trainer's statistics and `trainer.end_epoch`. Acting: the `evaluation_policy` get_config builds,
    MakeDeterministic(policy).get_action: tanh of the mean. Its update runs unchanged: neither documented deviation from
    o2o (update order, the 1e-6 in log pi) is aligned here, nor two differences of its initialisation the update-parity
    fixture (o2o's parameters copied in) does not see: its target critics are a second, independent random ensemble
    (get_config's `group_init(2, ...)`, never copied from the critics; o2o's start as a copy), and its policy's hidden
    weights are U(+-1/sqrt(256)) in every layer (rlkit's `fanin_init` reads nn.Linear's weight as (out, in): fan_in =
    256; o2o's first layer U(+-1/sqrt(obs_dim))). The statistics a call returns are those of its first update (the
    reference logs its epochs' first, every 1000 updates).
    Replaced or stubbed, for its training script only:
    - d4rl (needs mujoco-py): `qlearning_dataset` is D4RL 1.1's on the .npz (`d4rl_qlearning_dataset`);
    - gym (0.x): `make` returns a stand-in for the D4RL env: config["env"]'s (main() passes --env) spaces and MuJoCo
      data from gymnasium (MujocoReplayBuffer sizes two arrays it never fills from sim.data.body_xpos and qpos),
      `get_dataset` the .npz; `gym.spaces` is gymnasium.spaces (load_hdf5 rebuilds the observation Box),
      `logger.set_level` a no-op;
    - logging, plotting, timing, rendering: dateutil (tzlocal None: naive log timestamps), tensorboardX, matplotlib,
      gtimer (reset, start, stamp: no-ops), cv2 (visualize_mujoco's import);
    - `ptu.set_gpu_mode`: always CPU (the script passes use_gpu=True whatever its --use_cpu says);
    - its per-epoch evaluation rollouts (d4rl env, before each epoch's updates) and its logging and snapshots are not
      run: evaluation is o2o's protocol (learn.py's `evaluate`)."""
    import math
    import runpy
    import tempfile

    import gymnasium
    import torch
    torch.set_num_threads(1)
    sys.path.insert(0, str(reference))
    sys.path.insert(0, str(Path(__file__).parent))
    from fixture import stub_training_imports
    stub_training_imports("dateutil", "dateutil.tz", "tensorboardX", "matplotlib", "matplotlib.pyplot", "gtimer", "cv2",
                          "d4rl", "gym")
    sys.modules["dateutil"].tz = sys.modules["dateutil.tz"]
    sys.modules["dateutil.tz"].tzlocal = lambda: None
    for name in ("reset", "start", "stamp"):
        setattr(sys.modules["gtimer"], name, lambda *args, **kwargs: None)
    real = gymnasium.make(config["env"])
    env = types.SimpleNamespace(
        observation_space=real.observation_space, action_space=real.action_space, get_dataset=lambda **kwargs: data,
        sim=types.SimpleNamespace(data=types.SimpleNamespace(body_xpos=real.unwrapped.data.xpos,
                                                             qpos=real.unwrapped.data.qpos)))
    real.close()
    assert env.observation_space.shape[0] == data["observations"].shape[1], (env.observation_space, config["env"])
    gym = sys.modules["gym"]
    gym.make, gym.spaces = (lambda name: env), gymnasium.spaces
    gym.logger = types.SimpleNamespace(set_level=lambda level: None)
    sys.modules["gym.spaces"] = gymnasium.spaces

    def qlearning_dataset(env, dataset=None, terminate_on_end=False, **kwargs):
        assert dataset is None and not terminate_on_end and not kwargs
        return d4rl_qlearning_dataset(env.get_dataset())

    sys.modules["d4rl"].qlearning_dataset = qlearning_dataset
    import lifelong_rl.torch.pytorch_util as ptu
    from lifelong_rl.core.rl_algorithms.offline import offline_rl_algorithm
    if not getattr(ptu.set_gpu_mode, "cpu_only", False):
        set_gpu_mode = ptu.set_gpu_mode
        ptu.set_gpu_mode = lambda mode, gpu_id=0: set_gpu_mode(False, gpu_id)
        ptu.set_gpu_mode.cpu_only = True
    handed = {}
    # experiment()'s last call, `offline_algorithm.train()`, hands the algorithm over
    offline_rl_algorithm.OfflineRLAlgorithm.train = lambda self, start_epoch=0: handed.update(algorithm=self)

    env_name, level = config["dataset"].lower().split("-v", 1)[0], config["dataset"].lower().split("-", 2)[-1]
    key = f"{env_name}-{level}"
    assert key in EDAC_PAPER, f"{config['dataset']}: no EDAC paper setting for {key} (EDAC_PAPER)"
    num_qs, eta = EDAC_PAPER[key]
    argv = ["scripts.sac", "--env_name", f"{key}-v2", "--seed", str(seed), "--num_qs", str(num_qs), "--eta", str(eta)]
    cwd, saved_argv = os.getcwd(), sys.argv
    try:
        os.chdir(tempfile.mkdtemp(prefix="edac-logs-"))
        sys.argv = argv
        runpy.run_module("scripts.sac", run_name="__main__", alter_sys=True)
    finally:
        os.chdir(cwd)
        sys.argv = saved_argv
    algorithm = handed["algorithm"]
    trainer, buffer = algorithm.trainer, algorithm.replay_buffer
    chunk = math.gcd(config["eval_every"], algorithm.num_trains_per_train_loop)
    epochs = iter(range(10**9))

    def train():  # OfflineRLAlgorithm._train's loop body, `chunk` times
        algorithm.training_mode(True)
        for _ in range(chunk):
            train_data, indices = buffer.random_batch(algorithm.batch_size, return_indices=True)
            trainer.train(train_data, indices)
        algorithm.training_mode(False)
        metrics = {k: float(v) for k, v in trainer.get_diagnostics().items()}
        trainer.end_epoch(next(epochs))
        return metrics

    policy = algorithm.eval_policy  # MakeDeterministic(policy)
    print(f"edac: {' '.join(argv)}; {buffer._size} transitions, mean reward {float(buffer._rewards.mean()):.4f}, "
          f"{int(buffer._terminals.sum())} terminals, N {trainer.num_qs}, eta {trainer.eta}, batch "
          f"{algorithm.batch_size}, chunks of {chunk} updates", flush=True)
    return train, (lambda obs: policy.get_action(obs)[0]), chunk


def ogbench_task_name(dataset: Path, env_id: str) -> str:
    """The name OGBench's loader (and the reference's main.py) takes for a dataset + task: DIR/cube-single-play-v0.npz
    and cube-single-singletask-task2-v0 -> cube-single-play-singletask-task2-v0."""
    family, suffix = env_id.split("-singletask", 1)
    stem = dataset.name[: -len(".npz")]
    assert stem.startswith(family + "-") and stem.endswith("-v0"), (stem, env_id)
    return f"{stem[:-len('-v0')]}-singletask{suffix}"


def unit_actions(data: dict, env_id: str) -> tuple[dict, np.ndarray]:
    """The data with its actions divided by the env's bound (Pendulum's torque of 2 becomes 1; a no-op for MuJoCo's
    [-1, 1] boxes), as o2o's agents see them; the bound, by which the adapter's `act` multiplies its actions back.
    The references assume actions in [-1, 1] (tanh policies, their clip to 1 - 1e-5)."""
    import gymnasium as gym
    high = gym.make(env_id).action_space.high.astype(np.float32)
    return {**data, "actions": (data["actions"] / high).astype(np.float32)}, high


def reference_settings(defaults, given: list[str]) -> None:
    """`--reference-set KEY=VALUE` items into a reference's config (an ml_collections ConfigDict), each parsed as its
    default's type (a tuple of ints from "64,64", a bool from true/false); a key the config lacks is an error."""
    for item in given:
        key, text = item.split("=", 1)
        assert key in defaults, f"{key}: not a setting of the reference's config ({sorted(defaults)})"
        default = defaults[key]
        if isinstance(default, bool):
            assert text.lower() in ("true", "false"), item
            defaults[key] = text.lower() == "true"
        elif isinstance(default, tuple):
            defaults[key] = tuple(type(default[0])(width) for width in text.split(","))
        else:
            defaults[key] = type(default)(text)


def fql_npz(reference: Path, data: dict, seed: int, config: dict):
    """The authors' FQL on a D4RL-layout .npz, as its main.py runs a D4RL MuJoCo task offline: the data through its
    own `envs/d4rl_utils.get_dataset` (d4rl's `qlearning_dataset` replaced by `d4rl_qlearning_dataset` on the .npz,
    actions first scaled to [-1, 1] by the env's bound: `unit_actions`; a timeout's transition dropped, masks 1 -
    terminals, episode ends where the next state jumps) and its `make_env_and_datasets`' clip of the actions to
    1 - 1e-5; `random.seed` / `np.random.seed(seed)`, `train_dataset.sample(1)` as its example batch,
    `FQLAgent.create(seed, ...)` with agents/fql.py's get_config() and `--reference-set` (its own keys:
    actor_hidden_dims=64,64 value_hidden_dims=64,64 discount=0.95 alpha=0.1 normalize_q_loss=true ...); then per
    update its offline body, `agent.update(train_dataset.sample(batch_size))`. Acting as its evaluate(): the one-step
    policy's `sample_actions(obs, seed=key)` (keys split from PRNGKey(seed)), clipped to [-1, 1], times the bound.
    ogbench, which env_utils imports at its top, is not used on this path."""
    import random

    import jax
    sys.path.insert(0, str(reference))
    sys.path.insert(0, str(Path(__file__).parent))
    from fixture import stub_training_imports
    stub_training_imports("distrax", "d4rl")
    if config.get("two_pass_layer_norm"):  # the diagnostic: flax's LayerNorm variance as E[(x - E[x])^2] (o2o's)
        import flax.linen
        flax.linen.LayerNorm = functools.partial(flax.linen.LayerNorm, use_fast_variance=False)
    scaled, high = unit_actions(data, config["env"])
    sys.modules["d4rl"].qlearning_dataset = lambda env: d4rl_qlearning_dataset(scaled)
    from agents.fql import FQLAgent, get_config
    from envs import d4rl_utils
    if config.get("target_after_step"):  # the diagnostic: the target's Polyak step towards the stepped critic (o2o's)
        original_target_update = FQLAgent.target_update
        FQLAgent.target_update = lambda self, network, name: original_target_update(
            self.replace(network=network), network, name)
    dataset = d4rl_utils.get_dataset(None, config["dataset"])
    dataset = dataset.copy(add_or_replace=dict(actions=np.clip(dataset["actions"], -1 + 1e-5, 1 - 1e-5)))
    settings = get_config()
    reference_settings(settings, config["reference_set"])
    random.seed(seed)
    np.random.seed(seed)
    example = dataset.sample(1)
    state = {"agent": FQLAgent.create(seed, example["observations"], example["actions"], settings),
             "rng": jax.random.PRNGKey(seed)}

    def update():
        state["agent"], info = state["agent"].update(dataset.sample(settings["batch_size"]))
        return info

    def act(obs):
        state["rng"], key = jax.random.split(state["rng"])
        return np.clip(np.asarray(state["agent"].sample_actions(observations=obs, seed=key)), -1, 1) * high

    print(f"fql: {dataset.size} transitions, {int(dataset['terminals'].sum())} episode ends, "
          f"{int((1 - dataset['masks']).sum())} terminal, settings {dict(settings)}", flush=True)
    return update, act


def fql(reference: Path, data: dict | None, seed: int, config: dict):
    """The authors' FQL (seohongpark/fql, JAX; its update parity: benchmarks/parity/fql.py): its own `main()` (main.py)
    builds everything from its flags, as the README's command for this task does (`python main.py
    --env_name=cube-single-play-singletask-task2-v0 --agent.alpha=300 --seed=SEED`, plus --agent=its agents/fql.py by
    absolute path, --save_dir=a temporary folder, --offline_steps=STEPS; every other flag and agent setting its
    default: agents/fql.py's get_config, 4 x 512 MLPs, LayerNorm critics, lr 3e-4, batch 256, discount 0.99, tau
    0.005, q_agg mean, 10 flow steps, normalize_q_loss off): envs/env_utils.py's make_env_and_datasets calls
    `ogbench.make_env_and_datasets(env_name)` (the train and -val splits read by OGBench's `load_dataset`, rewards and
    masks by its `relabel_dataset` for the task, actions clipped to 1 - 1e-5), its Dataset / ReplayBuffer
    (`create_from_initial_dataset`, buffer of 2M), `random.seed` / `np.random.seed(seed)`, `FQLAgent.create(seed, ...)`;
    then it stops at its training loop (`tqdm.tqdm`, replaced, hands over main()'s locals and yields no step). Each call
    runs that loop's offline body: `batch = train_dataset.sample(config['batch_size'])`, `agent.update(batch)`.
    Replaced or stubbed, and why:
    - `ogbench.make_env_and_datasets` as env_utils sees it: the package's own function with `dataset_dir` = the .npz's
      folder (the reference passes none, so OGBench would download its published data to ~/.ogbench/data);
    - wandb (not installed; main() calls setup_wandb, wandb.run.project and logs): init / Settings / log are no-ops,
      run.project "fql"; distrax (utils/networks.py imports it for the Gaussian actors FQL does not use; it does not
      import with jax 0.10): a placeholder module; main()'s flags.json and CSV logs go to a temporary --save_dir;
    - the loop's logging (every 5,000 updates: a validation batch's loss, which draws from NumPy's global stream) and
      its evaluation (at update 1 and every 100,000: 50 episodes, keyed from NumPy's global stream) are not run:
      evaluation is learn.py's (o2o's protocol, see `evaluate_ogbench`), with its own keys. So the dataset's sampling
      stream after update 1 is NumPy's global stream seeded by main(), without the draws those two would take.
    Acting: `agent.sample_actions(observations=obs, seed=key)` (what its evaluate() calls through supply_rng; its
    `temperature` is unused: the one-step policy always draws its noise), clipped to [-1, 1] as its evaluate() does.
    A D4RL-layout .npz (`data` given): `fql_npz`."""
    if data is not None:
        return fql_npz(reference, data, seed, config)
    import functools
    import tempfile

    sys.path.insert(0, str(reference))
    sys.path.insert(0, str(Path(__file__).parent))
    from fixture import stub_training_imports
    stub_training_imports("wandb", "distrax")
    wandb = sys.modules["wandb"]
    wandb.run = types.SimpleNamespace(project="fql")
    wandb.init = lambda **kwargs: wandb.run
    wandb.Settings = lambda **kwargs: None
    wandb.log = lambda *args, **kwargs: None
    import ogbench
    from absl import flags

    dataset = Path(config["dataset_path"]).resolve()
    env_name = ogbench_task_name(dataset, config["env"])
    for split in (dataset, dataset.with_name(dataset.name[: -len(".npz")] + "-val.npz")):
        assert split.is_file(), f"{split}: missing (OGBench's loader would try to download it)"
    import main as reference_main
    from envs import env_utils
    env_utils.ogbench = types.SimpleNamespace(
        make_env_and_datasets=functools.partial(ogbench.make_env_and_datasets, dataset_dir=str(dataset.parent)))

    save_dir = tempfile.mkdtemp(prefix="fql-reference-")
    # --agent: main.py's default config file (agents/fql.py), by its absolute path (the default is relative to the
    # reference's folder), before the --agent.* overrides, as ml_collections requires
    argv = ["main.py", f"--agent={reference / 'agents' / 'fql.py'}", f"--env_name={env_name}", "--agent.alpha=300",
            f"--seed={seed}", f"--save_dir={save_dir}", f"--offline_steps={config['steps']}"]
    if flags.FLAGS.is_parsed():  # a later seed in this process: every flag back to its default, the override flags
        flags.FLAGS.unparse_flags()  # the last parse defined (--agent.alpha) removed; --agent reloads its config
        for name in [name for name in flags.FLAGS if name.startswith("agent.")]:
            delattr(flags.FLAGS, name)
    saved_argv, sys.argv = sys.argv, argv  # ml_collections' config flag finds its --agent.* overrides in sys.argv
    try:
        flags.FLAGS(argv)
    finally:
        sys.argv = saved_argv
    settings = flags.FLAGS.agent
    from agents.fql import get_config
    expected = get_config()
    expected.alpha = 300.0
    for key, value in expected.items():
        if key not in ("ob_dims", "action_dim"):
            assert settings[key] == value, f"agent.{key} = {settings[key]!r}, not {value!r}"

    main_locals = {}

    def handover(iterable, *args, **kwargs):  # main()'s `for i in tqdm.tqdm(range(1, ...), ...)`
        main_locals.update(sys._getframe(1).f_locals)
        return iter(())

    reference_main.tqdm = types.SimpleNamespace(tqdm=handover)
    reference_main.main(argv)
    train_dataset, agent_config = main_locals["train_dataset"], main_locals["config"]
    state = {"agent": main_locals["agent"]}

    def update():
        batch = train_dataset.sample(agent_config["batch_size"])
        state["agent"], info = state["agent"].update(batch)
        return info

    def act(obs, key):
        return np.clip(np.asarray(state["agent"].sample_actions(observations=obs, seed=key)), -1, 1)

    rewards, masks = np.asarray(train_dataset["rewards"][: train_dataset.size]), train_dataset["masks"][: train_dataset.size]
    print(f"fql: {env_name} from {dataset.parent}, {train_dataset.size} transitions, mean reward {rewards.mean():.4f}, "
          f"success (mask 0) {100 * (1 - np.asarray(masks).mean()):.2f}%, alpha {agent_config['alpha']}, "
          f"hidden {tuple(agent_config['actor_hidden_dims'])}, batch {agent_config['batch_size']}", flush=True)
    return update, act




def is_ogbench_task(env_id: str) -> bool:
    return "-singletask" in env_id


def o2o_first_reset_seed(seed: int, step: int) -> int:
    """The reset seed of episode 0 of training seed `seed`'s evaluation after `step` updates in o2o (its
    `evaluate`'s round seed 1_000_003 * (step + 1) plus 10_007 * seed); episode e adds e."""
    return 1_000_003 * (step + 1) + 10_007 * seed


def evaluate_ogbench(act, env_id: str, episodes: int, seed: int, step: int) -> float:
    """o2o's evaluation of an OGBench single-task policy (o2o/train/evaluation.py, offline.py's run_eval): episode e of
    training seed `seed` after `step` updates resets with seed 1_000_003 * (step + 1) + 10_007 * seed + e, acts with the
    key fold_in(PRNGKey(reset seed % 2**31), t) at step t, runs to termination (the goal) or the 200-step limit; the
    score is 100 x the mean of info["success"] at each episode's last step."""
    import gymnasium as gym
    import jax
    import ogbench  # noqa: F401  (registers OGBench's envs)
    env = gym.make(env_id)
    successes = []
    for episode in range(episodes):
        reset_seed = o2o_first_reset_seed(seed, step) + episode
        obs, _ = env.reset(seed=reset_seed)
        episode_key = jax.random.PRNGKey(reset_seed % 2**31)
        t, done, info = 0, False, {}
        while not done:
            action = np.asarray(act(obs.astype(np.float32), jax.random.fold_in(episode_key, t))).reshape(-1)
            obs, _, terminated, truncated, info = env.step(np.clip(action, -1.0, 1.0))
            t += 1
            done = terminated or truncated
        successes.append(float(info["success"]))
    env.close()
    return 100.0 * float(np.mean(successes))


def calql(reference: Path, data: dict, seed: int, config: dict):
    """The Cal-QL authors' offline pre-training (nakamotoo/Cal-QL, JAX; refs/.venv-calql as benchmarks/parity/README.md
    makes it, with gymnasium 1.4.0, mujoco 4.0.1 and the imageio and packaging that gymnasium's MuJoCo envs import):
    its own `main()` (JaxCQL/conservative_sac_main.py) parses its flags at their defaults, with `--env` the dataset's
    name, `--seed` the seed and `--cql.cql_max_target_backup=False` (o2o's CQL has one sampled next action, CQL's
    official MuJoCo setting; its default True is the max over 10, as Cal-QL's AntMaze and Adroit runs), plus
    `config["reference_set"]` (FLAG=VALUE, a diagnostic). main() loads the data with its `qlearning_dataset_and_calc_mc`
    (a timeout's transition and the data's last dropped, actions clipped to 0.99999, rewards * 1 + 0, done = terminal,
    Monte-Carlo returns-to-go per episode by its `calc_return_to_go`), builds its TanhGaussianPolicy and
    FullyConnectedQFunction (256-256, orthogonal init, log_std = m raw + c from m = 1, c = -1), sets the target entropy
    to -action_dim, seeds NumPy, `random` and its JAX key (`set_random_seed`), builds `ConservativeSAC(FLAGS.cql)` and
    its SamplerPolicy, and hands over at its epoch loop's first evaluation (its eval sampler's `sample`, replaced,
    takes main()'s locals and ends main(): nothing is trained or evaluated in it). Each update is its loop's offline
    branch: `sac.train(batch_to_jax(subsample_batch(dataset, FLAGS.batch_size)), use_cql, cql_min_q_weight,
    enable_calql)` with main()'s own values (True, 5.0, True). Acting: its SamplerPolicy on the current policy
    parameters, `deterministic=True` (tanh of the mean), as its evaluation. Actions in [-1, 1] on its side
    (`unit_actions`: Pendulum's are divided by its torque bound of 2, and the policy's multiplied by it).
    Replaced, because main() cannot run them here:
    - `get_d4rl_dataset_with_mc_calculation` raises NotImplementedError for any env but AntMaze; its stand-in does what
      it does with the dense-reward setting, `qlearning_dataset_and_calc_mc(..., is_sparse_reward=False)` (the
      discounted return-to-go of every episode, no failure convention: what the authors' sampler.py says to use for a
      dense-reward env), and returns its dict;
    - `WandBLogger` (its constructor stops in pdb without a wandb_config.py), `setup_logger` and `logger` (viskit's
      files; viskit.logging imports dateutil): the training script's logging;
    - gym, d4rl, wandb: stubbed; `gym.make` returns the .npz as a D4RL env (`get_dataset`, `spec.name` the dataset's
      name, the spaces' shapes) for its loader and its samplers' constructors; the evaluation is o2o's protocol in
      gymnasium (`evaluate`)."""
    import jax
    from absl import flags
    sys.path.insert(0, str(reference))
    sys.path.insert(0, str(Path(__file__).parent))
    from fixture import stub_training_imports
    stub_training_imports("wandb", "d4rl", "gym", "viskit.logging")
    sys.modules["viskit.logging"].setup_logger = lambda *args, **kwargs: None
    name = config["dataset"]
    scaled, high = unit_actions(data, config["env"])  # its policy is a tanh Gaussian in [-1, 1]
    raw = {k: scaled[k] for k in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")}
    env = types.SimpleNamespace(get_dataset=lambda **kwargs: raw,
                                spec=types.SimpleNamespace(name=name, max_episode_steps=None),
                                observation_space=types.SimpleNamespace(shape=data["observations"].shape[1:]),
                                action_space=types.SimpleNamespace(shape=data["actions"].shape[1:]))
    env.unwrapped = env
    sys.modules["gym"].make = lambda env_name: env
    argv = ["conservative_sac_main", f"--env={name}", f"--seed={seed}", "--cql.cql_max_target_backup=False",
            *(f"--{item}" for item in config.get("reference_set", ()))]
    command_line, sys.argv = sys.argv, argv  # its config-dict flags (--cql.*) take their overrides from sys.argv
    try:
        from JaxCQL import conservative_sac_main as script
        flags.FLAGS(argv)  # parsed again for every seed (main() sets cql.target_entropy to -action_dim once)
    finally:
        sys.argv = command_line
    from JaxCQL import replay_buffer, sampler

    def dense_reward_dataset(env_name, reward_scale, reward_bias, clip_action, gamma):
        # get_d4rl_dataset_with_mc_calculation with is_sparse_reward=False where it raises for a non-AntMaze env
        dataset = replay_buffer.qlearning_dataset_and_calc_mc(
            script.gym.make(env_name).unwrapped, reward_scale, reward_bias, clip_action, gamma, is_sparse_reward=False)
        return {"observations": dataset["observations"], "actions": dataset["actions"],
                    "next_observations": dataset["next_observations"], "rewards": dataset["rewards"],
                    "dones": dataset["terminals"].astype(np.float32), "mc_returns": dataset["mc_returns"]}

    class Logger:  # WandBLogger's interface, as main() uses it
        experiment_id = ""

        def __init__(self, config, variant):
            pass

        def log(self, *args, **kwargs):
            pass

    class Handover(Exception):
        pass

    main_locals = {}

    class Sampler(sampler.TrajSampler):
        def sample(self, *args, **kwargs):  # the epoch loop's first call: its evaluation at epoch 0
            main_locals.update(sys._getframe(1).f_locals)
            raise Handover

    script.get_d4rl_dataset_with_mc_calculation = dense_reward_dataset
    script.WandBLogger, script.TrajSampler = Logger, Sampler
    try:
        script.main(argv)
    except Handover:
        pass
    sac, dataset, settings = main_locals["sac"], main_locals["dataset"], main_locals["FLAGS"]
    use_cql, weight, calibrated = main_locals["use_cql"], main_locals["cql_min_q_weight"], main_locals["enable_calql"]
    policy = main_locals["sampler_policy"]
    assert use_cql and calibrated and settings.cql.target_entropy == -dataset["actions"].shape[1]

    def update():
        batch = script.batch_to_jax(script.subsample_batch(dataset, settings.batch_size))
        return script.prefix_metrics(sac.train(batch, use_cql=use_cql, cql_min_q_weight=weight,
                                               enable_calql=calibrated), "sac")

    def act(obs):
        return policy.update_params(sac.train_params["policy"])(obs.reshape(1, -1), deterministic=True) * high

    print(f"calql: {len(dataset['rewards'])} transitions, mean reward {float(dataset['rewards'].mean()):.4f}, "
          f"mean MC return {float(dataset['mc_returns'].mean()):.2f}, done {int(dataset['dones'].sum())}, "
          f"cql_min_q_weight {weight}, "
          f"flags {' '.join(argv[1:])}, jax {jax.__version__}", flush=True)
    return update, act


def qc(reference: Path, data: dict, seed: int, config: dict):
    """The authors' Q-chunking (ColinQiyangLi/qc, JAX; its update parity: benchmarks/parity/qc.py), offline, as its
    main.py's offline loop runs it: `ACFQLAgent.create(seed, one observation, one action, config)` (agents/acfql.py,
    imported by its path; distrax and ml_collections stubbed as in the parity adapter), its own Dataset over the
    .npz (actions mapped to [-1, 1] by the env's bounds and clipped to 1 - 1e-5 as its env_utils clips them, masks
    1 - terminals, its `terminals` where an episode ends: a termination, a timeout or the data's end), `np.random.seed`
    (its window starts come from NumPy's global stream), then per update `agent.update(dataset.sample_sequence(256,
    horizon, discount))`. Settings: its get_config() defaults but those o2o's learning test sets, passed in by
    `--reference-set` (hidden_dims=64,64 discount=0.95 horizon=2 actor_num_samples=8 actor_type=best-of-n); one
    discount for both of its knobs. Acting as its online loop and evaluate(): `sample_actions(obs, rng=key)` for a
    chunk, executed open-loop (its queue emptied at each episode's start), keys split from PRNGKey(seed)."""
    import importlib.util

    import gymnasium as gym
    sys.path.insert(0, str(reference))
    sys.path.insert(0, str(Path(__file__).parent))
    from fixture import stub_training_imports
    stub_training_imports("distrax", "ml_collections")
    spec = importlib.util.spec_from_file_location("acfql", reference / "agents" / "acfql.py")
    acfql = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(acfql)
    import jax
    from utils.datasets import Dataset

    given = dict(item.split("=", 1) for item in config["reference_set"])
    hidden = tuple(int(width) for width in given.get("hidden_dims", "512,512,512,512").split(","))
    horizon, discount = int(given.get("horizon", 5)), float(given.get("discount", 0.99))
    hyper = dict(agent_name="acfql", lr=3e-4, batch_size=256, actor_hidden_dims=hidden, value_hidden_dims=hidden,
                 layer_norm=True, actor_layer_norm=False, discount=discount, tau=0.005, q_agg="mean",
                 alpha=float(given.get("alpha", 100.0)), num_qs=2, flow_steps=10, normalize_q_loss=False, encoder=None,
                 horizon_length=horizon, action_chunking=True, actor_type=given.get("actor_type", "distill-ddpg"),
                 actor_num_samples=int(given.get("actor_num_samples", 32)), use_fourier_features=False,
                 fourier_feature_dim=64, weight_decay=0.0)
    high = gym.make(config["env"]).action_space.high.astype(np.float32)
    ends = np.maximum(data["terminals"], data["timeouts"]).astype(np.float32)
    ends[-1] = 1.0
    dataset = Dataset.create(
        observations=data["observations"], actions=np.clip(data["actions"] / high, -1 + 1e-5, 1 - 1e-5),
        rewards=data["rewards"], masks=1.0 - data["terminals"], terminals=ends,
        next_observations=data["next_observations"])
    np.random.seed(seed)
    state = {"agent": acfql.ACFQLAgent.create(seed, data["observations"][0], dataset["actions"][0], hyper),
             "rng": jax.random.PRNGKey(seed), "queue": []}

    def update():
        state["agent"], info = state["agent"].update(dataset.sample_sequence(256, horizon, discount))
        return info

    def act(obs):
        if not state["queue"]:
            state["rng"], key = jax.random.split(state["rng"])
            chunk = np.asarray(state["agent"].sample_actions(obs, rng=key)).reshape(horizon, -1)
            state["queue"] = list(np.clip(chunk, -1.0, 1.0))
        return state["queue"].pop(0) * high

    act.begin_episode = lambda: state["queue"].clear()
    return update, act


def ro2o(reference: Path, data: dict, seed: int, config: dict):
    """The authors' RO2O (BattleWen/RO2O, PyTorch; its update parity: benchmarks/parity/ro2o.py), offline, as
    algorithms/offline/ro2o_mujoco.py's train() runs it (imported by its path, its training script's imports stubbed
    as in the parity adapter): its TrainConfig defaults but those `--reference-set` gives (hidden_dim=64 num_critics=10
    gamma=0.95: the settings of o2o's run beside it), its compute_mean_std (eps 1e-3) and normalize_states on the states,
    its ReplayBuffer.load_d4rl_dataset (terminals as dones) and `sample(batch_size)` (NumPy's global stream), set_seed's
    seeds (torch, NumPy, random), then per update `trainer.update(batch)` unchanged (its update order and the 1e-6 in
    log pi, the fixture's two aligned deviations, are not aligned here). Acting as its eval_actor: Actor.act in eval
    mode (tanh of the mean). Actions are mapped to [-1, 1] by the env's bounds (its actor's max_action is 1)."""
    import importlib.util

    import gymnasium as gym
    import torch
    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).parent))
    from fixture import stub_training_imports
    stub_training_imports("d4rl", "gym", "pyrallis", "wandb", "h5py")
    spec = importlib.util.spec_from_file_location("ro2o_mujoco", reference / "algorithms" / "offline" / "ro2o_mujoco.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    defaults = module.TrainConfig(checkpoints_path=None)
    given = {k: type(getattr(defaults, k))(v) for k, v in (item.split("=", 1) for item in config["reference_set"])}
    settings = module.TrainConfig(**given, checkpoints_path=None, device="cpu", train_seed=seed)
    high = gym.make(config["env"]).action_space.high.astype(np.float32)
    dataset = {"observations": data["observations"], "actions": data["actions"] / high, "rewards": data["rewards"],
               "next_observations": data["next_observations"], "terminals": data["terminals"]}
    mean, std = module.compute_mean_std(dataset["observations"], eps=1e-3)
    for key in ("observations", "next_observations"):
        dataset[key] = module.normalize_states(dataset[key], mean, std)
    module.set_seed(seed, None, deterministic_torch=settings.deterministic_torch)
    dims = dataset["observations"].shape[1], dataset["actions"].shape[1]
    buffer = module.ReplayBuffer(*dims, buffer_size=len(dataset["rewards"]), device="cpu")
    buffer.load_d4rl_dataset(dataset)
    actor = module.Actor(*dims, settings.hidden_dim, settings.max_action)
    critic = module.VectorizedCritic(*dims, settings.hidden_dim, settings.num_critics)
    trainer = module.RO2O(
        actor=actor, actor_optimizer=torch.optim.Adam(actor.parameters(), lr=settings.actor_learning_rate),
        critic=critic, critic_optimizer=torch.optim.Adam(critic.parameters(), lr=settings.critic_learning_rate),
        gamma=settings.gamma, tau=settings.tau, beta_policy=settings.beta_policy, beta_ood=settings.beta_ood,
        q_smooth_eps=settings.q_smooth_eps, policy_smooth_eps=settings.policy_smooth_eps,
        ood_smooth_eps=settings.ood_smooth_eps, sample_size=settings.sample_size,
        q_ood_uncertainty_reg=settings.q_ood_uncertainty_reg,
        q_ood_uncertainty_reg_min=settings.q_ood_uncertainty_reg_min,
        q_ood_uncertainty_decay=settings.q_ood_uncertainty_decay, alpha_learning_rate=settings.alpha_learning_rate,
        device="cpu")

    def act(obs):
        actor.eval()
        action = actor.act(module.normalize_states(obs, mean, std), "cpu")
        actor.train()
        return action * high

    print(f"ro2o: {given}; {buffer._size} transitions, {settings.num_critics} critics of {settings.hidden_dim}, "
          f"batch {settings.batch_size}, n {settings.sample_size}", flush=True)
    return (lambda: trainer.update(buffer.sample(settings.batch_size))), act


def _gym_as_gymnasium() -> None:
    """rlpd imports gym (< 0.24, its requirements) for spaces, seeding and wrappers: here `gym` is gymnasium 1.x, whose
    spaces, `utils.seeding` and wrappers (ObservationWrapper, RescaleAction, ClipAction, FlattenObservation,
    RecordEpisodeStatistics) serve its modules under the same names. `gym.wrappers.flatten_observation` (a module
    path gymnasium 1.x dropped) is given its FlattenObservation; `gym.wrappers.pixel_observation` (imported by its
    pixel wrappers, unused here) a placeholder."""
    import gymnasium
    import gymnasium.spaces
    import gymnasium.utils.seeding
    import gymnasium.wrappers
    sys.modules["gym"] = gymnasium
    sys.modules["gym.spaces"] = gymnasium.spaces
    sys.modules["gym.utils"] = gymnasium.utils
    sys.modules["gym.utils.seeding"] = gymnasium.utils.seeding
    sys.modules["gym.wrappers"] = gymnasium.wrappers
    sys.modules["gym.wrappers.flatten_observation"] = types.SimpleNamespace(
        FlattenObservation=gymnasium.wrappers.FlattenObservation)
    sys.modules["gym.wrappers.pixel_observation"] = types.SimpleNamespace(PixelObservationWrapper=object)


def rlpd(reference: Path, data: dict, seed: int, config: dict):
    """The authors' RLPD (ikostrikov/rlpd, JAX; its environment: benchmarks/parity/rlpd.py, refs .venv-iql), online, as
    its train_finetuning.py runs it with the README's D4RL locomotion command (`--utd_ratio=20 --start_training 5000
    --config=configs/rlpd_config.py`, offline_ratio 0.5, batch_size 256, pretrain_steps 0):
    - agent: `SACLearner.create(seed, env.observation_space, env.action_space, **rlpd_config)`, its own
      configs/rlpd_config.py read by its get_config() (sac_config's SAC, 10 LayerNorm critics, 2 for the target);
    - env: `gym.make(ENV)` (gymnasium's) through its own `wrap_gym(env, rescale_actions=True)` (SinglePrecision,
      UniversalSeed, RescaleAction(-1, 1), ClipAction) and RecordEpisodeStatistics;
    - offline data: its D4RLDataset (actions clipped to 1 - 1e-5, masks 1 - terminals, its dones from the data) on
      the .npz's D4RL arrays; online data: its ReplayBuffer with capacity `--steps` (its max_steps);
    - each step is one iteration of its online loop: a random action (`env.action_space.sample()`) for the first
      `start_training` steps, then `agent.sample_actions`; the env step, `mask = 0` only at a termination; its
      insert; from step `start_training` on, `replay_buffer.sample(utd * 128)` and `ds.sample(utd * 128)` merged by
      its own `combine` (imported from train_finetuning.py: offline rows even, online odd, so each of the `utd`
      minibatches of 256 is half and half) and ONE `agent.update(batch, utd)` (its jitted utd critic steps, then one
      actor and one temperature step on the last minibatch).
    What is replaced, and why:
    - gym (< 0.24, not installable beside gymnasium 1.x / MuJoCo 4) is gymnasium (`_gym_as_gymnasium`); where the APIs
      differ the loop does what the old one did: `env.seed(seed)` (UniversalSeed: env, observation and action
      spaces) is `env.reset(seed=seed)` at the first reset plus the spaces' `seed(seed)`; the 4-tuple step's
      `done` is terminated or truncated and its mask rule (`not done or "TimeLimit.truncated" in info`) is
      `not terminated` (gym 0.23 sets that key at every time-limit end, also one that coincides with a termination:
      there it kept mask 1; here 0); gymnasium 1.x's ClipAction declares an unbounded action space (gym's keeps the
      box), so the wrapped env gets its [-1, 1] box back: `env.action_space.sample()` in the warm-up stays uniform,
      not N(0, 1) clipped;
    - d4rl: `d4rl.qlearning_dataset(env)` returns the .npz's observations, actions, next_observations, rewards and
      terminals (qlearning_dataset's keys; the .npz is already in that form); `d4rl.gym_mujoco`, `d4rl.locomotion`,
      `dmcgym` and `wandb` are stubbed (train_finetuning.py imports them; `combine` uses none);
    - its D4RLDataset is never seeded in train_finetuning.py (NumPy entropy: runs are not reproducible); here it is
      seeded with seed + 10000 (replay_buffer.seed(seed) as in the script; a different stream for the offline draws);
    - its own evaluation (`evaluate` on an eval env seeded seed + 42, every eval_interval loop iterations) is o2o's
      protocol (main's `evaluate`, `agent.eval_actions`: tanh of the mean), after every `--eval-every` env steps
      and at step 0; its loop's `range(0, max_steps + 1)` runs `--steps` iterations (o2o counts env steps done).
    - compilation only (no value changes): the agent's weak-typed scalars (its temperature, Adam moments, step counts)
      are made strong-typed once after create(), as its update returns them, so that the UTD-20 update compiles once,
      not four times; XLA's persistent compilation cache (~/.cache/learn_rlpd-jax unless JAX_COMPILATION_CACHE_DIR
      is set) lets later seeds and runs load it (each seed's agent has new apply_fns, hence a new jit key).
    With `--two-pass-layer-norm` (a diagnostic) its critics' LayerNorm computes the variance as E[(x - E[x])^2], o2o's
    form and the update fixture's shim, instead of flax's default E[x^2] - E[x]^2, whose float32 rounding slows its
    critics over thousands of updates (benchmarks/results/parity/README.md, RLPD). Otherwise the update is the
    reference's as it is: no numerical shim, its temperature loss and its mean critic loss (see
    benchmarks/parity/README.md's deviations), TensorFlow Probability's JAX substrate imported before it (its
    modules reach it as an attribute of the package)."""
    import jax
    import tensorflow_probability
    import tensorflow_probability.substrates.jax  # noqa: F401
    if not jax.config.jax_compilation_cache_dir:  # its update is rebuilt per seed (new apply_fns, a new jit key):
        # XLA's persistent cache makes seeds 2, 3 (and reruns) load the compiled UTD-20 update (2 s, not minutes)
        jax.config.update("jax_compilation_cache_dir", str(Path.home() / ".cache" / "learn_rlpd-jax"))
    # its package `rlpd` first: this directory's rlpd.py (the update-parity script) would shadow it
    here = Path(__file__).parent.resolve()
    sys.path[:] = [str(reference)] + [path for path in sys.path if Path(path or ".").resolve() != here]
    _gym_as_gymnasium()
    import gymnasium as gym
    qlearning = {k: data[k] for k in ("observations", "actions", "next_observations", "rewards", "terminals")}
    d4rl = types.ModuleType("d4rl")
    d4rl.qlearning_dataset = lambda env: {k: v.copy() for k, v in qlearning.items()}
    sys.modules["d4rl"] = d4rl
    for name in ("d4rl.gym_mujoco", "d4rl.locomotion", "dmcgym", "wandb"):
        sys.modules.setdefault(name, types.ModuleType(name))
    if config.get("two_pass_layer_norm"):  # the diagnostic: flax's LayerNorm variance as E[(x - E[x])^2] (o2o's)
        import flax.linen
        flax.linen.LayerNorm = functools.partial(flax.linen.LayerNorm, use_fast_variance=False)
    import train_finetuning  # its combine; its absl flags are defined, never parsed
    from configs import rlpd_config
    from rlpd.agents import SACLearner
    from rlpd.data import ReplayBuffer
    from rlpd.data.d4rl_datasets import D4RLDataset
    from rlpd.wrappers import wrap_gym

    utd, start_training, batch_size, offline_ratio = config["utd"], config["start_training"], 256, 0.5
    env = gym.make(config["env"])
    env = wrap_gym(env, rescale_actions=True)
    env.action_space = env.env.action_space  # gym's ClipAction keeps its env's box (see above)
    env = gym.wrappers.RecordEpisodeStatistics(env, buffer_length=1)
    env.action_space.seed(seed)  # UniversalSeed.seed
    env.observation_space.seed(seed)
    ds = D4RLDataset(env)
    ds.seed(seed + 10_000)

    kwargs = dict(rlpd_config.get_config())
    assert kwargs.pop("model_cls") == "SACLearner"
    agent = SACLearner.create(seed, env.observation_space, env.action_space, **kwargs)
    # Its update returns its temperature and Adam moments as strong float32 arrays where create() made them weak-typed
    # (Python scalars): the first calls would compile the UTD-20 update once per change (4 programs, 3 to 7 minutes
    # each here); strong-typed from the start, one program is compiled. Types only: every value and dtype is the same.
    agent = jax.tree_util.tree_map(
        lambda x: jax.numpy.asarray(x, x.dtype) if isinstance(x, jax.Array) and x.weak_type else x, agent)
    replay_buffer = ReplayBuffer(env.observation_space, env.action_space, config["steps"])
    replay_buffer.seed(seed)
    observation, _ = env.reset(seed=seed)
    state = {"agent": agent, "observation": observation, "i": 0, "info": {}, "returns": [], "updates": 0,
             "learn_wall": 0.0, "learn_cpu": 0.0}
    print(f"rlpd: {len(ds)} offline transitions, mean reward {float(ds.dataset_dict['rewards'].mean()):.4f}; "
          f"config {kwargs}; utd {utd}, start_training {start_training}", flush=True)

    def env_step():
        agent, observation, i = state["agent"], state["observation"], state["i"]
        clock = time.perf_counter(), time.process_time()
        if i < start_training:
            action = env.action_space.sample()
        else:
            action, agent = agent.sample_actions(observation)
        next_observation, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        mask = 0.0 if terminated else 1.0
        replay_buffer.insert({"observations": observation, "actions": action, "rewards": reward, "masks": mask,
                              "dones": done, "next_observations": next_observation})
        observation = next_observation
        if done:
            observation, _ = env.reset()
            state["returns"].append(float(info["episode"]["r"]))
        if i >= start_training:
            online_batch = replay_buffer.sample(int(batch_size * utd * (1 - offline_ratio)))
            offline_batch = ds.sample(int(batch_size * utd * offline_ratio))
            batch = train_finetuning.combine(offline_batch, online_batch)
            agent, update_info = agent.update(batch, utd)
            jax.block_until_ready(agent)
            if state["updates"]:  # the first call compiles: learning steps after it are timed, wall and CPU
                state["learn_wall"] += time.perf_counter() - clock[0]
                state["learn_cpu"] += time.process_time() - clock[1]
            else:
                state["compile_wall"] = time.perf_counter() - clock[0]
            state["updates"] += 1
            state["info"] = update_info
        state.update(agent=agent, observation=observation, i=i + 1)

    def metrics() -> dict:
        out = {k: float(np.asarray(v)) for k, v in state["info"].items()}
        if state["returns"]:
            out["train_episode_return"] = float(np.mean(state["returns"][-10:]))
        if "compile_wall" in state:
            out["first_update_seconds"] = state["compile_wall"]  # its compilation
        if state["updates"] > 1:  # env steps with an update, after the first: per second of wall and of CPU time
            out["learning_steps_per_second"] = (state["updates"] - 1) / state["learn_wall"]
            out["learning_steps_per_cpu_second"] = (state["updates"] - 1) / state["learn_cpu"]
        return out

    env_step.metrics = metrics
    return env_step, (lambda obs: state["agent"].eval_actions(obs))


def o2o_start(run: Path, seed: int) -> tuple[dict, dict, dict]:
    """Seed `seed` of o2o's offline run `run` (a fine-tuning reference starts from it, as `o2o finetune` does): its
    latest checkpoint's networks, each parameter array that seed's slice (flax's msgpack, no o2o import), its resolved
    agent config, and each network's Adam state (optax's (count, mu, nu), mu and nu shaped as the parameters)."""
    from flax import serialization
    recorded = json.loads((run / "config.json").read_text())
    member = seed - recorded["settings"]["seed"]
    assert 0 <= member < recorded["settings"]["seeds"], f"seed {seed} is not one of {run}'s seeds"
    restored = serialization.msgpack_restore((run / "checkpoints" / "latest.msgpack").read_bytes())["states"]
    sliced = lambda tree: {k: sliced(v) if isinstance(v, dict) else np.asarray(v)[member]  # noqa: E731
                           for k, v in tree.items()}
    networks = {name: network for name, network in restored.items() if isinstance(network, dict) and "params" in network}
    print(f"{run}: seed {seed} is its member {member}", flush=True)
    return ({name: sliced(network["params"]) for name, network in networks.items()}, recorded["agent_config"],
            {name: sliced(network["opt_state"]["0"]) for name, network in networks.items()
             if set(network["opt_state"].get("0", {})) == {"count", "mu", "nu"}})


def restore_adam(optimizer, module, adam: dict, to_torch) -> None:
    """torch Adam `optimizer` of `module` continuing from o2o's optax Adam state `adam` (count, mu, nu): each parameter's
    step, exp_avg and exp_avg_sq, the moments mapped to torch's layout by `to_torch` (parameters -> state dict), what the
    reference's `optimizer.load_state_dict` of its own saved optimizer would set. Same update rule: both correct the
    moments' bias by 1 - beta^step and add eps to the corrected root."""
    import torch
    mu, nu = to_torch(adam["mu"]), to_torch(adam["nu"])
    parameters = dict(module.named_parameters())
    assert set(mu) == set(parameters), f"moments {sorted(mu)} are not the parameters {sorted(parameters)}"
    for name, parameter in parameters.items():
        optimizer.state[parameter] = {"step": torch.tensor(float(adam["count"])), "exp_avg": mu[name].clone(),
                                      "exp_avg_sq": nu[name].clone()}


def sung_online_loop(env_id: str, seed: int, explore, add, train, high: np.ndarray):
    """SUNG's main.py loop in gymnasium (both variants): `explore(observation)` in [-1, 1], the env step on it times
    the bound, `add(s, a, s', r, done)` with done only at a termination (its `done_bool`: a time-limit end is not done),
    then one `train()`; `reset(seed=seed)` at the first reset (gym's env.seed)."""
    import gymnasium as gym
    env = gym.make(env_id)
    state = {"observation": env.reset(seed=seed)[0], "returns": [], "return": 0.0, "info": {}}

    def env_step():
        action = np.clip(explore(np.asarray(state["observation"])), -1.0, 1.0)
        next_observation, reward, terminated, truncated, _ = env.step(action * high)
        add(state["observation"], action, next_observation, reward, float(terminated))
        state["return"] += float(reward)
        state["observation"], state["info"] = next_observation, train()
        if terminated or truncated:
            state["returns"].append(state["return"])
            state["observation"], state["return"] = env.reset()[0], 0.0

    def metrics() -> dict:
        out = {k: float(v) for k, v in state["info"].items() if isinstance(v, (int, float))}
        if state["returns"]:
            out["train_episode_return"] = float(np.mean(state["returns"][-10:]))
        return out

    env_step.metrics = metrics
    return env_step


def sung(reference: Path, data: dict, seed: int, config: dict):
    """The SUNG authors' fine-tuning on TD3+BC (guosyjlu/SUNG, TD3_BC/main.py's loop and TD3.py, PyTorch; its update
    parity: benchmarks/parity/sung.py), from o2o's offline run `--start`: its main.py defaults (`--strategy prob
    --candidate_num 100 --topk 10 --order qu --constrained greedy --filter_prob 0.05 --lamda 0.05`, TD3's noise,
    delay and alpha 2.5, batch 256, one update per env step from the first, states standardized by its OORB);
    `TD3.TD3(**kwargs)` with the run's widths (its 256), then what its `load` and `vae.load_state_dict` restore, from
    the o2o checkpoint: actor, critics, the targets as their copies, the actor's and critic's Adam states (its `load`
    restores its saved optimizers: `restore_adam`), the VAE (its Adam starts afresh, as the authors'
    `vae.load_state_dict` leaves it; so does o2o's by default, `restart_as_authors`). Each step as `sung_online_loop`,
    its `select_exploration_action` on the standardized state and `policy.train(replay_buffer, 256)`. Replaced: gym,
    d4rl, wandb as in `sung_cql`."""
    import torch
    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).parent))
    from fixture import stub_training_imports
    stub_training_imports("wandb", "d4rl", "gym")
    sys.path.insert(0, str(reference / "TD3_BC"))
    import TD3
    import utils
    from sung import vae_to_torch
    from td3bc import ACTOR, Q1, Q2
    from torch_helpers import NarrowLayers, mlp_to_torch

    networks, agent_config, adam = o2o_start(Path(config["start"]), seed)
    widths = set(agent_config["hidden_dims"])
    assert len(agent_config["hidden_dims"]) == 2 and len(widths) == 1, "its networks have two layers of one width"
    TD3.nn = NarrowLayers(widths.pop())
    scaled, high = unit_actions(data, config["env"])
    dataset = {k: scaled[k] for k in ("observations", "actions", "next_observations", "rewards", "terminals")}
    obs_dim, action_dim = dataset["observations"].shape[1], dataset["actions"].shape[1]
    torch.manual_seed(seed)
    np.random.seed(seed)
    policy = TD3.TD3(state_dim=obs_dim, action_dim=action_dim, max_action=1.0, discount=0.99, tau=0.005,
                     policy_noise=0.2, noise_clip=0.5, policy_freq=2, expl_noise=0.1, strategy="prob",
                     candidate_num=100, topk=10, order="qu", constrained="greedy", filter_prob=0.05, lamda=0.05)
    actor = lambda tree: mlp_to_torch(tree["MLP_0"], ACTOR)  # noqa: E731
    critic = lambda tree: {**mlp_to_torch(tree["VmapCritic_0"]["MLP_0"], Q1, member=0),  # noqa: E731
                           **mlp_to_torch(tree["VmapCritic_0"]["MLP_0"], Q2, member=1)}
    for module, weights in ((policy.actor, actor(networks["actor"])), (policy.actor_target, actor(networks["actor"])),
                            (policy.critic, critic(networks["critic"])),
                            (policy.critic_target, critic(networks["critic"]))):
        module.load_state_dict(weights)
    restore_adam(policy.actor_optimizer, policy.actor, adam["actor"], actor)
    restore_adam(policy.critic_optimizer, policy.critic, adam["critic"], critic)
    policy.vae.load_state_dict(vae_to_torch(networks["vae"], 2 * action_dim))
    buffer = utils.OORB(obs_dim, action_dim, len(dataset["rewards"]) + config["steps"], 20_000, 0.1)
    buffer.convert_D4RL(dataset)
    mean, std = buffer.state_mean, buffer.state_std
    print(f"sung: {len(dataset['rewards'])} offline transitions, networks {agent_config['hidden_dims']}, torch "
          f"{torch.__version__}", flush=True)
    step = sung_online_loop(config["env"], seed, lambda obs: policy.select_exploration_action((obs - mean) / std),
                            buffer.add, lambda: policy.train(buffer, 256), high)
    return step, lambda obs: policy.select_action((obs - mean) / std) * high


def sung_cql(reference: Path, data: dict, seed: int, config: dict):
    """The SUNG authors' fine-tuning on CQL (guosyjlu/SUNG, CQL/main.py's loop and conservative_sac.py, PyTorch; its
    update parity: benchmarks/parity/sung_cql.py), from o2o's offline run `--start`: its main.py defaults
    (`--exploration prob --order uq --candidate_num 100 --topk 20 --constrained prob --lamda 0.1 --prob 0.1`, batch
    256, one update per env step from the first):
    - the agent as main.py builds it: TanhGaussianPolicy and two FullyConnectedQFunctions of the run's widths,
      `ConservativeSAC({"target_entropy": -action_dim, "use_cql": True}, ...)` (CQL's defaults: alpha 5, 10 proposals,
      importance sampling), then what its `load` and `vae.load_state_dict` restore, taken from the o2o checkpoint: the
      policy (log_std = m raw + c with m = 1, c = 0: o2o's policy has no scalars; the reference trains them from
      there), both critics (and, as its `load`, targets that are copies of them), the VAE. Like its `load`, nothing
      else: alpha starts at 1 and every Adam state afresh (o2o too by default, `restart_as_authors`);
    - its OORB (offline buffer of the .npz's transitions, actions divided by the env's bound, `unit_actions`, then
      clipped to +-0.99 by its clip_action; online buffer of 20,000; 10% of each batch offline), its states' mean and
      std for the VAE;
    - each step as `sung_online_loop`: `select_exploration_action(state, "prob", "uq", 100, 20, mean, std)`, then
      `sac.train(replay_buffer, 256, "prob", 0.1, 0.1)`.
    Replaced: gym's 4-tuple API by gymnasium's, d4rl and wandb (its data is the .npz; its logging); its evaluation is
    o2o's protocol (`evaluate`, `select_action`: tanh of the mean)."""
    import torch
    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).parent))
    from fixture import stub_training_imports
    stub_training_imports("wandb", "d4rl", "gym")
    sys.path.insert(0, str(reference / "CQL"))
    import conservative_sac
    import model
    import utils
    from sung import vae_to_torch
    from sung_cql import NETWORK
    from torch_helpers import mlp_to_torch

    networks, agent_config, _ = o2o_start(Path(config["start"]), seed)
    arch = "-".join(str(w) for w in agent_config["hidden_dims"])
    scaled, high = unit_actions(data, config["env"])
    dataset = {k: scaled[k] for k in ("observations", "actions", "next_observations", "rewards", "terminals")}
    dataset["actions"] = np.clip(dataset["actions"], -0.99, 0.99)  # main.py's clip_action
    obs_dim, action_dim = dataset["observations"].shape[1], dataset["actions"].shape[1]
    utils.set_random_seed(seed)
    policy = model.TanhGaussianPolicy(obs_dim, action_dim, arch=arch, log_std_offset=0.0)
    qf1, qf2 = (model.FullyConnectedQFunction(obs_dim, action_dim, arch=arch) for _ in range(2))
    sac = conservative_sac.ConservativeSAC({"target_entropy": -float(action_dim), "use_cql": True}, policy, qf1, qf2,
                                           copy.deepcopy(qf1), copy.deepcopy(qf2), obs_dim, action_dim, max_action=1.0)
    policy.base_network.load_state_dict(mlp_to_torch(networks["actor"]["MLP_0"], NETWORK))
    critic = networks["critic"]["VmapCritic_0"]["MLP_0"]
    for q, target, i in ((sac.qf1, sac.target_qf1, 0), (sac.qf2, sac.target_qf2, 1)):
        q.network.load_state_dict(mlp_to_torch(critic, NETWORK, member=i))
        target.network.load_state_dict(mlp_to_torch(critic, NETWORK, member=i))  # its load: deep copies
    sac.vae.load_state_dict(vae_to_torch(networks["vae"], 2 * action_dim))
    buffer = utils.OORB(obs_dim, action_dim, len(dataset["rewards"]) + config["steps"], 20_000, 0.1)
    buffer.convert_D4RL(dataset)
    mean, std = buffer.mean, buffer.std
    print(f"sung-cql: {len(dataset['rewards'])} offline transitions, networks {arch}, torch {torch.__version__}",
          flush=True)
    step = sung_online_loop(
        config["env"], seed,
        lambda obs: sac.select_exploration_action(obs.reshape(1, -1), "prob", "uq", 100, 20, mean, std),
        buffer.add, lambda: sac.train(buffer, 256, "prob", 0.1, 0.1, bc=False), high)
    return step, lambda obs: sac.select_action(obs) * high


ADAPTERS = {"td3bc": td3bc, "iql": iql, "famo2o": famo2o, "rebrac": rebrac, "edac": edac, "calql": calql, "fql": fql,
            "rlpd": rlpd, "qc": qc, "ro2o": ro2o, "sung": sung, "sung-cql": sung_cql}
ONLINE = {"rlpd", "sung", "sung-cql"}  # a step is an environment step; the curve starts at step 0


def evaluate(act, env_id: str, episodes: int, first_reset_seed: int) -> float:
    """The mean return of `episodes` episodes, episode e reset with seed first_reset_seed + e."""
    import gymnasium as gym
    env = gym.make(env_id)
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=first_reset_seed + episode)
        if hasattr(act, "begin_episode"):  # a policy that executes action chunks: none queued at an episode's start
            act.begin_episode()
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(np.asarray(act(obs.astype(np.float32))).reshape(-1))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("algo", choices=sorted(ADAPTERS))
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--env", required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--eval-every", type=int, required=True)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--score-range", type=float, nargs=2, default=None, metavar=("RANDOM", "EXPERT"),
                        help="required but for an OGBench task (scored by its success rate)")
    parser.add_argument("--method", default=None, help="the method's name in the CSV (default: ALGO (reference))")
    parser.add_argument("--dataset-name", default=None, help="the dataset's name in the CSV (default: the file's stem)")
    parser.add_argument("--source", default=None,
                        help="the reference's repository and commit, recorded per row (default: OWNER/NAME@COMMIT read "
                             "from the work tree's origin and HEAD)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--reference-set", nargs="*", default=[], metavar="FLAG=VALUE",
                        help="calql: more flags for the reference's training script (a diagnostic, e.g. "
                             "policy_log_std_offset=0.0); qc: its settings (hidden_dims=64,64 horizon=2 ...); "
                             "ro2o: its TrainConfig fields (hidden_dim=64 gamma=0.95 ...)")
    parser.add_argument("--metrics-every", type=int, default=500,
                        help="per-update adapters that return metrics (iql, calql, fql, ro2o): write their mean over the last N "
                             "updates to OUT's .metrics.jsonl every N updates")
    parser.add_argument("--start-training", type=int, default=5000,
                        help="online methods: env steps of random actions before the first update (RLPD's README: 5000)")
    parser.add_argument("--start", type=Path, default=None,
                        help="fine-tuning methods (sung, sung-cql): the o2o offline run whose seed s each seed starts "
                             "from")
    parser.add_argument("--utd", type=int, default=20, help="online methods: critic updates per env step (RLPD: 20)")
    parser.add_argument("--two-pass-layer-norm", action="store_true",
                        help="rlpd, fql on a .npz: flax's LayerNorm with use_fast_variance=False, its variance "
                             "E[(x - E[x])^2] as o2o's LayerNorm computes it, not E[x^2] - E[x]^2 (a diagnostic: the "
                             "update fixture's shim)")
    parser.add_argument("--fixed-reset-seeds", action="store_true",
                        help="gymnasium envs: reset episode e of every evaluation of seed s with 10_000 * (s + 1) + e "
                             "(the same initial states every time, as this script did before 2026-12-07: the "
                             "learning-parity rows measured before then) instead of o2o's seeds")
    parser.add_argument("--target-after-step", action="store_true",
                        help="fql on a .npz: the target critic's Polyak step towards the critic after this update's "
                             "step, as o2o's (the update fixture's alignment; a diagnostic)")
    args = parser.parse_args()
    if args.source is None:
        args.source = source_of(args.reference)
    ogbench_task = is_ogbench_task(args.env)
    if not ogbench_task and args.score_range is None:
        parser.error("--score-range is required")
    data = None if ogbench_task else load(args.dataset)  # OGBench: the adapter reads it with the reference's loader
    low, high = args.score_range or (0.0, 100.0)
    rows = []
    name = args.dataset_name or args.dataset.stem
    args.out.with_suffix(".metrics.jsonl").unlink(missing_ok=True)  # the adapter's metrics, rewritten with the CSV
    for seed in args.seeds:
        update, act, *chunked = ADAPTERS[args.algo](args.reference, data, seed, {
            "dataset": name, "steps": args.steps, "eval_every": args.eval_every, "dataset_path": args.dataset,
            "env": args.env, "reference_set": args.reference_set, "start_training": args.start_training,
            "utd": args.utd, "two_pass_layer_norm": args.two_pass_layer_norm, "start": args.start,
            "target_after_step": args.target_after_step})
        chunk = chunked[0] if chunked else 1  # updates per update() call
        assert args.eval_every % chunk == 0 and args.steps % chunk == 0, (chunk, args.eval_every, args.steps)
        online = args.algo in ONLINE
        start, window, eval_seconds = time.perf_counter(), [], 0.0
        for step in range(0 if online else chunk, args.steps + 1, chunk):
            metrics = update() if step else None
            if online:  # the loop's own summary at each evaluation
                metrics = None
                if step % args.eval_every == 0:
                    metrics = update.metrics()
                    elapsed = time.perf_counter() - start - eval_seconds
                    metrics["env_steps_per_second"] = step / elapsed if step else 0.0  # evaluations excluded
            elif not chunked and isinstance(metrics, dict):  # one update's metrics (device arrays): the window's mean
                window.append(metrics)
                metrics = None
                if step % args.metrics_every == 0:
                    import jax
                    values = jax.device_get(window)
                    metrics = {k: float(np.mean([np.mean(v[k]) for v in values])) for k in values[0]}
                    window = []
            if metrics is not None:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                with open(args.out.with_suffix(".metrics.jsonl"), "a") as file:
                    file.write(json.dumps({"seed": seed, "step": step, **metrics}) + "\n")
            if step % args.eval_every == 0:
                if ogbench_task:  # the success rate in %, o2o's score for an OGBench task
                    ret = score = evaluate_ogbench(act, args.env, args.eval_episodes, seed, step)
                else:
                    clock = time.perf_counter()
                    first = 10_000 * (seed + 1) if args.fixed_reset_seeds else o2o_first_reset_seed(seed, step)
                    ret = evaluate(act, args.env, args.eval_episodes, first)
                    eval_seconds += time.perf_counter() - clock
                    score = 100.0 * (ret - low) / (high - low)
                rows.append({"method": args.method or f"{args.algo} (reference)", "dataset": name, "seed": seed,
                             "step": step, "score": score, "env": args.env, "source": args.source})
                print(f"{args.algo} seed {seed} step {step}: {'success' if ogbench_task else 'return'} {ret:.1f}, "
                      f"score {score:.1f} "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        partial = args.out.with_suffix(".partial.csv")
        with open(partial, "w", newline="") as file:  # every finished seed is kept; the last one renames it
            writer = csv.DictWriter(file, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    partial.replace(args.out)


def source_of(work_tree: Path) -> str:
    """OWNER/NAME@COMMIT of a reference's work tree: its HEAD, and its origin read as a GitHub address
    (https://github.com/OWNER/NAME[.git]) or as a snapshot's folder (.../OWNER+NAME/...); the folder's own name when
    neither is there."""
    import subprocess

    git = lambda *command: subprocess.run(["git", "-C", str(work_tree), *command], capture_output=True,  # noqa: E731
                                          text=True).stdout.strip()
    origin, name = git("remote", "get-url", "origin"), work_tree.resolve().name
    if "github.com" in origin:
        name = origin.split("github.com", 1)[1].strip(":/").removesuffix(".git")
    else:
        name = next((part.replace("+", "/", 1) for part in origin.split("/") if "+" in part), name)
    return f"{name}@{git('rev-parse', 'HEAD')}"


if __name__ == "__main__":
    main()
