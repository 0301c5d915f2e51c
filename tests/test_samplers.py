"""Return- and advantage-weighted sampling (Hong et al., ICLR 2023): the probabilities equal the canonical reference's
(harness-offline-rl cb6e709, implicit_q_learning/dataset_utils.py:166-187) on hand-computed cases, the jitted draw
samples them, and `--sampler` runs end to end, is recorded, resumes, benches and is refused where it cannot apply."""

import json
import types

import jax
import numpy as np
import pytest
from conftest import run_cli

from o2o import bench, files
from o2o.agents import uniform_transitions
from o2o.collect.scripted import collect_pendulum
from o2o.data import Dataset, load_dataset, samplers, write_o2o
from o2o.errors import O2OError
from o2o.report import tables
from o2o.train import offline, runs

TINY = ["--set", "hidden_dims=16,16", "--set", "batch_size=32"]


def trajectories(lengths, returns, first_observations=None, obs_dim=1):
    """A dataset of episodes of the given lengths, each earning its whole return at its last step, starting from the
    given first observations (else zeros)."""
    lengths = np.asarray(lengths)
    n, ends = int(lengths.sum()), np.cumsum(lengths) - 1
    rewards = np.zeros(n, np.float32)
    rewards[ends] = returns
    observations = np.zeros((n, obs_dim), np.float32)
    if first_observations is not None:
        observations[np.r_[0, ends[:-1] + 1]] = np.asarray(first_observations, np.float32).reshape(len(lengths), -1)
    timeouts = np.zeros(n, bool)
    timeouts[ends] = True
    return Dataset(observations, np.zeros((n, 1), np.float32), rewards, observations, np.zeros(n, bool), timeouts)


TINY_RW = trajectories([2, 3, 5], [0.0, 5.0, 10.0])  # g = (0, 0.5, 1): per-step weight (1, e^5, e^10)
TINY_AW = trajectories([1, 1, 1, 1], [0.0, 10.0, 1.0, 11.0], first_observations=[0.0, 1.0, 0.0, 1.0])


def test_return_weighted_probabilities_are_the_references_softmax_of_min_max_normalized_returns():
    per_step = np.exp([0.0, 5.0, 10.0])
    z = (np.array([2, 3, 5]) * per_step).sum()
    expected = np.repeat(per_step / z, [2, 3, 5])  # 9.043262e-06, 1.342139e-03, 1.991911e-01 (spec, section 8)
    np.testing.assert_allclose(samplers.transition_probabilities(TINY_RW, "return-weighted", 0.1), expected, rtol=1e-12)
    np.testing.assert_allclose(samplers.trajectory_probabilities(TINY_RW, "return-weighted", 0.1),
                               [1.808652e-05, 4.026417e-03, 9.959555e-01], rtol=1e-6)


def test_advantage_weighting_corrects_for_the_start_state_where_return_weighting_favours_it():
    """Start state 1 predicts a return of 10.5, start state 0 one of 0.5: AW weighs the two better-than-predicted
    trajectories alike (A = +0.5), RW the two that started in the easy state."""
    np.testing.assert_allclose(samplers.start_state_values(TINY_AW), [0.5, 10.5, 0.5, 10.5], atol=1e-12)
    np.testing.assert_allclose(samplers.trajectory_probabilities(TINY_AW, "advantage-weighted", 0.1),
                               [2.269893e-05, 2.269893e-05, 4.999773e-01, 4.999773e-01], rtol=1e-6)
    np.testing.assert_allclose(samplers.trajectory_probabilities(TINY_AW, "return-weighted", 0.1),
                               [3.235806e-05, 2.871535e-01, 8.031482e-05, 7.127338e-01], rtol=1e-6)


def test_advantage_weighting_with_uninformative_start_states_equals_return_weighting():
    rng = np.random.default_rng(0)
    lengths, returns = rng.integers(1, 20, 12), rng.normal(size=12) * 100
    constant_start = trajectories(lengths, returns, first_observations=np.ones((12, 3)), obs_dim=3)
    np.testing.assert_allclose(samplers.trajectory_probabilities(constant_start, "advantage-weighted", 0.1),
                               samplers.trajectory_probabilities(constant_start, "return-weighted", 0.1), atol=1e-12)


def test_limits_a_high_temperature_is_uniform_and_a_low_one_keeps_only_the_best_trajectory():
    np.testing.assert_allclose(samplers.transition_probabilities(TINY_RW, "return-weighted", 1e6), np.full(10, 0.1),
                               rtol=1e-5)
    np.testing.assert_allclose(samplers.trajectory_probabilities(TINY_RW, "return-weighted", 1e-3), [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(samplers.transition_probabilities(TINY_RW, "uniform", 0.1), np.full(10, 0.1), rtol=1e-12)


def test_a_reward_scale_changes_nothing_but_a_shift_changes_the_weights_of_unequal_lengths():
    scaled = trajectories([2, 3, 5], [0.0, 50.0, 100.0])
    shifted = trajectories([2, 3, 5], [0.0, 5.0, 10.0])
    shifted = Dataset(**{**shifted.arrays(), "rewards": shifted.rewards + 1.0})  # G_i + T_i: (2, 8, 15)
    base = samplers.trajectory_probabilities(TINY_RW, "return-weighted", 0.1)
    np.testing.assert_allclose(samplers.trajectory_probabilities(scaled, "return-weighted", 0.1), base, rtol=1e-12)
    assert not np.allclose(samplers.trajectory_probabilities(shifted, "return-weighted", 0.1), base, rtol=1e-3)


@pytest.mark.parametrize("sampler", ["return-weighted", "advantage-weighted"])
def test_equal_returns_sample_uniformly_and_say_so(sampler):
    equal = trajectories([2, 3, 5], [7.0, 7.0, 7.0], first_observations=[0.0, 1.0, 2.0])
    with pytest.warns(RuntimeWarning, match="all 3 episodes have the same"):
        probabilities = samplers.transition_probabilities(equal, sampler, 0.1)
    np.testing.assert_allclose(probabilities, np.full(10, 0.1), rtol=1e-12)


def test_an_interpolating_advantage_fit_leaves_nothing_to_weight_by():
    """Three trajectories and two observation dimensions: the fit passes through every return (A = 0 up to round-off,
    which min-max normalization must not blow up into weights), where the reference divides by zero."""
    few = trajectories([2, 3, 5], [0.0, 5.0, 10.0], first_observations=[[0.1, 0.3], [0.7, -0.2], [0.4, 0.9]], obs_dim=2)
    with pytest.warns(RuntimeWarning, match="same advantage"):
        np.testing.assert_allclose(samplers.transition_probabilities(few, "advantage-weighted", 0.1), np.full(10, 0.1),
                                   rtol=1e-12)


def test_on_a_random_plus_5_percent_expert_mixture_return_weighting_samples_the_expert_almost_only():
    """sampler_check.py's mixture (6 expert trajectories of 1000 steps, ~3850 random ones of 10-39 steps): the expert
    transitions, 6% of the data, get 0.9988 of the sampling mass at temperature 0.1, 0.878 at 0.2, 0.141 at 1 and
    0.066 at 10 (the closed form on that seed; this rebuilds the same mixture)."""
    rng = np.random.default_rng(0)
    lengths, returns, starts, expert = [], [], [], []
    good = 0
    while good <= 0.05 * 100_000:
        lengths.append(1000), returns.append(rng.normal(3500, 100)), starts.append(rng.normal(0, 0.005, 11))
        expert.append(True)
        good += 1000
    bad = 0
    while bad <= 100_000 - good:
        length = int(rng.integers(10, 40))
        returns.append(0.9 * length + rng.normal(0, 2)), lengths.append(length), starts.append(rng.normal(0, 0.005, 11))
        expert.append(False)
        bad += length
    mixture = trajectories(lengths, returns, first_observations=np.array(starts), obs_dim=11)
    for temperature, mass in ((0.1, 0.9988), (0.2, 0.878), (1.0, 0.141), (10.0, 0.066)):
        for sampler in ("return-weighted", "advantage-weighted"):
            expert_mass = samplers.trajectory_probabilities(mixture, sampler, temperature)[np.array(expert)].sum()
            assert expert_mass == pytest.approx(mass, abs=0.01), (sampler, temperature)


def test_the_alias_table_holds_each_trajectorys_probability_to_float32_precision():
    rng = np.random.default_rng(1)
    probabilities = rng.dirichlet(np.full(500, 0.1))
    probabilities[:50] = 1e-9  # the low-return tail of a mixed dataset
    probabilities /= probabilities.sum()
    keep, alias = samplers.alias_table(probabilities)
    implied = keep.astype(np.float32).astype(np.float64)
    np.add.at(implied, alias, 1.0 - keep.astype(np.float32))
    np.testing.assert_allclose(implied / 500, probabilities, rtol=1e-6, atol=1e-12)


def test_the_jitted_draw_samples_each_transition_with_its_probability():
    """One million draws: every transition's frequency within 5 standard errors of its probability."""
    table = jax.device_put(samplers.weighted_trajectories(TINY_RW, "return-weighted", 0.1))
    draws = 1_000_000
    index = jax.jit(samplers.draw, static_argnums=2)(table, jax.random.PRNGKey(0), draws)
    frequency = np.bincount(np.asarray(index), minlength=10) / draws
    probability = samplers.transition_probabilities(TINY_RW, "return-weighted", 0.1)
    standard_error = np.sqrt(probability * (1 - probability) / draws)
    assert np.all(np.abs(frequency - probability) <= 5 * standard_error + 1e-6), (frequency, probability)


def test_the_offline_loops_fused_chunk_draws_its_batches_from_the_table():
    """An agent whose update reports the mean episode index of its batch: 0.996 of the weighted mass is on episode 2
    (2 * 0.996 + 1 * 0.004 = 1.996), where uniform transitions average (0 * 2 + 1 * 3 + 2 * 5) / 10 = 1.3."""
    agent = types.SimpleNamespace(sample_batch=uniform_transitions,
                                  update=lambda state, batch, key: (state, {"episode": batch["rewards"].mean()}))
    config = types.SimpleNamespace(batch_size=256)
    data = {"rewards": jax.numpy.asarray(np.repeat([0.0, 1.0, 2.0], [2, 3, 5]))}
    table = jax.device_put(samplers.weighted_trajectories(TINY_RW, "return-weighted", 0.1))
    chunk = offline.make_train_chunk(agent, config, 200)
    keys = jax.random.PRNGKey(0)[None]
    weighted = float(chunk(jax.numpy.zeros(1), keys, 0, data, table)[1]["episode"][0])
    uniform = float(chunk(jax.numpy.zeros(1), keys, 0, data)[1]["episode"][0])
    assert weighted == pytest.approx(1.996, abs=0.01) and uniform == pytest.approx(1.3, abs=0.02)


def test_bad_sampler_settings_are_one_line_errors_before_data_loads(tmp_path, capsys):
    unknown = "--sampler 'RW': choose one of uniform, return-weighted, advantage-weighted"
    for extra, message in ((["--sampler", "RW"], unknown),
                           (["--sampler", "return-weighted", "--sampler-temperature", "0"],
                            "--sampler-temperature 0.0: must be a finite number above 0")):
        code, _, err = run_cli(["train", "td3bc", "--dataset", str(tmp_path / "missing"), "--out", str(tmp_path / "r"),
                                *extra], capsys)
        assert code == 1 and len(err.strip().splitlines()) == 1 and message in err, err


@pytest.fixture(scope="module")
def pendulum(tmp_path_factory):
    return str(write_o2o(collect_pendulum(episodes=6), tmp_path_factory.mktemp("data") / "pendulum"))


def test_an_agent_that_draws_its_own_batches_or_selects_episodes_is_refused(pendulum, tmp_path, capsys):
    code, _, err = run_cli(["train", "dt", "--dataset", pendulum, "--sampler", "return-weighted", "--out",
                            str(tmp_path / "dt")], capsys)
    assert code == 1 and "dt draws its own batches, not single transitions" in err
    code, _, err = run_cli(["train", "bc10", "--dataset", pendulum, "--sampler", "advantage-weighted", "--out",
                            str(tmp_path / "bc10")], capsys)
    assert code == 1 and "bc10 trains on 1 of the dataset's 6 episodes and --sampler advantage-weighted" in err
    assert not (tmp_path / "dt").exists() and not (tmp_path / "bc10").exists()


def test_weights_come_from_the_rewards_as_stored_not_from_iqls_scaled_ones(pendulum):
    prepared = offline.prepare(offline.OfflineSettings(algo="iql", dataset=pendulum, eval_episodes=0,
                                                       sampler="advantage-weighted"))
    assert prepared.dataset.metadata["reward_scale"] != 1.0
    expected = samplers.weighted_trajectories(load_dataset(pendulum), "advantage-weighted", 0.1)
    for name in ("keep", "alias", "starts", "lengths"):
        np.testing.assert_array_equal(getattr(prepared.trajectories, name), getattr(expected, name))


def test_a_weighted_run_records_its_sampler_and_resumes_with_it_exactly(pendulum, tmp_path, capsys, ctrl_c_at_chunk):
    args = ["train", "td3bc", "--dataset", pendulum, "--steps", "300", "--eval-every", "100", "--eval-episodes", "0",
            "--sampler", "return-weighted", "--sampler-temperature", "0.2", "--quiet", "--json", *TINY]
    code, out, err = run_cli([*args, "--out", str(tmp_path / "whole")], capsys)
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["sampler"] == "RW-0.2"
    settings = runs.RunDir.open(tmp_path / "whole").settings
    assert (settings["sampler"], settings["sampler_temperature"]) == ("return-weighted", 0.2)

    release = ctrl_c_at_chunk(2)
    assert run_cli([*args, "--out", str(tmp_path / "cut")], capsys)[0] == 130
    release()
    code, _, err = run_cli(["train", "--resume", str(tmp_path / "cut"), "--quiet"], capsys)
    assert code == 0, err
    lines = lambda run: (run / "metrics.jsonl").read_text().splitlines()
    assert lines(tmp_path / "cut") == lines(tmp_path / "whole")  # a resume that lost the sampler would draw otherwise
    code, _, err = run_cli(["train", "--resume", str(tmp_path / "cut"), "--sampler", "uniform"], capsys)
    assert code == 1 and "drop --sampler" in err


def test_a_weighted_offline_run_fine_tunes_online_with_uniform_replay(pendulum, tmp_path, capsys):
    code, out, err = run_cli(["run", "iql", "--dataset", pendulum, "--offline-steps", "20", "--online-steps", "30",
                              "--eval-every", "10", "--eval-episodes", "0", "--sampler", "advantage-weighted",
                              "--out", str(tmp_path / "o2o"), "--quiet", "--json", *TINY], capsys)
    assert code == 0, err
    assert runs.RunDir.open(tmp_path / "o2o" / "offline").settings["sampler"] == "advantage-weighted"
    assert json.loads(out.splitlines()[-1])["steps"] == 30


def test_a_bench_crosses_samplers_with_algorithms_and_the_report_names_the_weighted_method(tmp_path):
    grid = bench.Grid(algos=["td3bc", "iql"], datasets=["hopper"], samplers=["uniform", "return-weighted"],
                      steps=10, eval_every=10)  # (a missing "a/hopper" would be a dataset id, named in full)
    assert [(c.id, c.sampler) for c in bench.cells(grid)] == [
        ("td3bc--hopper", "uniform"), ("td3bc+RW-0.1--hopper", "return-weighted"),
        ("iql--hopper", "uniform"), ("iql+RW-0.1--hopper", "return-weighted")]
    with pytest.raises(O2OError, match="dt draws its own batches"):
        bench.Grid(algos=["dt"], datasets=["a/hopper"], samplers=["advantage-weighted"])
    with pytest.raises(O2OError, match="--sampler 'top'"):
        bench.Grid(algos=["iql"], datasets=["a/hopper"], samplers=["top"])

    config = {"offline": {"settings": {"sampler": "return-weighted", "sampler_temperature": 0.1}}}
    run = {"algo": "td3bc", "online_algo": None, "dataset": "hopper", "seed": 0, "status": "completed",
           "config": json.dumps(config), "evaluations": {"offline": [{"step": 10, "normalized_score": 50.0}]}}
    scores = tables.run_scores(run)
    assert (scores.method, scores.algo, scores.sampler) == ("td3bc+RW-0.1", "td3bc", "RW-0.1")
    assert tables.entries([scores], reps=100)[0]["published"] is None  # the published tables sample uniformly


def test_a_bench_directory_written_before_samplers_existed_still_resumes(tmp_path):
    grid = bench.Grid(algos=["iql"], datasets=["a/hopper"], steps=10, eval_every=10)
    bench.prepare_dir(grid, tmp_path)
    recorded = files.read_json(tmp_path / bench.GRID_FILE)
    for added in ("samplers", "sampler_temperature"):
        del recorded["grid"][added]
    files.write_json(tmp_path / bench.GRID_FILE, recorded)
    bench.prepare_dir(grid, tmp_path)  # the same grid: no "different grid" refusal
    assert bench.saved_grid(tmp_path).samplers == ["uniform"]
    with pytest.raises(O2OError, match="differs in samplers"):
        bench.prepare_dir(bench.Grid(algos=["iql"], datasets=["a/hopper"], steps=10, eval_every=10,
                                     samplers=["return-weighted"]), tmp_path)
