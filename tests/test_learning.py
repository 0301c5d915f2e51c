"""Learning tests a broken algorithm fails, with the quickstart's offline settings on a mixed-quality Pendulum-v1 dataset (30%
episodes by a good scripted controller, 70% by the same controller with a constant torque bias; behaviour scores 35
normalized).

Behaviour cloning averages the two behaviours and lands near the behaviour level; TD3+BC and IQL must pick the good
actions and clearly beat it. 20k updates, 2 seeds, 30 evaluation episodes per seed. Measured on the 2-core CPU:
BC 25.2, TD3+BC 61.7, IQL 45.3, RIQL 56.2, FamO2O 52.0 (normalized; 0 = random torques, 100 = the controller).
ReBRAC and FQL must beat BC by 30 after 10k updates (51.8 after 5k), QC-FQL too (chunks of 2); QC's critic must pick
clearly better chunks than its flow draws; the Decision Transformer must play as well as the return it is conditioned
on; EDAC, SAC-N, RO2O and LB-SAC have checks of their own below.
"""

import pytest

from o2o import quickstart
from o2o.collect.scripted import collect_pendulum
from o2o.data import write_o2o
from o2o.train import offline


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_o2o(collect_pendulum(episodes=50, seed=0), tmp_path_factory.mktemp("data") / "dataset-pendulum-mixed")


@pytest.fixture(scope="module")
def report(dataset, tmp_path_factory):
    """The quick suite's offline settings (small networks, discount 0.95, 20k updates, 2 seeds, 30 episodes)."""
    out = tmp_path_factory.mktemp("learning")
    grid = quickstart.grid()
    results = {}
    for algo in grid.algos:
        results[algo] = offline.train(offline.OfflineSettings(
            algo=algo, dataset=str(dataset), steps=grid.steps, seeds=grid.seeds, eval_every=grid.eval_every,
            eval_episodes=grid.eval_episodes, out=str(out / algo), agent_overrides=grid.overrides_for(algo)),
            progress=False)
    return {"results": results, "behaviour_normalized_score": quickstart.behaviour_score(dataset)}


def score(report, algo):
    return report["results"][algo]["normalized_score"]


def test_dataset_is_mixed_quality(report):
    assert 25 < report["behaviour_normalized_score"] < 45


def test_bc_reaches_the_behaviour_level(report):
    # BC cannot separate the two behaviours; it must still be within 15 points of their average.
    assert score(report, "bc") >= report["behaviour_normalized_score"] - 15


def test_td3_bc_clearly_beats_bc(report):
    assert score(report, "td3bc") >= score(report, "bc") + 15


def test_iql_clearly_beats_bc(report):
    assert score(report, "iql") >= score(report, "bc") + 12


def train(algo, dataset, out, steps, **overrides):
    """`algo` with the quick suite's network size and discount, 2 seeds, evaluated once at the end (30 episodes)."""
    overrides = {**quickstart.grid().overrides_for("iql"), **overrides}
    return offline.train(offline.OfflineSettings(
        algo=algo, dataset=str(dataset), steps=steps, seeds=2, eval_every=steps, eval_episodes=30, out=str(out),
        agent_overrides=overrides), progress=False)["normalized_score"]


@pytest.mark.slow  # 45 s alone (5 critics); RIQL's update is held to the authors' in the default suite (test_parity)
def test_riql_clearly_beats_bc(report, dataset, tmp_path):
    # IQL's bar on the same data; RIQL's ensemble quantile and Huber critics must not cost what IQL gains over BC
    assert train("riql", dataset, tmp_path / "riql", 20_000) >= score(report, "bc") + 12


@pytest.mark.slow  # 92 s; FamO2O's update is held to the authors' in the default suite (test_parity)
def test_famo2o_clearly_beats_bc(report, dataset, tmp_path):
    # IQL's bar: the universal policy, acting with the balance model's coefficient per state, must extract the good
    # actions as IQL does (measured: 52.0, seeds 53.3 and 50.7, where IQL has 45.3 and BC 25.2)
    assert train("famo2o", dataset, tmp_path / "famo2o", 20_000) >= score(report, "bc") + 12


@pytest.mark.slow  # 33 s; FQL's losses, flow and contract stay in the default suite
def test_fql_clearly_beats_bc(report, dataset, tmp_path):
    # measured: 81.4 and 68.6 after 10k updates (alpha 0.1 on the normalized Q term; 39 after 7.5k); with alpha 1 or
    # more the one-step policy stays near the two-mode behaviour flow (about 20)
    assert train("fql", dataset, tmp_path / "fql", 10_000, alpha="0.1", normalize_q_loss="true") >= score(report, "bc") + 30


@pytest.mark.slow  # 50 s; Q-chunking's update, windows, open-loop acting and contract stay in the default suite
def test_qc_fql_clearly_beats_bc(report, dataset, tmp_path):
    # Chunks of 2 actions (measured 66.7, seeds 73.8 and 59.6, after 10k updates with FQL's test settings, alpha 0.3
    # on the normalized Q term). With the paper's 5 the chunks run open-loop for a quarter of a second of Pendulum's swing-up,
    # and the behaviour flow's own chunks play at 11 (best-of-32 under Q: 27; QC-FQL at alpha 0.1 to 100: -19 to 24)
    assert train("qc-fql", dataset, tmp_path / "qc-fql", 10_000, horizon="2", alpha="0.3",
                 normalize_q_loss="true") >= score(report, "bc") + 30


@pytest.mark.slow  # 150 s; QC's best-of-n target and acting are held to the authors' update in the default suite
def test_qc_critic_picks_better_chunks_than_the_flow_draws(dataset, tmp_path):
    """Best-of-n acting must owe its score to the critic: the best of 32 flow chunks under Q clearly beats the flow's
    own chunks (one candidate), which mix the two behaviours. Measured after 10k updates (chunks of 2, 8 candidates in
    the target): flow 12.8, best of 8 31.0, of 32 37.5 (BC 25.2); with chunks of 5: flow 11.2, best of 32 27.2."""
    import dataclasses

    from o2o.agents import restore_algorithm
    from o2o.train import runs

    train("qc", dataset, tmp_path / "qc", 10_000, horizon="2", num_samples="8")
    run = runs.RunDir.open(tmp_path / "qc")
    agent, config = restore_algorithm("qc", run.agent_config)
    states = runs.load_checkpoint(run.path, {"states": offline.checkpoint_template(agent, config, run.env_id,
                                                                                   run.seeds, None)})["states"]

    def score_with(samples):
        acting = states.replace(config=dataclasses.replace(config, num_samples=samples))
        return offline.evaluate_checkpoint(agent, acting, run.env_id, run.seeds, 30, run.dataset_metadata)[
            "normalized_score"]

    assert score_with(32) >= score_with(1) + 12


@pytest.mark.slow  # 45 s; DT's windows, rolling context, contract and resume stay in the default suite
def test_dt_plays_as_well_as_the_return_it_is_conditioned_on(dataset, tmp_path):
    """Conditioned on a return typical of the good controller's episodes (-150) the Decision Transformer must play
    clearly better than conditioned on the biased controller's (-1000): the return-to-go path carries the signal."""
    import jax.numpy as jnp

    from o2o.train import runs

    settings = offline.OfflineSettings(
        algo="dt", dataset=str(dataset), steps=10_000, seeds=2, eval_every=10_000, eval_episodes=30, out=str(tmp_path),
        agent_overrides={"embedding_dim": "32", "num_layers": "1", "context_length": "5", "dropout": "0",
                         "learning_rate": "1e-3", "warmup_steps": "300", "target_return": "-150"})
    good = offline.train(settings, progress=False)["normalized_score"]
    p = offline.prepare(settings)
    states = runs.load_checkpoint(tmp_path, {"states": offline.init_states(p)})["states"]
    bad = offline.evaluate_checkpoint(p.agent, states.replace(target_return=jnp.full(2, -1000 * p.config.return_scale)),
                                      p.env_id, p.seeds, 30, p.dataset.metadata)["normalized_score"]
    # measured: 47.8 against 8.2 after 10k updates (ReLU in the blocks, as the paper's code; 32.2 against 11.7 with the
    # GELU o2o had before its parity fixture)
    assert good >= bad + 10


# ReBRAC's and EDAC's learning checks are behind -m slow (38 s and 45 s) to keep the default suite near 10 minutes;
# their losses are checked on hand-computed cases in test_agent_math and every one runs in test_contract.
@pytest.mark.slow
def test_rebrac_clearly_beats_bc(report, dataset, tmp_path):
    # measured: 98.6 and 99.8 after 10k updates (batch 1024, 64x64 networks)
    assert train("rebrac", dataset, tmp_path / "rebrac", 10_000) >= score(report, "bc") + 30


# The Q-ensemble methods shine on diverse data and fail on narrow data unless N is large (their paper needs up to 500
# critics): on the mixed dataset above SAC-N (N = 10 and 50) and EDAC (N = 10) fall below random torques. On the zoo's
# Pendulum medium-replay buffer (7,250 transitions of early SAC training; behaviour -2.9 normalized) 10 critics suffice.
@pytest.fixture(scope="module")
def replay_buffer(tmp_path_factory):
    from o2o import bench
    return bench.materialize("collect:Pendulum-v1:medium-replay", tmp_path_factory.mktemp("replay"))


@pytest.mark.slow
def test_edac_learns_from_a_diverse_buffer(replay_buffer, tmp_path):
    # measured: 100.3 and 102.9 after 10k updates (-25.5 and -9.4 after 5k)
    assert train("edac", replay_buffer, tmp_path / "edac", 10_000, num_critics="10") >= 60


@pytest.mark.slow
def test_sac_n_learns_from_a_diverse_buffer(replay_buffer, tmp_path):
    # measured: 100.2 and 102.9 after 10k updates
    assert train("sacn", replay_buffer, tmp_path / "sacn", 10_000, num_critics="10") >= 60


@pytest.mark.slow  # 7.5 min: 20 perturbed copies of every state in three terms
def test_ro2o_learns_from_a_diverse_buffer(replay_buffer, tmp_path):
    # SAC-N's bar with RO2O's smoothness and pessimism terms on top; measured: 99.6 and 99.4 after 10k updates (-4.1
    # after 5k). On the narrow mixed data RO2O with 10 critics falls below random torques as SAC-N does (-29.7; SAC-N -2.3)
    assert train("ro2o", replay_buffer, tmp_path / "ro2o", 10_000, num_critics="10") >= 60


@pytest.mark.slow
def test_lb_sac_learns_in_few_updates(dataset, tmp_path):
    # measured on the narrow mixed data: 102.9 and 89.8 after 3k updates (batch 10,000, 10 critics)
    assert train("lbsac", dataset, tmp_path / "lbsac", 3_000, num_critics="10") >= 60


@pytest.mark.slow
def test_iql_solves_cube_single_task2_with_the_published_settings(tmp_path):
    """OGBench cube-single-play (1000 episodes made by the package's oracles; `$O2O_DATASETS` is used when it holds
    them, else they are made here, about 15 minutes on 2 cores), task 2, the OGBench preset (expectile 0.9, temperature
    1, 4 x 256), 200k updates (about 40 minutes), 50 episodes every 20k; the published protocol's final score is the
    mean of the last three evaluations (published: 85 at 1M updates; o2o measured 95-98, README "OGBench"). Single
    evaluations swing by 30 points on the way (58-100), so only the protocol's mean is checked."""
    import json

    from o2o.collect.ogbench import collect_to
    from o2o.envs import ogbench
    from o2o.errors import DatasetError

    try:
        source = str(ogbench.find_dataset("cube-single-play-singletask-task2-v0"))
    except DatasetError:
        source = collect_to("cube-single-v0", "play", tmp_path / "cube-single-play-v0")["o2o"]
    summary = offline.train(offline.OfflineSettings(
        algo="iql", dataset=source, env="cube-single-singletask-task2-v0", steps=200_000, eval_every=20_000,
        eval_episodes=50, out=str(tmp_path / "iql")), progress=False)
    assert summary["preset"]["name"] == "ogbench-cube-single"
    lines = (tmp_path / "iql" / "metrics.jsonl").read_text().splitlines()
    rates = [json.loads(line)["success_rate"] for line in lines if "success_rate" in json.loads(line)]
    assert len(rates) == 10 and sum(rates[-3:]) / 3 >= 80.0
