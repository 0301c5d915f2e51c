"""`o2o collect`: D4RL-protocol datasets from real environments, reproducible to the byte."""

import json

import numpy as np
from conftest import run_cli

from o2o.collect.levels import collect
from o2o.data import content_hash


def test_same_seed_gives_the_same_dataset_and_another_seed_does_not():
    a, b = collect("Hopper-v5", "random", transitions=3000, seed=7), collect("Hopper-v5", "random", transitions=3000, seed=7)
    assert content_hash(a) == content_hash(b)
    assert content_hash(collect("Hopper-v5", "random", transitions=3000, seed=8)) != content_hash(a)


def test_random_hopper_data_has_terminals_timeouts_and_exact_size():
    data = collect("Hopper-v5", "random", transitions=5000, seed=0, num_envs=8)
    assert len(data) == 5000
    assert data.terminals.sum() > 50  # a random hopper falls within tens of steps
    assert not (data.terminals & data.timeouts).any()
    # within an episode, the next observation is the following step's observation
    inside = np.setdiff1d(np.arange(len(data) - 1), data.episode_ends)
    np.testing.assert_array_equal(data.next_observations[inside], data.observations[inside + 1])
    assert data.metadata["env_id"] == "Hopper-v5" and data.metadata["level"] == "random"
    assert data.metadata["ref_min_score"] == -20.272305


def test_timeouts_mark_the_env_time_limit():
    data = collect("Pendulum-v1", "random", transitions=1000, seed=0, num_envs=2)
    assert (data.episode_lengths[:-1] <= 200).all() and data.timeouts.sum() == 6  # 2 full episodes per env + 2 cuts
    assert not data.terminals.any()


def test_collect_command_writes_o2o_and_minari_that_their_readers_load(tmp_path, capsys):
    import minari

    code, out, err = run_cli(["collect", "Pendulum-v1", "--level", "random", "--transitions", "600", "--out",
                              str(tmp_path / "p"), "--json"], capsys)
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["transitions"] == 600
    code, out, err = run_cli(["data", "info", str(tmp_path / "p"), "--json"], capsys)
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["env"] == "Pendulum-v1"
    minari_dir = tmp_path / "minari" / "o2o" / "pendulum-random-v0"
    code, out, err = run_cli(["collect", "Pendulum-v1", "--level", "random", "--transitions", "600", "--out",
                              str(minari_dir), "--format", "minari"], capsys)
    assert code == 0, err
    assert minari.load_dataset("o2o/pendulum-random-v0").total_steps == 600


def test_levels_without_a_shipped_policy_say_so(capsys):
    code, _, err = run_cli(["collect", "Hopper-v5", "--level", "expert", "--transitions", "10"], capsys)
    assert code == 1 and "no shipped behaviour policy for Hopper-v5 yet" in err
    code, _, err = run_cli(["collect", "Hopper-v5", "--level", "superb"], capsys)
    assert code == 1 and "unknown level 'superb'" in err
