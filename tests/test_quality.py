"""Belkhale et al.'s dataset-quality measures (`o2o.data.quality`) on datasets built to have known values.

The synthetic system is linear-Gaussian, `s' = A s + B a + sigma_s * noise` with `a = K s + offset + sigma_p * noise`,
so the true transition noise is `sigma_s^2` per state dimension and the true action variance at a state is
`sigma_p^2`, plus `p (1 - p) delta^2` for a mixture of two policies whose offsets differ by `delta`.
"""

import json

import numpy as np
import pytest
from conftest import make_dataset, run_cli

from o2o.data import Dataset
from o2o.data.quality import dataset_quality

DYNAMICS = np.array([[0.9, 0.1], [-0.1, 0.9]])
GAIN = np.array([[-0.5, -0.2]])
SIGMA_P = 0.1


def linear_gaussian(sigma_s, offsets=(0.0,), mixture_probability=0.5, steer=0.1, episodes=200, steps=100, seed=0):
    """`episodes` x `steps` transitions; each step's policy offset is drawn from `offsets` (first with
    `mixture_probability`), so that every policy acts on the same states; `steer` = B's entry (0: actions leave the
    states alone)."""
    rng = np.random.default_rng(seed)
    control = np.array([[0.0], [steer]])
    state = rng.normal(size=(episodes, 2))
    observations, actions, next_observations = [], [], []
    for _ in range(steps):
        first = rng.random((episodes, 1)) < mixture_probability
        offset = np.where(first, offsets[0], offsets[-1])
        action = state @ GAIN.T + offset + SIGMA_P * rng.normal(size=(episodes, 1))
        following = state @ DYNAMICS.T + action @ control.T + sigma_s * rng.normal(size=(episodes, 2))
        observations.append(state), actions.append(action), next_observations.append(following)
        state = following
    return from_steps(observations, actions, next_observations)


def from_steps(observations, actions, next_observations):
    """A dataset of parallel episodes from per-step lists of (episodes, dim) arrays, each episode cut by a timeout."""
    episodes, steps = len(observations[0]), len(observations)
    episode_major = [np.stack(part, axis=1).reshape(episodes * steps, -1).astype(np.float32)
                     for part in (observations, actions, next_observations)]
    timeouts = np.zeros(episodes * steps, bool)
    timeouts[steps - 1 :: steps] = True
    return Dataset(observations=episode_major[0], actions=episode_major[1], rewards=np.zeros(len(timeouts), np.float32),
                   next_observations=episode_major[2], terminals=np.zeros_like(timeouts), timeouts=timeouts)


def test_deterministic_dynamics_have_no_transition_noise():
    quality = dataset_quality(linear_gaussian(sigma_s=0.0))
    assert quality["transition_noise_variance"] < 1e-10  # float32 rounding of s' - s only
    assert quality["transition_noise_fraction"] < 1e-8


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("sigma_s", [0.1, 0.3])
def test_transition_noise_recovers_the_system_noise_variance(sigma_s, seed):
    # +-6%: the standard error of 10k squared residuals over two dimensions is about 1% (seeds 0-4 measured -2.5% to
    # +0.7%); keeping the query in its own fit underestimates by 10%.
    noise = dataset_quality(linear_gaussian(sigma_s, seed=seed))["transition_noise_variance"]
    assert noise == pytest.approx(sigma_s**2, rel=0.06)


def test_transition_noise_is_unbiased_in_hoppers_dimensions():
    """11 state and 3 action dimensions, as Hopper's: a local fit of 15 parameters on 60 neighbours, where the
    residual's leverage correction matters (without it the estimate is 24% high; with it, within 1%)."""
    rng = np.random.default_rng(0)
    n, sigma = 20_000, 0.1
    dynamics, control = rng.normal(size=(11, 11)) / np.sqrt(11), rng.normal(size=(11, 3)) / np.sqrt(3)
    states, actions = rng.normal(size=(n, 11)), rng.uniform(-1, 1, size=(n, 3))
    following = states @ dynamics.T + actions @ control.T + sigma * rng.normal(size=(n, 11))
    timeouts = np.zeros(n, bool)
    timeouts[-1] = True
    data = Dataset(states.astype(np.float32), actions.astype(np.float32), np.zeros(n, np.float32),
                   following.astype(np.float32), np.zeros(n, bool), timeouts)
    assert dataset_quality(data)["transition_noise_variance"] == pytest.approx(sigma**2, rel=0.05)


def test_one_behaviour_policy_has_its_own_action_variance():
    quality = dataset_quality(linear_gaussian(0.05, steer=0.0))
    assert quality["action_variance"] == pytest.approx(SIGMA_P**2, rel=0.1)  # a 10-state neighbourhood: +-10%


@pytest.mark.parametrize("probability", [0.5, 0.7])
def test_a_mixture_of_two_policies_on_the_same_states_adds_p_times_1_minus_p_delta_squared(probability):
    delta = 2.0
    quality = dataset_quality(linear_gaussian(0.05, offsets=(-1.0, 1.0), mixture_probability=probability, steer=0.0))
    expected = SIGMA_P**2 + probability * (1 - probability) * delta**2  # 1.01 for 50/50, 0.85 for 70/30
    assert quality["action_variance"] == pytest.approx(expected, rel=0.05)


def test_the_measures_do_not_depend_on_the_units_of_a_state_dimension():
    """Neighbours are searched on standardized dimensions: a state measured in millimetres instead of metres finds
    the same neighbours (unstandardized, that dimension alone would choose them)."""
    data = linear_gaussian(0.1, offsets=(-1.0, 1.0))
    millimetres = np.array([1000.0, 1.0], np.float32)
    rescaled = Dataset(**{**data.arrays(), "observations": data.observations * millimetres,
                          "next_observations": data.next_observations * millimetres})
    before, after = dataset_quality(data), dataset_quality(rescaled)
    assert after["action_variance"] == pytest.approx(before["action_variance"], rel=1e-3)
    assert after["transition_noise_fraction"] == pytest.approx(before["transition_noise_fraction"], rel=1e-3)


def test_noise_below_the_curvature_floor_of_nonlinear_dynamics_is_not_resolved_but_above_it_is():
    """A pendulum map (deterministic, nonlinear): local linear fits leave a small floor, and noise is measured once its
    variance is well above it."""
    def pendulum(sigma, episodes=100, steps=200, dt=0.05):
        rng = np.random.default_rng(0)
        state = rng.uniform([-np.pi, -1.0], [np.pi, 1.0], size=(episodes, 2))
        observations, actions, next_observations = [], [], []
        for _ in range(steps):
            torque = np.clip(-state[:, 1] - 2 * np.sin(state[:, 0]) + 0.3 * rng.normal(size=episodes), -2, 2)
            velocity = state[:, 1] + dt * (-10 * np.sin(state[:, 0]) + 3 * torque)
            following = np.stack([state[:, 0] + dt * velocity, velocity], 1) + sigma * rng.normal(size=(episodes, 2))
            observations.append(state), actions.append(torque[:, None]), next_observations.append(following)
            state = following
        return from_steps(observations, actions, next_observations)

    floor, small, large = (dataset_quality(pendulum(s))["transition_noise_variance"] for s in (0.0, 0.01, 0.03))
    assert 0 < floor < 5e-5  # the curvature floor at 20k transitions, well below 0.01^2 = 1e-4
    assert floor < small < large
    assert large == pytest.approx(0.03**2, rel=0.1)  # the floor adds 1%


def test_goal_conditioned_tiny_and_wide_datasets_say_why_a_measure_is_missing():
    goal = make_dataset(n=300)
    goal = Dataset(**goal.arrays(), metadata={**goal.metadata, "goal_conditioned": True})
    quality = dataset_quality(goal)
    assert quality["action_variance"] is None and "goal" in quality["quality_unavailable"]["action_variance"]
    assert quality["transition_noise_variance"] is not None  # the dynamics do not depend on the goal

    tiny = dataset_quality(make_dataset(n=9, episode_length=9))
    assert tiny["action_variance"] is None and tiny["transition_noise_variance"] is None
    assert tiny["transition_noise_fraction"] is None
    assert "9 transitions" in tiny["quality_unavailable"]["action_variance"]
    assert "9 non-terminal transitions" in tiny["quality_unavailable"]["transition_noise"]

    wide = dataset_quality(make_dataset(n=300, obs_dim=40))  # Ant's 105 observations, say
    assert wide["action_variance"] is None and wide["transition_noise_variance"] is None
    assert wide["quality_unavailable"]["action_variance"].startswith("40 observation dimensions")


def test_data_info_and_the_report_show_the_measures_of_random_pendulum_data(tmp_path, capsys):
    """Uniform random torques in Pendulum's box [-2, 2] ignore the state, so their variance at any state is
    4^2 / 12 = 4/3; Pendulum's dynamics are deterministic, so almost all of the change from s to s' is explained."""
    from test_honest_summaries import build_quietly, fake_run

    from o2o.collect.levels import collect
    from o2o.data import write_o2o

    path = write_o2o(collect("Pendulum-v1", "random", transitions=4000, seed=0, num_envs=4), tmp_path / "pendulum")
    code, out, err = run_cli(["data", "info", str(path), "--quality", "--json"], capsys)
    assert code == 0, err
    info = json.loads(out.strip().splitlines()[-1])
    assert info["action_variance"] == pytest.approx(4 / 3, rel=0.05)
    assert info["transition_noise_fraction"] < 0.01
    code, out, _ = run_cli(["data", "info", str(path), "--json"], capsys)
    assert "action_variance" not in json.loads(out.strip().splitlines()[-1])  # the quick default leaves them out

    build_quietly([fake_run(tmp_path / "run", [10, 20], dataset=str(path))], tmp_path / "report")
    [described] = json.loads((tmp_path / "report" / "report.json").read_text())["datasets"]
    assert described["action_variance"] == info["action_variance"]  # the same fixed-seed estimate
    assert "| action variance | transition noise |" in (tmp_path / "report" / "report.md").read_text()
