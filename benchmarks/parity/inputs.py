"""Stage 1 of a parity fixture, run in o2o's environment: the inputs a reference implementation is run on.

    python benchmarks/parity/inputs.py ALGO --out /tmp/parity/ALGO-inputs.npz

For algorithm ALGO (a `CASES` key) it writes one .npz: o2o's resolved config and the problem's size (`meta`, JSON), the
observation statistics (`spec/...`), one batch (`batch/...`, the same batch for every update), o2o's initial
parameters (`init/<state field>/<param path>`, from o2o's own `init`) and the random draws of every update
(`draws/<name>`, shape (steps, ...)). Stage 2 (`benchmarks/parity/<algo>.py`, in the references' environment, no o2o
import) converts these into the reference's structure, runs the reference's update and writes the fixture.

Draws are standard normals rounded to float16: stored losslessly at half the size, and both sides use them as the same
float32 numbers. Everything comes from `numpy.random.RandomState(seed)`, whose stream numpy keeps stable.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
from fixture import flatten  # stage 2's own module (numpy only), beside this script

from o2o.agents import Spec, get_algorithm
from o2o.agents.common import Network

OBSERVATION_DIM, ACTION_DIM, BATCH_SIZE, STEPS, SEED = 17, 6, 256, 100, 0
FQL_BATCH, DT_WINDOWS, DT_CONTEXT = 64, 64, 5
# QC: chunks of 5 actions (30 numbers); best-of-n draws (batch, samples, 30) per update, so 16 windows and 4 samples
QC_BATCH, QC_SAMPLES, QC_FQL_BATCH, QC_CHUNK = 16, 4, 32, 5 * 6
CQL_BATCH, CQL_ACTIONS = 64, 2  # CQL's five draws per update, three of them N per state: a small batch, N = 2
ONLINE_BATCH, ENSEMBLE_BATCH = 128, 64  # sac; rlpd, wsrl (4 LayerNorm critics): two (steps, batch, action_dim) draws
RLPD_UTD = 4  # critic steps per call of RLPD's update (its utd_ratio), the last followed by the actor's
SUNG_BATCH, SUNG_LATENT = 64, 2 * 6  # three (batch, ...) draws per update, two of them the VAE's latent (2 A)
SUNG_DRAWS = {"target_noise": (SUNG_BATCH, ACTION_DIM), "vae_noise": (SUNG_BATCH, SUNG_LATENT)}
SUNG_CQL_KEPT = int(0.1 * CQL_BATCH)  # fine-tuning's conservative term: int(batch * prob) samples
RO2O_PERTURBATIONS = 4  # copies per state: the pessimism term draws (batch * 4, action_dim) normals per update
RO2O_PERTURBATION_DRAWS = ("q_smooth_perturbation", "ood_perturbation", "policy_smooth_perturbation")
RO2O_TERMS = {"num_perturbations": RO2O_PERTURBATIONS, "q_smooth_weight": 1.0, "ood_weight": 10.0,
              "policy_smooth_weight": 1.0, "q_smooth_eps": 0.3, "ood_smooth_eps": 0.3, "policy_smooth_eps": 0.3,
              "ood_uncertainty": 1.0, "ood_uncertainty_min": 0.5, "ood_uncertainty_decay": 0.01}
RO2O_TERM_DRAWS = {**dict.fromkeys(RO2O_PERTURBATION_DRAWS, (RO2O_PERTURBATIONS, OBSERVATION_DIM)),
                   "ood_action_noise": (ENSEMBLE_BATCH * RO2O_PERTURBATIONS, ACTION_DIM)}
RO2O_ANTMAZE = {"per_critic_targets": True, "actor_std_weight": -4.0}


@dataclasses.dataclass(frozen=True)
class Case:
    """What a fixture of one algorithm is made of: o2o config overrides (small networks keep fixtures under 1 MB) and
    the shapes of one update's random draws, by the name of the o2o function that draws them."""

    config: dict
    draws: dict[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)
    uniform: tuple[str, ...] = ()  # the draws that are U(0, 1) (flow-matching times); the others are N(0, 1)
    batch: str = "transitions"  # or "windows": DT's sequences (make_windows); "chunks": QC's (make_chunk_windows)
    batch_size: int = BATCH_SIZE  # rows of the transition batch (fewer where many draws would pass 1 MB)
    # per update `size` distinct indices out of `population`, by name: (population, size) (RLPD's critic subset)
    subsets: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)
    mc_returns: bool = False  # the batch carries Monte-Carlo returns-to-go (Cal-QL's bound), N(0, 1), drawn last
    reward_scale: float = 1.0  # the batch's rewards are N(0, reward_scale^2)
    algo: str = ""  # the algorithm, where the case (and its fixture) is a variant of it named otherwise


CASES = {
    # the reference hard-codes 256-wide layers; its adapter builds them 64 wide
    "td3bc": Case({"hidden_dims": (64, 64)}, {"target_noise": (BATCH_SIZE, ACTION_DIM)}),
    # TD3 (td3bc.py's adapter on sfujim/TD3): its 256-wide layers built 64 wide, states as observed
    "td3": Case({"hidden_dims": (64, 64)}, {"target_noise": (BATCH_SIZE, ACTION_DIM)}),
    # jaxrl's SAC: two (steps, batch, action_dim) draws, so batch 128 keeps the fixture under 1 MB
    "sac": Case({"hidden_dims": (64, 64), "batch_size": ONLINE_BATCH},
                {"next_action_noise": (ONLINE_BATCH, ACTION_DIM), "actor_action_noise": (ONLINE_BATCH, ACTION_DIM)},
                batch_size=ONLINE_BATCH),
    # RLPD: 4 LayerNorm critics (the paper's 10) with a random 2 for the target, batch 64: ten 64-wide critics would
    # take 1.2 MB alone; UTD 4 (the paper's 20): an actor and temperature step after every 4th critic step
    "rlpd": Case({"hidden_dims": (64, 64), "num_critics": 4, "batch_size": ENSEMBLE_BATCH, "actor_every": RLPD_UTD},
                 {"next_action_noise": (ENSEMBLE_BATCH, ACTION_DIM),
                  "actor_action_noise": (ENSEMBLE_BATCH, ACTION_DIM)},
                 batch_size=ENSEMBLE_BATCH, subsets={"critic_subset": (4, 2)}),
    # WSRL's locomotion settings (LayerNorm critics, no entropy in the target, actor learning rate 1e-4) with 4 critics
    # (its 10) and the temperature frozen on both sides (its learning rate 0: WSRL's temperature update departs from
    # o2o's in three ways, wsrl.py)
    "wsrl": Case({"hidden_dims": (64, 64), "num_critics": 4, "critic_layer_norm": True, "backup_entropy": False,
                  "actor_lr": 1e-4, "temperature_lr": 0.0, "batch_size": ENSEMBLE_BATCH},
                 {"next_action_noise": (ENSEMBLE_BATCH, ACTION_DIM),
                  "actor_action_noise": (ENSEMBLE_BATCH, ACTION_DIM)},
                 batch_size=ENSEMBLE_BATCH, subsets={"critic_subset": (4, 2)}),
    # a short cosine decay, so that 100 updates exercise the actor's schedule
    "iql": Case({"hidden_dims": (64, 64), "actor_decay_steps": 200}),
    # RIQL: 3 critics (the 0.25 quantile falls between two of them); rewards N(0, 150^2) and sigma 0.1, so that the
    # target's clip at -100 and both zones of the Huber loss (|x| < 100 and beyond) are reached
    "riql": Case({"hidden_dims": (64, 64), "actor_decay_steps": 200, "num_critics": 3, "huber_sigma": 0.1},
                 reward_scale=150.0),
    "bc": Case({"hidden_dims": (64, 64)}),
    # hopper-medium-replay's published penalties (paper, Table 8), large enough that both terms matter; batch 256
    "rebrac": Case({"hidden_dims": (64, 64, 64), "batch_size": BATCH_SIZE, "actor_bc_coef": 0.05,
                    "critic_bc_coef": 0.5}, {"target_noise": (BATCH_SIZE, ACTION_DIM)}),
    # CORL's AWAC: three hidden layers (its hidden_dim, 32 here: the two draws take 614 kB), states standardized by
    # its script
    "awac": Case({"hidden_dims": (32, 32, 32), "normalize_observations": True},
                 {"target_action_noise": (BATCH_SIZE, ACTION_DIM), "baseline_action_noise": (BATCH_SIZE, ACTION_DIM)}),
    # EDAC's code (sacn, edac) and LB-SAC's (lbsac): small ensembles and narrow layers keep the fixtures under 1 MB
    # (the two (steps, batch, action_dim) draws alone take 614 kB); lbsac's batch as everyone's, its learning rates kept,
    # EDAC's initialisation (small output layers) so that the policy's pre-tanh samples stay where float32 resolves
    # 1 - tanh(u)^2 (the reference computes it directly; with Flax's initialisation |u| reaches 10 on these states)
    "sacn": Case({"hidden_dims": (32, 32), "num_critics": 5},
                 {"next_action_noise": (BATCH_SIZE, ACTION_DIM), "actor_action_noise": (BATCH_SIZE, ACTION_DIM)}),
    "edac": Case({"hidden_dims": (32, 32), "num_critics": 5, "eta": 1.0},
                 {"next_action_noise": (BATCH_SIZE, ACTION_DIM), "actor_action_noise": (BATCH_SIZE, ACTION_DIM)}),
    "lbsac": Case({"hidden_dims": (24, 24, 24), "num_critics": 4, "batch_size": BATCH_SIZE, "edac_init": True},
                  {"next_action_noise": (BATCH_SIZE, ACTION_DIM), "actor_action_noise": (BATCH_SIZE, ACTION_DIM)}),
    # RO2O (the authors' CORL-style file): 4 critics of three 24-wide layers (its modules hard-code three), batch 64, 4
    # perturbations per state; offsets of 0.3 and the three weights 1 (the paper's 0.01 and eta_1 = 1e-4 would leave
    # the fixture blind to the Q-smoothness term); lambda decays from 1 to its floor 0.5 over the first 50 updates.
    # AntMaze (its LCB scripts): offline the same plus the LCB actor (beta -4), per-critic targets and beta_bc 5 (the
    # umaze command); fine-tuning: no terms, beta_bc 1, rewards 4 (r - 0.5)
    **{case: Case({"hidden_dims": (24, 24, 24), "num_critics": 4, "batch_size": ENSEMBLE_BATCH, **changes},
                  {"next_action_noise": (ENSEMBLE_BATCH, ACTION_DIM), "actor_action_noise": (ENSEMBLE_BATCH, ACTION_DIM),
                   **terms}, uniform=RO2O_PERTURBATION_DRAWS, batch_size=ENSEMBLE_BATCH, algo="ro2o")
       for case, changes, terms in (
           ("ro2o", RO2O_TERMS, RO2O_TERM_DRAWS),
           ("ro2o-antmaze", {**RO2O_TERMS, **RO2O_ANTMAZE, "bc_weight": 5.0}, RO2O_TERM_DRAWS),
           ("ro2o-antmaze-finetuning", {**RO2O_ANTMAZE, "bc_weight": 1.0, "reward_scale": 4.0, "reward_bias": -2.0,
                                        "q_smooth_weight": 0.0, "ood_weight": 0.0, "policy_smooth_weight": 0.0}, {}))},
    # SUNG (the authors' TD3_BC/TD3.py): 64-wide actor and critics, a (64, 64) VAE (its 750), batch 64; offline:
    # TD3+BC's BC term on every sample; fine-tuning: the term on the 10% (6) rarest policy actions by the VAE, at weight 1 (the
    # authors' 5% and 0.05 would leave the term invisible in 100 updates)
    "sung": Case({"hidden_dims": (64, 64), "vae_hidden_dims": (64, 64), "batch_size": SUNG_BATCH}, SUNG_DRAWS,
                 batch_size=SUNG_BATCH),
    "sung-finetuning": Case({"hidden_dims": (64, 64), "vae_hidden_dims": (64, 64), "batch_size": SUNG_BATCH,
                             "uncertain_fraction": 0.1},
                            {**SUNG_DRAWS, "uncertainty_noise": (SUNG_BATCH, SUNG_LATENT)},
                            batch_size=SUNG_BATCH, algo="sung"),
    # SUNG on CQL (the authors' CQL/conservative_sac.py): 32-wide networks, a (32, 32) VAE (its 750), batch 64, N = 2;
    # offline: CQL's term on every sample; fine-tuning: the authors' lambda 0.1 on a tenth (6) of the batch drawn by u
    **{case: Case({"hidden_dims": (32, 32), "vae_hidden_dims": (32, 32), "batch_size": CQL_BATCH,
                   "cql_num_actions": CQL_ACTIONS, **changes},
                  {"next_action_noise": (CQL_BATCH, ACTION_DIM), "actor_action_noise": (CQL_BATCH, ACTION_DIM),
                   "random_actions": (kept * CQL_ACTIONS, ACTION_DIM),
                   "policy_actions_noise": (kept * CQL_ACTIONS, ACTION_DIM),
                   "next_policy_actions_noise": (kept * CQL_ACTIONS, ACTION_DIM),
                   "vae_noise": (CQL_BATCH, SUNG_LATENT), **extra},
                  uniform=("random_actions",), batch_size=CQL_BATCH, algo="sung-cql",
                  subsets={"uncertain_samples": (CQL_BATCH, kept)} if kept < CQL_BATCH else {})
       for case, changes, kept, extra in (
           ("sung-cql", {}, CQL_BATCH, {}),
           ("sung-cql-finetuning", {"conservative_weight": 0.1, "uncertain_fraction": 0.1}, SUNG_CQL_KEPT,
            {"uncertainty_noise": (CQL_BATCH, SUNG_LATENT)}))},
    # FQL draws four arrays per update: a batch of 64 keeps them (and the three networks) under 1 MB
    "fql": Case({"hidden_dims": (64, 64), "batch_size": FQL_BATCH},
                {"next_one_step_noise": (FQL_BATCH, ACTION_DIM), "flow_noise": (FQL_BATCH, ACTION_DIM),
                 "flow_times": (FQL_BATCH, 1), "one_step_noise": (FQL_BATCH, ACTION_DIM)},
                uniform=("flow_times",), batch_size=FQL_BATCH),
    # FamO2O: offline (coefficients U[min, max]) and fine-tuning (coefficients from the balance model)
    "famo2o": Case({"hidden_dims": (64, 64)},
                   {"balance_noise": (BATCH_SIZE, 1), "balance_action_noise": (BATCH_SIZE, ACTION_DIM),
                    "coefficients": (BATCH_SIZE, 1)}, uniform=("coefficients",)),
    "famo2o-finetuning": Case({"hidden_dims": (64, 64), "coefficient_source": "balance"},
                              {"balance_noise": (BATCH_SIZE, 1), "balance_action_noise": (BATCH_SIZE, ACTION_DIM),
                               "coefficient_noise": (BATCH_SIZE, 1)}, algo="famo2o"),
    # Q-chunking, best-of-n (qc) and distilled (qc-fql): chunks of 5, 32-wide layers
    "qc": Case({"hidden_dims": (32, 32), "batch_size": QC_BATCH, "num_samples": QC_SAMPLES},
               {"next_policy_noise": (QC_BATCH, QC_SAMPLES, QC_CHUNK), "flow_noise": (QC_BATCH, QC_CHUNK),
                "flow_times": (QC_BATCH, 1)}, uniform=("flow_times",), batch="chunks", batch_size=QC_BATCH),
    "qc-fql": Case({"hidden_dims": (32, 32), "batch_size": QC_FQL_BATCH},
                   {"next_policy_noise": (QC_FQL_BATCH, QC_CHUNK), "flow_noise": (QC_FQL_BATCH, QC_CHUNK),
                    "flow_times": (QC_FQL_BATCH, 1), "one_step_noise": (QC_FQL_BATCH, QC_CHUNK)},
                   uniform=("flow_times",), batch="chunks", batch_size=QC_FQL_BATCH),
    # one block, 32 wide, two heads (the head split is converted too), K 5; dropout off on both sides (its masks cannot
    # be injected); the paper's learning rate, a 50-update warm-up, and a weight decay of 1 (the paper's 1e-4 would move
    # the parameters by 1e-8 of themselves per update, invisible in 100)
    "dt": Case({"context_length": DT_CONTEXT, "embedding_dim": 32, "num_layers": 1, "num_heads": 2, "dropout": 0.0,
                "max_timestep": 64, "learning_rate": 1e-4, "weight_decay": 1.0, "warmup_steps": 50,
                "batch_size": DT_WINDOWS, "target_return": 3600.0}, batch="windows", batch_size=DT_WINDOWS),
    # Cal-QL's JaxCQL in its CQL mode (cql) and with the calibration (calql): narrow layers, a batch of 64 and N = 2
    # proposals per state keep the five draws under 1 MB; the uniform proposals are 2u - 1
    **{algo: Case({"hidden_dims": (32, 32), "batch_size": CQL_BATCH, "cql_num_actions": CQL_ACTIONS},
                  {"next_action_noise": (CQL_BATCH, ACTION_DIM), "random_actions": (CQL_BATCH * CQL_ACTIONS, ACTION_DIM),
                   "policy_actions_noise": (CQL_BATCH * CQL_ACTIONS, ACTION_DIM),
                   "next_policy_actions_noise": (CQL_BATCH * CQL_ACTIONS, ACTION_DIM),
                   "actor_action_noise": (CQL_BATCH, ACTION_DIM)},
                  uniform=("random_actions",), batch_size=CQL_BATCH, mc_returns=True) for algo in ("cql", "calql")},
    # Cal-QL as its AntMaze script runs it: the target from the best of N next actions (N draws per state) and the
    # Lagrange form with tau 0.8
    "calql-antmaze": Case({"hidden_dims": (32, 32), "batch_size": CQL_BATCH, "cql_num_actions": CQL_ACTIONS,
                           "max_target_backup": True, "cql_target_action_gap": 0.8},
                          {"next_action_noise": (CQL_BATCH * CQL_ACTIONS, ACTION_DIM),
                           "random_actions": (CQL_BATCH * CQL_ACTIONS, ACTION_DIM),
                           "policy_actions_noise": (CQL_BATCH * CQL_ACTIONS, ACTION_DIM),
                           "next_policy_actions_noise": (CQL_BATCH * CQL_ACTIONS, ACTION_DIM),
                           "actor_action_noise": (CQL_BATCH, ACTION_DIM)},
                          uniform=("random_actions",), batch_size=CQL_BATCH, mc_returns=True, algo="calql"),
}


def make_batch(rng: np.random.RandomState, mean: np.ndarray, std: np.ndarray,
               size: int = BATCH_SIZE) -> dict[str, np.ndarray]:
    """One batch of `size` transitions: states around `mean` with spread `std` (so that normalization matters),
    actions in (-1, 1) with some near the bounds, rewards N(0, 1), one transition in eight terminal, dataset next actions."""
    observations = (mean + std * rng.standard_normal((size, OBSERVATION_DIM))).astype(np.float32)
    next_observations = (mean + std * rng.standard_normal((size, OBSERVATION_DIM))).astype(np.float32)
    actions = np.tanh(1.5 * rng.standard_normal((size, ACTION_DIM))).astype(np.float32)
    next_actions = np.tanh(1.5 * rng.standard_normal((size, ACTION_DIM))).astype(np.float32)
    return {
        "observations": observations,
        "actions": actions,
        "rewards": rng.standard_normal(size).astype(np.float32),
        "next_observations": next_observations,
        "dones": (rng.uniform(size=size) < 0.125).astype(np.float32),
        "next_actions": next_actions,
    }


def make_windows(rng: np.random.RandomState, mean: np.ndarray, std: np.ndarray) -> dict[str, np.ndarray]:
    """DT's batch: DT_WINDOWS windows of DT_CONTEXT steps, drawn by o2o's own sampler (`dt.sample_batch`, whose output
    is what `dt.update` takes) from eight synthetic episodes of 2 to 99 steps: some windows run past an episode's end
    (zeroed and masked), some timesteps past `max_timestep` (they share its last embedding)."""
    from o2o.agents import dt

    lengths = rng.randint(2, 100, size=8)
    steps = int(lengths.sum())
    rewards = rng.normal(10.0, 5.0, steps)
    starts = np.cumsum(lengths) - lengths
    returns_to_go = np.concatenate([np.cumsum(rewards[s:s + n][::-1])[::-1] for s, n in zip(starts, lengths)])
    data = {"observations": (mean + std * rng.standard_normal((steps, OBSERVATION_DIM))).astype(np.float32),
            "actions": np.tanh(1.5 * rng.standard_normal((steps, ACTION_DIM))).astype(np.float32),
            "returns_to_go": returns_to_go.astype(np.float32),
            "timesteps": np.concatenate([np.arange(n) for n in lengths]).astype(np.int32),
            "steps_to_episode_end": np.concatenate([np.arange(n - 1, -1, -1) for n in lengths]).astype(np.float32)}
    config = dt.Config(context_length=DT_CONTEXT, batch_size=DT_WINDOWS)
    return jax.device_get(dt.sample_batch(config, data, jax.random.PRNGKey(SEED)))


def make_chunk_windows(rng: np.random.RandomState, mean: np.ndarray, std: np.ndarray, size: int,
                       horizon: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """QC's batch: `size` windows of `horizon` steps drawn by o2o's own sampler (`qc.sample_batch`) from twelve
    synthetic episodes of 2 to 29 steps (some windows cross an episode's end), one step in eight a success (done)
    anywhere in an episode, as OGBench's relabelled data. Returns (the batch, the episodes with each window's first
    step): stage 2 builds the reference's batch from the episodes with its own `sample_sequence`."""
    from o2o.agents import qc
    lengths = rng.randint(2, 30, size=12)
    steps = int(lengths.sum())
    last = np.repeat(np.cumsum(lengths) - 1, lengths)
    observations = (mean + std * rng.standard_normal((steps, OBSERVATION_DIM))).astype(np.float32)
    fresh = (mean + std * rng.standard_normal((steps, OBSERVATION_DIM))).astype(np.float32)
    following = np.concatenate([observations[1:], fresh[-1:]])
    data = {"observations": observations,
            "actions": np.tanh(1.5 * rng.standard_normal((steps, ACTION_DIM))).astype(np.float32),
            "rewards": rng.standard_normal(steps).astype(np.float32),
            "next_observations": np.where((np.arange(steps) == last)[:, None], fresh, following),
            "dones": (rng.uniform(size=steps) < 0.125).astype(np.float32),
            "steps_to_episode_end": (last - np.arange(steps)).astype(np.float32)}
    config = qc.Config(horizon=horizon, batch_size=size)
    batch = jax.device_get(qc.sample_batch(config, {**data, "row": np.arange(steps)}, jax.random.PRNGKey(SEED)))
    episodes = {**data, "window_starts": batch.pop("row")[:, 0].astype(np.int32)}
    return batch, episodes


def build(case_name: str) -> tuple[dict, dict[str, np.ndarray]]:
    case = CASES[case_name]
    algo = case.algo or case_name
    rng = np.random.RandomState(SEED)
    mean = rng.uniform(-2.0, 2.0, OBSERVATION_DIM).astype(np.float32)
    std = rng.uniform(0.5, 3.0, OBSERVATION_DIM).astype(np.float32)
    arrays = {"spec/observation_mean": mean, "spec/observation_std": std}
    if case.batch == "chunks":
        batch, episodes = make_chunk_windows(rng, mean, std, case.batch_size, get_algorithm(algo)[1].horizon)
        arrays.update(flatten(episodes, "episodes"))
    elif case.batch == "windows":
        batch = make_windows(rng, mean, std)
    else:
        batch = make_batch(rng, mean, std, case.batch_size)
    if case.reward_scale != 1.0:
        batch["rewards"] = batch["rewards"] * np.float32(case.reward_scale)
    arrays.update(flatten(batch, "batch"))
    for name, shape in case.draws.items():
        draw = rng.uniform if name in case.uniform else rng.standard_normal
        arrays[f"draws/{name}"] = draw(size=(STEPS, *shape)).astype(np.float16)
    for name, (population, size) in case.subsets.items():
        subsets = [rng.choice(population, size, replace=False) for _ in range(STEPS)]
        arrays[f"draws/{name}"] = np.stack(subsets).astype(np.int32)
    if case.mc_returns:
        arrays["batch/mc_returns"] = rng.standard_normal(case.batch_size).astype(np.float32)

    agent, config = get_algorithm(algo)
    config = dataclasses.replace(config, **case.config)
    state = agent.init(jax.random.PRNGKey(SEED), Spec(OBSERVATION_DIM, ACTION_DIM, mean, std), config)
    for field in dataclasses.fields(state):
        value = getattr(state, field.name)
        if isinstance(value, Network):
            arrays.update(flatten(jax.device_get(value.params), f"init/{field.name}"))

    meta = {"algo": algo, "case": case_name, "config": dataclasses.asdict(config), "observation_dim": OBSERVATION_DIM,
            "action_dim": ACTION_DIM, "batch_size": case.batch_size, "steps": STEPS, "seed": SEED,
            "command": f"python benchmarks/parity/inputs.py {case_name} --out INPUTS",
            "o2o_versions": {"jax": jax.__version__, "numpy": np.__version__}}
    return meta, arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("algo", choices=sorted(CASES))
    parser.add_argument("--out", type=Path, required=True, help="stage 2's --inputs")
    args = parser.parse_args()
    meta, arrays = build(args.algo)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, meta=np.array(json.dumps(meta)), **arrays)
    print(f"{args.out}: {len(arrays)} arrays")


if __name__ == "__main__":
    main()
