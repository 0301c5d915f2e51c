import numpy as np
import pytest
from conftest import make_dataset, run_cli

from o2o.data import Dataset, describe, state_action_coverage, trajectory_quality, write_o2o
from o2o.envs import normalized_score, reference_returns
from o2o.errors import O2OError


def tiny(observations, actions, rewards, ends):
    observations = np.asarray(observations, np.float32).reshape(len(rewards), -1)
    ends = np.asarray(ends, bool)
    return Dataset(observations, np.asarray(actions, np.float32).reshape(len(rewards), -1),
                   np.asarray(rewards, np.float32), observations, np.zeros_like(ends), ends)


def test_normalized_score_uses_d4rl_references_for_v5_locomotion():
    assert normalized_score("Hopper-v5", 3234.3) == pytest.approx(100.0)
    assert normalized_score("Hopper-v5", -20.272305) == pytest.approx(0.0)
    # halfway between random and expert on HalfCheetah: (-280.178953 + 12135.0) / 2
    assert normalized_score("HalfCheetah-v5", 5927.4105235) == pytest.approx(50.0)
    np.testing.assert_allclose(normalized_score("Walker2d-v5", [1.629008, 4592.3]), [0.0, 100.0])
    assert normalized_score("Ant-v5", 3879.7) == pytest.approx(100.0)
    assert normalized_score("AdroitHandPen-v1", 3076.8331017826877) == pytest.approx(100.0)


def test_mazes_take_no_d4rl_references():
    # D4RL's AntMaze (0, 1) holds for episodes that end at the goal; gymnasium-robotics' go on and pay every step there.
    # On D4RL's maze2d scale gymnasium's PointMaze gives a noisy controller 140-208. Both take the dataset's references.
    for env_id in ("AntMaze_UMaze-v5", "PointMaze_UMaze-v3", "PointMaze_LargeDense-v3"):
        assert reference_returns(env_id) is None
    assert reference_returns("AntMaze_UMaze-v5", {"ref_min_score": 0.0, "ref_max_score": 400.0}) == (0.0, 400.0)


def test_normalized_score_falls_back_to_dataset_metadata_then_o2o_references():
    meta = {"ref_min_score": -1200.0, "ref_max_score": -200.0}
    assert normalized_score("MountainCarContinuous-v0", -700.0, meta) == pytest.approx(50.0)
    assert normalized_score("Pendulum-v1", -700.0, meta) == pytest.approx(50.0)
    assert reference_returns("Pendulum-v1") == (-1170.0, -142.4)
    assert reference_returns("MountainCarContinuous-v0") is None
    with pytest.raises(O2OError, match="no reference returns for MountainCarContinuous-v0"):
        normalized_score("MountainCarContinuous-v0", 50.0)


def test_d4rl_references_win_over_metadata_for_d4rl_tasks():
    assert reference_returns("Hopper-v5", {"ref_min_score": 0, "ref_max_score": 1}) == (-20.272305, 3234.3)


def test_sparse_adroit_takes_the_datasets_references_not_d4rls_dense_ones():
    """AdroitHand*Sparse pays 10 per success and -0.1 otherwise: D4RL's dense pen/door/... references do not apply."""
    meta = {"ref_min_score": -20.0, "ref_max_score": 1000.0}
    for task in ("Pen", "Hammer", "Door", "Relocate"):
        assert reference_returns(f"AdroitHand{task}Sparse-v1") is None
        assert reference_returns(f"AdroitHand{task}Sparse-v1", meta) == (-20.0, 1000.0)
        assert reference_returns(f"AdroitHand{task}-v1", meta) != (-20.0, 1000.0)  # the dense task stays D4RL's
    with pytest.raises(O2OError, match="no reference returns for AdroitHandPenSparse-v1"):
        normalized_score("AdroitHandPenSparse-v1", 0.0)


def test_trajectory_quality_is_normalized_mean_return():
    d = tiny(np.zeros(4), np.zeros(4), [1, 1, 3, 3], [0, 1, 0, 1])  # episode returns 2 and 6, mean 4
    assert trajectory_quality(d, (0.0, 8.0)) == pytest.approx(0.5)
    assert trajectory_quality(d, None) is None


def test_episodes_that_ran_to_the_limit_count_as_complete_when_next_observations_were_derived():
    """Without next_observations each timeout's step is dropped (D4RL's rule), so an episode that ran to the limit L
    holds L - 1 steps. Two such episodes (return 10 a step) and one that terminated after 3 steps (return 3): all three
    are complete, not only the failure, so the behaviour return is (40 + 40 + 3) / 3."""
    from o2o.data import dataset_from_arrays
    from o2o.data.stats import behaviour

    flags = np.zeros(13, bool)
    arrays = {"observations": np.arange(13.0)[:, None], "actions": np.zeros((13, 1)),
              "rewards": np.r_[np.full(10, 10.0), np.ones(3)], "terminals": flags.copy(), "timeouts": flags.copy()}
    arrays["timeouts"][[4, 9]] = True
    arrays["terminals"][12] = True
    with pytest.warns(UserWarning, match="dropped 2 step"):
        d = dataset_from_arrays(arrays, "d.hdf5")
    assert d.episode_lengths.tolist() == [4, 4, 3] and d.episode_returns.tolist() == [40.0, 40.0, 3.0]
    measured = behaviour(d, (0.0, 50.0), time_limit=5)
    assert measured["return_episodes_complete"] == 3
    assert measured["behaviour_return_mean"] == pytest.approx(83 / 3)
    assert measured["tq"] == pytest.approx(83 / 3 / 50)
    # recorded next observations: a 4-step episode fell short of the limit of 5
    assert behaviour(Dataset(**d.arrays()), None, time_limit=5)["return_episodes_complete"] == 1


def test_saco_counts_occupied_cells_per_transition():
    # four transitions, two of them identical: three occupied cells
    d = tiny([0.0, 0.0, 5.0, -5.0], [0.0, 0.0, 0.0, 0.0], [0, 0, 0, 0], [0, 0, 0, 1])
    assert state_action_coverage(d) == pytest.approx(3 / 4)
    # relative to a reference covering those cells and two more: 3 / 5
    ref = tiny([0.0, 5.0, -5.0, 2.0, -2.0], np.zeros(5), np.zeros(5), [0, 0, 0, 0, 1])
    assert state_action_coverage(d, reference=ref) == pytest.approx(3 / 5)


def test_saco_is_lower_for_a_narrow_dataset_than_a_diverse_one():
    rng = np.random.default_rng(0)
    diverse = tiny(rng.normal(size=(2000, 2)), rng.normal(size=(2000, 1)), np.zeros(2000), np.eye(2000)[-1])
    narrow = tiny(np.repeat(rng.normal(size=(20, 2)), 100, axis=0), np.zeros((2000, 1)), np.zeros(2000), np.eye(2000)[-1])
    assert state_action_coverage(narrow, reference=diverse) < 0.1 * state_action_coverage(diverse, reference=diverse)


def test_describe_reports_returns_and_lengths():
    d = make_dataset(n=300, episode_length=100)
    info = describe(d)
    assert info["transitions"] == 300 and info["episodes"] == 3
    assert info["return_mean"] == pytest.approx(d.episode_returns.mean())
    assert info["length_min"] == info["length_max"] == 100


def test_data_info_json_has_the_promised_keys(tmp_path, capsys):
    import json

    path = write_o2o(make_dataset(n=300), tmp_path / "ds")
    code, out, err = run_cli(["data", "info", str(path), "--json"], capsys)
    assert code == 0, err
    info = json.loads(out.strip().splitlines()[-1])
    for key in ("transitions", "episodes", "observation_dim", "action_dim", "return_mean", "return_min", "return_max", "env"):
        assert key in info
    assert info["env"] == "Hopper-v5" and info["observation_dim"] == 11
    assert info["normalized_return_mean"] == pytest.approx(normalized_score("Hopper-v5", info["return_mean"]))


@pytest.mark.parametrize("fmt", ["o2o", "minari", "hdf5", "npz"])
def test_data_convert_writes_every_format_readably(tmp_path, capsys, fmt):
    src = write_o2o(make_dataset(n=250), tmp_path / "src")
    dest = tmp_path / ("out.hdf5" if fmt == "hdf5" else "out.npz" if fmt == "npz" else "out")
    code, out, err = run_cli(["data", "convert", str(src), str(dest), "--format", fmt], capsys)
    assert code == 0, err
    code, out, err = run_cli(["data", "info", str(dest), "--json"], capsys)
    assert code == 0, err
    import json

    info = json.loads(out.strip().splitlines()[-1])
    assert info["transitions"] == 250 and info["env"] == "Hopper-v5"
